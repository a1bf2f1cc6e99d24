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
//!  "scores":{"wood":..,"fire":..,"earth":..,"metal":..,"water":..},    0–100
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
//! Indexable paths: `analysis_result->'scores'->>'wood'` (numeric, 0–100) and
//! `analysis_result @> '{"groups":[102]}'` (GIN, `jsonb_path_ops`).

use crate::analysis::{Analysis, TenGod};
use crate::interactions::PILLAR_NAMES;
use crate::luck::LUCK_PILLARS;
use std::sync::OnceLock;

use crate::tables::{Element, GANJI, GANJI_60, HIDDEN_STEMS, INTERACTION_GROUPS};

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

/// Pieces of the document that depend on one or two codes only, built once and then
/// copied whole (a few large copies are much faster than many small writes).
struct Fragments {
    /// `[{"code":…,"name":…,"days":…,"ten_god":…},…]` per (branch index × 10 + day stem).
    hidden: Vec<Vec<u8>>,
    /// `{"age":` is written per chart; this is `,"codes":[s,b],"ganji":"…"}` per cycle
    /// position.
    luck_tail: Vec<Vec<u8>>,
    /// `{"group":…,"category":"…","name":"…","positions":[` per group, in table order.
    group_head: Vec<Vec<u8>>,
    /// `"year","day"…` per 4-bit position mask.
    positions: Vec<Vec<u8>>,
    /// `{"code":…,"name":"…","element":"…","yin_yang":"…"}` per stem.
    day_master: Vec<Vec<u8>>,
    /// `"편재"` (quoted) per (day stem × 10 + other stem).
    ten_god: Vec<Vec<u8>>,
}

impl Fragments {
    fn get() -> &'static Fragments {
        static FRAGMENTS: OnceLock<Fragments> = OnceLock::new();
        FRAGMENTS.get_or_init(Fragments::build)
    }

    fn build() -> Fragments {
        let mut hidden = Vec::with_capacity(120);
        for branch in &HIDDEN_STEMS {
            for day_stem in 0..10u8 {
                let mut out = vec![b'['];
                for (j, (stem, days)) in branch.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    raw(&mut out, "{\"code\":");
                    int(&mut out, stem);
                    raw(&mut out, ",\"name\":\"");
                    raw(&mut out, GANJI[stem as usize].name_ko);
                    raw(&mut out, "\",\"days\":");
                    int(&mut out, days);
                    raw(&mut out, ",\"ten_god\":\"");
                    raw(&mut out, TenGod::of(day_stem, stem).name_ko());
                    raw(&mut out, "\"}");
                }
                out.push(b']');
                hidden.push(out);
            }
        }
        let luck_tail = (0..60u8)
            .map(|pos| {
                let mut out = Vec::new();
                raw(&mut out, ",\"codes\":[");
                int(&mut out, pos % 10);
                out.push(b',');
                int(&mut out, 10 + pos % 12);
                raw(&mut out, "],\"ganji\":\"");
                raw(&mut out, GANJI_60[pos as usize]);
                raw(&mut out, "\"}");
                out
            })
            .collect();
        let group_head = INTERACTION_GROUPS
            .iter()
            .map(|g| {
                let mut out = Vec::new();
                raw(&mut out, "{\"group\":");
                int(&mut out, g.id);
                raw(&mut out, ",\"category\":\"");
                raw(&mut out, g.category.name_ko());
                raw(&mut out, "\",\"name\":\"");
                raw(&mut out, g.description);
                raw(&mut out, "\",\"positions\":[");
                out
            })
            .collect();
        let positions = (0..16u8)
            .map(|mask| {
                let mut out = Vec::new();
                for (i, name) in PILLAR_NAMES.iter().enumerate() {
                    if mask >> i & 1 == 1 {
                        if !out.is_empty() {
                            out.push(b',');
                        }
                        out.push(b'"');
                        raw(&mut out, name);
                        out.push(b'"');
                    }
                }
                out
            })
            .collect();
        let day_master = GANJI[..10]
            .iter()
            .map(|dm| {
                let mut out = Vec::new();
                raw(&mut out, "{\"code\":");
                int(&mut out, dm.code);
                raw(&mut out, ",\"name\":\"");
                raw(&mut out, dm.name_ko);
                raw(&mut out, "\",\"element\":\"");
                raw(&mut out, dm.element.key());
                raw(&mut out, "\",\"yin_yang\":\"");
                raw(&mut out, dm.yin_yang.key());
                raw(&mut out, "\"}");
                out
            })
            .collect();
        let ten_god = (0..100u8)
            .map(|i| format!("\"{}\"", TenGod::of(i / 10, i % 10).name_ko()).into_bytes())
            .collect();
        Fragments {
            hidden,
            luck_tail,
            group_head,
            positions,
            day_master,
            ten_god,
        }
    }
}

