//! Debezium-compatible change events (`--envelope debezium`): keys and values exactly as
//! Debezium's PostgreSQL connector writes them with Kafka Connect's JSON converter, with the
//! `schema` block (`--debezium-schemas true`, the converter's own default) or without it (the
//! reader's default).
//!
//! Reproduced from Debezium 3.6 (default settings: `decimal.handling.mode=precise`,
//! `time.precision.mode=adaptive`, `binary.handling.mode=bytes`, tombstones after deletes,
//! truncates skipped) and checked against Debezium itself on the same changes:
//!
//! - `source`: `version`, `connector` (`postgresql`), `name` (the topic prefix), `ts_ms`/`ts_us`/
//!   `ts_ns` (commit time), `snapshot` (`"false"`, `"true"` for the initial snapshot,
//!   `"incremental"`), `db`, `sequence` (`["<end of the previous transaction's commit>","<lsn>"]`,
//!   `null` first after a start), `schema`, `table`, `txId`, `lsn`, `xmin`, `origin`,
//!   `origin_lsn`; the envelope's own `ts_ms`/`ts_us`/`ts_ns` are the time it was written.
//! - values: integers, floats, booleans and text as they are; `numeric(p,s)` as
//!   `org.apache.kafka.connect.data.Decimal` (base64 of the unscaled two's-complement
//!   big-endian integer), `numeric` as `io.debezium.data.VariableScaleDecimal`
//!   (`{"scale", "value"}`); `timestamptz` as `io.debezium.time.ZonedTimestamp`
//!   (`2024-01-02T03:04:05.123456Z`), `timestamp` as `MicroTimestamp` (or `Timestamp`, in
//!   milliseconds, for a precision up to 3), `date` as `Date` (days), `time` as `MicroTime` (or
//!   `Time`); `uuid` as `io.debezium.data.Uuid`, `json`/`jsonb` as `io.debezium.data.Json`
//!   (text), `bytea` as base64 bytes.
//! - `before`: null for an update unless the table has `REPLICA IDENTITY FULL`; for a delete,
//!   the replica identity's columns, and every other column at its default (or null), as
//!   Debezium fills it. Other types (arrays, enums, intervals, network types…) are passed as
//!   strings.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::value::RawValue;
use serde_json::Value;
use shared::envelope::Op;
use sqlx::PgPool;

use crate::config::TableName;
use crate::error::Error;

/// The Debezium release whose output this reproduces (`source.version`).
pub const DEBEZIUM_VERSION: &str = "3.6.3.Final";
/// What Debezium writes for an unchanged TOASTed column it does not have.
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// How a column is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Text,
    Uuid,
    Json,
    Decimal { precision: u32, scale: u32 },
    VariableDecimal,
    ZonedTimestamp,
    MicroTimestamp,
    MilliTimestamp,
    Date,
    MicroTime,
    MilliTime,
    Bytes,
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    /// `"name":`, ready to write.
    quoted: String,
    kind: Kind,
    optional: bool,
    /// Debezium's `default` (already encoded), when it has one.
    default: Option<Value>,
}

/// One captured table as Debezium describes it.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<Column>,
    /// Positions of the key columns (the primary key, or every column).
    key: Vec<usize>,
    /// `REPLICA IDENTITY FULL`: updates carry the old row.
    full_identity: bool,
    /// The value's `schema` block (JSON), with the converter's schemas.
    value_schema: String,
    /// The key's `schema` block.
    key_schema: String,
    /// Column names as JSON strings.
    json_names: Vec<String>,
    /// `source` up to `ts_ms`'s value, and from `schema` to `txId`'s value: what does not
    /// change between events.
    source_head: String,
    source_tail: String,
}

/// A row as a lookup of a column's raw wal2json value by its position in the table (a hint:
/// wal2json lists columns in table order) and name.
pub type Columns<'f, 'r> = &'f (dyn Fn(usize, &str) -> Option<&'r str> + Sync);

impl Table {
    /// Each column's name as a JSON string (as wal2json quotes it), in table order.
    pub fn quoted_names(&self) -> &[String] {
        &self.json_names
    }
}

