//! Publishing a batch's outputs until the broker has acknowledged every one.
//!
//! A failed attempt is retried with the runtime's backoff, only for the records that failed.
//! When acknowledgements time out or fail twice in a row, the producer itself is suspect (its
//! idempotence state lost by the broker, a topic deleted and recreated, a fatal error): it is
//! recreated before the next attempt ([`Sink::reset`]), so a broker that came back empty costs
//! one publish timeout, not a wedge.

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use super::{Context, Message, Metrics, Output, Settings, Step};
use crate::dlq;
use crate::health::Health;

/// One message to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Destination topic.
    pub topic: Arc<str>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub payload: Vec<u8>,
    /// What it is, for the metrics.
    pub kind: RecordKind,
}

/// What a [`Record`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A result event.
    Result,
    /// A dead letter of this kind.
    DeadLetter(dlq::Kind),
}

/// Why a send was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No acknowledgement within the publish timeout.
    #[error("no acknowledgement within the publish timeout")]
    Timeout,
    /// The broker (or the producer) refuses a message this large: sending it again is futile.
    #[error("message too large for the broker")]
    TooLarge,
    /// The producer cannot go on (fenced, sequence lost): it must be recreated.
    #[error("producer failed: {0}")]
    Fatal(String),
    /// Anything else (broker unreachable, local queue full): retried.
    #[error("{0}")]
    Failed(String),
}

/// Where outputs go. Implemented for Kafka by [`super::kafka::KafkaSink`].
pub trait Sink: Send + Sync + 'static {
    /// Enqueues `record` and resolves when the broker acknowledged it (or it failed).
    fn send(&self, record: &Record)
        -> impl Future<Output = Result<(), SendError>> + Send + 'static;
    /// Replaces the producer with a new one (new producer id, empty queues).
    fn reset(&self);
}

/// The records of a written batch, in entry order: results to the result topic, dead letters
/// (built from the message and cut to fit) to the dead-letter topic, keyed like the message.
pub(crate) fn records(
    settings: &Settings,
    metrics: &Metrics,
    done: &[(Message, Vec<Output>)],
) -> Vec<Record> {
    let now = Utc::now();
    let mut records = Vec::new();
    for (message, outputs) in done {
        for output in outputs {
            match output {
                Output::Result { key, payload } => records.push(Record {
                    topic: Arc::clone(&settings.result_topic),
                    key: Some(key.clone()),
                    payload: payload.clone(),
                    kind: RecordKind::Result,
                }),
                Output::DeadLetter(letter) => {
                    let failure = dlq::Failure {
                        kind: letter.kind,
                        reason: &letter.reason,
                        message: &letter.message,
                    };
                    let mut value =
                        dlq::dead_letter(message, failure, settings.worker, &settings.group, now);
                    if let Some((field, id)) = &letter.row {
                        value[*field] = json!(id);
                    }
                    let budget = settings
                        .max_message_bytes
                        .saturating_sub(message.key.as_ref().map_or(0, Vec::len) + 512);
                    let (payload, cut) = dlq::fit(value, message, budget);
                    if cut {
                        metrics.truncated.inc();
                    }
                    records.push(Record {
                        topic: Arc::clone(&settings.dlq_topic),
                        key: message.key.clone(),
                        payload,
                        kind: RecordKind::DeadLetter(letter.kind),
                    });
                }
            }
        }
    }
    records
}

/// What publishing needs besides the records: where they go, the retry policy, and where
/// failures are reported. The runtime's own publishing and one-off jobs (the analyzer's
/// `reanalyze`) share it, so both give the same guarantee.
#[derive(Debug)]
pub struct Publishing<'a, K> {
    /// The producer.
    pub sink: &'a K,
    /// Dead-letter topic and worker name (for notes of events too large), retry backoff.
    pub settings: &'a Settings,
    /// Counters of acknowledged events, retries and producer resets.
    pub metrics: &'a Metrics,
    /// The `publish` component of `/readyz`.
    pub health: &'a Health,
}

impl<S: Step, K: Sink> Context<S, K> {
    pub(crate) fn publishing(&self) -> Publishing<'_, K> {
        Publishing {
            sink: &self.sink,
            settings: &self.settings,
            metrics: &self.metrics,
            health: &self.health,
        }
    }
}

/// Publishes until every record is acknowledged: a failed send is retried with the
/// settings' backoff (only the records that failed), a producer whose acknowledgements time
/// out or fail twice in a row is recreated, an event the broker refuses as too large is
/// replaced by a dead-lettered note of it. Returns only when all are acknowledged (the runtime
/// aborts the task at its shutdown deadline).
pub async fn until_acknowledged<K: Sink>(context: Publishing<'_, K>, mut records: Vec<Record>) {
    let mut attempt = 0u32;
    while !records.is_empty() {
        let sends: Vec<_> = records.iter().map(|r| context.sink.send(r)).collect();
        let results = futures::future::join_all(sends).await;
        let mut failed = Vec::new();
        let mut suspect = false;
        let mut first_error = None;
        for (record, result) in records.into_iter().zip(results) {
            match result {
                Ok(()) => match record.kind {
                    RecordKind::Result => context.metrics.results.inc(),
                    RecordKind::DeadLetter(kind) => context
                        .metrics
                        .dead_letters
                        .with_label_values(&[kind.as_str()])
                        .inc(),
                },
                Err(SendError::TooLarge) => {
                    tracing::error!(topic = %record.topic, bytes = record.payload.len(), "event too large for the broker; dead-lettering a note of it instead");
                    failed.push(too_large_note(context.settings, &record));
                }
                Err(e) => {
                    suspect |= matches!(e, SendError::Timeout | SendError::Fatal(_));
                    first_error.get_or_insert(e);
                    failed.push(record);
                }
            }
        }
        records = failed;
        if records.is_empty() {
            break;
        }
        attempt += 1;
        context.metrics.retry("publish");
        let error = first_error.map_or_else(|| "too large".to_owned(), |e| e.to_string());
        context.health.set(
            "publish",
            false,
            format!("{} events not acknowledged: {error}", records.len()),
        );
        if suspect || attempt >= 2 {
            context.sink.reset();
            context.metrics.producer_resets.inc();
            tracing::warn!(attempt, pending = records.len(), %error, "publishing failed; producer recreated");
        } else {
            tracing::warn!(attempt, pending = records.len(), %error, "publishing failed; retrying");
        }
        tokio::time::sleep(context.settings.backoff.delay(attempt)).await;
    }
    if attempt > 0 {
        context.health.set("publish", true, "acknowledged again");
        tracing::info!(attempt, "publishing recovered");
    }
}

/// A small dead letter standing in for an event the broker refused as too large.
fn too_large_note(settings: &Settings, record: &Record) -> Record {
    let failure = dlq::Failure {
        kind: dlq::Kind::TooLarge,
        reason: "event_too_large",
        message: "the event is larger than the broker accepts",
    };
    let change = json!({"bytes": record.payload.len()});
    let value = dlq::unpublished(
        &record.topic,
        record.key.as_deref(),
        change,
        failure,
        settings.worker,
        Utc::now(),
    );
    Record {
        topic: Arc::clone(&settings.dlq_topic),
        key: record.key.clone(),
        payload: value.to_string().into_bytes(),
        kind: RecordKind::DeadLetter(dlq::Kind::TooLarge),
    }
}
