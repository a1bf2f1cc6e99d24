//! The asset worker: consumes `image_assets` change events, reads each image under the assets
//! root, and merges what the file really is into the row's metadata in batches.
//!
//! Layout:
//! - [`probe`]: bytes → [`probe::ImageFacts`], pure (format, dimensions, EXIF, hashes, colours).
//! - [`resolve`]: a row's `file_path`/`file_name` → the file under the root, or a refusal.
//! - [`change`]: what a change event asks for (enrich, skip — including the worker's own
//!   write-backs — or dead-letter).
//! - [`enrichment`]: one file from row to the document stored under `metadata.asset_worker`.
//! - [`writeback`]: the batched, conditional `UPDATE … FROM UNNEST`.
//! - [`offsets`]: which offsets may be committed when files finish out of order.
//! - [`events`]: `assets.enriched.v1` and dead-letter payloads.
//! - [`worker`]: the pipeline tying them together; [`metrics`]: every metric name.

pub mod change;
pub mod config;
#[cfg(any(test, feature = "corpus"))]
pub mod corpus;
pub mod enrichment;
pub mod events;
pub mod metrics;
pub mod offsets;
pub mod probe;
pub mod resolve;
pub mod worker;
pub mod writeback;

use std::sync::{Arc, Mutex};

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, Producer};
use shared::health::{self, Health};
use shared::kafka::{consumer_config, producer_config};
use shared::shutdown::Shutdown;
use shared::topics::{dlq_topic, ENRICHED_TOPIC};

pub use config::Config;

use crate::enrichment::Settings;
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;
use crate::resolve::AssetRoot;
use crate::worker::{AssetContext, Pipeline};

/// Runs the worker until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let root = AssetRoot::new(&config.assets_root)
        .with_context(|| format!("assets root {} is not usable", config.assets_root.display()))?;
    let registry = health::new_registry("asset");
    let metrics = Metrics::register(&registry)?;
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
    let pool = shared::db::connect(&config.postgres, "asset-worker").await?;
    health.set("postgres", true, "connected");

    let topic = config.kafka.cdc_topic("public", "image_assets");
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
    let context = AssetContext {
        tracker: tracker.clone(),
        topic: topic.clone(),
        lag: metrics.consumer_lag.clone(),
    };
    let mut consumer_settings = consumer_config(
        &config.kafka,
        &config.consumer,
        &config.group_id,
        "asset-worker",
    );
    consumer_settings.set("statistics.interval.ms", "5000");
    let consumer: StreamConsumer<AssetContext> = consumer_settings
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&topic])
        .with_context(|| format!("subscribing to {topic}"))?;
    let producer: FutureProducer = producer_config(&config.kafka, "asset-worker")
        .create()
        .context("creating the Kafka producer")?;
    health.set("kafka", true, "subscribed");

    let threads = config.pool_threads();
    let probe_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("asset-probe-{i}"))
        .build()
        .context("starting the probing pool")?;
    tracing::info!(
        group = %config.group_id,
        %topic,
        root = %root.path().display(),
        threads,
        queue_depth = config.queue_depth,
        "asset worker ready"
    );
    let pipeline = Arc::new(Pipeline {
        consumer: Arc::new(consumer),
        tracker,
        producer: producer.clone(),
        pool: pool.clone(),
        probe_pool: Arc::new(probe_pool),
        settings: Arc::new(Settings {
            root,
            max_file_bytes: config.max_file_bytes,
            max_pixels: config.max_pixels,
        }),
        metrics,
        dlq_topic: dlq_topic(&topic),
        topic,
        enriched_topic: ENRICHED_TOPIC.to_owned(),
        group: config.group_id.clone(),
        batch_size: config.batch_size,
        flush_interval: config.flush_interval,
        file_timeout: config.file_timeout,
        queue_depth: config.queue_depth,
    });
    let result = pipeline.run(shutdown.clone()).await;
    if let Err(e) = producer.flush(std::time::Duration::from_secs(10)) {
        tracing::warn!(error = %e, "producer flush at shutdown failed");
    }
    pool.close().await;
    shutdown.trigger();
    server.await?;
    result
}
