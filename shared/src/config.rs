//! Argument groups every worker flattens into its own `clap::Parser`.
//!
//! Every flag is also read from an environment variable (named in `--help`), so the same binary
//! is configured by flags on a terminal and by env vars under systemd, Docker or `scripts/up`.
//! Values that may hold secrets (the database URL) never appear in `Debug` output or logs.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::redact::redact_url;

/// How to reach PostgreSQL.
#[derive(Args, Clone)]
pub struct PostgresArgs {
    /// PostgreSQL connection URL, e.g. `postgres://user:pass@127.0.0.1:5432/pipeline`. The
    /// password is never logged. TLS as in libpq: `?sslmode=disable|prefer|require|verify-ca|
    /// verify-full` (default prefer) and `sslrootcert=<PEM file>` (default: public web roots),
    /// for the pool and the replication connection alike.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Maximum connections in the worker's pool.
    #[arg(
        long = "db-max-connections",
        env = "DB_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub max_connections: u32,

    /// How long to wait for a pooled connection or a new one before failing.
    #[arg(long = "db-connect-timeout", env = "DB_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

impl fmt::Debug for PostgresArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresArgs")
            .field("database_url", &redact_url(&self.database_url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// How to reach the Kafka-compatible broker.
#[derive(Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Comma-separated bootstrap brokers (`host:port,...`).
    #[arg(
        long = "kafka-brokers",
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,

    /// Prefix of the CDC topics: a table's changes go to `<prefix>.<schema>.<table>`.
    #[arg(long = "topic-prefix", env = "TOPIC_PREFIX", default_value = "cdc")]
    pub topic_prefix: String,

    /// Extra librdkafka properties, `key=value` (repeatable; env: comma-separated), e.g.
    /// `security.protocol=SASL_SSL`. Applied last, so they override the defaults.
    /// Values are never printed (`--help` included): they may hold credentials.
    #[arg(long = "kafka-property", env = "KAFKA_PROPERTIES", hide_env_values = true, value_delimiter = ',', value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
}

impl KafkaArgs {
    /// The largest message the producer may send: `message.max.bytes` from
    /// `--kafka-property`, else librdkafka's default (1,000,000).
    pub fn max_message_bytes(&self) -> usize {
        self.properties
            .iter()
            .rev()
            .find(|(key, _)| key == "message.max.bytes")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(1_000_000)
    }

    /// The CDC topic of a table.
    pub fn cdc_topic(&self, schema: &str, table: &str) -> String {
        format!("{}.{}.{}", self.topic_prefix, schema, table)
    }
}

/// Consumer-group settings shared by the consuming workers.
#[derive(Args, Clone, Debug)]
pub struct ConsumerArgs {
    /// Maximum time between polls before the broker considers this member dead and rebalances.
    /// Kept low so a member that died is replaced quickly (a group join waits up to this long).
    #[arg(long = "max-poll-interval", env = "KAFKA_MAX_POLL_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub max_poll_interval: Duration,

    /// Session timeout of the group membership.
    #[arg(long = "session-timeout", env = "KAFKA_SESSION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub session_timeout: Duration,

    /// Longest time the broker holds a fetch open waiting for new data. Brokers that answer
    /// as soon as data arrives (Kafka, Redpanda) make this an idle-polling period only; on
    /// brokers that hold the whole period it bounds the added latency.
    #[arg(long = "fetch-wait-max", env = "KAFKA_FETCH_WAIT_MAX", default_value = "20ms", value_parser = parse_duration)]
    pub fetch_wait_max: Duration,

    /// Longest wait for the broker to acknowledge a result event or dead letter. Past it the
    /// send counts as failed: it is retried, and the producer is recreated (a broker that lost
    /// its state, or a recreated topic, is detected within this time).
    #[arg(long = "publish-timeout", env = "KAFKA_PUBLISH_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub publish_timeout: Duration,

    /// Unfinished messages at most; beyond it consumption pauses (the group membership stays
    /// alive) until half of them are finished. Default: four batches' worth for the analyzer,
    /// `--queue-depth` plus two batches for the asset worker.
    #[arg(long = "max-in-flight", env = "MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,

    /// Longest drain on SIGTERM/SIGINT: the worker stops consuming, finishes what it holds,
    /// commits and exits; what is still unfinished then stays uncommitted (and is replayed by
    /// the next owner). The process exits at the latest 15 s after this, whatever is stuck.
    #[arg(long = "shutdown-timeout", env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// Log output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty when stderr is a terminal, JSON otherwise.
    Auto,
    /// Human-readable, coloured.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Args, Clone, Debug)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long = "log-format", env = "LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `info,cdc_reader=debug`.
    #[arg(
        long = "log",
        env = "RUST_LOG",
        global = true,
        default_value = "info,sqlx::postgres::notice=warn"
    )]
    pub filter: String,
}

/// Parses durations like `250ms`, `10s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 250ms, 10s, 5m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use ms, s, m, h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a `key=value` pair.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not key=value"))?;
    if key.trim().is_empty() {
        return Err(format!("`{text}` has an empty key"));
    }
    Ok((key.trim().to_owned(), value.to_owned()))
}

/// Parses a listen address (`host:port`; a bare `:port` listens on all interfaces).
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let full = if let Some(port) = text.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else {
        text.to_owned()
    };
    full.parse()
        .map_err(|_| format!("`{text}` is not a listen address like 127.0.0.1:9101"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("a.b=c=d").unwrap(),
            ("a.b".into(), "c=d".into())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }

    #[test]
    fn listen_addr() {
        assert_eq!(parse_listen_addr(":9101").unwrap().port(), 9101);
        assert!(parse_listen_addr("nope").is_err());
    }

    #[test]
    fn debug_hides_password() {
        let args = PostgresArgs {
            database_url: "postgres://u:topsecret@h:1/d".into(),
            max_connections: 1,
            connect_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{args:?}").contains("topsecret"));
    }
}
