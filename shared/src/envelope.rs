//! The change event: one JSON envelope per row change on the CDC topics.
//!
//! The CDC reader publishes it; the analyzer and the asset worker read it. Keys of a CDC topic
//! are the row's primary key as a JSON object (`{"id": "…"}`), so every change of one row lands
//! on one partition, in commit order. A delete is followed by a tombstone (the key, no value)
//! unless tombstones are turned off; a truncate is published once per partition with the key
//! `{}` (compacted topics refuse null keys).
//!
//! Contract (see `redpanda/schemas/cdc-envelope.schema.json`):
//! - `op`: `c` insert, `u` update, `d` delete, `r` snapshot read, `t` truncate.
//! - `before`: the old row as far as the table's replica identity gives it (the key columns by
//!   default), `null` for inserts and snapshot reads.
//! - `after`: the new row, `null` for deletes. Unchanged TOASTed columns are *absent* from an
//!   update's `after`: absent is not `null`.
//! - Column values are typed as PostgreSQL gave them through wal2json: numbers stay numbers
//!   with every digit (bigint and numeric are never rounded through a float), text stays text.
//! - `source.lsn` is the change's own LSN, `source.commit_lsn` its transaction's commit LSN;
//!   `(commit_lsn, lsn)` orders all events. Delivery is at least once: consumers must tolerate
//!   duplicates and may use that pair to drop stale ones.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happened to the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Insert.
    #[serde(rename = "c")]
    Create,
    /// Update.
    #[serde(rename = "u")]
    Update,
    /// Delete.
    #[serde(rename = "d")]
    Delete,
    /// A row read by the initial snapshot.
    #[serde(rename = "r")]
    Read,
    /// The table was truncated (no row; `before` and `after` are null).
    #[serde(rename = "t")]
    Truncate,
}

impl Op {
    /// The one-letter code used on the wire and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// Where a change came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// LSN of this change (or of the snapshot's consistent point for `op=r`).
    pub lsn: u64,
    /// Commit LSN of the change's transaction.
    pub commit_lsn: u64,
    /// Transaction id (absent for snapshot reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<u64>,
    /// Commit time of the transaction (snapshot start for `op=r`).
    pub ts: DateTime<Utc>,
    /// Schema of the table.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// True for rows from the initial snapshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
}

/// One row change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// What happened.
    pub op: Op,
    /// The old row (replica identity columns for updates and deletes), if any.
    #[serde(default)]
    pub before: Option<Map<String, Value>>,
    /// The new row, if any.
    #[serde(default)]
    pub after: Option<Map<String, Value>>,
    /// Position and origin.
    pub source: Source,
}

impl ChangeEvent {
    /// `(commit_lsn, lsn)`: the total order of events.
    pub fn position(&self) -> (u64, u64) {
        (self.source.commit_lsn, self.source.lsn)
    }

    /// Parses an envelope from a message payload: this pipeline's, or Debezium's PostgreSQL
    /// connector's (JSON converter, with or without the `schema` block; the cdc-reader's
    /// `--envelope debezium`). Never panics on bad input.
    pub fn from_slice(payload: &[u8]) -> Result<Self, serde_json::Error> {
        match serde_json::from_slice::<Self>(payload) {
            Ok(event) => Ok(event),
            Err(native) => match serde_json::from_slice::<Debezium>(payload) {
                Ok(Debezium::Wrapped { payload, .. } | Debezium::Bare(payload)) => {
                    Ok(payload.into_event())
                }
                Err(_) => Err(native),
            },
        }
    }
}

/// Debezium's change event, with or without the JSON converter's `schema` block.
#[derive(Deserialize)]
#[serde(untagged)]
enum Debezium {
    Wrapped {
        #[allow(dead_code)]
        schema: Value,
        payload: DebeziumPayload,
    },
    Bare(DebeziumPayload),
}

#[derive(Deserialize)]
struct DebeziumPayload {
    op: Op,
    #[serde(default)]
    before: Option<Map<String, Value>>,
    #[serde(default)]
    after: Option<Map<String, Value>>,
    source: DebeziumSource,
}

#[derive(Deserialize)]
struct DebeziumSource {
    #[serde(default)]
    lsn: Option<u64>,
    #[serde(default, rename = "txId")]
    tx_id: Option<u64>,
    ts_ms: i64,
    #[serde(default)]
    snapshot: Option<String>,
    schema: String,
    table: String,
}

