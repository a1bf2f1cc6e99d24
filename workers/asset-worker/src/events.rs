//! Payloads the worker publishes: `assets.enriched.v1` results (documented in
//! `redpanda/schemas/assets.enriched.v1.schema.json`) and dead letters (documented in
//! `redpanda/schemas/dlq.schema.json`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::enrichment::Outcome;
use crate::writeback::Written;

pub use shared::dlq::{Kind as DeadLetterKind, Original};

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
    let failure = shared::dlq::Failure {
        kind,
        reason,
        message,
    };
    let mut event = shared::dlq::dead_letter(original, failure, "asset-worker", group, failed_at);
    if let Some(id) = asset_id {
        event["asset_id"] = json!(id);
    }
    event.to_string().into_bytes()
}
