//! Every metric the reader exports: names and label keys as constants, registered once.
//!
//! Base units (`_bytes`, `_seconds`), `_total` only on counters, labels with a small fixed set
//! of values (`table` is one of the configured tables, `op` one of c/u/d/r/t).

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Row changes published, by table and op.
pub const EVENTS_TOTAL: &str = "cdc_events_total";
/// Bytes of keys and values published, by table.
pub const PRODUCED_BYTES_TOTAL: &str = "cdc_produced_bytes_total";
/// Bytes of wal2json output received from the server.
pub const WAL_RECEIVED_BYTES_TOTAL: &str = "cdc_wal_received_bytes_total";
/// Transactions (commits) received.
pub const TRANSACTIONS_TOTAL: &str = "cdc_transactions_total";
/// Time from handing a message to the producer to the broker's acknowledgement.
pub const PRODUCE_LATENCY_SECONDS: &str = "cdc_produce_latency_seconds";
/// `pg_current_wal_lsn() - confirmed_flush_lsn` of the slot.
pub const REPLICATION_LAG_BYTES: &str = "cdc_replication_lag_bytes";
/// Now minus the commit time of the last transaction received (0 when caught up and idle).
pub const REPLICATION_LAG_SECONDS: &str = "cdc_replication_lag_seconds";
/// Messages handed to the producer and not yet acknowledged.
pub const IN_FLIGHT_MESSAGES: &str = "cdc_in_flight_messages";
/// Standby status updates sent to the server.
pub const STATUS_UPDATES_TOTAL: &str = "cdc_status_updates_total";
/// Replication sessions re-established after a failure.
pub const RECONNECTS_TOTAL: &str = "cdc_reconnects_total";
/// 1 when the slot is active (some walsender streams it), from `pg_replication_slots`.
pub const SLOT_ACTIVE: &str = "cdc_slot_active";
/// 1 while this process holds the slot's leadership lock (0: standby).
pub const LEADER: &str = "cdc_leader";
/// Highest LSN whose transactions are all acknowledged (what the reader confirms).
pub const CONFIRMED_LSN: &str = "cdc_confirmed_lsn";
/// Highest WAL position received from the server.
pub const RECEIVED_LSN: &str = "cdc_received_lsn";
/// Heartbeat updates written to `cdc_heartbeat`.
pub const HEARTBEATS_TOTAL: &str = "cdc_heartbeats_total";
/// Messages the broker refused for good (each stops the reader).
pub const DELIVERY_FAILURES_TOTAL: &str = "cdc_delivery_failures_total";
/// Acknowledgements whose offset did not follow the partition's previous one: the broker lost
/// acknowledged messages (e.g. a restart that lost its log end). Each restarts the session from
/// the last confirmed position, so those changes are sent again.
pub const ACK_REGRESSIONS_TOTAL: &str = "cdc_ack_offset_regressions_total";
/// Change events larger than the producer's `message.max.bytes`, dead-lettered to the table
/// topic's `.dlq` topic instead (naming the row and position).
pub const OVERSIZED_TOTAL: &str = "cdc_oversized_events_total";

/// 1 when PostgreSQL invalidated the slot (`wal_status = lost`): it can never stream again.
pub const SLOT_INVALIDATED: &str = "cdc_slot_invalidated";
/// 1 while messages are in flight and none was acknowledged for `--ack-stall-timeout`.
pub const PRODUCER_STALLED: &str = "cdc_producer_stalled";
/// Producers recreated because their acknowledgements had stopped while the broker answered.
pub const PRODUCER_RESETS_TOTAL: &str = "cdc_producer_resets_total";

/// Kafka transactions committed (with `--fencing transactions`).
pub const TRANSACTION_COMMITS_TOTAL: &str = "cdc_kafka_transactions_committed_total";
/// Time a Kafka transaction's commit took (flushing its last messages included).
pub const TRANSACTION_COMMIT_SECONDS: &str = "cdc_kafka_transaction_commit_seconds";

/// Events sent to the transaction topic (`--transaction-metadata`), by status.
pub const TRANSACTION_EVENTS_TOTAL: &str = "cdc_transaction_events_total";

/// Rows published by incremental snapshots.
pub const INCREMENTAL_ROWS_TOTAL: &str = "cdc_incremental_snapshot_rows_total";
/// Incremental snapshot requests waiting or under way.
pub const INCREMENTAL_PENDING: &str = "cdc_incremental_snapshots_pending";

/// Label: `schema.table`.
pub const LABEL_TABLE: &str = "table";
/// Label: op code (c/u/d/r/t).
pub const LABEL_OP: &str = "op";

