//! The reader's configuration: one `clap` struct, every flag also read from an environment
//! variable, validated before anything connects.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use shared::config::{parse_duration, parse_listen_addr, KafkaArgs, PostgresArgs, TelemetryArgs};
use shared::envelope::parse_lsn;

/// Command line of the `cdc-reader` binary.
#[derive(Parser, Debug)]
#[command(
    name = "cdc-reader",
    version,
    about = "Streams row changes of PostgreSQL tables (wal2json, logical replication) into Kafka topics.",
    long_about = "Streams row changes of PostgreSQL tables into one Kafka topic per table \
                  (<topic-prefix>.<schema>.<table>) over the streaming replication protocol with the \
                  wal2json output plugin. The replication slot is confirmed only up to transactions \
                  whose every message the broker acknowledged, so a crash anywhere loses nothing \
                  (delivery is at least once). Without a subcommand the reader runs."
)]
pub struct Cli {
    /// What to do; runs the reader when absent.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Logging.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    /// Reader settings.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Apply the database migrations and exit.
    Migrate,
    /// Request an incremental snapshot of captured tables (a row per table in `cdc_signals`
    /// for the reader of `--slot`), then exit. The running reader copies them in primary-key
    /// chunks while it goes on streaming; progress is in `cdc_signals` and in
    /// `cdc_incremental_snapshot_rows_total`.
    Snapshot {
        /// Tables to snapshot, `schema.table` (they must be in `--tables` / `CDC_TABLES`).
        #[arg(required = true, value_name = "SCHEMA.TABLE")]
        tables: Vec<TableName>,
    },
}

/// The format of the change events.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// This pipeline's envelope (`redpanda/schemas/cdc-envelope.schema.json`).
    Native,
    /// Debezium's PostgreSQL connector's events, JSON converter.
    Debezium,
}

/// When to copy the rows that existed before the slot.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotMode {
    /// When this reader creates the slot (or finds one whose snapshot never completed), emit
    /// every existing row once as `op=r`, consistent with the slot's start point.
    Initial,
    /// Never: stream changes from the slot's start point only.
    Never,
}

/// What the reader does so that a deposed leader cannot write after its successor.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fencing {
    /// A transactional producer per leadership: the new leader's producer fences the old one
    /// at the broker (Kafka's transactional-id fencing).
    Transactions,
    /// An idempotent producer only: for brokers without transactions. A deposed leader's
    /// messages still in flight may then land after its successor's.
    None,
}

/// What to do when PostgreSQL invalidated the slot.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSlotInvalidated {
    /// Stop with exit code 3 and the reason (`cdc_slot_invalidated` = 1): an operator decides.
    Fail,
    /// Drop the slot, create a new one and snapshot every table again (`op=r` events): the
    /// topics converge on the tables' current state; deletes while the slot was lost are not
    /// seen, and consumers get every row once more.
    Resnapshot,
}

/// A captured table, `schema.table`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableName {
    /// Schema, e.g. `public`.
    pub schema: String,
    /// Table, e.g. `saju_profiles`.
    pub table: String,
}

impl TableName {
    /// `"schema"."table"`, for SQL.
    pub fn quoted(&self) -> String {
        format!("\"{}\".\"{}\"", self.schema, self.table)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

impl FromStr for TableName {
    type Err = String;

    /// Accepts `schema.table` or `table` (schema `public`). Names are limited to
    /// `[A-Za-z0-9_]`, so they need no quoting in SQL nor escaping in wal2json's `add-tables`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (schema, table) = text.split_once('.').unwrap_or(("public", text));
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if !valid(schema) || !valid(table) {
            return Err(format!(
                "`{text}` is not a table name like public.saju_profiles (letters, digits, _)"
            ));
        }
        Ok(Self {
            schema: schema.to_owned(),
            table: table.to_owned(),
        })
    }
}

/// Everything `run` needs.
#[derive(Args, Debug, Clone)]
pub struct Config {
    /// PostgreSQL (the same URL serves the replication connection).
    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// Kafka.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR", default_value = "127.0.0.1:9101", value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,

    /// Name of the logical replication slot (created with the wal2json plugin when missing).
    /// Readers sharing a slot name form one active/standby group.
    #[arg(long = "slot", env = "CDC_SLOT", default_value = "cdc_reader", value_parser = parse_slot_name)]
    pub slot: String,

