//! Argument groups every worker flattens into its own `clap::Parser`.
//!
//! Every flag is also read from an environment variable (named in `--help`), so the same binary
//! is configured by flags on a terminal and by env vars under systemd, Docker or `scripts/up`.
//! Values that may hold secrets (the database URL, the librdkafka properties) never appear in
//! `--help`, in `Debug` output, in error messages or in logs.

use std::ffi::OsStr;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Args, ValueEnum};
use rdkafka::types::RDKafkaConfRes;

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
#[derive(Args, Clone)]
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
    /// `security.protocol=SASL_PLAINTEXT`. Applied last, so they override the defaults
    /// (consumers prefetch at most `queued.max.messages.kbytes=1024`,
    /// `queued.min.messages=1000` and `max.partition.fetch.bytes=262144`, and fetch again
    /// after `fetch.queue.backoff.ms=10` when that queue was full; producers send after
    /// `linger.ms=5`, the cdc-reader's after 25).
    /// librdkafka is built without OpenSSL here: no TLS to the broker, SASL is PLAIN only.
    /// Values are never printed (`--help` and error messages included): they may hold
    /// credentials. Unknown properties and invalid values are refused at start-up.
    #[arg(long = "kafka-property", env = "KAFKA_PROPERTIES", hide_env_values = true, value_delimiter = ',', value_parser = KafkaPropertyParser)]
    pub properties: Vec<(String, String)>,
}

impl fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: Vec<String> = self
            .properties
            .iter()
            .map(|(key, _)| format!("{key}=<redacted>"))
            .collect();
        f.debug_struct("KafkaArgs")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("properties", &properties)
            .finish()
    }
}

/// Parses one `--kafka-property` item and checks it with librdkafka, without ever echoing it:
/// clap's own "invalid value" error repeats the raw argument, and librdkafka's repeats the
/// value, either of which may be a password (or a piece of one split at a comma).
#[derive(Clone, Copy, Debug)]
struct KafkaPropertyParser;

impl TypedValueParser for KafkaPropertyParser {
    type Value = (String, String);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let refuse = |reason: String| {
            let message = format!(
                "invalid --kafka-property / KAFKA_PROPERTIES: {reason} (values are not shown; \
                 the env var is split at every comma)\n"
            );
            clap::Error::raw(ErrorKind::ValueValidation, message).with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("an item is not UTF-8".into()))?;
        let (key, value) = parse_key_value(text).map_err(refuse)?;
        check_kafka_property(&key, &value).map_err(refuse)?;
        Ok((key, value))
    }
}

/// Asks librdkafka whether `key` is a property it knows and `value` a valid value for it.
/// The error names the key only when it has the shape of a property name (a stray piece of a
/// value that contained a comma does not), and repeats librdkafka's reason only with the value
/// cut out of it.
fn check_kafka_property(key: &str, value: &str) -> Result<(), String> {
    use rdkafka::error::KafkaError;
    let mut config = rdkafka::ClientConfig::new();
    config.set(key, value);
    match config.create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..)) => {
            Err(if looks_like_property_name(key) {
                format!("librdkafka has no property `{key}`")
            } else {
                "an item names no librdkafka property".to_owned()
            })
        }
        Err(KafkaError::ClientConfig(_, reason, ..)) => Err(match without_value(&reason, value) {
            Some(reason) => format!("librdkafka refuses the value of `{key}`: {reason}"),
            None => format!("librdkafka refuses the value of `{key}`"),
        }),
        Err(_) => Err(format!("librdkafka refuses the value of `{key}`")),
    }
}

/// `text` with `value` cut out (replaced by `…`), or `None` when some of it would still
/// show: a piece of 4 characters or more of a long value, a whole word for a short one.
fn without_value(text: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return Some(text.to_owned());
    }
    let cut = text.replace(&format!("\"{value}\""), "\"…\"");
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 4 {
        let shown = cut
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word == value);
        return (!shown).then_some(cut);
    }
    let cut = cut.replace(value, "…");
    let leaks = chars
        .windows(4)
        .any(|piece| cut.contains(&piece.iter().collect::<String>()));
    (!leaks).then_some(cut)
}

fn looks_like_property_name(key: &str) -> bool {
    key.len() <= 64
        && key.contains('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
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
    /// alive) until half of them are finished. Default: `--write-concurrency` batches' worth
    /// (at least two) for the analyzer, `--queue-depth` plus two batches for the asset worker.
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

/// Parses a `key=value` pair. The error never repeats the text: it may be a secret.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| "an item is not key=value".to_owned())?;
    if key.trim().is_empty() {
        return Err("an item has an empty key".to_owned());
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

    #[derive(clap::Parser, Debug)]
    struct KafkaCli {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    fn kafka_cli(args: &[&str]) -> Result<KafkaCli, String> {
        use clap::Parser;
        let full = std::iter::once("test").chain(args.iter().copied());
        KafkaCli::try_parse_from(full).map_err(|e| e.render().to_string())
    }

    #[test]
    fn kafka_properties_are_checked_and_never_echoed() {
        let ok = kafka_cli(&[
            "--kafka-property",
            "sasl.password=SECRET,message.max.bytes=1000",
        ])
        .unwrap();
        assert_eq!(
            ok.kafka.properties[0],
            ("sasl.password".into(), "SECRET".into())
        );
        assert_eq!(ok.kafka.max_message_bytes(), 1000);
        assert!(!format!("{ok:?}").contains("SECRET"));
        for (arg, says) in [
            // a password with a comma: the piece after it is not key=value
            ("sasl.password=SEC,RET", "not key=value"),
            ("=SECRET", "empty key"),
            ("sasl.pasword=SECRET", "no property `sasl.pasword`"),
            // a piece of a value split at a comma is not named
            (
                "sasl.password=SEC,RET=SECRET",
                "names no librdkafka property",
            ),
            (
                "security.protocol=SECRET",
                "refuses the value of `security.protocol`: ",
            ),
        ] {
            let error = kafka_cli(&["--kafka-property", arg]).unwrap_err();
            assert!(error.contains(says), "{arg}: {error}");
            assert!(!error.contains("SEC"), "{arg}: {error}");
        }
    }

    #[test]
    fn reasons_lose_the_value() {
        let reason = r#"Invalid value "SECRET" for configuration property "security.protocol""#;
        assert_eq!(
            without_value(reason, "SECRET").unwrap(),
            r#"Invalid value "…" for configuration property "security.protocol""#
        );
        assert_eq!(
            without_value(r#"Invalid value "ab" for "x""#, "ab").unwrap(),
            r#"Invalid value "…" for "x""#
        );
        // Shown another way than quoted: the reason is dropped.
        assert_eq!(without_value("bad ab here", "ab"), None);
        assert_eq!(without_value("bad SECRE here", "SECRET"), None);
        assert_eq!(
            without_value("not supported in this build", "SECRET").unwrap(),
            "not supported in this build"
        );
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
