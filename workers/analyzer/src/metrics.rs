//! The analyzer's metrics: every name and label key in one place, registered once.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Events read from the CDC topic, by op (`c`, `u`, `d`, `r`, `t`).
pub const EVENTS_CONSUMED: &str = "analyzer_events_consumed_total";
/// Results written to PostgreSQL (rows the write-back statement updated).
pub const ANALYSES_WRITTEN: &str = "analyzer_analyses_written_total";
/// Events needing no write, by reason (`unchanged`: own write-back or a non-input edit;
/// `deleted`; `stale`: the row's inputs changed again before the write).
pub const SKIPPED: &str = "analyzer_skipped_total";
/// Problems, by kind (`malformed`, `invalid_date`, `out_of_range`, `invalid_gender`,
/// `database`, `publish`).
pub const ERRORS: &str = "analyzer_errors_total";
/// Dead-letter events published.
pub const DEAD_LETTERS: &str = "analyzer_dead_letters_total";
/// Events per flushed batch.
pub const BATCH_SIZE: &str = "analyzer_batch_size";
/// Time to compute, write and commit one batch.
pub const FLUSH_SECONDS: &str = "analyzer_batch_flush_seconds";

/// Label keys.
pub const LABEL_OP: &str = "op";
pub const LABEL_REASON: &str = "reason";
pub const LABEL_KIND: &str = "kind";

/// Handles to the analyzer's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub events_consumed: IntCounterVec,
    pub analyses_written: IntCounter,
    pub skipped: IntCounterVec,
    pub errors: IntCounterVec,
    pub dead_letters: IntCounter,
    pub batch_size: Histogram,
    pub flush_seconds: Histogram,
}

impl Metrics {
    /// Creates and registers every metric in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            events_consumed: IntCounterVec::new(
                Opts::new(
                    EVENTS_CONSUMED,
                    "Change events read from the saju_profiles topic.",
                ),
                &[LABEL_OP],
            )?,
            analyses_written: IntCounter::new(
                ANALYSES_WRITTEN,
                "Analysis results written to saju_profiles.",
            )?,
            skipped: IntCounterVec::new(
                Opts::new(SKIPPED, "Events that needed no write."),
                &[LABEL_REASON],
            )?,
            errors: IntCounterVec::new(Opts::new(ERRORS, "Problems met, by kind."), &[LABEL_KIND])?,
            dead_letters: IntCounter::new(
                DEAD_LETTERS,
                "Events published to the dead-letter topic.",
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new(BATCH_SIZE, "Events per flushed batch.").buckets(vec![
                    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
                ]),
            )?,
            flush_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    FLUSH_SECONDS,
                    "Time to compute, write and commit one batch.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
        };
        registry.register(Box::new(metrics.events_consumed.clone()))?;
        registry.register(Box::new(metrics.analyses_written.clone()))?;
        registry.register(Box::new(metrics.skipped.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.batch_size.clone()))?;
        registry.register(Box::new(metrics.flush_seconds.clone()))?;
        Ok(metrics)
    }
}
