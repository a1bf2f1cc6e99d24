//! The `analysis_result` document: one JSON object per chart, written by hand into a
//! caller-owned buffer (no intermediate values, no allocation beyond the buffer growing).
//!
//! Shape (version 1; keys always present unless noted):
//!
//! ```text
//! {"version":1,
//!  "codes":[ys,yb,ms,mb,ds,db,hs,hb],          schema codes: stems 0–9, branches 10–21
//!  "ganji":["갑진","병인","무술","신유"],        year, month, day, hour
//!  "solar_date":"2024-02-04",                   civil date of birth in the zone
//!  "civil_time":"2024-02-04T17:28:00",          civil clock reading at birth
//!  "utc_offset":32400,                          that clock's offset, seconds
//!  "saju_year":2024,                            year as changed at 입춘
//!  "gender":"M",
//!  "lunar":{"year":2020,"month":4,"day":15,"leap":true},   only for lunar input
//!  "day_master":{"code":4,"name":"무","element":"earth","yin_yang":"yang"},
//!  "elements":{"wood":..,"fire":..,"earth":..,"metal":..,"water":..},  scores 0–100
//!  "element_counts":{"wood":2,...},             characters per element, sum 8
//!  "yin_yang":{"yang":5,"yin":3},
//!  "ten_gods":{"year_stem":"편재",...,"day_stem":"일간",...,"hour_branch":"정관"},
//!  "hidden_stems":{"year":[{"code":4,"name":"무","days":7,"ten_god":"비견"},...],
//!                  "month":[...],"day":[...],"hour":[...]},
//!  "interactions":[{"group":102,"category":"천간합","name":"을경합금",
//!                   "positions":["year","hour"],"complete":true,"contested":false},...],
//!  "groups":[102,601],                          ids of the complete interactions
//!  "luck":{"direction":"forward","start_age":3,"start_years":3.42,
//!          "pillars":[{"age":3,"codes":[3,13],"ganji":"정묘"},...]},
//!  "options":{"zone":"Asia/Seoul","day_boundary":"midnight","solar_time":"none",
//!             "longitude":126.98}}
//! ```
//!
//! Indexable paths: `analysis_result->'elements'->>'wood'` (numeric, 0–100) and
//! `analysis_result @> '{"groups":[102]}'` (GIN, `jsonb_path_ops`).

use crate::analysis::{Analysis, TenGod};
use crate::interactions::PILLAR_NAMES;
use crate::luck::LUCK_PILLARS;
use crate::tables::{Element, GANJI, GANJI_60, HIDDEN_STEMS};

/// Version of the document shape; bump on any incompatible change.
pub const VERSION: u32 = 1;

const TEN_GOD_KEYS: [&str; 8] = [
    "year_stem",
    "year_branch",
    "month_stem",
    "month_branch",
    "day_stem",
    "day_branch",
    "hour_stem",
    "hour_branch",
];

#[inline]
fn raw(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

#[inline]
fn int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

#[inline]
fn two(out: &mut Vec<u8>, v: u8) {
    out.extend_from_slice(&[b'0' + v / 10, b'0' + v % 10]);
}

/// Writes `centi / 100` as a JSON number with at most two decimals, trailing zeros
/// dropped (1850 → `18.5`, 3000 → `30`).
fn centi(out: &mut Vec<u8>, centi: i64) {
    if centi < 0 {
        out.push(b'-');
    }
    let a = centi.unsigned_abs();
    int(out, a / 100);
    let frac = (a % 100) as u8;
    if frac != 0 {
        out.push(b'.');
        out.push(b'0' + frac / 10);
        if frac % 10 != 0 {
            out.push(b'0' + frac % 10);
        }
    }
}

/// Writes a JSON string literal, escaping as needed (only used for error messages: every
/// other string in the document is a constant that needs no escaping).
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => raw(out, "\\\""),
            '\\' => raw(out, "\\\\"),
            '\n' => raw(out, "\\n"),
            '\r' => raw(out, "\\r"),
            '\t' => raw(out, "\\t"),
            c if (c as u32) < 0x20 => {
                raw(out, "\\u00");
                let n = c as u8;
                out.push(b"0123456789abcdef"[(n >> 4) as usize]);
                out.push(b"0123456789abcdef"[(n & 15) as usize]);
            }
            c => {
                let mut b = [0; 4];
                raw(out, c.encode_utf8(&mut b));
            }
        }
    }
    out.push(b'"');
}

