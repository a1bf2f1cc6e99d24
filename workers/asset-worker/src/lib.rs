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
//! - [`events`]: the `assets.enriched.v1` payload.
//! - [`step`]: the worker's step in the shared consumer runtime ([`shared::consume`]), which
//!   does the batching, ordered offsets, publishing and dead letters;
//!   [`metrics`]: every metric name.

pub mod change;
pub mod config;
#[cfg(any(test, feature = "corpus"))]
pub mod corpus;
pub mod enrichment;
pub mod events;
pub mod metrics;
pub mod probe;
pub mod resolve;
pub mod step;
pub mod writeback;

use std::sync::Arc;

use anyhow::Context;
use shared::consume::{self, Settings as RuntimeSettings};
use shared::health::{self, Health};
use shared::shutdown::Shutdown;
use shared::topics::dlq_topic;
use tokio::sync::Semaphore;

pub use config::Config;

use crate::enrichment::Settings;
use crate::metrics::Metrics;
use crate::resolve::AssetRoot;

/// Runs the worker until `shutdown`, then drains within `--shutdown-timeout`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let root = AssetRoot::new(&config.assets_root)
        .with_context(|| format!("assets root {} is not usable", config.assets_root.display()))?;
    let registry = health::new_registry(metrics::NAMESPACE);
    let metrics = Metrics::register(&registry)?;
    let runtime_metrics = consume::Metrics::register(
        metrics::NAMESPACE,
        <step::Assets as consume::Step>::SKIP_REASONS,
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
        shared::db::connect_writer(&config.postgres, "asset-worker", config.mark_write_backs)
            .await?;
    health.set("postgres", true, "connected");

    let topic = config.kafka.cdc_topic("public", "image_assets");
    let dlq = dlq_topic(&topic);
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
    let mut settings = RuntimeSettings::new(
        "asset-worker",
        &config.group_id,
        &config.results_topic,
        &dlq,
    );
    settings.batch_size = config.batch_size;
    settings.flush_interval = config.flush_interval;
    settings.prepare_concurrency = config.queue_depth;
    // Files being probed, plus two batches' worth waiting for or in their write.
    settings.max_in_flight = config
        .consumer
        .max_in_flight
        .unwrap_or(config.queue_depth + 2 * config.batch_size);
    settings.shutdown_timeout = config.consumer.shutdown_timeout;
    settings.max_message_bytes = config.kafka.max_message_bytes();
    let assets = Arc::new(step::Assets {
        pool: pool.clone(),
        probe_pool: Arc::new(probe_pool),
        slots: Arc::new(Semaphore::new(config.queue_depth)),
        settings: Arc::new(Settings {
            root,
            max_file_bytes: config.max_file_bytes,
            max_pixels: config.max_pixels,
        }),
        file_timeout: config.file_timeout,
        metrics,
        cdc_topic: topic.clone(),
    });
    // The reader's `too_large` dead letters name rows whose change it could not publish.
    let topics = [topic, dlq];
    let result = consume::kafka::run(
        assets,
        settings,
        &config.kafka,
        &config.consumer,
        &topics,
        runtime_metrics,
        health,
        shutdown.clone(),
    )
    .await;
    pool.close().await;
    shutdown.trigger();
    server.await?;
    result.map(|_| ())
}
