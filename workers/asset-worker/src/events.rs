//! The `assets.enriched.v1` result payload (documented in
//! `redpanda/schemas/assets.enriched.v1.schema.json`). Dead letters are built by the consumer
//! runtime ([`shared::consume`]) to `redpanda/schemas/dlq.schema.json`.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::enrichment::{Failure, Outcome};
use crate::writeback::Written;

/// Key of both result and dead-letter events about an asset: `{"id": "<uuid>"}`.
pub fn asset_key(id: &uuid::Uuid) -> Vec<u8> {
    json!({ "id": id }).to_string().into_bytes()
}

/// The `assets.enriched.v1` value for a written row.
pub fn enriched(outcome: &Outcome, written: &Written, document: &Value) -> Vec<u8> {
    let input = &outcome.input;
    let enriched_at = written.enriched_at.unwrap_or_else(Utc::now);
    let source = match &outcome.result {
        Err(Failure::InvalidRow(_)) => Value::Null,
        _ => json!({"file_path": input.file_path, "file_name": input.file_name}),
    };
    let mut event = json!({
        "asset_id": input.id,
        "status": if outcome.result.is_ok() { "done" } else { "error" },
        "enriched_at": enriched_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "input": {"commit_lsn": input.position.0, "lsn": input.position.1},
        "source": source,
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