    /// Tables to capture, comma-separated `schema.table`. Other tables are filtered out by
    /// wal2json itself (`add-tables`).
    #[arg(
        long = "tables",
        env = "CDC_TABLES",
        value_delimiter = ',',
        default_value = "public.saju_profiles,public.image_assets"
    )]
    pub tables: Vec<TableName>,

    /// Leave out the changes of sessions marked with a replication origin whose name starts with
    /// this prefix: wal2json drops them before decoding (`filter-origins`). The analyzer and the
    /// asset worker run with `--mark-write-backs true` mark their sessions with
    /// `pipeline_writeback_*` origins, so `--exclude-origins pipeline_writeback_` keeps their
    /// results' echo out of the CDC topics: half of what the reader decodes and publishes for a
    /// profile. Downstream then reads the analyses from `saju.analysis.v1`, no longer from the
    /// profiles' CDC topic. Origins are looked up when a replication session starts. Empty (the
    /// default): every change is captured.
    #[arg(
        long = "exclude-origins",
        env = "CDC_EXCLUDE_ORIGINS",
        default_value = ""
    )]
    pub exclude_origins: String,

    /// Initial snapshot of existing rows (`initial`) or none (`never`).
    #[arg(long = "snapshot", env = "CDC_SNAPSHOT", value_enum, default_value_t = SnapshotMode::Initial)]
    pub snapshot: SnapshotMode,

    /// Rows fetched per round trip during the snapshot (bounds its memory).
    #[arg(
        long = "snapshot-chunk-rows",
        env = "CDC_SNAPSHOT_CHUNK_ROWS",
        default_value_t = 5000
    )]
    pub snapshot_chunk_rows: u32,

    /// Rows per chunk of an incremental snapshot (`cdc-reader snapshot`, or a table new to
    /// `--tables` on an existing slot): read between two watermarks while streaming goes on;
    /// bounds the memory a chunk takes.
    #[arg(
        long = "incremental-chunk-rows",
        env = "CDC_INCREMENTAL_CHUNK_ROWS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub incremental_chunk_rows: u32,

    /// Publish a tombstone (key, null value) after each delete, so compacted topics drop the key.
    #[arg(long = "tombstones", env = "CDC_TOMBSTONES", default_value_t = true, action = ArgAction::Set)]
    pub tombstones: bool,

    /// The change events' format: `native` (this pipeline's envelope,
    /// `redpanda/schemas/cdc-envelope.schema.json`) or `debezium` (keys and values exactly as
    /// Debezium's PostgreSQL connector writes them with Kafka Connect's JSON converter, for
    /// consumers and sinks written for Debezium; truncates are skipped, as Debezium does).
    #[arg(long = "envelope", env = "CDC_ENVELOPE", value_enum, default_value_t = Envelope::Native)]
    pub envelope: Envelope,

    /// With `--envelope debezium`: `true` wraps keys and values in `{"schema": …, "payload": …}`
    /// as Kafka Connect's JSON converter does with `schemas.enable=true` (what Connect sinks
    /// such as Debezium's JDBC sink need); `false`, the default, writes the payload only, what
    /// Flink's `debezium-json` format reads by default (`schema-include=false`) and a quarter
    /// of the bytes.
    #[arg(long = "debezium-schemas", env = "CDC_DEBEZIUM_SCHEMAS", default_value_t = false, action = ArgAction::Set)]
    pub debezium_schemas: bool,

    /// Publish transaction boundaries on `<topic-prefix>.transaction` (one partition, in
    /// commit order): a BEGIN event before a transaction's first change record and an END
    /// event after its last, with the number of records per table, as Debezium's transaction
    /// metadata. Transactions without captured changes have none.
    #[arg(long = "transaction-metadata", env = "CDC_TRANSACTION_METADATA", default_value_t = false, action = ArgAction::Set)]
    pub transaction_metadata: bool,

    /// Partitions of the CDC topics when the reader creates them.
    #[arg(
        long = "topic-partitions",
        env = "CDC_TOPIC_PARTITIONS",
        default_value_t = 6
    )]
    pub topic_partitions: i32,

    /// Messages produced but not yet acknowledged by the broker before the reader stops
    /// reading the replication stream (the server buffers meanwhile). Bounds memory, with
    /// 16 MiB of unacknowledged bytes (`--kafka-property queue.buffering.max.kbytes=…`).
    #[arg(
        long = "max-in-flight",
        env = "CDC_MAX_IN_FLIGHT",
        default_value_t = 20_000
    )]
    pub max_in_flight: u64,

    /// How often the confirmed position is reported to the server (also sent whenever the
    /// server asks). Must stay well under the server's `wal_sender_timeout`.
    #[arg(long = "status-interval", env = "CDC_STATUS_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub status_interval: Duration,

    /// How often the reader updates `cdc_heartbeat` so an idle database still produces a
    /// transaction the slot can be confirmed at; `0` disables. Skipped when the table is missing.
    #[arg(long = "heartbeat-interval", env = "CDC_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// How often the slot's lag and state are read from `pg_replication_slots` for the metrics.
    #[arg(long = "slot-poll-interval", env = "CDC_SLOT_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub slot_poll_interval: Duration,

    /// How often a standby tries to take the slot's leadership lock.
    #[arg(long = "standby-poll-interval", env = "CDC_STANDBY_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub standby_poll_interval: Duration,

    /// Longest wait between reconnection attempts after the replication connection failed.
    #[arg(long = "reconnect-backoff-max", env = "CDC_RECONNECT_BACKOFF_MAX", default_value = "5s", value_parser = parse_duration)]
    pub reconnect_backoff_max: Duration,

    /// Longest time messages may stay in flight with no acknowledgement at all while the
    /// broker answers (its state was lost, a topic was recreated, the producer is wedged):
    /// past it the producer is recreated and the session resends from the confirmed position.
    /// While the broker does not answer at all, the reader waits instead (an outage costs a
    /// pause). `cdc_producer_stalled` is 1 meanwhile.
    #[arg(long = "ack-stall-timeout", env = "CDC_ACK_STALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub ack_stall_timeout: Duration,

    /// How long a reader that stops on an invalidated slot keeps serving `/metrics` and
    /// `/readyz` (with `cdc_slot_invalidated` = 1 and the reason) before it exits with code 3,
    /// so that monitoring sees why. SIGTERM ends the wait.
    #[arg(long = "fatal-linger", env = "CDC_FATAL_LINGER", default_value = "30s", value_parser = parse_duration)]
    pub fatal_linger: Duration,

    /// How a new leader keeps a deposed one from writing after it: `transactions` (a
    /// transactional producer per leadership; the new leader's fences every older one at the
    /// broker, and aborts what it left uncommitted) or `none` (an idempotent producer, for
    /// brokers without transactions: a deposed leader's messages still in flight may then land
    /// after its successor's).
    #[arg(long = "fencing", env = "CDC_FENCING", value_enum, default_value_t = Fencing::Transactions)]
    pub fencing: Fencing,

    /// The producer's `transactional.id` with `--fencing transactions`: the same for every
    /// reader of one slot, different for every slot on one broker. Default:
    /// `cdc-reader.<database>.<slot>`.
    #[arg(long = "transactional-id", env = "CDC_TRANSACTIONAL_ID")]
    pub transactional_id: Option<String>,

    /// With `--fencing transactions`, how long a Kafka transaction collects messages before it
    /// is committed. Consumers reading committed messages (`isolation.level=read_committed`,
    /// librdkafka's default) see a change at the latest this long after it was produced; the
    /// workers read uncommitted messages and do not wait.
    #[arg(long = "transaction-interval", env = "CDC_TRANSACTION_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub transaction_interval: Duration,

    /// What to do when PostgreSQL invalidated the slot (`wal_status = lost`, after
    /// `max_slot_wal_keep_size` was exceeded): `fail` stops with exit code 3; `resnapshot`
    /// creates a new slot and snapshots the tables again.
    #[arg(long = "on-slot-invalidated", env = "CDC_ON_SLOT_INVALIDATED", value_enum, default_value_t = OnSlotInvalidated::Fail)]
    pub on_slot_invalidated: OnSlotInvalidated,

    /// How long a graceful shutdown waits for the broker to acknowledge what is in flight.
    #[arg(long = "shutdown-timeout", env = "CDC_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Stop (gracefully, exit 0) once everything up to this LSN (`X/Y`) is acknowledged and
    /// confirmed. For one-shot catch-up runs and benchmarks; unset for a service.
    #[arg(long = "stop-at-lsn", env = "CDC_STOP_AT_LSN", value_parser = parse_lsn_arg)]
    pub stop_at_lsn: Option<u64>,
}

