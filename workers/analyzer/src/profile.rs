//! A `saju_profiles` change event read into the analyzer's terms: which row, which inputs,
//! and whether there is anything to do.
//!
//! Column values arrive as wal2json printed them: `uuid`, `text`, `char` and `timestamptz` as
//! strings (the timestamp in the walsender's `DateStyle`, e.g. `1990-05-15 05:30:00+00`),
//! booleans as booleans. Columns the event lacks (unchanged TOASTed values) are absent, which
//! is not the same as NULL.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use shared::envelope::{ChangeEvent, Op, Source};
use uuid::Uuid;

use saju::{Birth, Gender, Instant, Options};

/// What a profile's analysis depends on, as the row holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    /// The birth instant (`birth_date`); may be NULL for a lunar birth given in `lunar_birth`.
    pub birth_date: Option<DateTime<Utc>>,
    /// `is_solar`: false means a lunar birth: `lunar_birth` when set, else the civil date of
    /// `birth_date` in the analyzer's zone read as a lunar date (the original form).
    pub is_solar: bool,
    /// `lunar_birth`: the lunar date and clock time of birth, `YYYY-MM-DD HH:MM`, which can
    /// hold every lunar date (2/30 and leap months included).
    pub lunar_birth: Option<String>,
    /// `is_leap_month` for lunar input.
    pub is_leap_month: bool,
    /// `gender` (`M`/`F`), which the luck pillars need; NULL in the row is `None`.
    pub gender: Option<String>,
}

/// A profile to analyze.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Primary key.
    pub id: Uuid,
    /// `(commit_lsn, lsn)` of the event the inputs were read from.
    pub position: (u64, u64),
    /// The inputs the result will be computed from.
    pub inputs: Inputs,
}

/// What to do with one event.
#[derive(Debug)]
pub enum Decision {
    /// Compute and write back.
    Analyze(Profile),
    /// Nothing to do; the reason is a metric label.
    Skip(SkipReason),
}

/// Why an event needs no work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The row's recorded fingerprint equals that of its inputs: the analyzer's own
    /// write-back, or an edit of a column that is not an input. Also the echo of a rejection
    /// already recorded on the row.
    Unchanged,
    /// A delete (the row is gone) or a truncate.
    Deleted,
}

impl SkipReason {
    /// Every reason, for metrics that start at 0.
    pub const ALL: [SkipReason; 2] = [SkipReason::Unchanged, SkipReason::Deleted];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Unchanged => "unchanged",
            SkipReason::Deleted => "deleted",
        }
    }
}

/// An event that cannot be read: it goes to the dead-letter topic with this reason.
#[derive(Debug, thiserror::Error)]
pub enum MalformedEvent {
    /// The payload is not a change envelope.
    #[error("payload is not a change envelope: {0}")]
    NotAnEnvelope(#[source] serde_json::Error),
    /// A create/update/read without `after`.
    #[error("`{op}` event has no `after` row")]
    NoAfter {
        /// The event's op.
        op: &'static str,
    },
    /// A column is missing or has the wrong type.
    #[error("column `{column}`: {problem}")]
    Column {
        /// Column name.
        column: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl MalformedEvent {
    fn column(column: &'static str, problem: impl Into<String>) -> Self {
        MalformedEvent::Column {
            column,
            problem: problem.into(),
        }
    }
}

/// The columns [`decide`] reads.
const INPUT_COLUMNS: [&str; 9] = [
    "id",
    "birth_date",
    "is_solar",
    "is_leap_month",
    "lunar_birth",
    "gender",
    "analysis_input",
    "analysis_status",
    "analysis_error",
];

/// Parses a change event, keeping only the columns the analyzer reads: every other value of
/// `after` (the analysis document of a write-back above all) and `before` are only scanned,
/// never built into values.
pub fn read_event(payload: &[u8]) -> Result<ChangeEvent, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Lean<'a> {
        op: Op,
        #[serde(borrow, default)]
        after: Option<HashMap<String, &'a RawValue>>,
        source: Source,
    }
    let lean: Lean<'_> = match serde_json::from_slice(payload) {
        Ok(lean) => lean,
        // Not this pipeline's envelope: Debezium's (`--envelope debezium`), or malformed.
        Err(native) => {
            let Ok(mut event) = ChangeEvent::from_slice(payload) else {
                return Err(native);
            };
            event.before = None;
            if let Some(after) = event.after.as_mut() {
                after.retain(|column, _| INPUT_COLUMNS.contains(&column.as_str()));
            }
            return Ok(event);
        }
    };
    let after = lean
        .after
        .map(|row| {
            INPUT_COLUMNS
                .iter()
                .filter_map(|&column| {
                    let raw = row.get(column)?;
                    Some(serde_json::from_str(raw.get()).map(|v| (column.to_owned(), v)))
                })
                .collect::<Result<Map<String, Value>, _>>()
        })
        .transpose()?;
    Ok(ChangeEvent {
        op: lean.op,
        before: None,
        after,
        source: lean.source,
    })
}

