//! The `analysis_result` document: one JSON object per chart, written by hand into a
//! caller-owned buffer (no intermediate values, no allocation beyond the buffer growing).
//!
//! Shape (version 2; keys always present unless noted; 삼합 entries of `interactions` also
//! carry `with_wangji`):
//!
//! ```text
//! {"version":2,
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
//!  "twelve_stages":{"year":{"index":0,"name":"장생"},"month":..,"day":..,"hour":..},
//!  "twelve_stages_self":{...},                  each pillar's own stem on its branch
//!  "gongmang":{"day":[20,21],"year":[18,19],"day_hits":["hour"],"year_hits":[]},
//!  "napeum":{"year":{"name":"해중금","hanja":"海中金","element":"metal"},...},
//!  "sinsal":[{"name":"역마살","hanja":"驛馬殺","basis":"day_branch","positions":["hour"]},...],
//!  "strength":{"verdict":"신강","score":57.41,"deuk_ryeong":true,"deuk_ji":false},
//!  "tae_won":{"codes":[3,15],"ganji":"정사"},"myeong_gung":{"codes":[..],"ganji":".."},
//!  "luck":{"direction":"forward","start_age":3,"start_years":3.42,
//!          "pillars":[{"age":3,"codes":[3,13],"ganji":"정묘"},...]},
//!  "options":{"zone":"Asia/Seoul","day_boundary":"midnight","solar_time":"none",
//!             "longitude":126.98}}      + "stars":"yangin=all,…" when a 신살 alternative is on
//! ```
//!
//! Indexable paths: `analysis_result->'scores'->>'wood'` (numeric, 0–100) and
//! `analysis_facets(analysis_result) @> '{"groups":[102]}'` (GIN, `jsonb_path_ops`).

use std::sync::OnceLock;

use crate::analysis::{Analysis, Strength, TenGod, WEIGHT_UNITS};
use crate::interactions::PILLAR_NAMES;
use crate::luck::{Direction, LUCK_PILLARS};
use crate::pillars::Gender;
use crate::stars::{self, Stars, NAPEUM, TWELVE_STAGES};
use crate::tables::{Category, GANJI, GANJI_60, HIDDEN_STEMS, INTERACTION_GROUPS};

/// Version of the document shape; bump on any incompatible change.
pub const VERSION: u32 = 2;

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

/// Appends `{"version":2,"error":"<message>"}` (the output for input that failed).
pub fn write_error(out: &mut Vec<u8>, message: &str) {
    raw(out, "{\"version\":2,\"error\":");
    write_string(out, message);
    out.push(b'}');
}

