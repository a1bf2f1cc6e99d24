//! The asset worker's metrics: every name and label key in one place, registered once.
//!
//! Names follow `asset_<name>_<unit>[_total]` in base units; labels take a small fixed set of
//! values (formats, outcomes), never ids or paths.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::probe::Format;

/// Files finished, by `format` (a [`Format`] label or `unknown`) and `outcome` (`done`, an
/// error kind such as `missing`, `refused`, `too_large`, `truncated`, `corrupt`,
/// `unsupported`, `timeout`, or `stale` when the row moved on before the write).
pub const FILES_PROCESSED: &str = "asset_files_processed_total";
/// Bytes read from asset files.
pub const READ_BYTES: &str = "asset_read_bytes_total";
/// Time spent decoding pixels, per file, by `format`.
pub const DECODE_SECONDS: &str = "asset_decode_seconds";
/// Files in flight: queued for or on the probing pool, or waiting for their batch.
pub const QUEUE_DEPTH: &str = "asset_queue_depth";
/// Time to write one batch, publish its events and commit its offsets.
pub const FLUSH_SECONDS: &str = "asset_batch_flush_seconds";
/// Rows per written batch.
pub const BATCH_ROWS: &str = "asset_batch_rows";
/// Change events read, by `action`: `enrich`, `skip_deleted`, `skip_current` (own write-back
/// or an edit that left the file as it was), `skip_other` (deletes, truncates), `malformed`.
pub const EVENTS: &str = "asset_events_total";
/// Dead-letter events published.
pub const DEAD_LETTERS: &str = "asset_dead_letters_total";
/// Failed attempts at the batch write or its events (each is retried).
pub const RETRIES: &str = "asset_retries_total";

/// Messages between the group's position and the end of each assigned partition (from
/// librdkafka statistics, every 5 s).
pub const CONSUMER_LAG: &str = "asset_consumer_lag";

/// Label keys.
pub const LABEL_FORMAT: &str = "format";
pub const LABEL_OUTCOME: &str = "outcome";
pub const LABEL_ACTION: &str = "action";
pub const LABEL_STAGE: &str = "stage";
pub const LABEL_PARTITION: &str = "partition";

/// Handles to the worker's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub files_processed: IntCounterVec,
    pub read_bytes: IntCounter,
    pub decode_seconds: HistogramVec,
    pub queue_depth: IntGauge,
    pub flush_seconds: Histogram,
    pub batch_rows: Histogram,
    pub events: IntCounterVec,
    pub dead_letters: IntCounter,
    pub retries: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric in `registry`.
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
            queue_depth: IntGauge::new(QUEUE_DEPTH, "Files in flight.")?,
            flush_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    FLUSH_SECONDS,
                    "Time to write a batch, publish its events and commit its offsets.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )?,
            batch_rows: Histogram::with_opts(
                HistogramOpts::new(BATCH_ROWS, "Rows per written batch.").buckets(vec![
                    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
                ]),
            )?,
            events: IntCounterVec::new(
                Opts::new(EVENTS, "Change events read, by action."),
                &[LABEL_ACTION],
            )?,
            dead_letters: IntCounter::new(DEAD_LETTERS, "Dead-letter events published.")?,
            retries: IntCounterVec::new(
                Opts::new(RETRIES, "Failed attempts that were retried, by stage."),
                &[LABEL_STAGE],
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    CONSUMER_LAG,
                    "Messages behind the end of each assigned partition.",
                ),
                &[LABEL_PARTITION],
            )?,
        };
        registry.register(Box::new(metrics.consumer_lag.clone()))?;
        registry.register(Box::new(metrics.files_processed.clone()))?;
        registry.register(Box::new(metrics.read_bytes.clone()))?;
        registry.register(Box::new(metrics.decode_seconds.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.flush_seconds.clone()))?;
        registry.register(Box::new(metrics.batch_rows.clone()))?;
        registry.register(Box::new(metrics.events.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        Ok(metrics)
    }

    /// Label of a format, `unknown` when the file was never identified.
    pub fn format_label(format: Option<Format>) -> &'static str {
        format.map_or("unknown", Format::label)
    }
}
