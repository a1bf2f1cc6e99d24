//! wal2json `format-version 2` messages, decoded without copying and without ever turning a
//! column value into a float: values stay the raw JSON text wal2json wrote.
//!
//! One message per XLogData: `B` (begin, with the commit LSN and the end of the commit record
//! as `lsn`/`nextlsn`), `I`/`U`/`D` per row, `T` per truncated table, `M` for logical messages,
//! `C` (commit). Unchanged TOASTed columns are simply absent from an update's `columns`.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The options the reader passes to wal2json on `START_REPLICATION` (the benchmark passes
/// the same to `pg_recvlogical`).
pub fn plugin_options(add_tables: String) -> Vec<(&'static str, String)> {
    plugin_options_excluding(add_tables, &[])
}

/// [`plugin_options`] that also drop the changes of the replication origins with these ids
/// (`filter-origins`).
pub fn plugin_options_excluding(
    add_tables: String,
    origins: &[u32],
) -> Vec<(&'static str, String)> {
    let mut options = vec![
        ("format-version", "2".into()),
        ("include-xids", "1".into()),
        ("include-timestamp", "1".into()),
        ("include-lsn", "1".into()),
        ("include-transaction", "1".into()),
        ("include-pk", "1".into()),
        ("include-types", "0".into()),
        ("include-typmod", "0".into()),
        ("add-tables", add_tables),
    ];
    if !origins.is_empty() {
        let ids: Vec<String> = origins.iter().map(ToString::to_string).collect();
        options.push(("filter-origins", ids.join(",")));
    }
    options
}

/// One column of a row: its name and the value exactly as wal2json printed it.
#[derive(Debug, Deserialize)]
pub struct Column<'a> {
    /// Column name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Raw JSON: a number with all its digits, a string, `true`/`false` or `null`.
    #[serde(borrow)]
    pub value: &'a RawValue,
}

/// A primary-key column name (`include-pk`).
#[derive(Debug, Deserialize)]
pub struct PkColumn<'a> {
    /// Column name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// A wal2json message as sent.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    /// `B`, `C`, `I`, `U`, `D`, `T` or `M`.
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    /// Transaction id.
    #[serde(default)]
    pub xid: Option<u64>,
    /// Commit time, in the walsender's `TimeZone` (the reader pins UTC).
    #[serde(default, borrow)]
    pub timestamp: Option<Cow<'a, str>>,
    /// `B`/`C`: the commit record's LSN; rows: the change's LSN.
    #[serde(default, borrow)]
    pub lsn: Option<Cow<'a, str>>,
    /// `B`/`C`: the end of the commit record, the position to confirm.
    #[serde(default, borrow)]
    pub nextlsn: Option<Cow<'a, str>>,
    /// Schema of a row or truncate message.
    #[serde(default, borrow)]
    pub schema: Option<Cow<'a, str>>,
    /// Table of a row or truncate message.
    #[serde(default, borrow)]
    pub table: Option<Cow<'a, str>>,
    /// New row (`I`, `U`).
    #[serde(default, borrow)]
    pub columns: Option<Vec<Column<'a>>>,
    /// Old row's replica identity (`U`, `D`).
    #[serde(default, borrow)]
    pub identity: Option<Vec<Column<'a>>>,
    /// Primary-key column names.
    #[serde(default, borrow)]
    pub pk: Option<Vec<PkColumn<'a>>>,
    /// `M`: the logical message's prefix.
    #[serde(default, borrow)]
    pub prefix: Option<Cow<'a, str>>,
    /// `M`: its content (as text).
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
}

impl<'a> Message<'a> {
    /// Parses one message.
    ///
    /// The whole message is checked as UTF-8 once, then parsed from `&str`: cheaper than
    /// `from_slice`, which validates every string and raw value separately.
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The commit time, if present and readable.
    pub fn commit_time(&self) -> Option<DateTime<Utc>> {
        self.timestamp.as_deref().and_then(parse_pg_timestamp)
    }