/// A piece of JSON padded to a fixed size: copying it is one fixed-length copy (a few
/// vector moves, no call) followed by a truncation to its real length. The buffer has
/// room reserved up front, so the padding never causes a reallocation by itself.
#[derive(Clone, Copy)]
struct Frag<const N: usize> {
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> Frag<N> {
    fn new(text: &[u8]) -> Self {
        assert!(
            text.len() <= N && N < 256,
            "fragment of {} bytes",
            text.len()
        );
        let mut bytes = [b' '; N];
        bytes[..text.len()].copy_from_slice(text);
        Frag {
            bytes,
            len: text.len() as u8,
        }
    }

    fn build(f: impl FnOnce(&mut Vec<u8>)) -> Self {
        let mut text = Vec::with_capacity(N);
        f(&mut text);
        Self::new(&text)
    }

    #[inline(always)]
    fn put(&self, out: &mut Vec<u8>) {
        let end = out.len() + usize::from(self.len);
        out.extend_from_slice(&self.bytes);
        out.truncate(end);
    }
}

/// Pieces of the document that depend on one or two values only, built once.
struct Fragments {
    /// `s,b` (the two codes) per cycle position.
    code_pair: Vec<Frag<8>>,
    /// `"갑자"` (quoted) per cycle position.
    ganji: Vec<Frag<8>>,
    /// `[{"code":…,"name":…,"days":…,"ten_god":…},…]` per (branch index × 10 + day stem).
    hidden: Vec<Frag<192>>,
    /// `,"month_stem":"편재"` (no comma for the first) per (position × 220 + day stem × 22
    /// + code of the stem or, for a branch, of its main hidden stem).
    ten_god: Vec<Frag<32>>,
    /// A score (`12.5`) per weight in units (0..=270).
    score: Vec<Frag<8>>,
    /// `{"age":N` per age (0..=255).
    age: Vec<Frag<16>>,
    /// `,"codes":[s,b],"ganji":"…"}` per cycle position (a luck pillar's tail).
    luck_tail: Vec<Frag<48>>,
    /// `{"group":…,"category":"…","name":"…","positions":[` per group, in table order.
    group_head: Vec<Frag<128>>,
    /// `"year","day"…` per 4-bit position mask.
    positions: Vec<Frag<32>>,
    /// `{"code":…,"name":"…","element":"…","yin_yang":"…"}` per stem.
    day_master: Vec<Frag<80>>,
    /// `{"index":…,"name":"…"}` per (stem × 12 + branch index): the stem's 12운성 there.
    stage: Vec<Frag<32>>,
    /// `{"name":"…","hanja":"…","element":"…"}` per 납음.
    napeum: Vec<Frag<64>>,
    /// `[b1,b2]` (the 공망) per cycle position.
    gongmang: Vec<Frag<8>>,
    /// `{"name":"…","hanja":"…","basis":"…","positions":[` per star kind.
    star_head: Vec<Frag<88>>,
    /// `{"codes":[s,b],"ganji":"…"}` per cycle position.
    pillar: Vec<Frag<40>>,
    /// `{"verdict":"…","score":…` per supporting weight in units (0..=270).
    strength: Vec<Frag<48>>,
}

impl Fragments {
    fn get() -> &'static Fragments {
        static FRAGMENTS: OnceLock<Fragments> = OnceLock::new();
        FRAGMENTS.get_or_init(Fragments::build)
    }

