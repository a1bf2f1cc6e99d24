//! The analyzer worker: consumes `saju_profiles` change events, computes the four pillars and
//! the analysis with the [`saju`] engine, and writes results back to PostgreSQL in batches.
//!
//! - [`profile`]: an event read into inputs, and the decision whether it needs work (inserts
//!   and input edits do; the worker's own write-backs and non-input edits do not);
//! - [`writeback`]: the charts computed on rayon and written in one conditional statement;
//! - [`worker`]: the consume → compute → write → publish → commit loop;
//! - [`reference`]: the database's reference tables checked against the engine's at start;
//! - [`metrics`]: every metric the worker exports.

pub mod config;
pub mod metrics;
pub mod profile;
pub mod reference;
mod worker;
pub mod writeback;

use std::sync::Arc;

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use shared::health::{self, Health};
use shared::kafka::{consumer_config, producer_config, with_lag_statistics, LagContext};
use shared::shutdown::Shutdown;
use shared::topics::{dlq_topic, ANALYSIS_TOPIC};

pub use config::Config;

/// Runs the worker until `shutdown`: checks the reference tables, joins the consumer group and
/// processes batches; on shutdown finishes the batches in hand and commits their offsets.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let options = config.chart_options()?;
    let registry = health::new_registry("analyzer");
    let metrics = metrics::Metrics::register(&registry)?;
    let lag = LagContext::new("analyzer", &registry)?;
    let health = Health::new();
    health.set("postgres", false, "connecting");
    health.set("kafka", false, "connecting");
    let (_addr, server) = health::serve(
        config.metrics_addr,
        registry,
        health.clone(),
        shutdown.clone(),
    )
    .await?;

    let pool = shared::db::connect(&config.postgres, "analyzer").await?;
    let checked = reference::verify(&pool).await?;
    health.set(
        "postgres",
        true,
        "connected; reference tables match the engine",
    );
    tracing::info!(rows = checked, "reference tables match the engine");

    let topic = config.kafka.cdc_topic("public", "saju_profiles");
    let consumer: StreamConsumer<LagContext> = with_lag_statistics(consumer_config(
        &config.kafka,
        &config.consumer,
        &config.group_id,
        "analyzer",
    ))
    .create_with_context(lag)
    .context("cannot create the Kafka consumer")?;
    consumer.subscribe(&[&topic]).context("cannot subscribe")?;
    let producer: FutureProducer = producer_config(&config.kafka, "analyzer")
        .create()
        .context("cannot create the Kafka producer")?;
    health.set("kafka", true, format!("subscribed to {topic}"));
    tracing::info!(%topic, group = %config.group_id, batch_size = config.batch_size, "analyzer running");

    let worker = Arc::new(worker::Worker {
        pool: pool.clone(),
        consumer: Arc::new(consumer),
        producer: producer.clone(),
        metrics,
        fingerprint: profile::Fingerprint::new(&options),
        options,
        dlq_topic: dlq_topic(&topic),
        topic,
        result_topic: ANALYSIS_TOPIC.to_owned(),
        batch_size: config.batch_size.max(1),
        flush_interval: config.flush_interval,
        group: config.group_id.clone(),
        write_concurrency: usize::from(config.write_concurrency),
        claims: worker::RowClaims::default(),
    });
    let result = Arc::clone(&worker).run(shutdown.clone()).await;
    // Offsets of written batches were committed asynchronously; make sure they are out.
    if let Err(e) = rdkafka::consumer::Consumer::commit_consumer_state(
        worker.consumer.as_ref(),
        rdkafka::consumer::CommitMode::Sync,
    ) {
        tracing::debug!(error = %e, "final commit had nothing to do");
    }
    use rdkafka::producer::Producer;
    let _ = producer.flush(std::time::Duration::from_secs(10));
    pool.close().await;
    shutdown.trigger();
    server.await?;
    tracing::info!("analyzer stopped");
    result
}
