//! What a change event on `image_assets` asks of the worker.
//!
//! The worker enriches a row when its file may have changed: inserts, snapshot reads, and
//! updates, unless the row is soft-deleted or its metadata already holds an enrichment of the
//! very file it names now.
//!
//! **Own writes.** The write-back stamps the namespace with the file it described
//! (`metadata.asset_worker.source = {file_path, file_name}`) and sets the status to `done` or
//! `error`. An update whose `after` shows status `done`/`error` *and* a stamp equal to its own
//! `file_path`/`file_name` needs no work: it is either the worker's own write-back or a user's
//! edit of something other than the file (a tag, the dimensions). The default replica identity
//! gives no `before` to compare with, so the decision rests on the row itself, which makes it
//! order-independent and idempotent. A user asks for a fresh enrichment of the same path by
//! setting `enrichment_status = 'pending'` (or removing the namespace).
//!
//! When an update leaves a large (TOASTed) `metadata` untouched, wal2json omits it: the stamp
//! is unknown, so the row is enriched again. That costs one redundant pass at most; the
//! write-back rewrites `metadata`, so its own event carries the stamp and stops there.

use serde_json::{Map, Value};
use shared::envelope::{ChangeEvent, Op};
use uuid::Uuid;

/// Top-level key of `metadata` the worker owns. Every other key belongs to users and is
/// never written.
pub const NAMESPACE: &str = "asset_worker";

/// A row to enrich, as the change event gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetInput {
    /// `image_assets.id`.
    pub id: Uuid,
    /// Directory of the file, as stored.
    pub file_path: String,
    /// File name, as stored.
    pub file_name: String,
    /// `width` as stored when the event was captured (to flag a disagreement).
    pub stored_width: Option<i64>,
    /// `height` as stored.
    pub stored_height: Option<i64>,
    /// `(commit_lsn, lsn)` of the event: orders results so an older one never overwrites a
    /// newer one.
    pub position: (u64, u64),
}

/// The decision for one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Read and probe the file.
    Enrich(AssetInput),
    /// Nothing to do; the reason is a metric label (one of [`SKIP_REASONS`]).
    Skip(&'static str),
    /// The event cannot be used; it goes to the dead-letter topic, and to the row (`error`
    /// with the reason) when the row is known.
    Malformed {
        /// The row, when the event names a readable id.
        id: Option<Uuid>,
        /// What is wrong.
        reason: String,
    },
}

/// Every skip reason [`decide`] gives.
pub const SKIP_REASONS: [&str; 3] = ["current", "deleted", "other"];

/// The `enrichment_error` recorded for a row whose event cannot be used.
pub fn rejection_error(reason: &str) -> String {
    format!("invalid_row: {reason}")
}

/// Decides what `event` asks for.
pub fn decide(event: &ChangeEvent) -> Decision {
    match event.op {
        Op::Create | Op::Read | Op::Update => {}
        Op::Delete | Op::Truncate => return Decision::Skip("other"),
    }
    let Some(after) = &event.after else {
        return Decision::Malformed {
            id: None,
            reason: format!("op {} without `after`", event.op.as_str()),
        };
    };
    let id = match after.get("id").and_then(Value::as_str).map(Uuid::parse_str) {
        Some(Ok(id)) => id,
        _ => {
            return Decision::Malformed {
                id: None,
                reason: "`after.id` is not a UUID".into(),
            }
        }
    };
    let text = |column: &str| after.get(column).and_then(Value::as_str).map(str::to_owned);
    let (Some(file_path), Some(file_name)) = (text("file_path"), text("file_name")) else {
        let reason = "`after.file_path`/`after.file_name` missing or not text".to_owned();
        // The echo of the rejection already recorded on the row: nothing new.
        if text("enrichment_status").as_deref() == Some("error")
            && text("enrichment_error") == Some(rejection_error(&reason))
        {
            return Decision::Skip("current");
        }
        return Decision::Malformed {
            id: Some(id),
            reason,
        };
    };
    if matches!(after.get("deleted_at"), Some(v) if !v.is_null()) {
        return Decision::Skip("deleted");
    }
    if is_current(after, &file_path, &file_name) {
        return Decision::Skip("current");
    }
    Decision::Enrich(AssetInput {
        id,
        stored_width: after.get("width").and_then(Value::as_i64),
        stored_height: after.get("height").and_then(Value::as_i64),
        file_path,
        file_name,
        position: event.position(),
    })
}