    fn build() -> Fragments {
        let code_pair = (0..60u8)
            .map(|pos| {
                Frag::build(|out| {
                    int(out, pos % 10);
                    out.push(b',');
                    int(out, 10 + pos % 12);
                })
            })
            .collect();
        let ganji = GANJI_60
            .iter()
            .map(|name| Frag::new(format!("\"{name}\"").as_bytes()))
            .collect();
        let mut hidden = Vec::with_capacity(120);
        for branch in &HIDDEN_STEMS {
            for day_stem in 0..10u8 {
                hidden.push(Frag::build(|out| {
                    out.push(b'[');
                    for (j, (stem, days)) in branch.iter().enumerate() {
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
                }));
            }
        }
        let mut ten_god = Vec::with_capacity(8 * 220);
        for (position, key) in TEN_GOD_KEYS.iter().enumerate() {
            for day_stem in 0..10u8 {
                for code in 0..22u8 {
                    ten_god.push(Frag::build(|out| {
                        if position > 0 {
                            out.push(b',');
                        }
                        out.push(b'"');
                        raw(out, key);
                        raw(out, "\":\"");
                        raw(
                            out,
                            if position == 4 {
                                "일간"
                            } else if code < 10 {
                                TenGod::of(day_stem, code).name_ko()
                            } else {
                                ""
                            },
                        );
                        out.push(b'"');
                    }));
                }
            }
        }
        let score = (0..=WEIGHT_UNITS)
            .map(|units| {
                Frag::build(|out| {
                    centi(
                        out,
                        i64::from((units * 10_000 + WEIGHT_UNITS / 2) / WEIGHT_UNITS),
                    )
                })
            })
            .collect();
        let age = (0..=255u16)
            .map(|a| {
                Frag::build(|out| {
                    raw(out, "{\"age\":");
                    int(out, a);
                })
            })
            .collect();
        let luck_tail = (0..60u8)
            .map(|pos| {
                Frag::build(|out| {
                    raw(out, ",\"codes\":[");
                    int(out, pos % 10);
                    out.push(b',');
                    int(out, 10 + pos % 12);
                    raw(out, "],\"ganji\":\"");
                    raw(out, GANJI_60[pos as usize]);
                    raw(out, "\"}");
                })
            })
            .collect();
        let group_head = INTERACTION_GROUPS
            .iter()
            .map(|g| {
                Frag::build(|out| {
                    raw(out, "{\"group\":");
                    int(out, g.id);
                    raw(out, ",\"category\":\"");
                    raw(out, g.category.name_ko());
                    raw(out, "\",\"name\":\"");
                    raw(out, g.description);
                    raw(out, "\",\"positions\":[");
                })
            })
            .collect();
        let positions = (0..16u8)
            .map(|mask| {
                Frag::build(|out| {
                    for (i, name) in PILLAR_NAMES.iter().enumerate() {
                        if mask >> i & 1 == 1 {
                            if !out.is_empty() {
                                out.push(b',');
                            }
                            out.push(b'"');
                            raw(out, name);
                            out.push(b'"');
                        }
                    }
                })
            })
            .collect();
        let day_master = GANJI[..10]
            .iter()
            .map(|dm| {
                Frag::build(|out| {
                    raw(out, "{\"code\":");
                    int(out, dm.code);
                    raw(out, ",\"name\":\"");
                    raw(out, dm.name_ko);
                    raw(out, "\",\"element\":\"");
                    raw(out, dm.element.key());
                    raw(out, "\",\"yin_yang\":\"");
                    raw(out, dm.yin_yang.key());
                    raw(out, "\"}");
                })
            })
            .collect();
        let stage = (0..12u8)
            .map(|index| {
                Frag::build(|out| {
                    raw(out, "{\"index\":");
                    int(out, index);
                    raw(out, ",\"name\":\"");
                    raw(out, TWELVE_STAGES[usize::from(index)]);
                    raw(out, "\"}");
                })
            })
            .collect();
        let napeum = NAPEUM
            .iter()
            .map(|n| {
                Frag::build(|out| {
                    raw(out, "{\"name\":\"");
                    raw(out, n.name);
                    raw(out, "\",\"hanja\":\"");
                    raw(out, n.hanja);
                    raw(out, "\",\"element\":\"");
                    raw(out, n.element);
                    raw(out, "\"}");
                })
            })
            .collect();
        let gongmang = (0..60u8)
            .map(|pos| {
                Frag::build(|out| {
                    let [a, b] = stars::gongmang(pos % 10, 10 + pos % 12);
                    out.push(b'[');
                    int(out, a);
                    out.push(b',');
                    int(out, b);
                    out.push(b']');
                })
            })
            .collect();
        let star_head = (0..Stars::KINDS as u8)
            .map(|kind| {
                let star = Stars::star(kind);
                Frag::build(|out| {
                    raw(out, "{\"name\":\"");
                    raw(out, star.name);
                    raw(out, "\",\"hanja\":\"");
                    raw(out, star.hanja);
                    raw(out, "\",\"basis\":\"");
                    raw(out, star.basis.key());
                    raw(out, "\",\"positions\":[");
                })
            })
            .collect();
        let pillar = (0..60u8)
            .map(|pos| {
                Frag::build(|out| {
                    raw(out, "{\"codes\":[");
                    int(out, pos % 10);
                    out.push(b',');
                    int(out, 10 + pos % 12);
                    raw(out, "],\"ganji\":\"");
                    raw(out, GANJI_60[pos as usize]);
                    raw(out, "\"}");
                })
            })
            .collect();
        let strength = (0..=WEIGHT_UNITS as u16)
            .map(|units| {
                let s = Strength {
                    support_units: units,
                    deuk_ryeong: false,
                    deuk_ji: false,
                };
                Frag::build(|out| {
                    raw(out, "{\"verdict\":\"");
                    raw(out, s.verdict());
                    raw(out, "\",\"score\":");
                    centi(out, i64::from(s.score_centi()));
                })
            })
            .collect();
        Fragments {
            code_pair,
            ganji,
            hidden,
            ten_god,
            score,
            age,
            luck_tail,
            group_head,
            positions,
            day_master,
            stage,
            napeum,
            gongmang,
            star_head,
            pillar,
            strength,
        }
    }
}

/// Appends the `analysis_result` document of `a` to `out` (no trailing newline).
pub fn write_analysis(a: &Analysis, out: &mut Vec<u8>) {
    let f = Fragments::get();
    // Enough for any document plus fragment padding: no reallocation mid-way.
    out.reserve(8192);
    let p = &a.pillars;
    let codes = p.codes;
    let cycle = p.cycle_positions();
    raw(out, "{\"version\":2,\"codes\":[");
    for (i, &pos) in cycle.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        f.code_pair[usize::from(pos)].put(out);
    }
    raw(out, "],\"ganji\":[");
    for (i, &pos) in cycle.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        f.ganji[usize::from(pos)].put(out);
    }
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
    raw(out, "],\"solar_date\":\"");
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
    raw(
        out,
        match a.gender {
            Gender::Male => ",\"gender\":\"M\"",
            Gender::Female => ",\"gender\":\"F\"",
        },
    );
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

    let day_stem = a.day_master();
    raw(out, ",\"day_master\":");
    f.day_master[usize::from(day_stem)].put(out);
    raw(out, ",\"scores\":{\"wood\":");
    f.score[usize::from(a.element_units[0])].put(out);
    raw(out, ",\"fire\":");
    f.score[usize::from(a.element_units[1])].put(out);
    raw(out, ",\"earth\":");
    f.score[usize::from(a.element_units[2])].put(out);
    raw(out, ",\"metal\":");
    f.score[usize::from(a.element_units[3])].put(out);
    raw(out, ",\"water\":");
    f.score[usize::from(a.element_units[4])].put(out);
    let n = a.element_counts;
    raw(out, "},\"element_counts\":{\"wood\":");
    out.push(b'0' + n[0]);
    raw(out, ",\"fire\":");
    out.push(b'0' + n[1]);
    raw(out, ",\"earth\":");
    out.push(b'0' + n[2]);
    raw(out, ",\"metal\":");
    out.push(b'0' + n[3]);
    raw(out, ",\"water\":");
    out.push(b'0' + n[4]);
    raw(out, "},\"yin_yang\":{\"yang\":");
    out.push(b'0' + a.yang);
    raw(out, ",\"yin\":");
    out.push(b'0' + a.yin);

    raw(out, "},\"ten_gods\":{");
    for (i, &code) in codes.iter().enumerate() {
        let stem = if code < 10 {
            code
        } else {
            HIDDEN_STEMS[usize::from(code) - 10].main()
        };
        f.ten_god[i * 220 + usize::from(day_stem) * 22 + usize::from(stem)].put(out);
    }

    raw(out, "},\"hidden_stems\":{\"year\":");
    f.hidden[usize::from(codes[1] - 10) * 10 + usize::from(day_stem)].put(out);
    raw(out, ",\"month\":");
    f.hidden[usize::from(codes[3] - 10) * 10 + usize::from(day_stem)].put(out);
    raw(out, ",\"day\":");
    f.hidden[usize::from(codes[5] - 10) * 10 + usize::from(day_stem)].put(out);
    raw(out, ",\"hour\":");
    f.hidden[usize::from(codes[7] - 10) * 10 + usize::from(day_stem)].put(out);

    raw(out, "},\"interactions\":[");
    for (i, (index, positions, complete, contested, with_wangji)) in
        a.interactions.raw().enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        f.group_head[index].put(out);
        f.positions[usize::from(positions & 15)].put(out);
        raw(
            out,
            match (complete, contested) {
                (true, true) => "],\"complete\":true,\"contested\":true",
                (true, false) => "],\"complete\":true,\"contested\":false",
                (false, true) => "],\"complete\":false,\"contested\":true",
                (false, false) => "],\"complete\":false,\"contested\":false",
            },
        );
        if INTERACTION_GROUPS[index].category == Category::TripleCombination {
            raw(
                out,
                if with_wangji {
                    ",\"with_wangji\":true"
                } else {
                    ",\"with_wangji\":false"
                },
            );
        }
        out.push(b'}');
    }
    raw(out, "],\"groups\":[");
    for (i, id) in a.interactions.complete_ids().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        int(out, id);
    }

    write_stars(a, f, &cycle, out);

    let luck = &a.luck;
    raw(
        out,
        match luck.direction {
            Direction::Forward => ",\"luck\":{\"direction\":\"forward\",\"start_age\":",
            Direction::Backward => ",\"luck\":{\"direction\":\"backward\",\"start_age\":",
        },
    );
    int(out, luck.start_age);
    raw(out, ",\"start_years\":");
    centi(out, luck.start_years_centi());
    raw(out, ",\"pillars\":[");
    for i in 0..LUCK_PILLARS {
        if i > 0 {
            out.push(b',');
        }
        f.age[usize::from(luck.age_of(i).min(255))].put(out);
        f.luck_tail[usize::from(luck.pillars[i])].put(out);
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
    if !o.stars.is_default() {
        // Only the alternatives' names: constants that need no escaping.
        raw(out, ",\"stars\":\"");
        raw(out, &o.stars.key());
        out.push(b'"');
    }
    raw(out, "}}");
}

