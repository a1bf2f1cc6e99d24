//! The analyzer's command line: every flag also read from the environment variable named in
//! `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use shared::config::{parse_duration, parse_listen_addr, ConsumerArgs, KafkaArgs, PostgresArgs};

/// How the analyzer runs.
#[derive(Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,

    /// Consumer group of the analyzers; instances in one group share the partitions.
    #[arg(
        long = "group-id",
        env = "ANALYZER_GROUP_ID",
        default_value = "analyzer"
    )]
    pub group_id: String,

    /// Results written per batch at most (one SQL statement per batch).
    #[arg(
        long = "batch-size",
        env = "ANALYZER_BATCH_SIZE",
        default_value_t = 1000
    )]
    pub batch_size: usize,

    /// Longest time a result waits before its batch is flushed.
    #[arg(long = "flush-interval", env = "ANALYZER_FLUSH_INTERVAL", default_value = "50ms", value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR", default_value = "127.0.0.1:9102", value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,
}
