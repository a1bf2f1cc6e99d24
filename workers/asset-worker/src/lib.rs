//! The asset worker: consumes `image_assets` change events, reads each image under the assets
//! root, and merges what the file really is into the row's metadata in batches.

pub mod config;
#[cfg(any(test, feature = "corpus"))]
pub mod corpus;
pub mod probe;

use shared::health::{self, Health};
use shared::shutdown::Shutdown;

pub use config::Config;

/// Runs the worker until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let root = config.assets_root.canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "assets root {} is not usable: {e}",
            config.assets_root.display()
        )
    })?;
    let registry = health::new_registry("asset");
    let health = Health::new();
    health.set("postgres", false, "connecting");
    let (_addr, server) = health::serve(
        config.metrics_addr,
        registry,
        health.clone(),
        shutdown.clone(),
    )
    .await?;
    let pool = shared::db::connect(&config.postgres, "asset-worker").await?;
    health.set("postgres", true, "connected");
    tracing::info!(group = %config.group_id, root = %root.display(), "asset worker ready");
    shutdown.cancelled().await;
    pool.close().await;
    server.await?;
    Ok(())
}