/// Where a change came from (what `source` needs).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The change's LSN (the snapshot's position for reads).
    pub lsn: u64,
    /// End of the commit record of the previous transaction with captured changes, if any
    /// since the start.
    pub last_commit: Option<u64>,
    /// Transaction id.
    pub xid: Option<u64>,
    /// Commit time.
    pub ts: &'a DateTime<Utc>,
    /// `"false"`, `"true"` or `"incremental"`.
    pub snapshot: &'static str,
}

/// The Debezium encoder of one reader: its tables, topic prefix and database.
#[derive(Debug)]
pub struct Debezium {
    /// `db` as a JSON string.
    db_quoted: String,
    schemas: bool,
    /// By route position.
    tables: Vec<Table>,
}

impl Debezium {
    /// Reads the captured tables' columns, types, nullability and defaults.
    pub async fn load(
        pool: &PgPool,
        tables: &[TableName],
        name: &str,
        db: &str,
        schemas: bool,
    ) -> Result<Self, Error> {
        let mut loaded = Vec::with_capacity(tables.len());
        for table in tables {
            loaded.push(load_table(pool, table, name).await?);
        }
        Ok(Self {
            db_quoted: serde_json::to_string(db).unwrap_or_default(),
            schemas,
            tables: loaded,
        })
    }

    /// The table of route `index`.
    pub fn table(&self, index: usize) -> Option<&Table> {
        self.tables.get(index)
    }