    /// `nextlsn` parsed.
    pub fn end_lsn(&self) -> Option<u64> {
        self.nextlsn
            .as_deref()
            .and_then(shared::envelope::parse_lsn)
    }

    /// `lsn` parsed.
    pub fn lsn(&self) -> Option<u64> {
        self.lsn.as_deref().and_then(shared::envelope::parse_lsn)
    }
}

/// Parses a `timestamptz` as PostgreSQL prints it with `DateStyle=ISO`
/// (`2026-01-01 12:00:00.123456+00`, `…+05:30`).
pub fn parse_pg_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    // Split the offset off: the last '+' or '-' after the time part.
    let time_start = text.find(' ')?;
    let sign_at = text[time_start..].rfind(['+', '-'])? + time_start;
    let (local, offset) = text.split_at(sign_at);
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let seconds: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    let offset_secs = sign * (hours * 3600 + minutes * 60 + seconds);
    Some(naive.and_utc() - chrono::Duration::seconds(offset_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_origins_become_filter_origins() {
        let plain = plugin_options("public.t".into());
        assert!(plain.iter().all(|(k, _)| *k != "filter-origins"));
        assert_eq!(plugin_options_excluding("public.t".into(), &[]), plain);
        let excluding = plugin_options_excluding("public.t".into(), &[3, 17]);
        assert_eq!(
            excluding.last(),
            Some(&("filter-origins", "3,17".to_owned()))
        );
        assert_eq!(excluding.len(), plain.len() + 1);
    }

    #[test]
    fn begin_and_insert() {
        let b = br#"{"action":"B","xid":725,"timestamp":"2026-11-21 23:36:54.528918+00","lsn":"0/1530E98","nextlsn":"0/1530EC8"}"#;
        let m = Message::parse(b).unwrap();
        assert_eq!(m.action, "B");
        assert_eq!(m.xid, Some(725));
        assert_eq!(m.lsn(), Some(0x1530E98));
        assert_eq!(m.end_lsn(), Some(0x1530EC8));
        assert_eq!(
            m.commit_time().unwrap().to_rfc3339(),
            "2026-11-21T23:36:54.528918+00:00"
        );

        let i = br#"{"action":"I","xid":725,"lsn":"0/1530C50","schema":"public","table":"t","columns":[{"name":"id","value":"8f68"},{"name":"big","value":9223372036854775807},{"name":"n","value":12345678901234567890.123456789},{"name":"s","value":"a\"b"}],"pk":[{"name":"id"}]}"#;
        let m = Message::parse(i).unwrap();
        let cols = m.columns.unwrap();
        assert_eq!(cols[1].value.get(), "9223372036854775807");
        assert_eq!(cols[2].value.get(), "12345678901234567890.123456789");
        assert_eq!(cols[3].value.get(), r#""a\"b""#);
        assert_eq!(m.pk.unwrap()[0].name, "id");
    }

    #[test]
    fn escaped_names_are_owned() {
        let m = Message::parse(br#"{"action":"I","schema":"p\"x","table":"t","columns":[{"name":"a\u00e9","value":1}]}"#).unwrap();
        assert_eq!(m.schema.as_deref(), Some("p\"x"));
        assert_eq!(m.columns.unwrap()[0].name, "a\u{e9}");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Message::parse(b"{\"action\":").is_err());
        assert!(Message::parse(b"[]").is_err());
    }

    #[test]
    fn timestamps() {
        let t = |s| parse_pg_timestamp(s).map(|d| d.to_rfc3339());
        assert_eq!(
            t("1990-05-15 05:30:00+00").as_deref(),
            Some("1990-05-15T05:30:00+00:00")
        );
        assert_eq!(
            t("2026-01-01 09:00:00.5+09").as_deref(),
            Some("2026-01-01T00:00:00.500+00:00")
        );
        assert_eq!(
            t("2026-01-01 00:00:00-05:30").as_deref(),
            Some("2026-01-01T05:30:00+00:00")
        );
        assert_eq!(t("nope"), None);
    }
}