fn parse_slot_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a slot name (lower-case letters, digits and _, at most 63)"
        ))
    }
}

fn parse_lsn_arg(text: &str) -> Result<u64, String> {
    parse_lsn(text).ok_or_else(|| format!("`{text}` is not an LSN like 16/B374D848"))
}

impl Config {
    /// The transaction topic, when transaction metadata is on.
    pub fn transaction_topic(&self) -> Option<String> {
        self.transaction_metadata
            .then(|| format!("{}.transaction", self.kafka.topic_prefix))
    }

    /// Checks what clap cannot: called before anything connects.
    pub fn validate(&self) -> Result<(), String> {
        if self.tables.is_empty() {
            return Err("--tables must name at least one table".into());
        }
        if self.max_in_flight == 0 {
            return Err("--max-in-flight must be at least 1".into());
        }
        if self.topic_partitions < 1 {
            return Err("--topic-partitions must be at least 1".into());
        }
        if self.snapshot_chunk_rows == 0 {
            return Err("--snapshot-chunk-rows must be at least 1".into());
        }
        if self.transaction_interval.is_zero() {
            return Err("--transaction-interval must be more than 0".into());
        }
        if self.status_interval.is_zero()
            || self.slot_poll_interval.is_zero()
            || self.standby_poll_interval.is_zero()
        {
            return Err("--status-interval, --slot-poll-interval and --standby-poll-interval must be positive".into());
        }
        Ok(())
    }