    /// Writes the key (`{"id": …}`, wrapped with its schema when schemas are on) from the
    /// key columns of `row`. False, leaving `out` empty, when a key column is missing.
    pub fn write_key<'r>(
        &self,
        out: &mut Vec<u8>,
        table: &Table,
        row: impl Fn(usize, &str) -> Option<&'r str>,
    ) -> bool {
        out.clear();
        let mut payload = String::with_capacity(64);
        payload.push('{');
        for (n, &i) in table.key.iter().enumerate() {
            let column = &table.columns[i];
            let Some(raw) = row(i, &column.name) else {
                return false;
            };
            if n > 0 {
                payload.push(',');
            }
            payload.push_str(&column.quoted);
            encode(&mut payload, column.kind, raw);
        }
        payload.push('}');
        if self.schemas {
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(table.key_schema.as_bytes());
            out.extend_from_slice(b",\"payload\":");
            out.extend_from_slice(payload.as_bytes());
            out.push(b'}');
        } else {
            out.extend_from_slice(payload.as_bytes());
        }
        true
    }

    /// Writes the value of a change. `before`/`after` look a column's raw wal2json value up by
    /// name; `before` is given as the replica identity (the caller passes what wal2json had).
    #[allow(clippy::too_many_arguments)]
    pub fn write_value<'r>(
        &self,
        out: &mut Vec<u8>,
        table: &Table,
        op: Op,
        before: Option<Columns<'_, 'r>>,
        after: Option<Columns<'_, 'r>>,
        origin: &Origin<'_>,
        now: DateTime<Utc>,
    ) {
        // The caller's buffer is written in place (it keeps its capacity from one event to
        // the next: a value with its schema block is several kilobytes).
        out.clear();
        let mut text = String::from_utf8(std::mem::take(out)).unwrap_or_default();
        if self.schemas {
            text.reserve(table.value_schema.len() + 1024);
            text.push_str("{\"schema\":");
            text.push_str(&table.value_schema);
            text.push_str(",\"payload\":");
        }
        text.push_str("{\"before\":");
        // Debezium has the old row of an update only with REPLICA IDENTITY FULL; for a delete
        // it fills what the identity lacks with each column's default.
        let before = match op {
            Op::Update if !table.full_identity => None,
            Op::Create | Op::Read | Op::Truncate => None,
            _ => before,
        };
        match before {
            Some(row) => self.write_row(&mut text, table, row, op == Op::Delete),
            None => text.push_str("null"),
        }
        text.push_str(",\"after\":");
        match after.filter(|_| op != Op::Delete) {
            Some(row) => self.write_row(&mut text, table, row, false),
            None => text.push_str("null"),
        }
        text.push_str(",\"source\":");
        self.write_source(&mut text, table, origin);
        text.push_str(",\"transaction\":null,\"op\":\"");
        text.push_str(op.as_str());
        let micros = now.timestamp_micros();
        let _ = write!(
            text,
            "\",\"ts_ms\":{},\"ts_us\":{},\"ts_ns\":{}}}",
            micros.div_euclid(1000),
            micros,
            now.timestamp_nanos_opt()
                .unwrap_or(micros.saturating_mul(1000))
        );
        if self.schemas {
            text.push('}');
        }
        *out = text.into_bytes();
    }

    /// A snapshot row (a JSON object of wal2json-rendered values) as an `op = r` value, and
    /// its key into `key` when asked; returns whether the key has all its columns.
    pub fn write_read(
        &self,
        value: &mut Vec<u8>,
        key: Option<&mut Vec<u8>>,
        table: &Table,
        row: &RawValue,
        origin: &Origin<'_>,
    ) -> bool {
        let object = object_row(row).unwrap_or_default();
        let lookup = |_: usize, name: &str| object.get(name).copied();
        self.write_value(
            value,
            table,
            Op::Read,
            None,
            Some(&lookup),
            origin,
            Utc::now(),
        );
        key.is_none_or(|key| self.write_key(key, table, lookup))
    }

    fn write_row<'r>(
        &self,
        text: &mut String,
        table: &Table,
        row: Columns<'_, 'r>,
        fill_defaults: bool,
    ) {
        text.push('{');
        for (n, column) in table.columns.iter().enumerate() {
            if n > 0 {
                text.push(',');
            }
            text.push_str(&column.quoted);
            match row(n, &column.name) {
                Some(raw) => encode(text, column.kind, raw),
                None if fill_defaults => match &column.default {
                    Some(default) => text.push_str(&default.to_string()),
                    None => text.push_str("null"),
                },
                // An unchanged TOASTed value wal2json left out.
                None => match column.kind {
                    Kind::Text | Kind::Json => push_json_string(text, UNAVAILABLE),
                    Kind::Bytes => push_json_string(text, &base64(UNAVAILABLE.as_bytes())),
                    _ => text.push_str("null"),
                },
            }
        }
        text.push('}');
    }

    fn write_source(&self, text: &mut String, table: &Table, origin: &Origin<'_>) {
        let micros = origin.ts.timestamp_micros();
        text.push_str(&table.source_head);
        let _ = write!(text, "{},\"snapshot\":\"", micros.div_euclid(1000));
        text.push_str(origin.snapshot);
        text.push_str("\",\"db\":");
        text.push_str(&self.db_quoted);
        // A JSON string holding a JSON array of strings.
        match origin.last_commit {
            Some(last) => {
                let _ = write!(text, r#","sequence":"[\"{last}\",\"{}\"]""#, origin.lsn);
            }
            None => {
                let _ = write!(text, r#","sequence":"[null,\"{}\"]""#, origin.lsn);
            }
        }
        let _ = write!(
            text,
            ",\"ts_us\":{micros},\"ts_ns\":{}",
            micros.saturating_mul(1000)
        );
        text.push_str(&table.source_tail);
        match origin.xid {
            Some(xid) => {
                let _ = write!(text, "{xid}");
            }
            None => text.push_str("null"),
        }
        let _ = write!(
            text,
            ",\"lsn\":{},\"xmin\":null,\"origin\":null,\"origin_lsn\":null}}",
            origin.lsn
        );
    }
}

/// Appends `raw` (a wal2json value) in Debezium's encoding of `kind`.
fn encode(out: &mut String, kind: Kind, text: &str) {
    if text == "null" {
        out.push_str("null");
        return;
    }
    let string = || -> Option<String> { serde_json::from_str::<String>(text).ok() };
    let number = || -> String {
        // Numbers come bare; a quoted one (NaN, Infinity) as its text.
        string().unwrap_or_else(|| text.to_owned())
    };
    let encoded: Option<String> = match kind {
        Kind::Int16
        | Kind::Int32
        | Kind::Int64
        | Kind::Float32
        | Kind::Float64
        | Kind::Bool
        | Kind::Text
        | Kind::Uuid
        | Kind::Json => None,
        Kind::Decimal { scale, .. } => {
            unscaled(&number(), scale).map(|bytes| format!("\"{}\"", base64(&bytes)))
        }
        Kind::VariableDecimal => {
            let n = number();
            let scale = n.split_once('.').map_or(0, |(_, f)| f.len() as u32);
            unscaled(&n, scale)
                .map(|bytes| format!("{{\"scale\":{scale},\"value\":\"{}\"}}", base64(&bytes)))
        }
        Kind::ZonedTimestamp => {
            if zoned_utc(out, text) {
                return;
            }
            string()
                .and_then(|s| parse_timestamptz(&s))
                .map(|t| format!("\"{}\"", t.format("%Y-%m-%dT%H:%M:%S%.6fZ")))
        }
        Kind::MicroTimestamp => string()
            .and_then(|s| parse_timestamp(&s))
            .map(|t| t.and_utc().timestamp_micros().to_string()),
        Kind::MilliTimestamp => string()
            .and_then(|s| parse_timestamp(&s))
            .map(|t| t.and_utc().timestamp_millis().to_string()),
        Kind::Date => string()
            .and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
            .map(|d| {
                (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
                    .num_days()
                    .to_string()
            }),
        Kind::MicroTime | Kind::MilliTime => string()
            .and_then(|s| NaiveTime::parse_from_str(&s, "%H:%M:%S%.f").ok())
            .map(|t| {
                let micros = i64::from(chrono::Timelike::num_seconds_from_midnight(&t)) * 1_000_000
                    + i64::from(chrono::Timelike::nanosecond(&t) / 1000);
                if kind == Kind::MilliTime {
                    (micros / 1000).to_string()
                } else {
                    micros.to_string()
                }
            }),
        Kind::Bytes => string()
            .and_then(|s| hex(s.trim_start_matches("\\x")))
            .map(|bytes| format!("\"{}\"", base64(&bytes))),
    };
    match encoded {
        Some(value) => out.push_str(&value),
        // As it is: the kinds passed through, and values the conversion does not know
        // (infinity timestamps, NaN numerics).
        None => out.push_str(text),
    }
}

/// The fast path of a `timestamptz` the server wrote in UTC (the reader's session pins
/// `TimeZone` to UTC), `"2024-01-02 03:04:05.5+00"`: rewritten as Debezium writes it,
/// `"2024-01-02T03:04:05.500000Z"`, without parsing a date. False (nothing written) for any
/// other shape (an offset, BC, infinity, a year past 9999).
fn zoned_utc(out: &mut String, text: &str) -> bool {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix("+00\"")) else {
        return false;
    };
    let b = inner.as_bytes();
    // YYYY-MM-DD HH:MM:SS[.f{1,6}]
    let shape = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    let fraction = &b[19.min(b.len())..];
    let fraction_ok = fraction.is_empty()
        || (fraction[0] == b'.'
            && (2..=7).contains(&fraction.len())
            && fraction[1..].iter().all(u8::is_ascii_digit));
    if !shape || !fraction_ok {
        return false;
    }
    out.push('"');
    out.push_str(&inner[..10]);
    out.push('T');
    out.push_str(&inner[11..19]);
    out.push('.');
    let digits = if fraction.is_empty() {
        ""
    } else {
        &inner[20..]
    };
    out.push_str(digits);
    for _ in digits.len()..6 {
        out.push('0');
    }
    out.push_str("Z\"");
    true
}

/// The unscaled value of a decimal text at `scale`, as minimal big-endian two's complement.
fn unscaled(text: &str, scale: u32) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || frac.len() > scale as usize {
        return None;
    }
    let mut decimal: Vec<u8> = int
        .bytes()
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', scale as usize - frac.len()))
        .map(|b| b - b'0')
        .collect();
    // Base 10 digits to base 256, most significant first.
    let mut bytes = Vec::new();
    while decimal.iter().any(|d| *d != 0) {
        let mut rest = 0u32;
        let mut next = Vec::with_capacity(decimal.len());
        for d in &decimal {
            let acc = rest * 10 + u32::from(*d);
            let q = acc / 256;
            rest = acc % 256;
            if !next.is_empty() || q != 0 {
                next.push(q as u8);
            }
        }
        bytes.push(rest as u8);
        decimal = next;
    }
    bytes.reverse();
    if bytes.is_empty() {
        bytes.push(0);
    }
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    if negative {
        // Two's complement: invert and add one.
        for b in bytes.iter_mut() {
            *b = !*b;
        }
        for b in bytes.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
        // Minimal: drop leading 0xFF bytes whose next byte keeps the sign.
        while bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0x80 != 0 {
            bytes.remove(0);
        }
    }
    Some(bytes)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn parse_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    crate::wal2json::parse_pg_timestamp(text)
}

fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()
}

fn push_json_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
}

/// A table's columns from the catalog.
async fn load_table(pool: &PgPool, table: &TableName, name: &str) -> Result<Table, Error> {
    type Row = (String, String, i32, bool, Option<String>, bool);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.attname::text, t.typname::text, a.atttypmod, a.attnotnull, \
                pg_get_expr(d.adbin, d.adrelid), \
                COALESCE(a.attnum = ANY(i.indkey::int2[]), false) \
         FROM pg_attribute a \
         JOIN pg_type t ON t.oid = CASE WHEN (SELECT typtype FROM pg_type WHERE oid = a.atttypid) = 'd' \
                                       THEN (SELECT typbasetype FROM pg_type WHERE oid = a.atttypid) \
                                       ELSE a.atttypid END \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(table.quoted())
    .fetch_all(pool)
    .await
    .map_err(Error::db("reading a captured table's columns"))?;
    let full_identity: bool =
        sqlx::query_scalar("SELECT relreplident = 'f' FROM pg_class WHERE oid = to_regclass($1)")
            .bind(table.quoted())
            .fetch_optional(pool)
            .await
            .map_err(Error::db("reading a captured table's replica identity"))?
            .unwrap_or(false);
    let mut columns = Vec::with_capacity(rows.len());
    let mut key = Vec::new();
    for (i, (column, type_name, typmod, not_null, default, pk)) in rows.into_iter().enumerate() {
        let kind = kind_of(&type_name, typmod);
        if pk {
            key.push(i);
        }
        columns.push(Column {
            default: default.as_deref().and_then(|d| default_value(kind, d)),
            quoted: format!("{}:", serde_json::to_string(&column).unwrap_or_default()),
            name: column,
            kind,
            optional: !not_null,
        });
    }
    if key.is_empty() {
        key = (0..columns.len()).collect();
    }
    let value_name = format!("{name}.{}.{}", table.schema, table.table);
    let value_schema = envelope_schema(&value_name, &columns).to_string();
    let key_schema = serde_json::json!({
        "type": "struct",
        "fields": key.iter().map(|&i| field_schema(&columns[i], Some(false))).collect::<Vec<_>>(),
        "optional": false,
        "name": format!("{value_name}.Key"),
    })
    .to_string();
    let source_head = format!(
        "{{\"version\":\"{DEBEZIUM_VERSION}\",\"connector\":\"postgresql\",\"name\":{},\"ts_ms\":",
        serde_json::to_string(name).unwrap_or_default()
    );
    let source_tail = format!(
        ",\"schema\":{},\"table\":{},\"txId\":",
        serde_json::to_string(&table.schema).unwrap_or_default(),
        serde_json::to_string(&table.table).unwrap_or_default()
    );
    let json_names = columns
        .iter()
        .map(|c| serde_json::to_string(&c.name).unwrap_or_default())
        .collect();
    Ok(Table {
        json_names,
        source_head,
        source_tail,
        columns,
        key,
        full_identity,
        value_schema,
        key_schema,
    })
}