/// Whether the row already holds a finished enrichment of the file it names.
fn is_current(after: &Map<String, Value>, file_path: &str, file_name: &str) -> bool {
    let finished = matches!(
        after.get("enrichment_status").and_then(Value::as_str),
        Some("done" | "error")
    );
    if !finished {
        return false;
    }
    let Some(metadata) = after.get("metadata").and_then(jsonb) else {
        return false;
    };
    let source = metadata.get(NAMESPACE).and_then(|ns| ns.get("source"));
    matches!(source, Some(source)
        if source.get("file_path").and_then(Value::as_str) == Some(file_path)
        && source.get("file_name").and_then(Value::as_str) == Some(file_name))
}

/// A `jsonb` column as the CDC reader passes it: wal2json prints jsonb as text, so it arrives
/// as a JSON string holding the document; an object is accepted as well.
fn jsonb(value: &Value) -> Option<Value> {
    match value {
        Value::String(text) => serde_json::from_str(text).ok(),
        Value::Object(_) => Some(value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(op: &str, after: Value) -> ChangeEvent {
        serde_json::from_value(json!({
            "op": op,
            "before": null,
            "after": after,
            "source": {"lsn": 20, "commit_lsn": 30, "ts": "2026-01-01T00:00:00Z", "schema": "public", "table": "image_assets"}
        }))
        .unwrap()
    }

    const ID: &str = "019d8eae-5943-76c4-9a85-195ce2c4f81a";

    fn row(extra: Value) -> Value {
        let mut row = json!({"id": ID, "file_path": "/assets/ui/", "file_name": "a.png",
            "width": 256, "height": null, "enrichment_status": "pending", "deleted_at": null,
            "metadata": "{\"theme\": \"dark\"}"});
        for (k, v) in extra.as_object().unwrap() {
            row[k] = v.clone();
        }
        row
    }

    #[test]
    fn inserts_are_enriched() {
        match decide(&event("c", row(json!({})))) {
            Decision::Enrich(input) => {
                assert_eq!(input.id.to_string(), ID);
                assert_eq!(input.file_path, "/assets/ui/");
                assert_eq!(input.stored_width, Some(256));
                assert_eq!(input.stored_height, None);
                assert_eq!(input.position, (30, 20));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn own_writes_and_unrelated_edits_are_skipped() {
        let stamped = json!({"theme": "dark", "asset_worker": {"source": {"file_path": "/assets/ui/", "file_name": "a.png"}}});
        let own = row(json!({"enrichment_status": "done", "metadata": stamped.to_string()}));
        assert_eq!(decide(&event("u", own)), Decision::Skip("current"));
        let as_object = row(json!({"enrichment_status": "error", "metadata": stamped}));
        assert_eq!(decide(&event("u", as_object)), Decision::Skip("current"));
    }

    #[test]
    fn renames_retries_and_unknown_metadata_are_enriched() {
        let stamped = json!({"asset_worker": {"source": {"file_path": "/assets/ui/", "file_name": "old.png"}}}).to_string();
        let renamed = row(json!({"enrichment_status": "done", "metadata": stamped}));
        assert!(matches!(decide(&event("u", renamed)), Decision::Enrich(_)));
        let current =
            json!({"asset_worker": {"source": {"file_path": "/assets/ui/", "file_name": "a.png"}}})
                .to_string();
        let retry = row(json!({"enrichment_status": "pending", "metadata": current}));
        assert!(matches!(decide(&event("u", retry)), Decision::Enrich(_)));
        let mut toasted = row(json!({"enrichment_status": "done"}));
        toasted.as_object_mut().unwrap().remove("metadata");
        assert!(matches!(decide(&event("u", toasted)), Decision::Enrich(_)));
        let null_metadata = row(json!({"metadata": null}));
        assert!(matches!(
            decide(&event("r", null_metadata)),
            Decision::Enrich(_)
        ));
    }

    #[test]
    fn deleted_and_malformed() {
        let deleted = row(json!({"deleted_at": "2026-11-21 23:30:29.123+00"}));
        assert_eq!(decide(&event("u", deleted)), Decision::Skip("deleted"));
        assert_eq!(decide(&event("d", Value::Null)), Decision::Skip("other"));
        assert!(matches!(
            decide(&event("c", Value::Null)),
            Decision::Malformed { id: None, .. }
        ));
        assert!(matches!(
            decide(&event("c", row(json!({"id": "nope"})))),
            Decision::Malformed { id: None, .. }
        ));
        let Decision::Malformed {
            id: Some(id),
            reason,
        } = decide(&event("c", row(json!({"file_name": 5}))))
        else {
            panic!("a known row")
        };
        assert_eq!(id.to_string(), ID);
        // Its rejection recorded on the row comes back as an update: not rejected again.
        let recorded = row(json!({"file_name": 5, "enrichment_status": "error",
            "enrichment_error": rejection_error(&reason)}));
        assert_eq!(decide(&event("u", recorded)), Decision::Skip("current"));
    }
}
