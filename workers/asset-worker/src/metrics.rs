//! The asset worker's own metrics: every name and label key in one place, registered once.
//! The consumer runtime's metrics (`asset_consumer_lag`, `asset_skipped_total`,
//! `asset_dead_letters_total`, `asset_retries_total`, `asset_batch_*`…) are registered by
//! [`shared::consume::Metrics`] under the same namespace.
//!
//! Names follow `asset_<name>_<unit>[_total]` in base units; labels take a small fixed set of
//! values (formats, outcomes), never ids or paths.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::probe::Format;

/// The namespace of every asset-worker metric.
pub const NAMESPACE: &str = "asset";
/// Files finished, by `format` (a [`Format`] label or `unknown`) and `outcome` (`done`, an
/// error kind such as `missing`, `refused`, `too_large`, `truncated`, `corrupt`,
/// `unsupported`, `timeout`, `invalid_row`, or `stale` when the row moved on before the write).
pub const FILES_PROCESSED: &str = "asset_files_processed_total";
/// Bytes read from asset files.
pub const READ_BYTES: &str = "asset_read_bytes_total";
/// Time spent decoding pixels, per file, by `format`.
pub const DECODE_SECONDS: &str = "asset_decode_seconds";
/// Files being read or probed, or waiting for a probing thread.
pub const QUEUE_DEPTH: &str = "asset_queue_depth";
/// Transient read errors (`EMFILE`, `EIO`…) retried before a file was declared failed.
pub const READ_RETRIES: &str = "asset_read_retries_total";

/// Outcomes of files that were never read, so have no format: their series start at 0.
pub const UNREAD_OUTCOMES: [&str; 5] =
    ["missing", "refused", "too_large", "timeout", "invalid_row"];

/// Label key: the file's format.
pub const LABEL_FORMAT: &str = "format";
/// Label key: how a file ended.
pub const LABEL_OUTCOME: &str = "outcome";

/// The handles.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// [`FILES_PROCESSED`].
    pub files_processed: IntCounterVec,
    /// [`READ_BYTES`].
    pub read_bytes: IntCounter,
    /// [`DECODE_SECONDS`].
    pub decode_seconds: HistogramVec,
    /// [`QUEUE_DEPTH`].
    pub queue_depth: IntGauge,
    /// [`READ_RETRIES`].
    pub read_retries: IntCounter,
}

impl Metrics {
    /// Registers every metric. Series start at 0 for the `done` outcome and the decode time
    /// of every format, and for the failures that have no format (the file was never read),
    /// so that dashboards and alerts see them from start-up.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            files_processed: IntCounterVec::new(
                Opts::new(FILES_PROCESSED, "Files finished, by format and outcome."),
                &[LABEL_FORMAT, LABEL_OUTCOME],
            )?,
            read_bytes: IntCounter::new(READ_BYTES, "Bytes read from asset files.")?,
            decode_seconds: HistogramVec::new(
                HistogramOpts::new(DECODE_SECONDS, "Pixel decoding time per file.").buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ]),
                &[LABEL_FORMAT],
            )?,
            queue_depth: IntGauge::new(
                QUEUE_DEPTH,
                "Files being read or probed, or waiting for a probing thread.",
            )?,
            read_retries: IntCounter::new(
                READ_RETRIES,
                "Transient read errors retried before a file was declared failed.",
            )?,
        };
        for format in Format::ALL {
            metrics
                .files_processed
                .with_label_values(&[format.label(), "done"]);
            metrics.decode_seconds.with_label_values(&[format.label()]);
        }
        for outcome in UNREAD_OUTCOMES {
            metrics
                .files_processed
                .with_label_values(&["unknown", outcome]);
        }
        registry.register(Box::new(metrics.files_processed.clone()))?;
        registry.register(Box::new(metrics.read_bytes.clone()))?;
        registry.register(Box::new(metrics.decode_seconds.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.read_retries.clone()))?;
        Ok(metrics)
    }

    /// The format label of a file's outcome.
    pub fn format_label(format: Option<Format>) -> &'static str {
        format.map_or("unknown", Format::label)
    }
}