/// From the closing `]` of `groups` to the end of `myeong_gung`: 12운성, 공망, 납음, 신살,
/// strength, 태원 and 명궁.
fn write_stars(a: &Analysis, f: &Fragments, cycle: &[u8; 4], out: &mut Vec<u8>) {
    let codes = a.pillars.codes;
    let pillar_keys = ["{\"year\":", ",\"month\":", ",\"day\":", ",\"hour\":"];
    raw(out, "],\"twelve_stages\":");
    for (p, key) in pillar_keys.iter().enumerate() {
        raw(out, key);
        f.stage[usize::from(a.twelve_stages[p])].put(out);
    }
    raw(out, "},\"twelve_stages_self\":");
    for (p, key) in pillar_keys.iter().enumerate() {
        raw(out, key);
        f.stage[usize::from(a.twelve_stages_self[p])].put(out);
    }
    let hits = |empty: [u8; 2]| {
        (0..4).fold(0u8, |m, p| {
            m | (empty.contains(&codes[2 * p + 1]) as u8) << p
        })
    };
    raw(out, "},\"gongmang\":{\"day\":");
    f.gongmang[usize::from(cycle[2])].put(out);
    raw(out, ",\"year\":");
    f.gongmang[usize::from(cycle[0])].put(out);
    raw(out, ",\"day_hits\":[");
    f.positions[usize::from(hits(a.gongmang_day()))].put(out);
    raw(out, "],\"year_hits\":[");
    f.positions[usize::from(hits(a.gongmang_year()))].put(out);
    raw(out, "]},\"napeum\":");
    for (p, key) in pillar_keys.iter().enumerate() {
        raw(out, key);
        f.napeum[usize::from(cycle[p] / 2)].put(out);
    }
    raw(out, "},\"sinsal\":[");
    for (i, (kind, positions)) in a.stars.raw().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        f.star_head[usize::from(kind)].put(out);
        f.positions[usize::from(positions & 15)].put(out);
        raw(out, "]}");
    }
    let s = &a.strength;
    raw(out, "],\"strength\":");
    f.strength[usize::from(s.support_units)].put(out);
    raw(
        out,
        match (s.deuk_ryeong, s.deuk_ji) {
            (true, true) => ",\"deuk_ryeong\":true,\"deuk_ji\":true}",
            (true, false) => ",\"deuk_ryeong\":true,\"deuk_ji\":false}",
            (false, true) => ",\"deuk_ryeong\":false,\"deuk_ji\":true}",
            (false, false) => ",\"deuk_ryeong\":false,\"deuk_ji\":false}",
        },
    );
    let [ts, tb] = a.tae_won();
    raw(out, ",\"tae_won\":");
    f.pillar[usize::from(stars::cycle_position(ts, tb))].put(out);
    let [ms, mb] = a.myeong_gung();
    raw(out, ",\"myeong_gung\":");
    f.pillar[usize::from(stars::cycle_position(ms, mb))].put(out);
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
            r#"{"version":2,"error":"bad \"x\"\n\u0001"}"#
        );
    }

    #[test]
    fn document_is_valid_json_with_the_documented_paths() {
        let birth = Birth::Civil(CivilDateTime::new(1985, 3, 21, 10, 30, 0).unwrap());
        let a = Analysis::compute(&birth, Gender::Female, &Options::default()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(doc["version"], 2);
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