/// Reads an event and decides what it asks for. `fingerprint` is [`Fingerprint::of`] with
/// the analyzer's conventions.
pub fn decide(event: &ChangeEvent, fingerprint: &Fingerprint) -> Result<Decision, MalformedEvent> {
    match event.op {
        Op::Delete | Op::Truncate => return Ok(Decision::Skip(SkipReason::Deleted)),
        Op::Create | Op::Update | Op::Read => {}
    }
    let row = event.after.as_ref().ok_or(MalformedEvent::NoAfter {
        op: event.op.as_str(),
    })?;
    let id = uuid_column(row, "id")?;
    let inputs = match inputs_of(row) {
        Ok(inputs) => inputs,
        Err(e) => {
            // The echo of the rejection already on the row: nothing new.
            let recorded = |column| optional_text_column(row, column).ok().flatten();
            if recorded("analysis_status").as_deref() == Some("error")
                && recorded("analysis_error") == Some(e.to_string())
            {
                return Ok(Decision::Skip(SkipReason::Unchanged));
            }
            return Err(e);
        }
    };
    // `analysis_input` is small and never TOASTed, so an update carries it. An absent one
    // (an event from before the column existed) reads as "never analyzed".
    if event.op == Op::Update {
        let recorded = optional_text_column(row, "analysis_input").unwrap_or(None);
        if recorded.as_deref() == Some(fingerprint.of(&inputs).as_str()) {
            return Ok(Decision::Skip(SkipReason::Unchanged));
        }
    }
    Ok(Decision::Analyze(Profile {
        id,
        position: event.position(),
        inputs,
    }))
}

/// The inputs of a row (an event's `after`, or the row read from the table).
pub fn inputs_of(row: &Map<String, Value>) -> Result<Inputs, MalformedEvent> {
    let is_solar = bool_column(row, "is_solar")?;
    // Absent from events of rows written before the column existed: no lunar birth then.
    let lunar_birth = match row.get("lunar_birth") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => return Err(MalformedEvent::column("lunar_birth", "not a string")),
    };
    let birth_date = match field(row, "birth_date")? {
        Value::Null if lunar_birth.is_some() && !is_solar => None,
        Value::Null => {
            return Err(MalformedEvent::column(
                "birth_date",
                "NULL, and no lunar_birth of a lunar profile stands in for it",
            ))
        }
        _ => Some(timestamp_column(row, "birth_date")?),
    };
    Ok(Inputs {
        birth_date,
        is_solar,
        lunar_birth,
        is_leap_month: bool_column(row, "is_leap_month")?,
        gender: optional_text_column(row, "gender")?.map(|g| g.trim_end().to_owned()),
    })
}

/// The row id of an event, when it has a readable one (a malformed event of a known row
/// gets its error recorded on the row).
pub fn id_of(event: &ChangeEvent) -> Option<Uuid> {
    uuid_column(event.after.as_ref()?, "id").ok()
}

