//! The analyzer's own metrics: every name and label key in one place, registered once. The
//! consumer runtime's metrics (`analyzer_consumer_lag`, `analyzer_skipped_total`,
//! `analyzer_dead_letters_total`, `analyzer_retries_total`, `analyzer_batch_*`…) are registered
//! by [`shared::consume::Metrics`] under the same namespace.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// The namespace of every analyzer metric.
pub const NAMESPACE: &str = "analyzer";
/// Events read from the CDC topic, by op (`c`, `u`, `d`, `r`, `t`).
pub const EVENTS_CONSUMED: &str = "analyzer_events_consumed_total";
/// Results written to PostgreSQL (rows the write-back statement updated).
pub const ANALYSES_WRITTEN: &str = "analyzer_analyses_written_total";
/// Results not written because the row's inputs changed (or the row went) before the write.
pub const STALE: &str = "analyzer_stale_results_total";
/// Rows recorded as `error`, by kind (`malformed`, `invalid_date`, `out_of_range`,
/// `invalid_gender`).
pub const ERRORS: &str = "analyzer_errors_total";

/// Label of [`EVENTS_CONSUMED`].
pub const LABEL_OP: &str = "op";
/// Label of [`ERRORS`].
pub const LABEL_KIND: &str = "kind";

/// The handles.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// [`EVENTS_CONSUMED`].
    pub events_consumed: IntCounterVec,
    /// [`ANALYSES_WRITTEN`].
    pub analyses_written: IntCounter,
    /// [`STALE`].
    pub stale: IntCounter,
    /// [`ERRORS`].
    pub errors: IntCounterVec,
}

impl Metrics {
    /// Registers every metric, each labelled series at 0.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            events_consumed: IntCounterVec::new(
                Opts::new(
                    EVENTS_CONSUMED,
                    "Change events read from the saju_profiles topic, by op.",
                ),
                &[LABEL_OP],
            )?,
            analyses_written: IntCounter::new(
                ANALYSES_WRITTEN,
                "Analysis results written to saju_profiles.",
            )?,
            stale: IntCounter::new(
                STALE,
                "Results not written because the row changed again (or went) first.",
            )?,
            errors: IntCounterVec::new(
                Opts::new(ERRORS, "Rows recorded as error, by kind."),
                &[LABEL_KIND],
            )?,
        };
        for op in ["c", "u", "d", "r", "t"] {
            metrics.events_consumed.with_label_values(&[op]);
        }
        for kind in [
            "malformed",
            "invalid_date",
            "out_of_range",
            "invalid_gender",
        ] {
            metrics.errors.with_label_values(&[kind]);
        }
        registry.register(Box::new(metrics.events_consumed.clone()))?;
        registry.register(Box::new(metrics.analyses_written.clone()))?;
        registry.register(Box::new(metrics.stale.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        Ok(metrics)
    }
}
