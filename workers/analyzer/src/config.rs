//! The analyzer's command line: every flag also read from the environment variable named in
//! `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use saju::Options;
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

    /// Events per batch at most (one write-back statement per batch).
    #[arg(
        long = "batch-size",
        env = "ANALYZER_BATCH_SIZE",
        default_value_t = 4000
    )]
    pub batch_size: usize,

    #[arg(
        long = "mark-write-backs",
        env = "ANALYZER_MARK_WRITE_BACKS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        help = shared::db::MARK_WRITE_BACKS_HELP
    )]
    pub mark_write_backs: bool,

    /// Batches written at once, each in one statement on its own connection. A profile held
    /// by another batch or by an application transaction is not waited for: it is written
    /// again a few milliseconds later. Events are still published in batch order.
    #[arg(
        long = "write-concurrency",
        env = "ANALYZER_WRITE_CONCURRENCY",
        default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..=16)
    )]
    pub write_concurrency: u16,

    /// Longest time an event waits before its batch is flushed.
    #[arg(long = "flush-interval", env = "ANALYZER_FLUSH_INTERVAL", default_value = "10ms", value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// Topic of the result events (one per analyzed row, errors included).
    #[arg(
        long = "results-topic",
        env = "ANALYZER_RESULTS_TOPIC",
        default_value = shared::topics::ANALYSIS_TOPIC
    )]
    pub results_topic: String,

    /// How often the analyzer merges the pending entries of the analysis search index
    /// (`idx_saju_profiles_analysis_facets`, a GIN index) into it, on a connection of its own,
    /// so that no write-back statement has to merge a full pending list itself (seconds of
    /// delay for the rows in that batch). `0` leaves it to the write-backs and autovacuum.
    #[arg(long = "index-merge-interval", env = "ANALYZER_INDEX_MERGE_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub index_merge_interval: Duration,

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR", default_value = "127.0.0.1:9102", value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,

    /// Chart conventions (same flags and variables as `analyzer chart`).
    #[command(flatten)]
    pub conventions: saju::cli::ConventionArgs,
}

impl Config {
    /// The conventions charts are computed with, validated.
    pub fn chart_options(&self) -> Result<Options, saju::Error> {
        self.conventions.options()
    }
}