/// Fingerprints of inputs under the analyzer's conventions and engine version: equal
/// fingerprints give equal results.
#[derive(Clone, Debug)]
pub struct Fingerprint {
    conventions: String,
}

impl Fingerprint {
    /// For results computed with `options` by this build's engine.
    pub fn new(options: &Options) -> Self {
        let mut conventions = format!(
            "v{}|{}|{}|{}",
            saju::json::VERSION,
            options.zone,
            options.day_boundary,
            options.solar_time
        );
        if options.solar_time != saju::SolarTime::None {
            conventions.push_str(&format!("@{}", options.longitude));
        }
        if !options.stars.is_default() {
            conventions.push_str(&format!("|{}", options.stars.key()));
        }
        Self { conventions }
    }

    /// The fingerprint of one row's inputs. Rows without `lunar_birth` keep the form they had
    /// before the column existed (so they are not analyzed again for nothing).
    pub fn of(&self, inputs: &Inputs) -> String {
        let birth_date = inputs
            .birth_date
            .map_or_else(|| "-".to_owned(), |b| b.timestamp_micros().to_string());
        let mut fingerprint = format!(
            "{}|{}|{}|{}|{}",
            birth_date,
            if inputs.is_solar { "solar" } else { "lunar" },
            if inputs.is_leap_month { "leap" } else { "-" },
            inputs.gender.as_deref().unwrap_or("-"),
            self.conventions
        );
        if let Some(lunar) = &inputs.lunar_birth {
            fingerprint.push_str("|L");
            fingerprint.push_str(lunar);
        }
        fingerprint
    }
}

/// Why a profile's inputs cannot be analyzed (stored on the row and sent to the DLQ).
#[derive(Debug, thiserror::Error)]
pub enum InvalidInput {
    /// The engine refused the date (out of range, no such lunar day, …).
    #[error(transparent)]
    Engine(#[from] saju::Error),
    /// No gender, or not M/F.
    #[error("gender must be M or F for the luck pillars, found {0}")]
    Gender(String),
    /// `lunar_birth` is not `YYYY-MM-DD HH:MM`.
    #[error("lunar_birth `{0}` is not a lunar date and clock time like 1990-02-30 14:30")]
    LunarBirth(String),
}

impl InvalidInput {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            InvalidInput::Engine(
                saju::Error::OutOfRange { .. } | saju::Error::LunarOutOfRange { .. },
            ) => "out_of_range",
            InvalidInput::Engine(_) | InvalidInput::LunarBirth(_) => "invalid_date",
            InvalidInput::Gender(_) => "invalid_gender",
        }
    }
}

/// The engine's input for a row: the instant itself for solar input; for lunar input,
/// `lunar_birth` (a lunar date and a clock time in the analyzer's zone) or, without it, the
/// civil date of `birth_date` in the analyzer's zone read as a lunar date, and its clock time.
pub fn birth_of(inputs: &Inputs, options: &Options) -> Result<(Birth, Gender), InvalidInput> {
    let gender = match inputs.gender.as_deref() {
        Some("M") => Gender::Male,
        Some("F") => Gender::Female,
        Some(other) => return Err(InvalidInput::Gender(format!("`{other}`"))),
        None => return Err(InvalidInput::Gender("NULL".to_owned())),
    };
    if let (false, Some(text)) = (inputs.is_solar, &inputs.lunar_birth) {
        let (date, time_of_day) = parse_lunar_birth(text, inputs.is_leap_month)
            .ok_or_else(|| InvalidInput::LunarBirth(text.clone()))?;
        return Ok((Birth::Lunar { date, time_of_day }, gender));
    }
    let Some(birth_date) = inputs.birth_date else {
        return Err(InvalidInput::LunarBirth("NULL".to_owned()));
    };
    let birth = Birth::from_profile(
        Instant(birth_date.timestamp()),
        inputs.is_solar,
        inputs.is_leap_month,
        options.zone,
    );
    Ok((birth, gender))
}