    /// The value of wal2json's `add-tables` option.
    pub fn add_tables(&self) -> String {
        let (schema, table) = crate::incremental::SIGNAL_TABLE;
        self.tables
            .iter()
            .map(ToString::to_string)
            // Its inserts are snapshot requests.
            .chain([format!("{schema}.{table}")])
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut full = vec!["cdc-reader", "--database-url", "postgres://u:p@h/d"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)
    }

    #[test]
    fn defaults() {
        let cli = parse(&[]).unwrap();
        let c = cli.config;
        assert_eq!(c.slot, "cdc_reader");
        assert_eq!(
            c.add_tables(),
            "public.saju_profiles,public.image_assets,public.cdc_signals"
        );
        assert_eq!(c.snapshot, SnapshotMode::Initial);
        assert!(c.tombstones);
        assert_eq!(c.status_interval, Duration::from_secs(10));
        assert_eq!(c.metrics_addr.port(), 9101);
        assert!(c.validate().is_ok());
        assert!(cli.command.is_none());
    }

    #[test]
    fn flags() {
        let cli = parse(&[
            "--tables",
            "a,s.b",
            "--tombstones",
            "false",
            "--stop-at-lsn",
            "1/A",
            "migrate",
        ])
        .unwrap();
        assert_eq!(cli.command, Some(Command::Migrate));
        assert_eq!(
            cli.config.tables[0],
            TableName {
                schema: "public".into(),
                table: "a".into()
            }
        );
        assert_eq!(cli.config.tables[1].quoted(), "\"s\".\"b\"");
        assert!(!cli.config.tombstones);
        assert_eq!(cli.config.stop_at_lsn, Some(0x1_0000_000A));
    }

    #[test]
    fn rejects_bad_names() {
        assert!(parse(&["--tables", "public.x;drop"]).is_err());
        assert!(parse(&["--slot", "Bad-Slot"]).is_err());
        assert!(parse(&["--stop-at-lsn", "x"]).is_err());
    }

    #[test]
    fn help_names_every_env_var() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for var in [
            "DATABASE_URL",
            "KAFKA_BROKERS",
            "METRICS_ADDR",
            "CDC_SLOT",
            "CDC_TABLES",
            "CDC_SNAPSHOT",
            "CDC_MAX_IN_FLIGHT",
            "CDC_STOP_AT_LSN",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
    }
}