/// Appends `{"version":1,"error":"<message>"}` (the output for input that failed).
pub fn write_error(out: &mut Vec<u8>, message: &str) {
    raw(out, "{\"version\":1,\"error\":");
    write_string(out, message);
    out.push(b'}');
}

fn element_object(out: &mut Vec<u8>, mut value: impl FnMut(&mut Vec<u8>, Element)) {
    out.push(b'{');
    for (i, e) in Element::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        raw(out, e.key());
        raw(out, "\":");
        value(out, e);
    }
    out.push(b'}');
}

/// Appends the `analysis_result` document of `a` to `out` (no trailing newline).
pub fn write_analysis(a: &Analysis, out: &mut Vec<u8>) {
    let p = &a.pillars;
    let codes = p.codes;
    raw(out, "{\"version\":1,\"codes\":[");
    for (i, &c) in codes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        int(out, c);
    }
    raw(out, "],\"ganji\":[");
    for (i, name) in p.ganji().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        raw(out, name);
        out.push(b'"');
    }
    let c = &p.civil;
    raw(out, "],\"solar_date\":\"");
    int(out, c.year);
    out.push(b'-');
    two(out, c.month);
    out.push(b'-');
    two(out, c.day);
    raw(out, "\",\"civil_time\":\"");
    int(out, c.year);
    out.push(b'-');
    two(out, c.month);
    out.push(b'-');
    two(out, c.day);
    out.push(b'T');
    two(out, c.hour);
    out.push(b':');
    two(out, c.minute);
    out.push(b':');
    two(out, c.second);
    raw(out, "\",\"utc_offset\":");
    int(out, p.utc_offset);
    raw(out, ",\"saju_year\":");
    int(out, p.saju_year);
    raw(out, ",\"gender\":\"");
    raw(out, a.gender.as_str());
    out.push(b'"');
    if let Some(l) = a.lunar {
        raw(out, ",\"lunar\":{\"year\":");
        int(out, l.year);
        raw(out, ",\"month\":");
        int(out, l.month);
        raw(out, ",\"day\":");
        int(out, l.day);
        raw(
            out,
            if l.leap {
                ",\"leap\":true}"
            } else {
                ",\"leap\":false}"
            },
        );
    }

    let dm = &GANJI[a.day_master() as usize];
    raw(out, ",\"day_master\":{\"code\":");
    int(out, dm.code);
    raw(out, ",\"name\":\"");
    raw(out, dm.name_ko);
    raw(out, "\",\"element\":\"");
    raw(out, dm.element.key());
    raw(out, "\",\"yin_yang\":\"");
    raw(out, dm.yin_yang.key());
    raw(out, "\"},\"elements\":");
    element_object(out, |out, e| centi(out, i64::from(a.score_centi(e))));
    raw(out, ",\"element_counts\":");
    element_object(out, |out, e| int(out, a.element_counts[e as usize]));
    raw(out, ",\"yin_yang\":{\"yang\":");
    int(out, a.yang);
    raw(out, ",\"yin\":");
    int(out, a.yin);

    raw(out, "},\"ten_gods\":{");
    for (i, key) in TEN_GOD_KEYS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        raw(out, key);
        raw(out, "\":\"");
        raw(out, a.ten_gods[i].map_or("일간", TenGod::name_ko));
        out.push(b'"');
    }

    raw(out, "},\"hidden_stems\":{");
    let day_stem = a.day_master();
    for (pillar, name) in PILLAR_NAMES.iter().enumerate() {
        if pillar > 0 {
            out.push(b',');
        }
        out.push(b'"');
        raw(out, name);
        raw(out, "\":[");
        let hidden = &HIDDEN_STEMS[codes[2 * pillar + 1] as usize - 10];
        for (j, (stem, days)) in hidden.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            raw(out, "{\"code\":");
            int(out, stem);
            raw(out, ",\"name\":\"");
            raw(out, GANJI[stem as usize].name_ko);
            raw(out, "\",\"days\":");
            int(out, days);
            raw(out, ",\"ten_god\":\"");
            raw(out, TenGod::of(day_stem, stem).name_ko());
            raw(out, "\"}");
        }
        out.push(b']');
    }

    raw(out, "},\"interactions\":[");
    for (i, it) in a.interactions.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        raw(out, "{\"group\":");
        int(out, it.group.id);
        raw(out, ",\"category\":\"");
        raw(out, it.group.category.name_ko());
        raw(out, "\",\"name\":\"");
        raw(out, it.group.description);
        raw(out, "\",\"positions\":[");
        for (j, pos) in it.position_names().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.push(b'"');
            raw(out, pos);
            out.push(b'"');
        }
        raw(
            out,
            if it.complete {
                "],\"complete\":true"
            } else {
                "],\"complete\":false"
            },
        );
        raw(
            out,
            if it.contested {
                ",\"contested\":true}"
            } else {
                ",\"contested\":false}"
            },
        );
    }
    raw(out, "],\"groups\":[");
    for (i, id) in a.interactions.complete_ids().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        int(out, id);
    }

    let luck = &a.luck;
    raw(out, "],\"luck\":{\"direction\":\"");
    raw(out, luck.direction.as_str());
    raw(out, "\",\"start_age\":");
    int(out, luck.start_age);
    raw(out, ",\"start_years\":");
    centi(out, luck.start_years_centi());
    raw(out, ",\"pillars\":[");
    for i in 0..LUCK_PILLARS {
        if i > 0 {
            out.push(b',');
        }
        let pos = luck.pillars[i];
        raw(out, "{\"age\":");
        int(out, luck.age_of(i));
        raw(out, ",\"codes\":[");
        int(out, pos % 10);
        out.push(b',');
        int(out, 10 + pos % 12);
        raw(out, "],\"ganji\":\"");
        raw(out, GANJI_60[pos as usize]);
        raw(out, "\"}");
    }

    let o = &a.options;
    raw(out, "]},\"options\":{\"zone\":\"");
    match o.zone {
        crate::zone::Zone::Seoul => raw(out, "Asia/Seoul"),
        crate::zone::Zone::Fixed(offset) => {
            out.push(if offset < 0 { b'-' } else { b'+' });
            let s = offset.unsigned_abs();
            two(out, (s / 3600) as u8);
            out.push(b':');
            two(out, (s / 60 % 60) as u8);
        }
    }
    raw(out, "\",\"day_boundary\":\"");
    raw(out, o.day_boundary.as_str());
    raw(out, "\",\"solar_time\":\"");
    raw(out, o.solar_time.as_str());
    raw(out, "\",\"longitude\":");
    centi(out, (o.longitude * 100.0).round() as i64);
    raw(out, "}}");
}