/// Reads `YYYY-MM-DD HH:MM` (the form the column's CHECK enforces) as a lunar date and a
/// clock time in seconds; whether the date exists is for the engine to say.
pub fn parse_lunar_birth(text: &str, leap: bool) -> Option<(saju::LunarDate, u32)> {
    let text = text.trim();
    let shape = text.len() == 16
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let (date, time) = text.split_once(' ')?;
    let mut parts = date.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=30).contains(&day) {
        return None;
    }
    let (hour, minute) = time.split_once(':')?;
    let (hour, minute): (u32, u32) = (hour.parse().ok()?, minute.parse().ok()?);
    if hour > 23 || minute > 59 {
        return None;
    }
    Some((
        saju::LunarDate {
            year,
            month,
            day,
            leap,
        },
        hour * 3600 + minute * 60,
    ))
}

fn field<'a>(
    row: &'a Map<String, Value>,
    column: &'static str,
) -> Result<&'a Value, MalformedEvent> {
    row.get(column)
        .ok_or_else(|| MalformedEvent::column(column, "missing"))
}

fn uuid_column(row: &Map<String, Value>, column: &'static str) -> Result<Uuid, MalformedEvent> {
    let text = field(row, column)?
        .as_str()
        .ok_or_else(|| MalformedEvent::column(column, "not a string"))?;
    Uuid::parse_str(text).map_err(|e| MalformedEvent::column(column, format!("not a UUID: {e}")))
}

fn bool_column(row: &Map<String, Value>, column: &'static str) -> Result<bool, MalformedEvent> {
    field(row, column)?
        .as_bool()
        .ok_or_else(|| MalformedEvent::column(column, "not a boolean"))
}

fn optional_text_column(
    row: &Map<String, Value>,
    column: &'static str,
) -> Result<Option<String>, MalformedEvent> {
    match field(row, column)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(MalformedEvent::column(column, "not a string")),
    }
}

fn timestamp_column(
    row: &Map<String, Value>,
    column: &'static str,
) -> Result<DateTime<Utc>, MalformedEvent> {
    let text = field(row, column)?
        .as_str()
        .ok_or_else(|| MalformedEvent::column(column, "not a string"))?;
    parse_timestamptz(text).ok_or_else(|| {
        let trimmed = text.trim();
        let problem = if trimmed.ends_with("BC") {
            format!("`{trimmed}` is a date before the common era; birth instants from 1900 to 2100 can be charted")
        } else if trimmed.ends_with("infinity") {
            format!("`{trimmed}` is not an instant; birth instants from 1900 to 2100 can be charted")
        } else {
            format!("`{trimmed}` is not a timestamp")
        };
        MalformedEvent::column(column, problem)
    })
}