fn kind_of(type_name: &str, typmod: i32) -> Kind {
    match type_name {
        "int2" => Kind::Int16,
        "int4" => Kind::Int32,
        "int8" | "oid" => Kind::Int64,
        "float4" => Kind::Float32,
        "float8" => Kind::Float64,
        "bool" => Kind::Bool,
        "uuid" => Kind::Uuid,
        "json" | "jsonb" => Kind::Json,
        "numeric" if typmod >= 4 => Kind::Decimal {
            precision: (((typmod - 4) >> 16) & 0xFFFF) as u32,
            scale: ((typmod - 4) & 0xFFFF) as u32,
        },
        "numeric" => Kind::VariableDecimal,
        "timestamptz" => Kind::ZonedTimestamp,
        "timestamp" if (0..=3).contains(&typmod) => Kind::MilliTimestamp,
        "timestamp" => Kind::MicroTimestamp,
        "date" => Kind::Date,
        "time" if (0..=3).contains(&typmod) => Kind::MilliTime,
        "time" => Kind::MicroTime,
        "bytea" => Kind::Bytes,
        _ => Kind::Text,
    }
}

/// Debezium's encoded default of a column default expression: literals (cast or not), and
/// the epoch for a time column defaulting to the current time; nothing for other functions
/// (sequences, random UUIDs).
fn default_value(kind: Kind, expression: &str) -> Option<Value> {
    let expression = expression.trim();
    let lower = expression.to_ascii_lowercase();
    let current_time = [
        "now()",
        "current_timestamp",
        "transaction_timestamp()",
        "statement_timestamp()",
        "clock_timestamp()",
        "localtimestamp",
        "current_date",
        "current_time",
        "localtime",
    ]
    .iter()
    .any(|f| lower.starts_with(f));
    if current_time {
        return match kind {
            Kind::ZonedTimestamp => Some(Value::String("1970-01-01T00:00:00.000000Z".into())),
            Kind::MicroTimestamp | Kind::MilliTimestamp | Kind::MicroTime | Kind::MilliTime => {
                Some(Value::from(0))
            }
            Kind::Date => Some(Value::from(0)),
            _ => None,
        };
    }
    // 'literal'::type, or a bare literal (numbers, true/false, possibly parenthesised).
    let literal = if let Some(rest) = expression.strip_prefix('\'') {
        let end = rest.find("'::").or_else(|| rest.rfind('\''))?;
        rest[..end].replace("''", "'")
    } else {
        let bare = expression.split("::").next()?;
        // A function call (`gen_random_uuid()`, `nextval(…)`): no default Debezium knows.
        if bare.starts_with(|c: char| c.is_ascii_alphabetic()) && bare.contains('(') {
            return None;
        }
        let bare = bare.trim_matches(|c| c == '(' || c == ')');
        bare.to_owned()
    };
    let raw = match kind {
        Kind::Int16 | Kind::Int32 | Kind::Int64 | Kind::Float32 | Kind::Float64 | Kind::Bool => {
            literal.clone()
        }
        Kind::Decimal { .. } | Kind::VariableDecimal => literal.clone(),
        _ => serde_json::to_string(&literal).ok()?,
    };
    let raw = RawValue::from_string(raw).ok()?;
    let mut out = String::new();
    encode(&mut out, kind, raw.get());
    serde_json::from_str(&out).ok()
}

