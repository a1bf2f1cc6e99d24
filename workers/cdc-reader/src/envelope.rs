//! Encoding of Kafka records in the pipeline's change-event contract
//! ([`shared::envelope::ChangeEvent`]), the one place envelopes and keys are written: from
//! borrowed wal2json values ([`encode_value`], [`encode_key`]; the snapshot and the fallback
//! path) or from the tokens the hot path scanned ([`write_envelope`], [`write_key`]; see
//! [`crate::raw_row`]). Both write the same document: no column value is ever re-parsed or
//! rounded, it is copied as the raw JSON text wal2json wrote.
//!
//! Keys are the primary-key columns as a JSON object (`{"id":"…"}`), so every change of a row
//! lands on one partition, in commit order.

use chrono::{DateTime, Utc};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use shared::envelope::Op;

use std::ops::Range;

use crate::raw_row::RawField;
use crate::wal2json::{Column, PkColumn};

/// `source` of an envelope.
#[derive(Debug, Serialize)]
pub struct SourceInfo<'a> {
    /// The change's LSN (the snapshot's consistent point for `op=r`).
    pub lsn: u64,
    /// Commit LSN of the transaction.
    pub commit_lsn: u64,
    /// Transaction id; absent for snapshot reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xid: Option<u64>,
    /// Commit time.
    pub ts: &'a DateTime<Utc>,
    /// Schema.
    pub schema: &'a str,
    /// Table.
    pub table: &'a str,
    /// True for snapshot reads.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
}

/// A row as a JSON object of raw values.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a>(pub &'a [Column<'a>]);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for column in self.0 {
            map.serialize_entry(column.name.as_ref(), column.value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Envelope<'a, B, A> {
    op: Op,
    before: Option<B>,
    after: Option<A>,
    source: &'a SourceInfo<'a>,
}

/// Writes the envelope of one change into `out` (cleared first). `before`/`after` are a
/// [`Row`] of wal2json columns or an already-rendered JSON object (snapshot rows).
pub fn encode_value<B: Serialize, A: Serialize>(
    out: &mut Vec<u8>,
    op: Op,
    before: Option<B>,
    after: Option<A>,
    source: &SourceInfo<'_>,
) {
    out.clear();
    let envelope = Envelope {
        op,
        before,
        after,
        source,
    };
    // Writing JSON into a Vec cannot fail: every value is already valid JSON.
    if serde_json::to_writer(&mut *out, &envelope).is_err() {
        out.clear();
    }
}

struct Key<'a> {
    pk: &'a [PkColumn<'a>],
    row: &'a [Column<'a>],
}

impl Serialize for Key<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.pk.len()))?;
        for pk in self.pk {
            if let Some(column) = self.row.iter().find(|c| c.name == pk.name) {
                map.serialize_entry(pk.name.as_ref(), column.value)?;
            }
        }
        map.end()
    }
}

/// Writes the key (the primary-key columns of `row`) into `out`. Returns false, leaving `out`
/// empty, when `row` lacks one of its columns. A table without a primary key (captured only
/// with `REPLICA IDENTITY FULL`) is keyed by all the columns `row` has.
pub fn encode_key(out: &mut Vec<u8>, pk: &[PkColumn<'_>], row: &[Column<'_>]) -> bool {
    out.clear();
    if pk.is_empty() {
        if row.is_empty() {
            return false;
        }
        return serde_json::to_writer(&mut *out, &Row(row)).is_ok() || {
            out.clear();
            false
        };
    }
    if !pk.iter().all(|p| row.iter().any(|c| c.name == p.name)) {
        return false;
    }
    if serde_json::to_writer(&mut *out, &Key { pk, row }).is_err() {
        out.clear();
        return false;
    }
    true
}

/// The `source` block of an envelope, as the raw path writes it.
#[derive(Debug)]
pub struct RawSource<'a> {
    /// LSN of the change.
    pub lsn: u64,
    /// Commit LSN of its transaction.
    pub commit_lsn: u64,
    /// Transaction id.
    pub xid: Option<u64>,
    /// Commit time, already as a JSON string.
    pub ts_json: &'a str,
    /// Schema.
    pub schema: &'a str,
    /// Table.
    pub table: &'a str,
}