/// Parses a `timestamptz` as PostgreSQL prints it in the ISO `DateStyle`
/// (`1990-05-15 05:30:00.123456+09`, offsets `+HH`, `+HH:MM` or `+HH:MM:SS`), or RFC 3339.
/// `infinity` and BC dates are not instants and give `None`.
pub fn parse_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // Split the zone offset off the end: the last '+' or '-' after the time part.
    let time_start = text.find(' ').or_else(|| text.find('T'))?;
    let sign_at = text[time_start..].rfind(['+', '-'])? + time_start;
    let (local, offset) = text.split_at(sign_at);
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let mut offset_seconds = 0i64;
    for unit in [3600i64, 60, 1] {
        if let Some(part) = parts.next() {
            let value: i64 = part.parse().ok()?;
            offset_seconds += value * unit;
        }
    }
    if parts.next().is_some() {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(local.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(local.trim(), "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()?;
    let utc = naive.and_utc() - chrono::Duration::seconds(sign * offset_seconds);
    Some(utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(op: &str, after: Value) -> ChangeEvent {
        serde_json::from_value(json!({
            "op": op, "before": null, "after": after,
            "source": {"lsn": 1, "commit_lsn": 2, "ts": "2026-01-01T00:00:00Z", "schema": "public", "table": "saju_profiles"}
        }))
        .unwrap()
    }

    #[test]
    fn lean_reading_keeps_the_inputs_and_skips_the_rest() {
        let mut after = row();
        after["analysis_input"] = json!("x|\"quoted\"|\u{e9}");
        after["analysis_result"] = json!({"scores": {"wood": 30}, "groups": [102, 7], "s": "a\"b"});
        let payload = json!({
            "op": "u", "before": {"id": "0190f0f0-0000-7000-8000-000000000001"}, "after": after,
            "source": {"lsn": 1, "commit_lsn": 2, "xid": 9, "ts": "2026-01-01T00:00:00Z", "schema": "public", "table": "saju_profiles"}
        })
        .to_string();
        let lean = read_event(payload.as_bytes()).unwrap();
        let full = ChangeEvent::from_slice(payload.as_bytes()).unwrap();
        let kept = lean.after.as_ref().unwrap();
        assert_eq!(kept.len(), 6, "the input columns the row has");
        assert!(kept.get("analysis_result").is_none() && lean.before.is_none());
        for column in INPUT_COLUMNS {
            assert_eq!(
                kept.get(column),
                full.after.as_ref().unwrap().get(column),
                "{column}"
            );
        }
        assert_eq!(lean.source, full.source);
        let fingerprint = Fingerprint::new(&Options::default());
        assert_eq!(
            format!("{:?}", decide(&lean, &fingerprint).unwrap()),
            format!("{:?}", decide(&full, &fingerprint).unwrap())
        );
        // A missing input column stays missing (not NULL); garbage is an error.
        let mut partial = row();
        partial.as_object_mut().unwrap().remove("gender");
        let payload = json!({"op": "c", "after": partial, "source": full.source}).to_string();
        let lean = read_event(payload.as_bytes()).unwrap();
        assert!(matches!(
            decide(&lean, &fingerprint),
            Err(MalformedEvent::Column {
                column: "gender",
                ..
            })
        ));
        assert!(read_event(b"{oops").is_err());
        assert!(read_event(br#"{"op":"d","source":{}}"#).is_err());
    }

    fn row() -> Value {
        json!({"id": "0190f0f0-0000-7000-8000-000000000001", "name": "a", "gender": "M",
               "birth_date": "1990-05-15 05:30:00+00", "is_solar": true, "is_leap_month": false,
               "analysis_input": null})
    }

    #[test]
    fn timestamps_in_every_shape_postgres_prints() {
        let expected = DateTime::parse_from_rfc3339("1990-05-15T05:30:00Z").unwrap();
        for text in [
            "1990-05-15 05:30:00+00",
            "1990-05-15 14:30:00+09",
            "1990-05-15 14:00:00+08:30",
            "1990-05-15 00:00:00-05:30",
            "1990-05-15T05:30:00Z",
        ] {
            assert_eq!(
                parse_timestamptz(text),
                Some(expected.with_timezone(&Utc)),
                "{text}"
            );
        }
        let micros = parse_timestamptz("2026-11-21 23:30:29.123456+00").unwrap();
        assert_eq!(micros.timestamp_subsec_micros(), 123_456);
        assert_eq!(parse_timestamptz("infinity"), None);
        assert_eq!(parse_timestamptz("0044-03-15 12:00:00+00 BC"), None);
        assert_eq!(parse_timestamptz("garbage"), None);
    }

    #[test]
    fn inserts_are_analyzed_and_deletes_skipped() {
        let fp = Fingerprint::new(&Options::default());
        assert!(matches!(
            decide(&event("c", row()), &fp).unwrap(),
            Decision::Analyze(_)
        ));
        assert!(matches!(
            decide(&event("r", row()), &fp).unwrap(),
            Decision::Analyze(_)
        ));
        let delete: ChangeEvent = serde_json::from_value(json!({
            "op": "d", "before": {"id": "0190f0f0-0000-7000-8000-000000000001"}, "after": null,
            "source": {"lsn": 1, "commit_lsn": 2, "ts": "2026-01-01T00:00:00Z", "schema": "public", "table": "saju_profiles"}
        }))
        .unwrap();
        assert!(matches!(
            decide(&delete, &fp).unwrap(),
            Decision::Skip(SkipReason::Deleted)
        ));
    }

    #[test]
    fn own_write_back_is_skipped_and_input_edit_is_not() {
        let fp = Fingerprint::new(&Options::default());
        let Decision::Analyze(profile) = decide(&event("c", row()), &fp).unwrap() else {
            panic!()
        };
        let mut written = row();
        written["analysis_input"] = Value::from(fp.of(&profile.inputs));
        written["analysis_status"] = Value::from("done");
        assert!(matches!(
            decide(&event("u", written.clone()), &fp).unwrap(),
            Decision::Skip(SkipReason::Unchanged)
        ));
        // A name edit after the write-back: still unchanged.
        written["name"] = Value::from("b");
        assert!(matches!(
            decide(&event("u", written.clone()), &fp).unwrap(),
            Decision::Skip(_)
        ));
        // Any input edit: analyzed again.
        for (column, value) in [
            ("birth_date", json!("1990-05-15 05:31:00+00")),
            ("gender", json!("F")),
            ("is_solar", json!(false)),
        ] {
            let mut edited = written.clone();
            edited[column] = value;
            assert!(
                matches!(
                    decide(&event("u", edited), &fp).unwrap(),
                    Decision::Analyze(_)
                ),
                "{column}"
            );
        }
        // Other conventions, other fingerprint.
        let other = Fingerprint::new(&Options {
            day_boundary: saju::DayBoundary::Jasi,
            ..Options::default()
        });
        assert!(matches!(
            decide(&event("u", written), &other).unwrap(),
            Decision::Analyze(_)
        ));
    }

    #[test]
    fn malformed_events_say_what_is_wrong() {
        let fp = Fingerprint::new(&Options::default());
        let mut bad = row();
        bad["id"] = json!("not-a-uuid");
        assert!(decide(&event("c", bad), &fp)
            .unwrap_err()
            .to_string()
            .contains("id"));
        let mut bad = row();
        bad.as_object_mut().unwrap().remove("birth_date");
        assert!(decide(&event("c", bad), &fp)
            .unwrap_err()
            .to_string()
            .contains("`birth_date`: missing"));
        let mut bad = row();
        bad["birth_date"] = json!("yesterday");
        assert!(decide(&event("c", bad), &fp).is_err());
        let no_after: ChangeEvent = serde_json::from_value(json!({
            "op": "c", "after": null,
            "source": {"lsn": 1, "commit_lsn": 2, "ts": "2026-01-01T00:00:00Z", "schema": "public", "table": "saju_profiles"}
        }))
        .unwrap();
        assert!(decide(&no_after, &fp).is_err());
    }

    #[test]
    fn bc_and_infinite_dates_say_why_and_their_recorded_rejection_is_not_repeated() {
        let fp = Fingerprint::new(&Options::default());
        for (text, why) in [
            ("0001-01-01 00:00:00+00 BC", "before the common era"),
            ("infinity", "not an instant"),
            ("-infinity", "not an instant"),
        ] {
            let mut bad = row();
            bad["birth_date"] = json!(text);
            let event = event("c", bad.clone());
            let e = decide(&event, &fp).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
            assert_eq!(
                id_of(&event),
                Some(Uuid::parse_str("0190f0f0-0000-7000-8000-000000000001").unwrap())
            );
            bad["analysis_status"] = json!("error");
            bad["analysis_error"] = json!(e.to_string());
            assert!(matches!(
                decide(&super::tests::event("u", bad), &fp).unwrap(),
                Decision::Skip(SkipReason::Unchanged)
            ));
        }
    }

    #[test]
    fn lunar_input_reads_the_civil_date_in_the_zone() {
        let inputs = Inputs {
            // 2020-04-15 14:30 in Seoul, read as lunar 2020-04-15 (leap).
            birth_date: parse_timestamptz("2020-04-15 05:30:00+00"),
            is_solar: false,
            is_leap_month: true,
            lunar_birth: None,
            gender: Some("F".into()),
        };
        let (birth, gender) = birth_of(&inputs, &Options::default()).unwrap();
        assert_eq!(gender, Gender::Female);
        match birth {
            Birth::Lunar { date, time_of_day } => {
                assert_eq!(
                    (date.year, date.month, date.day, date.leap),
                    (2020, 4, 15, true)
                );
                assert_eq!(time_of_day, 14 * 3600 + 30 * 60);
            }
            other => panic!("{other:?}"),
        }
        let no_gender = Inputs {
            gender: None,
            ..inputs
        };
        assert!(matches!(
            birth_of(&no_gender, &Options::default()),
            Err(InvalidInput::Gender(_))
        ));
    }

    #[test]
    fn lunar_birth_carries_every_lunar_date_and_takes_precedence() {
        let fp = Fingerprint::new(&Options::default());
        // Lunar 1990-02-30 14:30: a real date no TIMESTAMPTZ date part can hold.
        let mut lunar = row();
        lunar["birth_date"] = Value::Null;
        lunar["is_solar"] = json!(false);
        lunar["lunar_birth"] = json!("1990-02-30 14:30");
        let Decision::Analyze(profile) = decide(&event("c", lunar.clone()), &fp).unwrap() else {
            panic!("a lunar profile without birth_date is analyzed");
        };
        let (birth, _) = birth_of(&profile.inputs, &Options::default()).unwrap();
        match birth {
            Birth::Lunar { date, time_of_day } => {
                assert_eq!(
                    (date.year, date.month, date.day, date.leap),
                    (1990, 2, 30, false)
                );
                assert_eq!(time_of_day, 14 * 3600 + 30 * 60);
            }
            other => panic!("{other:?}"),
        }
        // It wins over a birth_date that is also there, and is part of the fingerprint.
        lunar["birth_date"] = json!("2020-04-15 05:30:00+00");
        let Decision::Analyze(both) = decide(&event("c", lunar.clone()), &fp).unwrap() else {
            panic!();
        };
        assert!(matches!(
            birth_of(&both.inputs, &Options::default()).unwrap().0,
            Birth::Lunar {
                date: saju::LunarDate { day: 30, .. },
                ..
            }
        ));
        let mut edited = lunar.clone();
        edited["analysis_input"] = json!(fp.of(&both.inputs));
        assert!(matches!(
            decide(&event("u", edited.clone()), &fp).unwrap(),
            Decision::Skip(SkipReason::Unchanged)
        ));
        edited["lunar_birth"] = json!("1990-02-29 14:30");
        assert!(matches!(
            decide(&event("u", edited), &fp).unwrap(),
            Decision::Analyze(_)
        ));
        // A solar row's fingerprint is the one it had before the column existed.
        let solar = inputs_of(row().as_object().unwrap()).unwrap();
        assert!(!fp.of(&solar).contains("|L"));
        // Neither form: malformed; a bad form: an invalid date on the row.
        let mut neither = row();
        neither["birth_date"] = Value::Null;
        assert!(decide(&event("c", neither), &fp)
            .unwrap_err()
            .to_string()
            .contains("lunar_birth"));
        let bad = Inputs {
            lunar_birth: Some("1990-13-01 10:00".into()),
            ..profile.inputs.clone()
        };
        let e = birth_of(&bad, &Options::default()).unwrap_err();
        assert_eq!(e.kind(), "invalid_date");
        assert!(e.to_string().contains("`1990-13-01 10:00`"), "{e}");
        for text in [
            "1990-2-30 14:30",
            "1990-02-31 14:30",
            "1990-02-01",
            "1990-02-01 24:00",
        ] {
            assert!(parse_lunar_birth(text, false).is_none(), "{text}");
        }
    }
}