/// The schema of one column (`optional` overridden for key fields).
fn field_schema(column: &Column, optional: Option<bool>) -> Value {
    let optional = optional.unwrap_or(column.optional);
    let mut field = serde_json::Map::new();
    let (kind, name, extra): (&str, Option<&str>, Option<(&str, Value)>) = match column.kind {
        Kind::Int16 => ("int16", None, None),
        Kind::Int32 => ("int32", None, None),
        Kind::Int64 => ("int64", None, None),
        Kind::Float32 => ("float", None, None),
        Kind::Float64 => ("double", None, None),
        Kind::Bool => ("boolean", None, None),
        Kind::Text => ("string", None, None),
        Kind::Uuid => ("string", Some("io.debezium.data.Uuid"), None),
        Kind::Json => ("string", Some("io.debezium.data.Json"), None),
        Kind::Decimal { precision, scale } => (
            "bytes",
            Some("org.apache.kafka.connect.data.Decimal"),
            Some((
                "parameters",
                serde_json::json!({"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()}),
            )),
        ),
        Kind::VariableDecimal => (
            "struct",
            Some("io.debezium.data.VariableScaleDecimal"),
            None,
        ),
        Kind::ZonedTimestamp => ("string", Some("io.debezium.time.ZonedTimestamp"), None),
        Kind::MicroTimestamp => ("int64", Some("io.debezium.time.MicroTimestamp"), None),
        Kind::MilliTimestamp => ("int64", Some("io.debezium.time.Timestamp"), None),
        Kind::Date => ("int32", Some("io.debezium.time.Date"), None),
        Kind::MicroTime => ("int64", Some("io.debezium.time.MicroTime"), None),
        Kind::MilliTime => ("int32", Some("io.debezium.time.Time"), None),
        Kind::Bytes => ("bytes", None, None),
    };
    field.insert("type".into(), kind.into());
    if column.kind == Kind::VariableDecimal {
        field.insert(
            "fields".into(),
            serde_json::json!([
                {"type": "int32", "optional": false, "field": "scale"},
                {"type": "bytes", "optional": false, "field": "value"}
            ]),
        );
    }
    field.insert("optional".into(), optional.into());
    if let Some(name) = name {
        field.insert("name".into(), name.into());
        field.insert("version".into(), 1.into());
    }
    if column.kind == Kind::VariableDecimal {
        field.insert("doc".into(), "Variable scaled decimal".into());
    }
    if let Some((key, value)) = extra {
        field.insert(key.into(), value);
    }
    if let Some(default) = &column.default {
        field.insert("default".into(), default.clone());
    }
    field.insert("field".into(), column.name.clone().into());
    Value::Object(field)
}

/// The value `schema` block: the envelope of `<prefix>.<schema>.<table>`.
fn envelope_schema(value_name: &str, columns: &[Column]) -> Value {
    let row = |field: &str| {
        serde_json::json!({
            "type": "struct",
            "fields": columns.iter().map(|c| field_schema(c, None)).collect::<Vec<_>>(),
            "optional": true,
            "name": format!("{value_name}.Value"),
            "field": field,
        })
    };
    let plain = |kind: &str, optional: bool, field: &str| serde_json::json!({"type": kind, "optional": optional, "field": field});
    let source = serde_json::json!({
        "type": "struct",
        "fields": [
            plain("string", false, "version"),
            plain("string", false, "connector"),
            plain("string", false, "name"),
            plain("int64", false, "ts_ms"),
            {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
             "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
             "default": "false", "field": "snapshot"},
            plain("string", false, "db"),
            plain("string", true, "sequence"),
            plain("int64", true, "ts_us"),
            plain("int64", true, "ts_ns"),
            plain("string", false, "schema"),
            plain("string", false, "table"),
            plain("int64", true, "txId"),
            plain("int64", true, "lsn"),
            plain("int64", true, "xmin"),
            plain("string", true, "origin"),
            plain("int64", true, "origin_lsn"),
        ],
        "optional": false,
        "name": "io.debezium.connector.postgresql.Source",
        "version": 1,
        "field": "source",
    });
    let transaction = serde_json::json!({
        "type": "struct",
        "fields": [
            plain("string", false, "id"),
            plain("int64", false, "total_order"),
            plain("int64", false, "data_collection_order"),
        ],
        "optional": true,
        "name": "event.block",
        "version": 1,
        "field": "transaction",
    });
    serde_json::json!({
        "type": "struct",
        "fields": [
            row("before"),
            row("after"),
            source,
            transaction,
            plain("string", false, "op"),
            plain("int64", true, "ts_ms"),
            plain("int64", true, "ts_us"),
            plain("int64", true, "ts_ns"),
        ],
        "optional": false,
        "name": format!("{value_name}.Envelope"),
        "version": 2,
    })
}

/// A JSON object row (snapshot rows) by column name: each value's raw JSON text.
pub fn object_row(row: &RawValue) -> Option<HashMap<String, &str>> {
    let row: HashMap<String, &RawValue> = serde_json::from_str(row.get()).ok()?;
    Some(row.into_iter().map(|(k, v)| (k, v.get())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_as_debezium_writes_them() {
        // Checked against Debezium 3.6 output.
        assert_eq!(base64(&unscaled("12.50", 2).unwrap()), "BOI=");
        assert_eq!(base64(&unscaled("-0.05", 2).unwrap()), "+w==");
        assert_eq!(base64(&unscaled("123.4567", 4).unwrap()), "EtaH");
        assert_eq!(unscaled("0", 2).unwrap(), [0]);
        assert_eq!(unscaled("-1", 0).unwrap(), [0xFF]);
        assert_eq!(unscaled("128", 0).unwrap(), [0, 128]);
        assert_eq!(unscaled("-128", 0).unwrap(), [0x80]);
        assert_eq!(unscaled("-129", 0).unwrap(), [0xFF, 0x7F]);
        assert_eq!(unscaled("1.234", 2), None, "more digits than the scale");
        assert_eq!(base64(b"\x01\x02\xff"), "AQL/");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn values_as_debezium_writes_them() {
        let enc = |kind, raw: &str| {
            let raw = RawValue::from_string(raw.to_owned()).unwrap();
            let mut out = String::new();
            encode(&mut out, kind, raw.get());
            out
        };
        assert_eq!(
            enc(Kind::ZonedTimestamp, "\"2024-01-02 03:04:05.123456+00\""),
            "\"2024-01-02T03:04:05.123456Z\""
        );
        assert_eq!(
            enc(Kind::ZonedTimestamp, "\"2024-01-02 03:04:05+00\""),
            "\"2024-01-02T03:04:05.000000Z\""
        );
        assert_eq!(
            enc(Kind::ZonedTimestamp, "\"2024-01-02 03:04:05.5+00\""),
            "\"2024-01-02T03:04:05.500000Z\""
        );
        // Not UTC: parsed.
        assert_eq!(
            enc(Kind::ZonedTimestamp, "\"2024-01-02 12:04:05.5+09\""),
            "\"2024-01-02T03:04:05.500000Z\""
        );
        assert_eq!(
            enc(Kind::MicroTimestamp, "\"2024-01-02 03:04:05.5\""),
            "1704164645500000"
        );
        assert_eq!(
            enc(Kind::MilliTimestamp, "\"2024-01-02 03:04:05.123\""),
            "1704164645123"
        );
        assert_eq!(enc(Kind::Date, "\"2024-01-02\""), "19724");
        assert_eq!(enc(Kind::MicroTime, "\"10:11:12.5\""), "36672500000");
        assert_eq!(enc(Kind::Bytes, "\"0102ff\""), "\"AQL/\"");
        assert_eq!(
            enc(Kind::VariableDecimal, "123.4567"),
            "{\"scale\":4,\"value\":\"EtaH\"}"
        );
        assert_eq!(enc(Kind::Int64, "9007199254740993"), "9007199254740993");
        assert_eq!(enc(Kind::Text, "null"), "null");
    }

    #[test]
    fn defaults() {
        assert_eq!(default_value(Kind::Int16, "7"), Some(Value::from(7)));
        assert_eq!(default_value(Kind::Bool, "false"), Some(Value::from(false)));
        assert_eq!(
            default_value(Kind::Text, "'pending'::text"),
            Some(Value::from("pending"))
        );
        assert_eq!(
            default_value(Kind::ZonedTimestamp, "now()"),
            Some(Value::from("1970-01-01T00:00:00.000000Z"))
        );
        assert_eq!(
            default_value(Kind::Int32, "nextval('t_id_seq'::regclass)"),
            None
        );
        assert_eq!(default_value(Kind::Uuid, "gen_random_uuid()"), None);
    }
}