/// The registered metrics; cheap to clone (handles to shared atomics).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// [`EVENTS_TOTAL`]
    pub events: IntCounterVec,
    /// [`PRODUCED_BYTES_TOTAL`]
    pub produced_bytes: IntCounterVec,
    /// [`WAL_RECEIVED_BYTES_TOTAL`]
    pub wal_bytes: IntCounter,
    /// [`TRANSACTIONS_TOTAL`]
    pub transactions: IntCounter,
    /// [`TRANSACTION_EVENTS_TOTAL`]
    pub transaction_events: IntCounterVec,
    /// [`INCREMENTAL_ROWS_TOTAL`]
    pub incremental_rows: IntCounter,
    /// [`INCREMENTAL_PENDING`]
    pub incremental_pending: IntGauge,
    /// [`PRODUCE_LATENCY_SECONDS`]
    pub produce_latency: Histogram,
    /// [`REPLICATION_LAG_BYTES`]
    pub lag_bytes: IntGauge,
    /// [`REPLICATION_LAG_SECONDS`]
    pub lag_seconds: Gauge,
    /// [`IN_FLIGHT_MESSAGES`]
    pub in_flight: IntGauge,
    /// [`STATUS_UPDATES_TOTAL`]
    pub status_updates: IntCounter,
    /// [`RECONNECTS_TOTAL`]
    pub reconnects: IntCounter,
    /// [`SLOT_ACTIVE`]
    pub slot_active: IntGauge,
    /// [`LEADER`]
    pub leader: IntGauge,
    /// [`CONFIRMED_LSN`]
    pub confirmed_lsn: IntGauge,
    /// [`RECEIVED_LSN`]
    pub received_lsn: IntGauge,
    /// [`HEARTBEATS_TOTAL`]
    pub heartbeats: IntCounter,
    /// [`DELIVERY_FAILURES_TOTAL`]
    pub delivery_failures: IntCounter,
    /// [`ACK_REGRESSIONS_TOTAL`]
    pub ack_regressions: IntCounter,
    /// [`OVERSIZED_TOTAL`]
    pub oversized: IntCounter,
    /// [`PRODUCER_STALLED`]
    pub producer_stalled: IntGauge,
    /// [`SLOT_INVALIDATED`]
    pub slot_invalidated: IntGauge,
    /// [`PRODUCER_RESETS_TOTAL`]
    pub producer_resets: IntCounter,
    /// [`TRANSACTION_COMMITS_TOTAL`]
    pub commits: IntCounter,
    /// [`TRANSACTION_COMMIT_SECONDS`]
    pub commit_seconds: Histogram,
}

