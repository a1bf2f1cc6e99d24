//! The asset worker's command line: every flag also read from the environment variable named
//! in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use shared::config::{parse_duration, parse_listen_addr, ConsumerArgs, KafkaArgs, PostgresArgs};

/// How the asset worker runs.
#[derive(Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,

    /// Directory the rows' `file_path`s are resolved under. Nothing outside it is ever read:
    /// `..`, absolute paths and symlinks that leave it are refused.
    #[arg(long = "assets-root", env = "ASSETS_ROOT")]
    pub assets_root: PathBuf,

    /// Consumer group of the asset workers; instances in one group share the partitions.
    #[arg(
        long = "group-id",
        env = "ASSET_GROUP_ID",
        default_value = "asset-worker"
    )]
    pub group_id: String,

    /// Rows written per batch at most (one SQL statement per batch).
    #[arg(long = "batch-size", env = "ASSET_BATCH_SIZE", default_value_t = 200)]
    pub batch_size: usize,

    /// Longest time a result waits before its batch is flushed.
    #[arg(long = "flush-interval", env = "ASSET_FLUSH_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR", default_value = "127.0.0.1:9103", value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,
}
