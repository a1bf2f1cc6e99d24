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

    #[arg(
        long = "mark-write-backs",
        env = "ASSET_MARK_WRITE_BACKS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        help = shared::db::MARK_WRITE_BACKS_HELP
    )]
    pub mark_write_backs: bool,

    /// Rows written per batch at most (one SQL statement per batch).
    #[arg(long = "batch-size", env = "ASSET_BATCH_SIZE", default_value_t = 200)]
    pub batch_size: usize,

    /// Longest time a result waits before its batch is flushed.
    #[arg(long = "flush-interval", env = "ASSET_FLUSH_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// Largest file read, in bytes; bigger files are refused (status `error`, kind `too_large`)
    /// from their size on disk, before any byte is read.
    #[arg(long = "max-file-bytes", env = "ASSET_MAX_FILE_BYTES", default_value_t = 256 << 20)]
    pub max_file_bytes: u64,

    /// Most pixels (width × height) decoded; larger images are refused from their header,
    /// before decoding (decompression-bomb guard). The default admits a 16384×8192 EXR.
    #[arg(long = "max-pixels", env = "ASSET_MAX_PIXELS", default_value_t = 16384 * 8192)]
    pub max_pixels: u64,

    /// Longest time one file may take (open, read, probe); past it the row gets status
    /// `error`, kind `timeout`.
    #[arg(long = "file-timeout", env = "ASSET_FILE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub file_timeout: Duration,

    /// Threads of the probing pool; 0 means one per CPU.
    #[arg(long = "workers", env = "ASSET_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Files in flight at most (queued for, or on, the probing pool, or waiting for their
    /// batch). When full, the consumer stops reading: memory stays bounded under any backlog.
    #[arg(long = "queue-depth", env = "ASSET_QUEUE_DEPTH", default_value_t = 64)]
    pub queue_depth: usize,

    /// Topic of the result events (one per enriched row, errors included).
    #[arg(
        long = "results-topic",
        env = "ASSET_RESULTS_TOPIC",
        default_value = shared::topics::ENRICHED_TOPIC
    )]
    pub results_topic: String,

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR", default_value = "127.0.0.1:9103", value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,
}

impl Config {
    /// Rejects settings the worker cannot run with, before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        if self.queue_depth == 0 {
            return Err("--queue-depth must be at least 1".into());
        }
        if self.max_pixels == 0 || self.max_file_bytes == 0 {
            return Err("--max-pixels and --max-file-bytes must be positive".into());
        }
        if self.file_timeout.is_zero() || self.flush_interval.is_zero() {
            return Err("--file-timeout and --flush-interval must be positive".into());
        }
        Ok(())
    }

    /// Threads of the probing pool, `--workers 0` resolved to the CPU count.
    pub fn pool_threads(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}
