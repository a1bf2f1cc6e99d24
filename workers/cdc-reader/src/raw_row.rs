//! The hot path for row messages (`I`, `U`, `D`): a single-pass scan of wal2json's output that
//! records where each column name and value lies, so the envelope is written by copying those
//! JSON tokens verbatim, with no unescaping, re-escaping or allocation per column.
//!
//! The envelope and key are written from the scanned tokens by [`crate::envelope`]'s raw
//! writers. The scanner only locates tokens; anything it does not expect (a schema or table name with
//! escapes, an unknown shape, malformed JSON) makes it return `None`, and the caller falls back
//! to the full `serde` decoder in [`crate::wal2json`], which reports real errors.

use std::ops::Range;

use shared::envelope::Op;

/// One column: the byte ranges of its name (a JSON string, quotes included) and its value (any
/// JSON value) in the message.
#[derive(Debug, Clone)]
pub struct RawField {
    /// Quoted name.
    pub name: Range<usize>,
    /// Raw value.
    pub value: Range<usize>,
}

/// A scanned row message; the ranges index the message it was scanned from. Reused across
/// messages so its vectors keep their capacity.
#[derive(Debug, Default)]
pub struct RawRow {
    /// c, u or d.
    pub op: Option<Op>,
    /// Schema without quotes.
    pub schema: Range<usize>,
    /// Table without quotes.
    pub table: Range<usize>,
    /// New row (`columns`), if present.
    pub columns: Vec<RawField>,
    /// Whether `columns` was present.
    pub has_columns: bool,
    /// Old key or row (`identity`), if present.
    pub identity: Vec<RawField>,
    /// Whether `identity` was present.
    pub has_identity: bool,
    /// Quoted primary-key column names.
    pub pk: Vec<Range<usize>>,
}

impl RawRow {
    /// Scans `data`; returns false (the caller then uses the full decoder) for anything but a
    /// well-formed row message whose schema and table need no unescaping.
    pub fn scan(&mut self, data: &[u8]) -> bool {
        self.op = None;
        self.schema = 0..0;
        self.table = 0..0;
        self.columns.clear();
        self.identity.clear();
        self.pk.clear();
        self.has_columns = false;
        self.has_identity = false;
        self.scan_object(data).is_some()
            && self.op.is_some()
            && !self.schema.is_empty()
            && !self.table.is_empty()
    }

    fn scan_object(&mut self, b: &[u8]) -> Option<()> {
        let mut i = expect(b, ws(b, 0), b'{')?;
        loop {
            i = ws(b, i);
            let (key_end, escaped) = string_end(b, i)?;
            if escaped {
                return None;
            }
            let key = &b[i + 1..key_end - 1];
            i = expect(b, ws(b, key_end), b':')?;
            i = ws(b, i);
            // The arrays are scanned once, by `fields`, which returns where they end.
            let end = match key {
                b"columns" => {
                    self.has_columns = true;
                    fields(b, i, &mut self.columns)?
                }
                b"identity" => {
                    self.has_identity = true;
                    fields(b, i, &mut self.identity)?
                }
                b"pk" => {
                    let mut names = Vec::new();
                    let end = fields(b, i, &mut names)?;
                    self.pk.extend(names.into_iter().map(|f| f.name));
                    end
                }
                _ => {
                    let end = value_end(b, i)?;
                    match key {
                        b"action" => {
                            self.op = match &b[i..end] {
                                b"\"I\"" => Some(Op::Create),
                                b"\"U\"" => Some(Op::Update),
                                b"\"D\"" => Some(Op::Delete),
                                _ => return None,
                            }
                        }
                        b"schema" => self.schema = unquoted(b, i..end)?,
                        b"table" => self.table = unquoted(b, i..end)?,
                        _ => {}
                    }
                    end
                }
            };
            i = ws(b, end);
            match b.get(i)? {
                b',' => i += 1,
                b'}' => return (ws(b, i + 1) == b.len()).then_some(()),
                _ => return None,
            }
        }
    }
}

/// Scans an array of objects with `name` (and optionally `value`) members; returns the index
/// after the array.
fn fields(b: &[u8], start: usize, out: &mut Vec<RawField>) -> Option<usize> {
    let mut i = expect(b, start, b'[')?;
    i = ws(b, i);
    if b.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        i = expect(b, ws(b, i), b'{')?;
        let mut name = None;
        let mut value = 0..0;
        loop {
            i = ws(b, i);
            let (key_end, escaped) = string_end(b, i)?;
            if escaped {
                return None;
            }
            let key = &b[i + 1..key_end - 1];
            i = ws(b, expect(b, ws(b, key_end), b':')?);
            let end = value_end(b, i)?;
            match key {
                b"name" if b[i] == b'"' => name = Some(i..end),
                b"value" => value = i..end,
                _ => {}
            }
            i = ws(b, end);
            match b.get(i)? {
                b',' => i += 1,
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        out.push(RawField { name: name?, value });
        i = ws(b, i);
        match b.get(i)? {
            b',' => i += 1,
            b']' => return Some(i + 1),
            _ => return None,
        }
    }
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

fn expect(b: &[u8], i: usize, byte: u8) -> Option<usize> {
    (b.get(i) == Some(&byte)).then_some(i + 1)
}

/// `b[i]` opens a string: returns the index after its closing quote and whether it has escapes.
fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    let mut escaped = false;
    // Most tokens (column names, numbers as text, short values) end within a few bytes: a
    // plain loop over them costs less than setting up the vector search.
    for (k, &c) in b.get(j..)?.iter().take(24).enumerate() {
        match c {
            b'"' => return Some((j + k + 1, false)),
            b'\\' => {
                j += k;
                escaped = true;
                break;
            }
            _ => {}
        }
    }
    if !escaped {
        j = (j + 24).min(b.len());
    } else {
        j += 2;
    }
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some((j + 1, escaped));
        }
        escaped = true;
        j += 2;
    }
}

