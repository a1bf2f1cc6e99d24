//! Dead letters: a message a worker cannot process, set aside with the reason so the next
//! events keep flowing. The payload is documented in `redpanda/schemas/dlq.schema.json`; the
//! key is the original message's key, so a replay (produce `original.value` back to
//! `original.topic` with that key) lands on the same partition.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::consume::Message;

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
    /// Every kind, for metrics that must exist at 0 from start-up.
    pub const ALL: [Kind; 4] = [
        Kind::Decode,
        Kind::InvalidInput,
        Kind::Processing,
        Kind::TooLarge,
    ];

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
    original: &Message,
    failure: Failure<'_>,
    worker: &str,
    group: &str,
    failed_at: DateTime<Utc>,
) -> Value {
    let (value, encoding) = match original.payload.as_deref() {
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
            "topic": &*original.topic,
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

/// A change the CDC reader could not publish because it was too large, read back from its
/// dead letter ([`unpublished`]): the consuming workers use it to process the row from the
/// table itself, so the row does not stay pending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpublishedChange {
    /// `insert`/`update`… as the reader named it (`c`, `u`, `d`, `r`).
    pub op: Option<String>,
    /// Schema of the table.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Commit LSN of the change's transaction.
    pub commit_lsn: u64,
    /// LSN of the change.
    pub lsn: u64,
}

/// Reads a dead letter of the CDC reader's `too_large` kind; anything else gives `None`.
pub fn unpublished_change(payload: &[u8]) -> Option<UnpublishedChange> {
    let letter: Value = serde_json::from_slice(payload).ok()?;
    if letter["worker"] != "cdc-reader" || letter["error"]["kind"] != Kind::TooLarge.as_str() {
        return None;
    }
    let change = &letter["change"];
    Some(UnpublishedChange {
        op: change["op"].as_str().map(str::to_owned),
        schema: change["schema"].as_str()?.to_owned(),
        table: change["table"].as_str()?.to_owned(),
        commit_lsn: change["commit_lsn"].as_u64()?,
        lsn: change["lsn"].as_u64()?,
    })
}

/// Serializes a dead letter built by [`dead_letter`] so that it fits in `max_bytes`: when it
/// is larger, `original.value` is cut (at a character boundary) and the letter records the
/// original value's size and SHA-256 (`value_truncated`, `value_bytes`, `value_sha256`), so
/// that a dead letter never exceeds the broker's message limit and never stalls a partition.
/// Returns the bytes and whether anything was cut.
pub fn fit(mut letter: Value, original: &Message, max_bytes: usize) -> (Vec<u8>, bool) {
    let whole = letter.to_string().into_bytes();
    if whole.len() <= max_bytes {
        return (whole, false);
    }
    let bytes = original.payload.as_deref().unwrap_or_default();
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let text = letter["original"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    letter["original"]["value_truncated"] = json!(true);
    letter["original"]["value_bytes"] = json!(bytes.len());
    letter["original"]["value_sha256"] = json!(hex);
    // What the letter takes without the value; what is kept may grow by its JSON escapes.
    letter["original"]["value"] = json!("");
    let base = letter.to_string().len();
    let mut keep = max_bytes.saturating_sub(base);
    loop {
        let mut cut = keep.min(text.len());
        while cut > 0 && !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let prefix = text[..cut].to_owned();
        letter["original"]["value"] = json!(prefix);
        let out = letter.to_string().into_bytes();
        if out.len() <= max_bytes || cut == 0 {
            return (out, true);
        }
        // Escapes made it longer than estimated: cut more.
        keep = cut.saturating_sub(out.len() - max_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(value: &[u8]) -> Message {
        Message {
            topic: "cdc.public.t".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(br#"{"id":"x"}"#.to_vec()),
            payload: Some(value.to_vec()),
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

    #[test]
    fn oversized_letters_are_cut_to_fit_with_size_and_hash() {
        let failure = Failure {
            kind: Kind::Decode,
            reason: "malformed",
            message: "not JSON",
        };
        // Quotes and non-ASCII text: escapes and multi-byte characters must not overflow.
        let value = "\"한글\"".repeat(50_000);
        let message = original(value.as_bytes());
        let letter = dead_letter(&message, failure, "analyzer", "g", Utc::now());
        let (small, cut) = fit(letter.clone(), &message, 10_000_000);
        assert!(!cut);
        assert!(small.len() > 400_000);
        let (bytes, cut) = fit(letter, &message, 10_000);
        assert!(cut);
        assert!(bytes.len() <= 10_000, "{} bytes", bytes.len());
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed["original"]["value_truncated"], true);
        assert_eq!(parsed["original"]["value_bytes"], value.len());
        assert_eq!(
            parsed["original"]["value_sha256"].as_str().unwrap().len(),
            64
        );
        let kept = parsed["original"]["value"].as_str().unwrap();
        assert!(!kept.is_empty() && value.starts_with(kept));
        assert_eq!(parsed["error"]["reason"], "malformed");
    }
}
