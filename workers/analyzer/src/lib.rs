//! The analyzer worker: consumes `saju_profiles` change events, computes the four pillars and
//! the analysis with the [`saju`] engine, and writes results back to PostgreSQL in batches.
//!
//! - [`profile`]: an event read into inputs, and the decision whether it needs work (inserts
//!   and input edits do; the worker's own write-backs and non-input edits do not);
//! - [`writeback`]: the charts computed on rayon and written in one conditional statement;
//! - [`step`]: the analyzer's step in the shared consumer runtime ([`shared::consume`]);
//! - [`reanalyze`]: the `reanalyze` command, existing rows given the current engine's analysis;
//! - [`reference`]: the database's reference tables checked against the engine's at start;
//! - [`metrics`]: every metric the worker exports.

pub mod config;
pub mod metrics;
pub mod profile;
pub mod reanalyze;
pub mod reference;
pub mod step;
pub mod writeback;

use std::sync::Arc;

use shared::consume::{self, Settings};
use shared::health::{self, Health};
use shared::shutdown::Shutdown;
use shared::topics::dlq_topic;

pub use config::Config;

/// Runs the worker until `shutdown`: checks the reference tables, joins the consumer group and
/// processes batches in the shared consumer runtime; on shutdown drains within
/// `--shutdown-timeout` and commits what is finished.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let options = config.chart_options()?;
    let registry = health::new_registry(metrics::NAMESPACE);
    let metrics = metrics::Metrics::register(&registry)?;
    let runtime_metrics = consume::Metrics::register(
        metrics::NAMESPACE,
        <step::Analyzer as consume::Step>::SKIP_REASONS,
        &registry,
    )?;
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

    let pool =
        shared::db::connect_writer(&config.postgres, "analyzer", config.mark_write_backs).await?;
    let checked = reference::verify(&pool).await?;
    health.set(
        "postgres",
        true,
        "connected; reference tables match the engine",
    );
    tracing::info!(rows = checked, "reference tables match the engine");

    let topic = config.kafka.cdc_topic("public", "saju_profiles");
    let dlq = dlq_topic(&topic);
    let batch_size = config.batch_size.max(1);
    let write_concurrency = usize::from(config.write_concurrency);
    let mut settings = Settings::new("analyzer", &config.group_id, &config.results_topic, &dlq);
    settings.batch_size = batch_size;
    settings.flush_interval = config.flush_interval;
    settings.write_concurrency = write_concurrency;
    settings.max_in_flight = config
        .consumer
        .max_in_flight
        // As many as the writers take at once: more only waits, holding its events (and,
        // behind them, librdkafka's decompressed batches) in memory.
        .unwrap_or(batch_size * write_concurrency.max(2));
    settings.shutdown_timeout = config.consumer.shutdown_timeout;
    settings.max_message_bytes = config.kafka.max_message_bytes();
    tracing::info!(%topic, group = %config.group_id, batch_size, "analyzer running");

    let analyzer = Arc::new(step::Analyzer {
        pool: pool.clone(),
        fingerprint: profile::Fingerprint::new(&options),
        options,
        metrics,
        cdc_topic: topic.clone(),
    });
    let merger = (!config.index_merge_interval.is_zero()).then(|| {
        tokio::spawn(writeback::merge_index_pending(
            pool.clone(),
            config.index_merge_interval,
            shutdown.clone(),
        ))
    });
    // The reader's `too_large` dead letters name rows whose change it could not publish.
    let topics = [topic, dlq];
    let result = consume::kafka::run(
        analyzer,
        settings,
        &config.kafka,
        &config.consumer,
        &topics,
        runtime_metrics,
        health,
        shutdown.clone(),
    )
    .await;
    shutdown.trigger();
    if let Some(merger) = merger {
        let _ = merger.await;
    }
    pool.close().await;
    server.await?;
    tracing::info!("analyzer stopped");
    result.map(|_| ())
}