impl Metrics {
    /// Creates and registers every metric in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            events: IntCounterVec::new(
                Opts::new(EVENTS_TOTAL, "Row changes published, by table and op."),
                &[LABEL_TABLE, LABEL_OP],
            )?,
            produced_bytes: IntCounterVec::new(
                Opts::new(
                    PRODUCED_BYTES_TOTAL,
                    "Bytes of keys and values published, by table.",
                ),
                &[LABEL_TABLE],
            )?,
            wal_bytes: IntCounter::new(
                WAL_RECEIVED_BYTES_TOTAL,
                "Bytes of wal2json output received.",
            )?,
            transactions: IntCounter::new(
                TRANSACTIONS_TOTAL,
                "Transactions received from the slot.",
            )?,
            incremental_rows: IntCounter::new(
                INCREMENTAL_ROWS_TOTAL,
                "Rows published as op=r by incremental snapshots (cdc_signals).",
            )?,
            incremental_pending: IntGauge::new(
                INCREMENTAL_PENDING,
                "Incremental snapshot requests (cdc_signals rows) waiting or under way.",
            )?,
            transaction_events: IntCounterVec::new(
                Opts::new(
                    TRANSACTION_EVENTS_TOTAL,
                    "BEGIN and END events sent to the transaction topic (--transaction-metadata).",
                ),
                &["status"],
            )?,
            produce_latency: Histogram::with_opts(
                HistogramOpts::new(
                    PRODUCE_LATENCY_SECONDS,
                    "From handing a message to the producer to the broker's acknowledgement.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ]),
            )?,
            lag_bytes: IntGauge::new(
                REPLICATION_LAG_BYTES,
                "pg_current_wal_lsn() - confirmed_flush_lsn of the slot.",
            )?,
            lag_seconds: Gauge::new(
                REPLICATION_LAG_SECONDS,
                "Now minus the commit time of the last transaction received; 0 when idle.",
            )?,
            in_flight: IntGauge::new(
                IN_FLIGHT_MESSAGES,
                "Messages produced and not yet acknowledged by the broker.",
            )?,
            status_updates: IntCounter::new(
                STATUS_UPDATES_TOTAL,
                "Standby status updates sent to the server.",
            )?,
            reconnects: IntCounter::new(
                RECONNECTS_TOTAL,
                "Replication sessions re-established after a failure.",
            )?,
            slot_active: IntGauge::new(
                SLOT_ACTIVE,
                "1 when the replication slot is active (pg_replication_slots.active).",
            )?,
            leader: IntGauge::new(
                LEADER,
                "1 while this process holds the slot's leadership lock; 0 while standby.",
            )?,
            confirmed_lsn: IntGauge::new(
                CONFIRMED_LSN,
                "Highest LSN whose transactions are all acknowledged by the broker.",
            )?,
            received_lsn: IntGauge::new(
                RECEIVED_LSN,
                "Highest WAL position received from the server.",
            )?,
            heartbeats: IntCounter::new(
                HEARTBEATS_TOTAL,
                "Heartbeat updates written to cdc_heartbeat.",
            )?,
            delivery_failures: IntCounter::new(
                DELIVERY_FAILURES_TOTAL,
                "Messages the broker refused for good.",
            )?,
            oversized: IntCounter::new(
                OVERSIZED_TOTAL,
                "Change events larger than the broker accepts, dead-lettered to the table topic's .dlq topic instead.",
            )?,
            ack_regressions: IntCounter::new(
                ACK_REGRESSIONS_TOTAL,
                "Acknowledgements at an offset not after the partition's previous one (the broker lost acknowledged messages; they are sent again).",
            )?,
            producer_stalled: IntGauge::new(
                PRODUCER_STALLED,
                "1 while messages are in flight and none was acknowledged for --ack-stall-timeout.",
            )?,
            slot_invalidated: IntGauge::new(
                SLOT_INVALIDATED,
                "1 when PostgreSQL invalidated the slot (wal_status = lost): it can never stream again.",
            )?,
            producer_resets: IntCounter::new(
                PRODUCER_RESETS_TOTAL,
                "Producers recreated because their acknowledgements stopped while the broker answered.",
            )?,
            commits: IntCounter::new(
                TRANSACTION_COMMITS_TOTAL,
                "Kafka transactions committed (--fencing transactions).",
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    TRANSACTION_COMMIT_SECONDS,
                    "Time a Kafka transaction's commit took, flushing its last messages included.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ]),
            )?,
        };
        registry.register(Box::new(m.commits.clone()))?;
        registry.register(Box::new(m.commit_seconds.clone()))?;
        registry.register(Box::new(m.producer_stalled.clone()))?;
        registry.register(Box::new(m.slot_invalidated.clone()))?;
        registry.register(Box::new(m.producer_resets.clone()))?;
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.produced_bytes.clone()))?;
        registry.register(Box::new(m.wal_bytes.clone()))?;
        registry.register(Box::new(m.transactions.clone()))?;
        registry.register(Box::new(m.transaction_events.clone()))?;
        registry.register(Box::new(m.incremental_rows.clone()))?;
        registry.register(Box::new(m.incremental_pending.clone()))?;
        for status in ["BEGIN", "END"] {
            m.transaction_events.with_label_values(&[status]);
        }
        registry.register(Box::new(m.produce_latency.clone()))?;
        registry.register(Box::new(m.lag_bytes.clone()))?;
        registry.register(Box::new(m.lag_seconds.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.status_updates.clone()))?;
        registry.register(Box::new(m.reconnects.clone()))?;
        registry.register(Box::new(m.slot_active.clone()))?;
        registry.register(Box::new(m.leader.clone()))?;
        registry.register(Box::new(m.confirmed_lsn.clone()))?;
        registry.register(Box::new(m.received_lsn.clone()))?;
        registry.register(Box::new(m.heartbeats.clone()))?;
        registry.register(Box::new(m.delivery_failures.clone()))?;
        registry.register(Box::new(m.ack_regressions.clone()))?;
        registry.register(Box::new(m.oversized.clone()))?;
        Ok(m)
    }
}

/// An LSN as a gauge value (LSNs stay far below 2^63 in practice).
pub fn lsn_gauge(lsn: u64) -> i64 {
    i64::try_from(lsn).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_with_the_documented_names() {
        let registry = Registry::new();
        let m = Metrics::register(&registry).unwrap();
        m.events.with_label_values(&["public.t", "c"]).inc();
        m.produced_bytes.with_label_values(&["public.t"]).inc_by(3);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for name in [
            EVENTS_TOTAL,
            PRODUCED_BYTES_TOTAL,
            PRODUCE_LATENCY_SECONDS,
            REPLICATION_LAG_BYTES,
            REPLICATION_LAG_SECONDS,
            IN_FLIGHT_MESSAGES,
            STATUS_UPDATES_TOTAL,
            RECONNECTS_TOTAL,
            SLOT_ACTIVE,
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not registered");
        }
        assert!(
            Metrics::register(&registry).is_err(),
            "double registration must fail"
        );
    }
}
