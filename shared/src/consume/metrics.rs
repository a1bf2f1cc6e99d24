//! The runtime's metrics, one set per worker under the worker's namespace (`analyzer_…`,
//! `asset_…`), so that both consuming workers export the same names and labels. Every counter
//! and every labelled series is created at start-up, at 0: a dashboard shows 0, not "no data",
//! before the first event.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::dlq::Kind;

/// `<ns>_consumer_lag{topic, partition}`: messages between the group's committed offset and
/// the end of each assigned partition (from librdkafka's statistics, every 5 s).
pub const CONSUMER_LAG: &str = "consumer_lag";
/// `<ns>_skipped_total{reason}`: messages that needed no work (tombstones included).
pub const SKIPPED_TOTAL: &str = "skipped_total";
/// `<ns>_results_published_total`: result events acknowledged by the broker.
pub const RESULTS_PUBLISHED_TOTAL: &str = "results_published_total";
/// `<ns>_dead_letters_total{kind}`: dead letters acknowledged by the broker.
pub const DEAD_LETTERS_TOTAL: &str = "dead_letters_total";
/// `<ns>_dead_letters_truncated_total`: dead letters whose original value was cut to fit.
pub const DEAD_LETTERS_TRUNCATED_TOTAL: &str = "dead_letters_truncated_total";
/// `<ns>_retries_total{stage}`: failed attempts that were retried.
pub const RETRIES_TOTAL: &str = "retries_total";
/// `<ns>_producer_resets_total`: producers recreated after their acknowledgements stopped.
pub const PRODUCER_RESETS_TOTAL: &str = "producer_resets_total";
/// `<ns>_rows_deferred_total`: rows skipped by a write-back because another transaction held
/// them, and retried shortly after.
pub const ROWS_DEFERRED_TOTAL: &str = "rows_deferred_total";
/// `<ns>_batch_size`: messages per written batch.
pub const BATCH_SIZE: &str = "batch_size";
/// `<ns>_batch_flush_seconds`: from a batch's close to its offsets being committable.
pub const BATCH_FLUSH_SECONDS: &str = "batch_flush_seconds";
/// `<ns>_in_flight_messages`: received, not finished.
pub const IN_FLIGHT_MESSAGES: &str = "in_flight_messages";
/// `<ns>_consumption_paused`: 1 while consumption is paused because `--max-in-flight`
/// messages are unfinished (the group membership is kept alive meanwhile).
pub const CONSUMPTION_PAUSED: &str = "consumption_paused";

/// `<ns>_rebalances_total{kind}`: partitions assigned to or revoked from this member, by
/// rebalance (`assign`, `revoke`). A member evicted by its group shows a revoke it did not ask for.
pub const REBALANCES_TOTAL: &str = "rebalances_total";

/// Label key of [`SKIPPED_TOTAL`].
pub const LABEL_REASON: &str = "reason";
/// Label key of [`DEAD_LETTERS_TOTAL`].
pub const LABEL_KIND: &str = "kind";
/// Label key of [`RETRIES_TOTAL`].
pub const LABEL_STAGE: &str = "stage";

/// Values of [`LABEL_STAGE`].
pub const STAGES: [&str; 4] = ["consume", "database", "publish", "commit"];
/// Skip reason of a tombstone (a null value after a delete).
pub const SKIP_TOMBSTONE: &str = "tombstone";

/// The runtime's metric handles.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub(crate) consumer_lag: IntGaugeVec,
    pub(crate) skipped: IntCounterVec,
    pub(crate) results: IntCounter,
    pub(crate) dead_letters: IntCounterVec,
    pub(crate) truncated: IntCounter,
    pub(crate) retries: IntCounterVec,
    pub(crate) producer_resets: IntCounter,
    pub(crate) deferred: IntCounter,
    pub(crate) batch_size: Histogram,
    pub(crate) flush_seconds: Histogram,
    pub(crate) in_flight: IntGauge,
    pub(crate) paused: IntGauge,
    pub(crate) rebalances: IntCounterVec,
}

