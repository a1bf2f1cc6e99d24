//! Table lookups on the eight codes that Korean 만세력 show beside the pillars: 12운성,
//! 공망, 납음오행, 태원, 명궁, the 12신살 and the common 신살.
//!
//! Every table here is a fact of the tradition; where schools disagree, the default is the
//! one named in the crate README (and checked there against an independent library).
//! Branch arguments are branch codes (10–21) unless a name says `index` (자 = 0).

use crate::tables::{cycle_index, BRANCH_BASE};

/// 12운성 names by index: 0 = 장생 … 11 = 양.
pub const TWELVE_STAGES: [&str; 12] = [
    "장생", "목욕", "관대", "건록", "제왕", "쇠", "병", "사", "묘", "절", "태", "양",
];

/// Branch index (자 = 0) where each stem's 장생 falls: yang stems 갑 해, 병 인, 무 인
/// (무 with 병), 경 사, 임 신; yin stems 을 오, 정 유, 기 유 (기 with 정), 신 자, 계 묘.
const LONG_LIFE: [u8; 10] = [11, 6, 2, 9, 2, 9, 5, 0, 8, 3];

/// The 12운성 index (0 = 장생 … 11 = 양) of `stem` on `branch`: yang stems count forward
/// from their 장생, yin stems backward (양순음역), 무/기 with 병/정 (화토동궁).
pub const fn twelve_stage(stem: u8, branch: u8) -> u8 {
    twelve_stage_in(stem, branch, Unseong::HwaTo)
}

/// How a school counts the 12운성 (see [`Schools::unseong`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Unseong {
    /// 양순음역 with 화토동궁: 무 follows 병 (장생 인), 기 follows 정 (장생 유). The default.
    #[default]
    HwaTo,
    /// 양순음역 with 수토동궁: 무 follows 임 (장생 신), 기 follows 계 (장생 묘).
    SuTo,
    /// 음양동생 (동생동사): a yin stem counts like its yang sibling, forward from the same
    /// 장생 (을 like 갑, 기 like 무 …), 화토동궁.
    DongSaeng,
}

/// [`twelve_stage`] as `school` counts it.
pub const fn twelve_stage_in(stem: u8, branch: u8, school: Unseong) -> u8 {
    let b = branch - BRANCH_BASE;
    let (row, forward) = match school {
        Unseong::HwaTo => (stem, stem % 2 == 0),
        Unseong::SuTo => (
            match stem {
                4 => 8,
                5 => 9,
                other => other,
            },
            stem % 2 == 0,
        ),
        Unseong::DongSaeng => (stem - stem % 2, true),
    };
    let start = LONG_LIFE[row as usize];
    if forward {
        (b + 12 - start) % 12
    } else {
        (start + 12 - b) % 12
    }
}

/// The two empty branches (공망, codes) of the decade (순) the pillar `stem`/`branch`
/// belongs to: the two branches its 갑 day's ten stems do not reach.
pub const fn gongmang(stem: u8, branch: u8) -> [u8; 2] {
    let first = (branch - BRANCH_BASE + 12 - stem) % 12;
    [
        BRANCH_BASE + (first + 10) % 12,
        BRANCH_BASE + (first + 11) % 12,
    ]
}

/// One 납음 (the sound element of a pair of cycle positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Napeum {
    /// Korean name, e.g. `해중금`.
    pub name: &'static str,
    /// Hanja, e.g. `海中金`.
    pub hanja: &'static str,
    /// Element key (`wood`, `fire`, `earth`, `metal`, `water`).
    pub element: &'static str,
}

const fn na(name: &'static str, hanja: &'static str, element: &'static str) -> Napeum {
    Napeum {
        name,
        hanja,
        element,
    }
}