/// Writes a change envelope (the same document the `serde` path writes, see
/// [`crate::envelope`]) from scanned fields.
pub fn write_envelope(
    out: &mut Vec<u8>,
    data: &[u8],
    op: Op,
    before: Option<&[RawField]>,
    after: Option<&[RawField]>,
    source: &RawSource<'_>,
) {
    out.clear();
    out.extend_from_slice(b"{\"op\":\"");
    out.extend_from_slice(op.as_str().as_bytes());
    out.extend_from_slice(b"\",\"before\":");
    match before {
        Some(fields) => write_row(out, data, fields),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"after\":");
    match after {
        Some(fields) => write_row(out, data, fields),
        None => out.extend_from_slice(b"null"),
    }
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b",\"source\":{\"lsn\":");
    out.extend_from_slice(number.format(source.lsn).as_bytes());
    out.extend_from_slice(b",\"commit_lsn\":");
    out.extend_from_slice(number.format(source.commit_lsn).as_bytes());
    if let Some(xid) = source.xid {
        out.extend_from_slice(b",\"xid\":");
        out.extend_from_slice(number.format(xid).as_bytes());
    }
    out.extend_from_slice(b",\"ts\":");
    out.extend_from_slice(source.ts_json.as_bytes());
    out.extend_from_slice(b",\"schema\":\"");
    out.extend_from_slice(source.schema.as_bytes());
    out.extend_from_slice(b"\",\"table\":\"");
    out.extend_from_slice(source.table.as_bytes());
    out.extend_from_slice(b"\"}}");
}

/// Writes `{"name":value,…}` from scanned fields.
pub fn write_row(out: &mut Vec<u8>, data: &[u8], fields: &[RawField]) {
    out.push(b'{');
    for (n, f) in fields.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&data[f.name.clone()]);
        out.push(b':');
        out.extend_from_slice(&data[f.value.clone()]);
    }
    out.push(b'}');
}

/// Writes the key `{"pk":value,…}`; false when a key column is missing from `row`. A table
/// without a primary key (captured only with `REPLICA IDENTITY FULL`) is keyed by all the
/// columns `row` has.
pub fn write_key(out: &mut Vec<u8>, data: &[u8], pk: &[Range<usize>], row: &[RawField]) -> bool {
    out.clear();
    if pk.is_empty() {
        if row.is_empty() {
            return false;
        }
        write_row(out, data, row);
        return true;
    }
    out.push(b'{');
    for (n, name) in pk.iter().enumerate() {
        let Some(field) = row
            .iter()
            .find(|f| data[f.name.clone()] == data[name.clone()])
        else {
            out.clear();
            return false;
        };
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&data[field.name.clone()]);
        out.push(b':');
        out.extend_from_slice(&data[field.value.clone()]);
    }
    out.push(b'}');
    true
}

/// Whether a transaction event opens or closes a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TxStatus {
    /// Sent before the transaction's first change record.
    #[serde(rename = "BEGIN")]
    Begin,
    /// Sent after its last, with the counts.
    #[serde(rename = "END")]
    End,
}

/// One captured table's share of a transaction.
#[derive(Debug, Serialize)]
pub struct DataCollection<'a> {
    /// `schema.table`.
    pub data_collection: &'a str,
    /// Change records of the table in the transaction.
    pub event_count: u64,
}

/// An event of the transaction topic (`<prefix>.transaction`), after Debezium's transaction
/// metadata: `id` is `<xid>:<commit_lsn>`, the two `source` fields every change record of the
/// transaction carries.
#[derive(Debug, Serialize)]
pub struct TxEvent<'a> {
    /// BEGIN or END.
    pub status: TxStatus,
    /// `<xid>:<commit_lsn>`.
    pub id: &'a str,
    /// Transaction id.
    pub xid: Option<u64>,
    /// Commit LSN (as in the change records' `source.commit_lsn`).
    pub commit_lsn: u64,
    /// Commit time.
    pub ts: &'a DateTime<Utc>,
    /// END: every change record of the transaction (tombstones are not counted); BEGIN: null.
    pub event_count: Option<u64>,
    /// END: the records per table, tables with none left out; BEGIN: null.
    pub data_collections: Option<Vec<DataCollection<'a>>>,
}