/// Appends the `analysis_result` document of `a` to `out` (no trailing newline).
pub fn write_analysis(a: &Analysis, out: &mut Vec<u8>) {
    let f = Fragments::get();
    out.reserve(3072);
    let p = &a.pillars;
    let codes = p.codes;
    raw(out, "{\"version\":1,\"codes\":[");
    for (i, &c) in codes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        int(out, c);
    }
    raw(out, "],\"ganji\":[\"");
    let ganji = p.ganji();
    raw(out, ganji[0]);
    raw(out, "\",\"");
    raw(out, ganji[1]);
    raw(out, "\",\"");
    raw(out, ganji[2]);
    raw(out, "\",\"");
    raw(out, ganji[3]);
    let c = &p.civil;
    let mut date = [0u8; 10];
    date[..4].copy_from_slice(&[
        b'0' + (c.year / 1000 % 10) as u8,
        b'0' + (c.year / 100 % 10) as u8,
        b'0' + (c.year / 10 % 10) as u8,
        b'0' + (c.year % 10) as u8,
    ]);
    date[4] = b'-';
    date[5..7].copy_from_slice(&[b'0' + c.month / 10, b'0' + c.month % 10]);
    date[7] = b'-';
    date[8..].copy_from_slice(&[b'0' + c.day / 10, b'0' + c.day % 10]);
    raw(out, "\"],\"solar_date\":\"");
    out.extend_from_slice(&date);
    raw(out, "\",\"civil_time\":\"");
    out.extend_from_slice(&date);
    out.extend_from_slice(&[
        b'T',
        b'0' + c.hour / 10,
        b'0' + c.hour % 10,
        b':',
        b'0' + c.minute / 10,
        b'0' + c.minute % 10,
        b':',
        b'0' + c.second / 10,
        b'0' + c.second % 10,
    ]);
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

    raw(out, ",\"day_master\":");
    out.extend_from_slice(&f.day_master[a.day_master() as usize]);
    raw(out, ",\"scores\":");
    element_object(out, |out, e| centi(out, i64::from(a.score_centi(e))));
    raw(out, ",\"element_counts\":");
    element_object(out, |out, e| int(out, a.element_counts[e as usize]));
    raw(out, ",\"yin_yang\":{\"yang\":");
    int(out, a.yang);
    raw(out, ",\"yin\":");
    int(out, a.yin);

    let day_stem = a.day_master();
    raw(out, "},\"ten_gods\":{");
    for (i, key) in TEN_GOD_KEYS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        raw(out, key);
        raw(out, "\":");
        match a.ten_gods[i] {
            None => raw(out, "\"일간\""),
            Some(_) => {
                let stem = if codes[i] < 10 {
                    codes[i]
                } else {
                    HIDDEN_STEMS[codes[i] as usize - 10].main()
                };
                out.extend_from_slice(&f.ten_god[day_stem as usize * 10 + stem as usize]);
            }
        }
    }

    raw(out, "},\"hidden_stems\":{");
    for (pillar, name) in PILLAR_NAMES.iter().enumerate() {
        if pillar > 0 {
            out.push(b',');
        }
        out.push(b'"');
        raw(out, name);
        raw(out, "\":");
        let branch = codes[2 * pillar + 1] as usize - 10;
        out.extend_from_slice(&f.hidden[branch * 10 + day_stem as usize]);
    }

    raw(out, "},\"interactions\":[");
    for (i, (index, positions, complete, contested)) in a.interactions.raw().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&f.group_head[index]);
        out.extend_from_slice(&f.positions[usize::from(positions & 15)]);
        raw(
            out,
            match (complete, contested) {
                (true, true) => "],\"complete\":true,\"contested\":true}",
                (true, false) => "],\"complete\":true,\"contested\":false}",
                (false, true) => "],\"complete\":false,\"contested\":true}",
                (false, false) => "],\"complete\":false,\"contested\":false}",
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
        raw(out, "{\"age\":");
        int(out, luck.age_of(i));
        out.extend_from_slice(&f.luck_tail[luck.pillars[i] as usize]);
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
            .map(|k| doc["scores"][k].as_f64().unwrap())
            .sum();
        assert!((total - 100.0).abs() < 0.05, "{total}");
        assert!(doc["groups"].is_array());
        assert_eq!(doc["luck"]["pillars"].as_array().unwrap().len(), 10);
        assert_eq!(doc["options"]["zone"], "Asia/Seoul");
        assert_eq!(doc["options"]["longitude"].as_f64().unwrap(), 126.98);
        assert!(doc.get("lunar").is_none());
    }
}
