//! The analyzer's command line: every flag also read from the environment variable named in
//! `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use saju::{DayBoundary, Options, SolarTime, Zone};
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

    /// Batches written at once, each in one statement on its own connection (batches that
    /// share a profile are written one after the other). Offsets are still committed in
    /// batch order.
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

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR", default_value = "127.0.0.1:9102", value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,

    /// Civil clock birth dates are read in: Asia/Seoul (with its history of offsets and
    /// daylight saving), UTC, or a fixed offset such as +09:00. Lunar input is the civil date
    /// of birth_date on this clock. Same variable as `analyzer chart`.
    #[arg(long = "zone", env = "SAJU_ZONE", default_value = "Asia/Seoul")]
    pub zone: Zone,

    /// When the day pillar changes around 자시: midnight, split-jasi or jasi.
    #[arg(
        long = "day-boundary",
        env = "SAJU_DAY_BOUNDARY",
        default_value = "midnight"
    )]
    pub day_boundary: DayBoundary,

    /// Clock of the day and hour pillars: none (civil clock), mean or true solar time.
    #[arg(long = "solar-time", env = "SAJU_SOLAR_TIME", default_value = "none")]
    pub solar_time: SolarTime,

    /// Longitude in degrees east for --solar-time mean|true.
    #[arg(
        long = "longitude",
        env = "SAJU_LONGITUDE",
        default_value_t = 126.98,
        allow_negative_numbers = true
    )]
    pub longitude: f64,
}

impl Config {
    /// The conventions charts are computed with, validated.
    pub fn chart_options(&self) -> Result<Options, saju::Error> {
        let options = Options {
            zone: self.zone,
            day_boundary: self.day_boundary,
            solar_time: self.solar_time,
            longitude: self.longitude,
        };
        options.validate()?;
        Ok(options)
    }
}