impl Analysis {
    /// The `analysis_result` document as a string (allocates; the hot path uses
    /// [`write_analysis`] with a reused buffer).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(2048);
        write_analysis(self, &mut out);
        // Every fragment written is valid UTF-8.
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CivilDateTime;
    use crate::pillars::{Birth, Gender, Options};

    #[test]
    fn numbers_and_strings() {
        let mut out = Vec::new();
        centi(&mut out, 1850);
        out.push(b' ');
        centi(&mut out, 3000);
        out.push(b' ');
        centi(&mut out, 1205);
        out.push(b' ');
        centi(&mut out, -7);
        assert_eq!(String::from_utf8(out).unwrap(), "18.5 30 12.05 -0.07");
        let mut out = Vec::new();
        write_error(&mut out, "bad \"x\"\n\u{1}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"version":1,"error":"bad \"x\"\n\u0001"}"#
        );
    }

    #[test]
    fn document_is_valid_json_with_the_documented_paths() {
        let birth = Birth::Civil(CivilDateTime::new(1985, 3, 21, 10, 30, 0).unwrap());
        let a = Analysis::compute(&birth, Gender::Female, &Options::default()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["codes"].as_array().unwrap().len(), 8);
        assert_eq!(doc["ganji"].as_array().unwrap().len(), 4);
        let total: f64 = ["wood", "fire", "earth", "metal", "water"]
            .iter()
            .map(|k| doc["elements"][k].as_f64().unwrap())
            .sum();
        assert!((total - 100.0).abs() < 0.05, "{total}");
        assert!(doc["groups"].is_array());
        assert_eq!(doc["luck"]["pillars"].as_array().unwrap().len(), 10);
        assert_eq!(doc["options"]["zone"], "Asia/Seoul");
        assert_eq!(doc["options"]["longitude"].as_f64().unwrap(), 126.98);
        assert!(doc.get("lunar").is_none());
    }
}