/// The end of the JSON value starting at `b[i]`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        b't' => b[i..].starts_with(b"true").then_some(i + 4),
        b'f' => b[i..].starts_with(b"false").then_some(i + 5),
        b'n' => b[i..].starts_with(b"null").then_some(i + 4),
        b'-' | b'0'..=b'9' => {
            let mut j = i + 1;
            while matches!(
                b.get(j),
                Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            ) {
                j += 1;
            }
            Some(j)
        }
        _ => None,
    }
}

/// The inside of a string token without escapes.
fn unquoted(b: &[u8], token: Range<usize>) -> Option<Range<usize>> {
    let (end, escaped) = string_end(b, token.start)?;
    (end == token.end && !escaped).then_some(token.start + 1..token.end - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{encode_key, encode_value, write_key, write_row, Row, SourceInfo};
    use crate::wal2json::Message;
    use shared::envelope::ChangeEvent;

    const UPDATE: &[u8] = br#"{"action":"U","xid":9,"timestamp":"2026-01-01 00:00:00+00","lsn":"0/10","schema":"public","table":"t","columns":[{"name":"id","value":"k1"},{"name":"big","value":9223372036854775807},{"name":"n","value":-1.5e-7},{"name":"s","value":"a\"b\\c\u00e9"},{"name":"j","value":"{\"a\": [1, {\"b\": null}]}"},{"name":"ok","value":true},{"name":"no","value":null}],"identity":[{"name":"id","value":"k1"}],"pk":[{"name":"id"}]}"#;

    #[test]
    fn scans_spans_that_match_the_full_decoder() {
        let mut row = RawRow::default();
        assert!(row.scan(UPDATE));
        assert_eq!(row.op, Some(Op::Update));
        assert_eq!(&UPDATE[row.schema.clone()], b"public");
        assert_eq!(&UPDATE[row.table.clone()], b"t");
        let full = Message::parse(UPDATE).unwrap();
        let cols = full.columns.as_deref().unwrap();
        assert_eq!(row.columns.len(), cols.len());
        for (raw, col) in row.columns.iter().zip(cols) {
            assert_eq!(
                std::str::from_utf8(&UPDATE[raw.value.clone()]).unwrap(),
                col.value.get()
            );
        }

        // The envelope written from spans equals the one written through serde.
        let ts = "2026-01-01T00:00:00Z".parse().unwrap();
        let source = SourceInfo {
            lsn: 16,
            commit_lsn: 32,
            xid: Some(9),
            ts: &ts,
            schema: "public",
            table: "t",
            snapshot: false,
        };
        let mut slow = Vec::new();
        encode_value(
            &mut slow,
            Op::Update,
            full.identity.as_deref().map(Row),
            Some(Row(cols)),
            &source,
        );
        let mut after = Vec::new();
        write_row(&mut after, UPDATE, &row.columns);
        let after: serde_json::Value = serde_json::from_slice(&after).unwrap();
        let slow: ChangeEvent = ChangeEvent::from_slice(&slow).unwrap();
        assert_eq!(serde_json::Value::Object(slow.after.unwrap()), after);

        let (mut k1, mut k2) = (Vec::new(), Vec::new());
        assert!(write_key(&mut k1, UPDATE, &row.pk, &row.columns));
        assert!(encode_key(&mut k2, full.pk.as_deref().unwrap(), cols));
        assert_eq!(k1, k2);
    }

    #[test]
    fn falls_back_on_anything_unusual() {
        let mut row = RawRow::default();
        assert!(!row.scan(br#"{"action":"B","xid":1}"#), "not a row");
        assert!(
            !row.scan(br#"{"action":"I","schema":"p\"x","table":"t","columns":[]}"#),
            "escaped schema"
        );
        assert!(
            !row.scan(
                br#"{"action":"I","schema":"p","table":"t","columns":[{"name":"a","value":1}"#
            ),
            "truncated"
        );
        assert!(
            !row.scan(br#"{"action":"I","schema":"p","table":"t","columns":[{"value":1}]}"#),
            "no name"
        );
        assert!(
            !row.scan(br#"{"action":"I","schema":"p","table":"t"} trailing"#),
            "trailing bytes"
        );
        assert!(!row.scan(b""), "empty");
        assert!(row.scan(br#"{"action":"D","schema":"p","table":"t","identity":[{"name":"id","value":1}],"pk":[{"name":"id"}]}"#));
        assert!(!row.has_columns && row.has_identity);
    }

    #[test]
    fn string_ends_short_long_and_escaped() {
        for (text, end, escaped) in [
            (&br#""""#[..], 2, false),
            (br#""id" rest"#, 4, false),
            (br#""exactly twenty-four char" x"#, 26, false),
            (
                br#""a string longer than the twenty-four bytes" x"#,
                44,
                false,
            ),
            (br#""a\"b" x"#, 6, true),
            (br#""twenty-four bytes, then \"an escape\"" x"#, 39, true),
            (br#""\\""#, 4, true),
        ] {
            assert_eq!(
                string_end(text, 0),
                Some((end, escaped)),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        for unterminated in [
            &br#""abc"#[..],
            br#""abc\""#,
            br#""ends in a backslash\"#,
            br#""a long one that never ends, with no quote"#,
        ] {
            assert_eq!(string_end(unterminated, 0), None);
        }
    }

    #[test]
    fn never_panics_on_prefixes() {
        let mut row = RawRow::default();
        for n in 0..UPDATE.len() {
            let _ = row.scan(&UPDATE[..n]);
        }
    }
}