/// The 30 납음, one per two consecutive cycle positions (갑자·을축 = 해중금, …).
pub const NAPEUM: [Napeum; 30] = [
    na("해중금", "海中金", "metal"),
    na("노중화", "爐中火", "fire"),
    na("대림목", "大林木", "wood"),
    na("노방토", "路傍土", "earth"),
    na("검봉금", "劍鋒金", "metal"),
    na("산두화", "山頭火", "fire"),
    na("간하수", "澗下水", "water"),
    na("성두토", "城頭土", "earth"),
    na("백랍금", "白蠟金", "metal"),
    na("양류목", "楊柳木", "wood"),
    na("천중수", "泉中水", "water"),
    na("옥상토", "屋上土", "earth"),
    na("벽력화", "霹靂火", "fire"),
    na("송백목", "松柏木", "wood"),
    na("장류수", "長流水", "water"),
    na("사중금", "沙中金", "metal"),
    na("산하화", "山下火", "fire"),
    na("평지목", "平地木", "wood"),
    na("벽상토", "壁上土", "earth"),
    na("금박금", "金箔金", "metal"),
    na("복등화", "覆燈火", "fire"),
    na("천하수", "天河水", "water"),
    na("대역토", "大驛土", "earth"),
    na("차천금", "釵釧金", "metal"),
    na("상자목", "桑柘木", "wood"),
    na("대계수", "大溪水", "water"),
    na("사중토", "沙中土", "earth"),
    na("천상화", "天上火", "fire"),
    na("석류목", "石榴木", "wood"),
    na("대해수", "大海水", "water"),
];

/// The cycle position (0 = 갑자 … 59 = 계해) of a stem code and a branch code of equal
/// polarity.
pub const fn cycle_position(stem: u8, branch: u8) -> u8 {
    cycle_index(stem, branch - BRANCH_BASE)
}

/// The 납음 of a pillar.
pub const fn napeum(stem: u8, branch: u8) -> &'static Napeum {
    &NAPEUM[(cycle_position(stem, branch) / 2) as usize]
}

/// The stem (오호둔, from the year stem) of a month with `branch` in a year with `year_stem`:
/// 갑·기 years start 인 with 병, 을·경 with 무, 병·신 with 경, 정·임 with 임, 무·계 with 갑.
pub const fn month_stem(year_stem: u8, branch: u8) -> u8 {
    let from_in = (branch - BRANCH_BASE + 10) % 12;
    ((year_stem % 5) * 2 + 2 + from_in) % 10
}

/// 태원 (胎元): the month stem's next stem over the month branch's third branch after it.
pub const fn tae_won(month_stem: u8, month_branch: u8) -> [u8; 2] {
    [
        (month_stem + 1) % 10,
        BRANCH_BASE + (month_branch - BRANCH_BASE + 3) % 12,
    ]
}

/// 명궁 (命宮): counting the birth month (by its 절 month's branch) and the birth hour from
/// 인, the branch `(5 − month − hour) mod 12` (자 = 0), with its stem by 오호둔 from the
/// year stem.
pub const fn myeong_gung(year_stem: u8, month_branch: u8, hour_branch: u8) -> [u8; 2] {
    let m = (month_branch - BRANCH_BASE) as i16;
    let h = (hour_branch - BRANCH_BASE) as i16;
    let branch = BRANCH_BASE + (5 - m - h).rem_euclid(12) as u8;
    [month_stem(year_stem, branch), branch]
}

/// Where a 신살 is looked up from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Basis {
    /// Counted from the year branch (12신살).
    YearBranch,
    /// Counted from the day branch (12신살).
    DayBranch,
    /// By the day stem, found on the branches.
    DayStem,
    /// A pillar whose stem and branch are in the table.
    Pillar,
    /// Two branches that form the pair, at any two pillars.
    BranchPair,
}

impl Basis {
    /// The key written in the document.
    pub const fn key(self) -> &'static str {
        match self {
            Basis::YearBranch => "year_branch",
            Basis::DayBranch => "day_branch",
            Basis::DayStem => "day_stem",
            Basis::Pillar => "pillar",
            Basis::BranchPair => "branch_pair",
        }
    }
}

/// One kind of 신살: a name, its hanja and where it is looked up from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Star {
    /// Korean name, e.g. `천을귀인`.
    pub name: &'static str,
    /// Hanja, e.g. `天乙貴人`.
    pub hanja: &'static str,
    /// Lookup basis.
    pub basis: Basis,
}

const fn star(name: &'static str, hanja: &'static str, basis: Basis) -> Star {
    Star { name, hanja, basis }
}