impl Metrics {
    /// Registers the runtime's metrics as `<namespace>_<name>` in `registry`, with a series
    /// at 0 for every skip reason in `skip_reasons` (plus `tombstone`), every dead-letter kind
    /// and every retry stage.
    pub fn register(
        namespace: &str,
        skip_reasons: &[&str],
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let name = |n: &str| format!("{namespace}_{n}");
        let metrics = Self {
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    name(CONSUMER_LAG),
                    "Messages between the group's committed offset and the end of each assigned partition.",
                ),
                &["topic", "partition"],
            )?,
            skipped: IntCounterVec::new(
                Opts::new(name(SKIPPED_TOTAL), "Messages that needed no work, by reason."),
                &[LABEL_REASON],
            )?,
            results: IntCounter::new(
                name(RESULTS_PUBLISHED_TOTAL),
                "Result events acknowledged by the broker.",
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new(
                    name(DEAD_LETTERS_TOTAL),
                    "Dead letters acknowledged by the broker, by kind.",
                ),
                &[LABEL_KIND],
            )?,
            truncated: IntCounter::new(
                name(DEAD_LETTERS_TRUNCATED_TOTAL),
                "Dead letters whose original value was cut to fit the broker's message size.",
            )?,
            retries: IntCounterVec::new(
                Opts::new(
                    name(RETRIES_TOTAL),
                    "Failed attempts that were retried, by stage.",
                ),
                &[LABEL_STAGE],
            )?,
            producer_resets: IntCounter::new(
                name(PRODUCER_RESETS_TOTAL),
                "Producers recreated because their acknowledgements stopped or failed.",
            )?,
            deferred: IntCounter::new(
                name(ROWS_DEFERRED_TOTAL),
                "Rows a write-back skipped because another transaction held them (retried).",
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new(name(BATCH_SIZE), "Messages per written batch.").buckets(
                    vec![
                        1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
                    ],
                ),
            )?,
            flush_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    name(BATCH_FLUSH_SECONDS),
                    "Time from a batch's close until it is written and its events acknowledged.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )?,
            in_flight: IntGauge::new(
                name(IN_FLIGHT_MESSAGES),
                "Messages received and not yet finished.",
            )?,
            paused: IntGauge::new(
                name(CONSUMPTION_PAUSED),
                "1 while consumption is paused because too many messages are unfinished.",
            )?,
            rebalances: IntCounterVec::new(
                Opts::new(
                    name(REBALANCES_TOTAL),
                    "Rebalances of this group member, by kind (assign, revoke).",
                ),
                &["kind"],
            )?,
        };
        for kind in ["assign", "revoke"] {
            metrics.rebalances.with_label_values(&[kind]);
        }
        for reason in skip_reasons.iter().chain([&SKIP_TOMBSTONE]) {
            metrics.skipped.with_label_values(&[reason]);
        }
        for kind in Kind::ALL {
            metrics.dead_letters.with_label_values(&[kind.as_str()]);
        }
        for stage in STAGES {
            metrics.retries.with_label_values(&[stage]);
        }
        registry.register(Box::new(metrics.consumer_lag.clone()))?;
        registry.register(Box::new(metrics.skipped.clone()))?;
        registry.register(Box::new(metrics.results.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.truncated.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        registry.register(Box::new(metrics.producer_resets.clone()))?;
        registry.register(Box::new(metrics.deferred.clone()))?;
        registry.register(Box::new(metrics.batch_size.clone()))?;
        registry.register(Box::new(metrics.flush_seconds.clone()))?;
        registry.register(Box::new(metrics.in_flight.clone()))?;
        registry.register(Box::new(metrics.paused.clone()))?;
        registry.register(Box::new(metrics.rebalances.clone()))?;
        Ok(metrics)
    }

    pub(crate) fn retry(&self, stage: &str) {
        self.retries.with_label_values(&[stage]).inc();
    }

    pub(crate) fn skip(&self, reason: &str) {
        self.skipped.with_label_values(&[reason]).inc();
    }
}