/// The id of a transaction on the transaction topic.
pub fn transaction_id(xid: Option<u64>, commit_lsn: u64) -> String {
    format!("{}:{commit_lsn}", xid.unwrap_or(0))
}

/// Writes the key (`{"id":"<id>"}`) and the value of a transaction event.
pub fn encode_transaction(key: &mut Vec<u8>, value: &mut Vec<u8>, event: &TxEvent<'_>) {
    key.clear();
    value.clear();
    // Neither can fail: strings and numbers only.
    let _ = serde_json::to_writer(&mut *key, &serde_json::json!({ "id": event.id }));
    let _ = serde_json::to_writer(&mut *value, event);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal2json::Message;
    use shared::envelope::ChangeEvent;

    #[test]
    fn update_envelope_matches_the_contract() {
        let raw = br#"{"action":"U","xid":9,"lsn":"0/10","schema":"public","table":"t","columns":[{"name":"id","value":"k1"},{"name":"big","value":9223372036854775807},{"name":"n","value":12345678901234567890.123456789}],"identity":[{"name":"id","value":"k1"}],"pk":[{"name":"id"}]}"#;
        let m = Message::parse(raw).unwrap();
        let ts = "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let source = SourceInfo {
            lsn: 16,
            commit_lsn: 32,
            xid: m.xid,
            ts: &ts,
            schema: "public",
            table: "t",
            snapshot: false,
        };
        let cols = m.columns.as_deref().unwrap();
        let mut value = Vec::new();
        encode_value(
            &mut value,
            Op::Update,
            m.identity.as_deref().map(Row),
            Some(Row(cols)),
            &source,
        );
        let text = std::str::from_utf8(&value).unwrap();
        assert!(text.contains("9223372036854775807"));
        assert!(text.contains("12345678901234567890.123456789"));
        let event = ChangeEvent::from_slice(&value).unwrap();
        assert_eq!(event.op, Op::Update);
        assert_eq!(event.position(), (32, 16));
        assert_eq!(event.source.xid, Some(9));
        assert_eq!(event.before.unwrap()["id"], "k1");
        assert_eq!(
            event.after.unwrap()["big"].to_string(),
            "9223372036854775807"
        );

        let mut key = Vec::new();
        assert!(encode_key(&mut key, m.pk.as_deref().unwrap(), cols));
        assert_eq!(key, br#"{"id":"k1"}"#);
    }

    #[test]
    fn delete_and_snapshot_shapes() {
        let ts = Utc::now();
        let source = SourceInfo {
            lsn: 1,
            commit_lsn: 1,
            xid: None,
            ts: &ts,
            schema: "s",
            table: "t",
            snapshot: true,
        };
        let mut value = Vec::new();
        encode_value(
            &mut value,
            Op::Read,
            None::<Row<'_>>,
            Some(Row(&[])),
            &source,
        );
        let event = ChangeEvent::from_slice(&value).unwrap();
        assert!(event.source.snapshot);
        assert!(event.before.is_none());
        assert_eq!(event.source.xid, None);
    }

    #[test]
    fn key_needs_every_pk_column() {
        let m = Message::parse(br#"{"action":"I","columns":[{"name":"a","value":1}],"pk":[{"name":"a"},{"name":"b"}]}"#).unwrap();
        let mut key = Vec::new();
        assert!(!encode_key(
            &mut key,
            m.pk.as_deref().unwrap(),
            m.columns.as_deref().unwrap()
        ));
        assert!(key.is_empty());
        // No primary key (REPLICA IDENTITY FULL): keyed by every column the row has.
        assert!(encode_key(&mut key, &[], m.columns.as_deref().unwrap()));
        assert_eq!(key, br#"{"a":1}"#);
        assert!(!encode_key(&mut key, &[], &[]));
    }
}