/// The 12신살 by index, counted from the 겁살 of the basis branch's 삼합.
pub const TWELVE_SINSAL: [(&str, &str); 12] = [
    ("겁살", "劫殺"),
    ("재살", "災殺"),
    ("천살", "天殺"),
    ("지살", "地殺"),
    ("도화살", "桃花殺"),
    ("월살", "月殺"),
    ("망신살", "亡身殺"),
    ("장성살", "將星殺"),
    ("반안살", "攀鞍殺"),
    ("역마살", "驛馬殺"),
    ("육해살", "六害殺"),
    ("화개살", "華蓋殺"),
];

/// The 12신살 index (0 = 겁살 … 11 = 화개살) of `branch` counted from `basis` (both codes):
/// the 겁살 is the branch after the 묘지 of the basis's 삼합 (인오술 → 해, 신자진 → 사,
/// 사유축 → 인, 해묘미 → 신), and the names follow it in branch order.
pub const fn twelve_sinsal(basis: u8, branch: u8) -> u8 {
    // The 삼합 of a branch index b is b mod 4 (신자진 0, 사유축 1, 인오술 2, 해묘미 3);
    // its 겁살 index: 사 5, 인 2, 해 11, 신 8.
    const GEOPSAL: [u8; 4] = [5, 2, 11, 8];
    let start = GEOPSAL[((basis - BRANCH_BASE) % 4) as usize];
    (branch - BRANCH_BASE + 12 - start) % 12
}

/// The common 신살 the document reports besides the 12신살, in document order.
pub const COMMON_STARS: [Star; 8] = [
    star("천을귀인", "天乙貴人", Basis::DayStem),
    star("문창귀인", "文昌貴人", Basis::DayStem),
    star("양인살", "羊刃殺", Basis::DayStem),
    star("홍염살", "紅艶殺", Basis::DayStem),
    star("백호대살", "白虎大殺", Basis::Pillar),
    star("괴강살", "魁罡殺", Basis::Pillar),
    star("원진살", "怨嗔殺", Basis::BranchPair),
    star("귀문관살", "鬼門關殺", Basis::BranchPair),
];

/// Bit set of branch indices (자 = bit 0).
const fn bits(indices: &[u8]) -> u16 {
    let mut m = 0;
    let mut i = 0;
    while i < indices.len() {
        m |= 1 << indices[i];
        i += 1;
    }
    m
}

/// 천을귀인 by day stem: 갑무경 축미, 을기 자신, 병정 해유, 신 인오, 임계 사묘.
const CHEONEUL: [u16; 10] = [
    bits(&[1, 7]),
    bits(&[0, 8]),
    bits(&[11, 9]),
    bits(&[11, 9]),
    bits(&[1, 7]),
    bits(&[0, 8]),
    bits(&[1, 7]),
    bits(&[2, 6]),
    bits(&[5, 3]),
    bits(&[5, 3]),
];

/// 문창귀인 by day stem: 갑 사, 을 오, 병 신, 정 유, 무 신, 기 유, 경 해, 신 자, 임 인, 계 묘.
const MUNCHANG: [u16; 10] = [
    bits(&[5]),
    bits(&[6]),
    bits(&[8]),
    bits(&[9]),
    bits(&[8]),
    bits(&[9]),
    bits(&[11]),
    bits(&[0]),
    bits(&[2]),
    bits(&[3]),
];

/// 양인 by day stem, yang stems only (the 제왕 branch): 갑 묘, 병 오, 무 오, 경 유, 임 자.
const YANGIN: [u16; 10] = [
    bits(&[3]),
    0,
    bits(&[6]),
    0,
    bits(&[6]),
    0,
    bits(&[9]),
    0,
    bits(&[0]),
    0,
];

/// 홍염 by day stem: 갑 오, 을 오, 병 인, 정 미, 무 진, 기 진, 경 술, 신 유, 임 자, 계 신.
const HONGYEOM: [u16; 10] = [
    bits(&[6]),
    bits(&[6]),
    bits(&[2]),
    bits(&[7]),
    bits(&[4]),
    bits(&[4]),
    bits(&[10]),
    bits(&[9]),
    bits(&[0]),
    bits(&[8]),
];

/// 백호대살 pillars (cycle positions): 갑진 을미 병술 정축 무진 임술 계축.
const BAEKHO: [u8; 7] = [40, 31, 22, 13, 4, 58, 49];

