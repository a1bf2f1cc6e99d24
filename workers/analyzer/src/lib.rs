//! The analyzer worker: consumes `saju_profiles` change events, computes the four pillars and
//! the analysis with the [`saju`] engine, and writes results back to PostgreSQL in batches.

pub mod config;

use shared::health::{self, Health};
use shared::shutdown::Shutdown;

pub use config::Config;

/// Runs the worker until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let registry = health::new_registry("analyzer");
    let health = Health::new();
    health.set("postgres", false, "connecting");
    let (_addr, server) = health::serve(
        config.metrics_addr,
        registry,
        health.clone(),
        shutdown.clone(),
    )
    .await?;
    let pool = shared::db::connect(&config.postgres, "analyzer").await?;
    health.set("postgres", true, "connected");
    tracing::info!(group = %config.group_id, "analyzer ready");
    shutdown.cancelled().await;
    pool.close().await;
    server.await?;
    Ok(())
}
