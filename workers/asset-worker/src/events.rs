//! Payloads the worker publishes: `assets.enriched.v1` results (documented in
//! `redpanda/schemas/assets.enriched.v1.schema.json`) and dead letters (documented in
//! `redpanda/schemas/dlq.schema.json`).

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{BorrowedMessage, Message};
use serde_json::{json, Value};

use crate::enrichment::Outcome;
use crate::writeback::Written;

/// The consumed message, kept for the dead-letter event.
#[derive(Clone, Debug)]
pub struct Original {
    /// Topic it came from.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Broker timestamp, if any.
    pub timestamp_ms: Option<i64>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
}

impl Original {
    /// Copies what a dead letter needs out of a borrowed message.
    pub fn from_message(message: &BorrowedMessage<'_>) -> Self {
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
        }
    }
}

/// Key of both result and dead-letter events about an asset: `{"id": "<uuid>"}`.
pub fn asset_key(id: &uuid::Uuid) -> Vec<u8> {
    json!({ "id": id }).to_string().into_bytes()
}

/// The `assets.enriched.v1` value for a written row.
pub fn enriched(outcome: &Outcome, written: &Written, document: &Value) -> Vec<u8> {
    let input = &outcome.input;
    let mut event = json!({
        "asset_id": input.id,
        "status": if outcome.result.is_ok() { "done" } else { "error" },
        "enriched_at": written.enriched_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "input": {"commit_lsn": input.position.0, "lsn": input.position.1},
        "source": {"file_path": input.file_path, "file_name": input.file_name},
        "width": written.width,
        "height": written.height,
        "metadata_patch": { crate::change::NAMESPACE: document },
    });
    if let Err(failure) = &outcome.result {
        event["error"] = json!(failure.to_string());
        event["error_kind"] = json!(failure.kind());
    }
    event.to_string().into_bytes()
}

/// Dead-letter `kind` values of the DLQ schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// The payload is not a change envelope.
    Decode,
    /// Row values the worker cannot use (no id, a path that escapes the root).
    InvalidInput,
    /// The file could not be enriched (missing, truncated, corrupt, too large…).
    Processing,
}

impl DeadLetterKind {
    fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Decode => "decode",
            DeadLetterKind::InvalidInput => "invalid_input",
            DeadLetterKind::Processing => "processing",
        }
    }
}

/// A dead-letter value: the original message, why, and who set it aside. `reason` is the
/// worker's specific kind (`missing`, `truncated`…); `asset_id` is there when known.
#[allow(clippy::too_many_arguments)]
pub fn dead_letter(
    original: &Original,
    kind: DeadLetterKind,
    reason: &str,
    message: &str,
    asset_id: Option<&uuid::Uuid>,
    group: &str,
    failed_at: DateTime<Utc>,
) -> Vec<u8> {
    let (value, encoding) = match original.value.as_deref().map(std::str::from_utf8) {
        None => (Value::Null, "utf8"),
        Some(Ok(text)) => (json!(text), "utf8"),
        Some(Err(_)) => (
            json!(crate::probe::placeholder::base64(
                original.value.as_deref().unwrap_or_default()
            )),
            "base64",
        ),
    };
    let timestamp = original
        .timestamp_ms
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    let mut event = json!({
        "original": {
            "topic": original.topic,
            "partition": original.partition,
            "offset": original.offset,
            "timestamp": timestamp,
            "key": original.key.as_deref().map(String::from_utf8_lossy),
            "value": value,
            "encoding": encoding,
        },
        "error": {"kind": kind.as_str(), "reason": reason, "message": message},
        "worker": "asset-worker",
        "worker_version": env!("CARGO_PKG_VERSION"),
        "consumer_group": group,
        "failed_at": failed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "attempts": 1,
    });
    if let Some(id) = asset_id {
        event["asset_id"] = json!(id);
    }
    event.to_string().into_bytes()
}