/// 괴강살 pillars: 경진 경술 임진 임술 무술 무진.
const GOEGANG: [u8; 6] = [16, 46, 28, 58, 34, 4];

/// 원진 pairs (branch indices): 자미, 축오, 인유, 묘신, 진해, 사술.
const WONJIN: [(u8, u8); 6] = [(0, 7), (1, 6), (2, 9), (3, 8), (4, 11), (5, 10)];

/// 귀문관 pairs: 자유, 축오, 인미, 묘신, 진해, 사술.
const GWIMUN: [(u8, u8); 6] = [(0, 9), (1, 6), (2, 7), (3, 8), (4, 11), (5, 10)];

/// Per branch index, the bit set of the branches it pairs with in `table`.
const fn partners(table: &[(u8, u8); 6]) -> [u16; 12] {
    let mut m = [0u16; 12];
    let mut i = 0;
    while i < table.len() {
        let (a, b) = table[i];
        m[a as usize] |= 1 << b;
        m[b as usize] |= 1 << a;
        i += 1;
    }
    m
}

const WONJIN_PARTNERS: [u16; 12] = partners(&WONJIN);
const GWIMUN_PARTNERS: [u16; 12] = partners(&GWIMUN);

/// The tables on which schools differ (신살, and how the 12운성 are counted). The default is
/// the set the crate README names; each alternative is checked against an independent library
/// (or the rows of one, where no library offers the school as such).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Schools {
    /// 양인 for yin stems too, the branch after their 건록 (을 진, 정·기 미, 신 술, 계 축), as
    /// bazi-chart counts it.
    pub yangin_all_stems: bool,
    /// 홍염 with 정 인, 신 술, 계 자 (korean-saju's table) instead of 정 미, 신 유, 계 신.
    pub hongyeom_variant: bool,
    /// 괴강 only on 경진, 경술, 임진, 무술 (bazi-chart's four) instead of the six.
    pub goegang_four: bool,
    /// 귀문관살 by the 원진 pairs (as korean-saju reports it) instead of 자유, 축오, 인미, 묘신,
    /// 진해, 사술.
    pub gwimun_as_wonjin: bool,
    /// How the 12운성 (`twelve_stages`, `twelve_stages_self`) are counted.
    pub unseong: Unseong,
}

impl Schools {
    /// Whether every table is the default one.
    pub fn is_default(&self) -> bool {
        *self == Schools::default()
    }

    /// The alternatives in force, e.g. `yangin=all,goegang=four` (empty for the defaults).
    pub fn key(&self) -> String {
        let mut parts = Vec::new();
        if self.yangin_all_stems {
            parts.push("yangin=all");
        }
        if self.hongyeom_variant {
            parts.push("hongyeom=variant");
        }
        if self.goegang_four {
            parts.push("goegang=four");
        }
        if self.gwimun_as_wonjin {
            parts.push("gwimun=wonjin");
        }
        match self.unseong {
            Unseong::HwaTo => {}
            Unseong::SuTo => parts.push("unseong=suto"),
            Unseong::DongSaeng => parts.push("unseong=dongsaeng"),
        }
        parts.join(",")
    }
}

/// 양인 of every stem: yang stems' 제왕 and yin stems' branch after the 건록.
const YANGIN_ALL: [u16; 10] = [
    bits(&[3]),
    bits(&[4]),
    bits(&[6]),
    bits(&[7]),
    bits(&[6]),
    bits(&[7]),
    bits(&[9]),
    bits(&[10]),
    bits(&[0]),
    bits(&[1]),
];

/// 홍염, the other table: 정 인, 신 술, 계 자.
const HONGYEOM_VARIANT: [u16; 10] = [
    bits(&[6]),
    bits(&[6]),
    bits(&[2]),
    bits(&[2]),
    bits(&[4]),
    bits(&[4]),
    bits(&[10]),
    bits(&[10]),
    bits(&[0]),
    bits(&[0]),
];

/// 괴강, the four-pillar table: 경진 경술 임진 무술.
const GOEGANG_FOUR: [u8; 4] = [16, 46, 28, 34];

/// A 신살 found in a chart: which, and the pillars (bit 0 = year … 3 = hour) it falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The star.
    pub star: Star,
    /// Pillar bits.
    pub positions: u8,
}

