//! Dead letters: a message a worker cannot process, set aside with the reason so the next
//! events keep flowing. The payload is documented in `redpanda/schemas/dlq.schema.json`; the
//! key is the original message's key, so a replay (produce `original.value` back to
//! `original.topic` with that key) lands on the same partition.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{BorrowedMessage, Message};
use serde_json::{json, Value};

/// The consumed message, kept for its dead letter.
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

/// Why a message is a dead letter (`error.kind` in the schema).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The payload is not a change envelope.
    Decode,
    /// Row values the worker cannot use (an impossible date, a path escaping the root).
    InvalidInput,
    /// The work failed for this message alone (a corrupt file).
    Processing,
    /// The change event is larger than the broker accepts: it was never written to its
    /// topic (the dead letter names the row and position instead).
    TooLarge,
}

impl Kind {
    /// The schema's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decode => "decode",
            Kind::InvalidInput => "invalid_input",
            Kind::Processing => "processing",
            Kind::TooLarge => "too_large",
        }
    }
}

/// What went wrong, in the worker's words.
#[derive(Clone, Copy, Debug)]
pub struct Failure<'a> {
    /// The schema's broad kind.
    pub kind: Kind,
    /// The worker's specific kind, a metric label too (`out_of_range`, `truncated`…).
    pub reason: &'a str,
    /// Human-readable message; never contains secrets.
    pub message: &'a str,
}

/// Builds the dead-letter value. Callers may add fields naming the row (`asset_id`,
/// `profile_id`) before serializing it.
pub fn dead_letter(
    original: &Original,
    failure: Failure<'_>,
    worker: &str,
    group: &str,
    failed_at: DateTime<Utc>,
) -> Value {
    let (value, encoding) = match original.value.as_deref() {
        None => (Value::Null, "utf8"),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => (json!(text), "utf8"),
            Err(_) => (
                json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                "base64",
            ),
        },
    };
    let timestamp = original
        .timestamp_ms
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    json!({
        "original": {
            "topic": original.topic,
            "partition": original.partition,
            "offset": original.offset,
            "timestamp": timestamp,
            "key": original.key.as_deref().map(String::from_utf8_lossy),
            "value": value,
            "encoding": encoding,
        },
        "error": {"kind": failure.kind.as_str(), "reason": failure.reason, "message": failure.message},
        "worker": worker,
        "worker_version": env!("CARGO_PKG_VERSION"),
        "consumer_group": group,
        "failed_at": failed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "attempts": 1,
    })
}

/// Builds the dead letter of a message that could not be written to `topic` at all (so it
/// has no partition, offset or value): `change` says which row and position it was about.
pub fn unpublished(
    topic: &str,
    key: Option<&[u8]>,
    change: Value,
    failure: Failure<'_>,
    worker: &str,
    failed_at: DateTime<Utc>,
) -> Value {
    json!({
        "original": {
            "topic": topic,
            "partition": null,
            "offset": null,
            "timestamp": null,
            "key": key.map(String::from_utf8_lossy),
            "value": null,
            "encoding": "utf8",
        },
        "error": {"kind": failure.kind.as_str(), "reason": failure.reason, "message": failure.message},
        "change": change,
        "worker": worker,
        "worker_version": env!("CARGO_PKG_VERSION"),
        "failed_at": failed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "attempts": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(value: &[u8]) -> Original {
        Original {
            topic: "cdc.public.t".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(br#"{"id":"x"}"#.to_vec()),
            value: Some(value.to_vec()),
        }
    }

    #[test]
    fn text_values_stay_text_and_bytes_become_base64() {
        let failure = Failure {
            kind: Kind::Decode,
            reason: "malformed",
            message: "not JSON",
        };
        let letter = dead_letter(&original(b"{oops"), failure, "analyzer", "g", Utc::now());
        assert_eq!(letter["original"]["value"], "{oops");
        assert_eq!(letter["original"]["encoding"], "utf8");
        assert_eq!(letter["original"]["offset"], 41);
        assert_eq!(letter["error"]["kind"], "decode");
        assert_eq!(letter["error"]["reason"], "malformed");
        let letter = dead_letter(
            &original(&[0xff, 0xfe, 0x00]),
            failure,
            "analyzer",
            "g",
            Utc::now(),
        );
        assert_eq!(letter["original"]["encoding"], "base64");
        assert_eq!(letter["original"]["value"], "//4A");
    }
}