/// Debezium's placeholder for an unchanged TOASTed value it does not have: absent, as in
/// this pipeline's envelope.
const DEBEZIUM_UNAVAILABLE: &str = "__debezium_unavailable_value";

impl DebeziumPayload {
    fn into_event(self) -> ChangeEvent {
        let strip = |row: Option<Map<String, Value>>| {
            row.map(|mut row| {
                row.retain(|_, v| v.as_str() != Some(DEBEZIUM_UNAVAILABLE));
                row
            })
        };
        let lsn = self.source.lsn.unwrap_or(0);
        ChangeEvent {
            op: self.op,
            before: strip(self.before),
            after: strip(self.after),
            source: Source {
                lsn,
                // Debezium has no commit LSN; per key, change LSNs grow in commit order
                // (a row's next change waits for the commit of the one before), so
                // ordering one row's events by the change LSN alone stays right.
                commit_lsn: lsn,
                xid: self.source.tx_id,
                ts: DateTime::from_timestamp_millis(self.source.ts_ms).unwrap_or_default(),
                schema: self.source.schema,
                table: self.source.table,
                snapshot: self.source.snapshot.is_some_and(|s| s != "false"),
            },
        }
    }
}

/// The row key of a CDC record's key: `{"id": …}`, unwrapped from a Debezium key's
/// `{"schema": …, "payload": {…}}`.
pub fn key_object(key: &Value) -> &Value {
    match (key.get("schema"), key.get("payload")) {
        (Some(_), Some(payload)) => payload,
        _ => key,
    }
}

/// Formats an LSN the way PostgreSQL prints it (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses an LSN in PostgreSQL's `XXX/XXX` form.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
        return None;
    }
    Some((hi << 32) | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("nope"), None);
        assert_eq!(parse_lsn("1FFFFFFFF/0"), None);
    }

    #[test]
    fn envelope_keeps_big_numbers_exact() {
        let raw = r#"{"op":"u","before":{"id":1},"after":{"id":1,"big":9223372036854775807,"n":12345678901234567890.123456789},
            "source":{"lsn":10,"commit_lsn":20,"xid":7,"ts":"2026-01-01T00:00:00Z","schema":"public","table":"t"}}"#;
        let event = ChangeEvent::from_slice(raw.as_bytes()).unwrap();
        assert_eq!(event.op, Op::Update);
        assert_eq!(event.position(), (20, 10));
        let out = serde_json::to_string(&event).unwrap();
        assert!(out.contains("9223372036854775807"));
        assert!(out.contains("12345678901234567890.123456789"));
    }

    #[test]
    fn debezium_events_are_read_too() {
        let bare = br#"{"before":null,"after":{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","doc":"__debezium_unavailable_value","n":1},
            "source":{"version":"3.6.3.Final","connector":"postgresql","name":"cdc","ts_ms":1704164645123,"snapshot":"false","db":"app",
            "sequence":"[null,\"22199888\"]","ts_us":1704164645123456,"ts_ns":1704164645123456000,"schema":"public","table":"t",
            "txId":727,"lsn":22199888,"xmin":null,"origin":null,"origin_lsn":null},"transaction":null,"op":"u","ts_ms":1,"ts_us":1,"ts_ns":1}"#;
        let event = ChangeEvent::from_slice(bare).unwrap();
        assert_eq!(event.op, Op::Update);
        assert_eq!(event.position(), (22199888, 22199888));
        assert_eq!(event.source.xid, Some(727));
        assert_eq!(event.source.table, "t");
        assert!(!event.source.snapshot);
        let after = event.after.unwrap();
        assert!(!after.contains_key("doc"), "an unavailable value is absent");
        assert_eq!(after["n"], 1);
        let mut wrapped = br#"{"schema":{"type":"struct"},"payload":"#.to_vec();
        wrapped.extend_from_slice(bare);
        wrapped.push(b'}');
        assert_eq!(
            ChangeEvent::from_slice(&wrapped).unwrap().source.lsn,
            22199888
        );
        let key: Value = serde_json::json!({"schema": {"type": "struct"}, "payload": {"id": 1}});
        assert_eq!(key_object(&key), &serde_json::json!({"id": 1}));
        assert_eq!(key_object(&serde_json::json!({"id": 2}))["id"], 2);
    }

    #[test]
    fn malformed_payload_is_an_error() {
        assert!(ChangeEvent::from_slice(b"{not json").is_err());
        assert!(ChangeEvent::from_slice(br#"{"op":"x","source":{}}"#).is_err());
    }
}