/// Most stars one chart holds: four names per 12신살 basis and the eight common ones.
const CAPACITY: usize = 16;

/// The 신살 of one chart, without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Stars {
    /// (kind, positions): kinds 0–11 are the 12신살 by the year branch, 12–23 by the day
    /// branch, 24.. the [`COMMON_STARS`].
    items: [(u8, u8); CAPACITY],
    len: u8,
}

const DAY_BASE: u8 = 12;
const COMMON_BASE: u8 = 24;

impl Stars {
    /// Finds the 신살 of the eight codes with the default tables.
    pub fn find(codes: &[u8; 8]) -> Stars {
        Self::find_with(codes, &Schools::default())
    }

    /// Finds the 신살 of the eight codes with the given tables.
    pub fn find_with(codes: &[u8; 8], schools: &Schools) -> Stars {
        let mut out = Stars {
            items: [(0, 0); CAPACITY],
            len: 0,
        };
        let branch = |p: usize| codes[2 * p + 1] - BRANCH_BASE;
        for (base, basis) in [(0u8, codes[1]), (DAY_BASE, codes[5])] {
            let mut masks = [0u8; 12];
            for p in 0..4 {
                masks[usize::from(twelve_sinsal(basis, codes[2 * p + 1]))] |= 1 << p;
            }
            for (i, &m) in masks.iter().enumerate() {
                if m != 0 {
                    out.push(base + i as u8, m);
                }
            }
        }
        let day_stem = usize::from(codes[4]);
        let on_branches = |table: u16| -> u8 {
            (0..4).fold(0, |m, p| m | (((table >> branch(p)) & 1) as u8) << p)
        };
        let pillars_in = |table: &[u8]| -> u8 {
            (0..4).fold(0, |m, p| {
                let pos = cycle_position(codes[2 * p], codes[2 * p + 1]);
                m | (table.contains(&pos) as u8) << p
            })
        };
        let pairs = |partners: &[u16; 12]| -> u8 {
            let mut m = 0;
            for p in 0..4 {
                let mine = partners[usize::from(branch(p))];
                for q in p + 1..4 {
                    if mine >> branch(q) & 1 == 1 {
                        m |= 1 << p | 1 << q;
                    }
                }
            }
            m
        };
        let pick = |alternative: bool, a, default| if alternative { a } else { default };
        let common = [
            on_branches(CHEONEUL[day_stem]),
            on_branches(MUNCHANG[day_stem]),
            on_branches(pick(schools.yangin_all_stems, &YANGIN_ALL, &YANGIN)[day_stem]),
            on_branches(pick(schools.hongyeom_variant, &HONGYEOM_VARIANT, &HONGYEOM)[day_stem]),
            pillars_in(&BAEKHO),
            if schools.goegang_four {
                pillars_in(&GOEGANG_FOUR)
            } else {
                pillars_in(&GOEGANG)
            },
            pairs(&WONJIN_PARTNERS),
            pairs(if schools.gwimun_as_wonjin {
                &WONJIN_PARTNERS
            } else {
                &GWIMUN_PARTNERS
            }),
        ];
        for (i, &m) in common.iter().enumerate() {
            if m != 0 {
                out.push(COMMON_BASE + i as u8, m);
            }
        }
        out
    }

    fn push(&mut self, kind: u8, positions: u8) {
        if usize::from(self.len) < CAPACITY {
            self.items[usize::from(self.len)] = (kind, positions);
            self.len += 1;
        }
    }

    /// Kind indices (for writers with per-kind tables: 0–11 12신살 by year branch, 12–23 by
    /// day branch, 24.. [`COMMON_STARS`]) with their pillar bits.
    pub fn raw(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.items[..usize::from(self.len)].iter().copied()
    }

    /// Every star found, in document order.
    pub fn iter(&self) -> impl Iterator<Item = Found> + '_ {
        self.raw().map(|(kind, positions)| Found {
            star: Self::star(kind),
            positions,
        })
    }

    /// The star of a kind index (see [`Stars::raw`]).
    pub fn star(kind: u8) -> Star {
        match kind {
            0..=11 => {
                let (name, hanja) = TWELVE_SINSAL[usize::from(kind)];
                star(name, hanja, Basis::YearBranch)
            }
            12..=23 => {
                let (name, hanja) = TWELVE_SINSAL[usize::from(kind - DAY_BASE)];
                star(name, hanja, Basis::DayBranch)
            }
            _ => COMMON_STARS[usize::from(kind - COMMON_BASE)],
        }
    }

    /// Number of kinds a writer needs tables for.
    pub const KINDS: usize = COMMON_BASE as usize + COMMON_STARS.len();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gwimun_tables_pinned() {
        // 갑자 을축 을유 무진: 자–유 is a 귀문 pair of the standard table, and no pair of these
        // branches is a 원진 pair.
        let codes = [0, 10, 1, 11, 1, 19, 4, 14];
        let at = |schools: &Schools, name: &str| {
            Stars::find_with(&codes, schools)
                .iter()
                .filter(|f| f.star.name == name)
                .map(|f| f.positions)
                .fold(0u8, |m, p| m | p)
        };
        let wonjin = Schools {
            gwimun_as_wonjin: true,
            ..Schools::default()
        };
        assert_eq!(at(&Schools::default(), "귀문관살"), 0b0101);
        assert_eq!(at(&wonjin, "귀문관살"), 0);
        // 갑자 을축 을미 무진: 자–미 is 원진 (and 귀문 by the 원진 pairs), not standard 귀문.
        let codes = [0, 10, 1, 11, 1, 17, 4, 14];
        let at = |schools: &Schools, name: &str| {
            Stars::find_with(&codes, schools)
                .iter()
                .filter(|f| f.star.name == name)
                .map(|f| f.positions)
                .fold(0u8, |m, p| m | p)
        };
        assert_eq!(at(&Schools::default(), "귀문관살"), 0);
        assert_eq!(at(&wonjin, "귀문관살"), 0b0101);
        assert_eq!(at(&Schools::default(), "원진살"), 0b0101);
        // Every pair of the standard table, and nothing else.
        let pairs: Vec<(u8, u8)> = (0..12u8)
            .flat_map(|a| (a + 1..12).map(move |b| (a, b)))
            .filter(|&(a, b)| GWIMUN_PARTNERS[usize::from(a)] & (1 << b) != 0)
            .collect();
        assert_eq!(pairs, [(0, 9), (1, 6), (2, 7), (3, 8), (4, 11), (5, 10)]);
    }

    #[test]
    fn twelve_stage_schools() {
        // 수토동궁: 무 on 자 is 제왕 (장생 신), 기 on 묘 is 장생; other stems as 화토동궁.
        assert_eq!(twelve_stage_in(4, 10, Unseong::SuTo), 4);
        assert_eq!(twelve_stage_in(5, 13, Unseong::SuTo), 0);
        assert_eq!(twelve_stage_in(4, 10, Unseong::HwaTo), 10);
        // 음양동생: 을 on 인 is 건록 (like 갑), 기 on 인 is 장생 (like 무, 화토동궁).
        assert_eq!(twelve_stage_in(1, 12, Unseong::DongSaeng), 3);
        assert_eq!(twelve_stage_in(5, 12, Unseong::DongSaeng), 0);
        for stem in 0..10u8 {
            for branch in 10..22u8 {
                let hwato = twelve_stage(stem, branch);
                if stem % 2 == 0 {
                    assert_eq!(twelve_stage_in(stem, branch, Unseong::DongSaeng), hwato);
                }
                if stem != 4 && stem != 5 {
                    assert_eq!(twelve_stage_in(stem, branch, Unseong::SuTo), hwato);
                }
            }
        }
        let schools = Schools {
            unseong: Unseong::SuTo,
            ..Schools::default()
        };
        assert_eq!(schools.key(), "unseong=suto");
        assert!(!schools.is_default());
    }

    #[test]
    fn twelve_stages_run_forward_for_yang_and_backward_for_yin() {
        // 갑 on 해 장생, on 묘 제왕; 을 on 오 장생, on 인 제왕; 무 follows 병 (인 장생).
        assert_eq!(twelve_stage(0, 21), 0);
        assert_eq!(twelve_stage(0, 13), 4);
        assert_eq!(twelve_stage(1, 16), 0);
        assert_eq!(twelve_stage(1, 12), 4);
        assert_eq!(twelve_stage(4, 12), 0);
        assert_eq!(twelve_stage(4, 16), 4);
        // 경 on 신 건록; 계 on 자 건록.
        assert_eq!(twelve_stage(6, 18), 3);
        assert_eq!(twelve_stage(9, 10), 3);
    }

    #[test]
    fn gongmang_of_each_decade() {
        assert_eq!(gongmang(0, 10), [20, 21]); // 갑자순: 술해
        assert_eq!(gongmang(0, 20), [18, 19]); // 갑술순: 신유
        assert_eq!(gongmang(9, 21), [10, 11]); // 계해 (갑인순): 자축
        assert_eq!(gongmang(4, 14), [20, 21]); // 무진 (갑자순)
    }

    #[test]
    fn cycle_positions_and_napeum() {
        assert_eq!(cycle_position(0, 10), 0);
        assert_eq!(cycle_position(9, 21), 59);
        assert_eq!(cycle_position(0, 14), 40);
        assert_eq!(napeum(0, 10).name, "해중금");
        assert_eq!(napeum(1, 11).name, "해중금");
        assert_eq!(napeum(9, 21).name, "대해수");
        assert_eq!(napeum(6, 16).name, "노방토"); // 경오
        for pos in 0..60u8 {
            assert_eq!(cycle_position(pos % 10, 10 + pos % 12), pos);
        }
    }

    #[test]
    fn month_stems_tae_won_and_myeong_gung() {
        // 갑 year: 인 month 병인, 자 month 병자 (the 11th month).
        assert_eq!(month_stem(0, 12), 2);
        assert_eq!(month_stem(0, 10), 2);
        assert_eq!(month_stem(4, 12), 0); // 무 year: 갑인
        assert_eq!(tae_won(2, 12), [3, 15]); // 병인 → 정사
                                             // 인 month, 인 hour: counts 1 + 1 → 14 − 2 = 12 → 축.
        assert_eq!(myeong_gung(0, 12, 12)[1], 11);
    }

    #[test]
    fn twelve_sinsal_from_the_triple_combination() {
        // 인오술 (basis 오): 겁살 해, 도화 묘, 역마 신, 화개 술.
        assert_eq!(twelve_sinsal(16, 21), 0);
        assert_eq!(twelve_sinsal(16, 13), 4);
        assert_eq!(twelve_sinsal(16, 18), 9);
        assert_eq!(twelve_sinsal(16, 20), 11);
        // 신자진 (basis 자): 겁살 사, 역마 인; 해묘미 (basis 미): 역마 사.
        assert_eq!(twelve_sinsal(10, 15), 0);
        assert_eq!(twelve_sinsal(10, 12), 9);
        assert_eq!(twelve_sinsal(17, 15), 9);
    }

    #[test]
    fn stars_of_a_chart() {
        // 무술 병오 갑진 갑자: 백호 (갑진) and 괴강 (무술) ...
        let codes = [4, 20, 2, 16, 0, 14, 0, 10];
        let stars = Stars::find(&codes);
        let names: Vec<(&str, &str, u8)> = stars
            .iter()
            .map(|f| (f.star.name, f.star.basis.key(), f.positions))
            .collect();
        assert!(names.contains(&("백호대살", "pillar", 0b0100)), "{names:?}");
        assert!(names.contains(&("괴강살", "pillar", 0b0001)), "{names:?}");
        // 갑 day: 양인 묘 (absent); 홍염 오 (month).
        assert!(names.contains(&("홍염살", "day_stem", 0b0010)), "{names:?}");
        assert!(!names.iter().any(|n| n.0 == "양인살"));
        // Year branch 술 (인오술): 오 장성살, 진 월살, 자 재살, 술 화개살.
        assert!(names.contains(&("장성살", "year_branch", 0b0010)));
        assert!(names.contains(&("화개살", "year_branch", 0b0001)));
        // 12신살 cover the four pillars once per basis.
        let per_basis =
            |b: &str| -> u8 { names.iter().filter(|n| n.1 == b).fold(0, |m, n| m | n.2) };
        assert_eq!(per_basis("year_branch"), 0b1111);
        assert_eq!(per_basis("day_branch"), 0b1111);
    }
}
