//! The reference tables: the 22 stem and branch codes with their element and yin/yang
//! (`ganji_metadata`), the interaction groups with their member codes (`interaction_groups`,
//! `ganji_interaction`) and the hidden stems of each branch (지장간, Korean 월률분야 table).
//!
//! Codes follow the schema: stems 0–9 = 갑을병정무기경신임계, branches 10–21 =
//! 자축인묘진사오미신유술해. The same rows are inserted by the SQL migrations; a test in
//! `tests/reference.rs` checks that both agree.

/// One of the five elements (오행), in generating order: wood → fire → earth → metal → water.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Element {
    /// 목 (木)
    Wood = 0,
    /// 화 (火)
    Fire = 1,
    /// 토 (土)
    Earth = 2,
    /// 금 (金)
    Metal = 3,
    /// 수 (水)
    Water = 4,
}

impl Element {
    /// All five, in generating order (the order of every per-element array in this crate).
    pub const ALL: [Element; 5] = [
        Element::Wood,
        Element::Fire,
        Element::Earth,
        Element::Metal,
        Element::Water,
    ];

    /// The English key used in the analysis document (`wood`, `fire`, …).
    pub const fn key(self) -> &'static str {
        match self {
            Element::Wood => "wood",
            Element::Fire => "fire",
            Element::Earth => "earth",
            Element::Metal => "metal",
            Element::Water => "water",
        }
    }

    /// The Korean name as stored in `ganji_metadata.element` (`목`, `화`, …).
    pub const fn name_ko(self) -> &'static str {
        match self {
            Element::Wood => "목",
            Element::Fire => "화",
            Element::Earth => "토",
            Element::Metal => "금",
            Element::Water => "수",
        }
    }

    /// The element this one generates (상생): wood → fire → earth → metal → water → wood.
    pub const fn generates(self) -> Element {
        Element::ALL[(self as usize + 1) % 5]
    }

    /// The element this one controls (상극): wood → earth → water → fire → metal → wood.
    pub const fn controls(self) -> Element {
        Element::ALL[(self as usize + 2) % 5]
    }
}

/// Yin or yang (음양).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum YinYang {
    /// 양 (陽)
    Yang,
    /// 음 (陰)
    Yin,
}

impl YinYang {
    /// The English key used in the analysis document.
    pub const fn key(self) -> &'static str {
        match self {
            YinYang::Yang => "yang",
            YinYang::Yin => "yin",
        }
    }

    /// The Korean name as stored in `ganji_metadata.yin_yang`.
    pub const fn name_ko(self) -> &'static str {
        match self {
            YinYang::Yang => "양",
            YinYang::Yin => "음",
        }
    }
}

/// Whether a code is a heavenly stem or an earthly branch (`ganji_metadata.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 천간, codes 0–9.
    Stem,
    /// 지지, codes 10–21.
    Branch,
}

impl Kind {
    /// The Korean name as stored in `ganji_metadata.type`.
    pub const fn name_ko(self) -> &'static str {
        match self {
            Kind::Stem => "천간",
            Kind::Branch => "지지",
        }
    }
}

/// One row of `ganji_metadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GanjiMeta {
    /// Primary key: stems 0–9, branches 10–21.
    pub code: u8,
    /// Korean syllable, e.g. `갑`.
    pub name_ko: &'static str,
    /// Chinese character, e.g. `甲`.
    pub name_hani: &'static str,
    /// Stem or branch.
    pub kind: Kind,
    /// The element of the character itself (for a branch: that of its main hidden stem).
    pub element: Element,
    /// Yin/yang as listed in the schema (for branches, the traditional polarity of the
    /// branch itself: 자 and 오 yang, 사 and 해 yin).
    pub yin_yang: YinYang,
}

const fn meta(
    code: u8,
    name_ko: &'static str,
    name_hani: &'static str,
    kind: Kind,
    element: Element,
    yin_yang: YinYang,
) -> GanjiMeta {
    GanjiMeta {
        code,
        name_ko,
        name_hani,
        kind,
        element,
        yin_yang,
    }
}

use Element::{Earth, Fire, Metal, Water, Wood};
use Kind::{Branch, Stem};
use YinYang::{Yang, Yin};

/// The 22 rows of `ganji_metadata`, indexed by code.
pub const GANJI: [GanjiMeta; 22] = [
    meta(0, "갑", "甲", Stem, Wood, Yang),
    meta(1, "을", "乙", Stem, Wood, Yin),
    meta(2, "병", "丙", Stem, Fire, Yang),
    meta(3, "정", "丁", Stem, Fire, Yin),
    meta(4, "무", "戊", Stem, Earth, Yang),
    meta(5, "기", "己", Stem, Earth, Yin),
    meta(6, "경", "庚", Stem, Metal, Yang),
    meta(7, "신", "辛", Stem, Metal, Yin),
    meta(8, "임", "壬", Stem, Water, Yang),
    meta(9, "계", "癸", Stem, Water, Yin),
    meta(10, "자", "子", Branch, Water, Yang),
    meta(11, "축", "丑", Branch, Earth, Yin),
    meta(12, "인", "寅", Branch, Wood, Yang),
    meta(13, "묘", "卯", Branch, Wood, Yin),
    meta(14, "진", "辰", Branch, Earth, Yang),
    meta(15, "사", "巳", Branch, Fire, Yin),
    meta(16, "오", "午", Branch, Fire, Yang),
    meta(17, "미", "未", Branch, Earth, Yin),
    meta(18, "신", "申", Branch, Metal, Yang),
    meta(19, "유", "酉", Branch, Metal, Yin),
    meta(20, "술", "戌", Branch, Earth, Yang),
    meta(21, "해", "亥", Branch, Water, Yin),
];

/// First branch code: 자 = 10.
pub const BRANCH_BASE: u8 = 10;

/// The category of an interaction group (`interaction_groups.category`), one per hundred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// 천간합, groups 101–105.
    StemCombination,
    /// 천간충, groups 201–204.
    StemClash,
    /// 지지육합, groups 301–306.
    SixCombination,
    /// 지지삼합, groups 401–404.
    TripleCombination,
    /// 지지방합, groups 501–504.
    DirectionalCombination,
    /// 지지육충, groups 601–606.
    SixClash,
    /// 지지형, groups 701–707 (704–707 the 자형 진진, 오오, 유유, 해해).
    Punishment,
    /// 지지파, groups 801–806.
    Destruction,
    /// 지지해, groups 901–906.
    Harm,
}

impl Category {
    /// The Korean category name as stored in `interaction_groups.category`.
    pub const fn name_ko(self) -> &'static str {
        match self {
            Category::StemCombination => "천간합",
            Category::StemClash => "천간충",
            Category::SixCombination => "지지육합",
            Category::TripleCombination => "지지삼합",
            Category::DirectionalCombination => "지지방합",
            Category::SixClash => "지지육충",
            Category::Punishment => "지지형",
            Category::Destruction => "지지파",
            Category::Harm => "지지해",
        }
    }

    /// The parent group id of the category (100, 200, … 900).
    pub const fn parent_id(self) -> u16 {
        match self {
            Category::StemCombination => 100,
            Category::StemClash => 200,
            Category::SixCombination => 300,
            Category::TripleCombination => 400,
            Category::DirectionalCombination => 500,
            Category::SixClash => 600,
            Category::Punishment => 700,
            Category::Destruction => 800,
            Category::Harm => 900,
        }
    }

    /// Whether the category is a combination (합) between two members, where two of one
    /// member meeting one partner is a contested combination (쟁합).
    pub const fn is_pair_combination(self) -> bool {
        matches!(self, Category::StemCombination | Category::SixCombination)
    }

    /// Whether the members are stems (otherwise branches).
    pub const fn is_stem(self) -> bool {
        matches!(self, Category::StemCombination | Category::StemClash)
    }
}

/// One interaction group: a leaf row of `interaction_groups` with its `ganji_interaction`
/// member rows (all sharing one description).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InteractionGroup {
    /// `interaction_groups.id`, e.g. 102.
    pub id: u16,
    /// The category (and so the parent group).
    pub category: Category,
    /// Member codes in the order the migration lists them (2 or 3; 1 for a 자형, whose
    /// member must appear twice).
    pub members: &'static [u8],
    /// `ganji_interaction.description`, e.g. `을경합금`.
    pub description: &'static str,
}

const fn group(
    id: u16,
    category: Category,
    members: &'static [u8],
    description: &'static str,
) -> InteractionGroup {
    InteractionGroup {
        id,
        category,
        members,
        description,
    }
}

use Category::{
    Destruction, DirectionalCombination, Harm, Punishment, SixClash, SixCombination, StemClash,
    StemCombination, TripleCombination,
};

/// The 48 leaf interaction groups, ordered by id (the 9 parent rows 100…900 are
/// [`Category::parent_id`]). A group of one member is a 자형 (self-punishment): present when
/// that branch stands at two pillars or more.
pub const INTERACTION_GROUPS: [InteractionGroup; 48] = [
    group(101, StemCombination, &[0, 5], "갑기합토"),
    group(102, StemCombination, &[1, 6], "을경합금"),
    group(103, StemCombination, &[2, 7], "병신합수"),
    group(104, StemCombination, &[3, 8], "정임합목"),
    group(105, StemCombination, &[4, 9], "무계합화"),
    group(201, StemClash, &[0, 6], "갑경충"),
    group(202, StemClash, &[1, 7], "을신충"),
    group(203, StemClash, &[2, 8], "병임충"),
    group(204, StemClash, &[3, 9], "정계충"),
    group(301, SixCombination, &[10, 11], "자축합토"),
    group(302, SixCombination, &[12, 21], "인해합목"),
    group(303, SixCombination, &[13, 20], "묘술합화"),
    group(304, SixCombination, &[14, 19], "진유합금"),
    group(305, SixCombination, &[15, 18], "사신합수"),
    group(306, SixCombination, &[16, 17], "오미합화"),
    group(401, TripleCombination, &[21, 13, 17], "해묘미"),
    group(402, TripleCombination, &[12, 16, 20], "인오술"),
    group(403, TripleCombination, &[15, 19, 11], "사유축"),
    group(404, TripleCombination, &[18, 10, 14], "신자진"),
    group(501, DirectionalCombination, &[12, 13, 14], "인묘진"),
    group(502, DirectionalCombination, &[15, 16, 17], "사오미"),
    group(503, DirectionalCombination, &[18, 19, 20], "신유술"),
    group(504, DirectionalCombination, &[21, 10, 11], "해자축"),
    group(601, SixClash, &[10, 16], "자오충"),
    group(602, SixClash, &[11, 17], "축미충"),
    group(603, SixClash, &[12, 18], "인신충"),
    group(604, SixClash, &[13, 19], "묘유충"),
    group(605, SixClash, &[14, 20], "진술충"),
    group(606, SixClash, &[15, 21], "사해충"),
    group(701, Punishment, &[12, 15, 18], "인사신 삼형"),
    group(702, Punishment, &[11, 20, 17], "축술미 삼형"),
    group(703, Punishment, &[10, 13], "자묘형"),
    group(704, Punishment, &[14], "진진자형"),
    group(705, Punishment, &[16], "오오자형"),
    group(706, Punishment, &[19], "유유자형"),
    group(707, Punishment, &[21], "해해자형"),
    group(801, Destruction, &[10, 19], "자유파"),
    group(802, Destruction, &[11, 14], "축진파"),
    group(803, Destruction, &[12, 21], "인해파"),
    group(804, Destruction, &[13, 16], "묘오파"),
    group(805, Destruction, &[15, 18], "사신파"),
    group(806, Destruction, &[20, 17], "술미파"),
    group(901, Harm, &[10, 17], "자미해"),
    group(902, Harm, &[11, 16], "축오해"),
    group(903, Harm, &[12, 15], "인사해"),
    group(904, Harm, &[13, 14], "묘진해"),
    group(905, Harm, &[18, 21], "신해해"),
    group(906, Harm, &[19, 20], "유술해"),
];

/// The hidden stems (지장간) of one branch, from the Korean 월률분야 table: the stems that
/// rule the branch's month in turn, with the number of days (of 30) each rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HiddenStems {
    /// Stem codes in order 여기 (initial), 중기 (middle, when present), 정기 (main, last).
    pub stems: [u8; 3],
    /// Days of the 30-day month ruled by each stem; the entries sum to 30.
    pub days: [u8; 3],
    /// How many of `stems` are used (2 or 3).
    pub len: u8,
}

impl HiddenStems {
    /// The used stems with their days, initial first and main last.
    pub fn iter(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.stems[..self.len as usize]
            .iter()
            .copied()
            .zip(self.days.iter().copied())
    }

    /// The main stem (정기), which gives the branch its element and ten god.
    pub const fn main(&self) -> u8 {
        self.stems[self.len as usize - 1]
    }
}

const fn hidden2(a: (u8, u8), b: (u8, u8)) -> HiddenStems {
    HiddenStems {
        stems: [a.0, b.0, 0],
        days: [a.1, b.1, 0],
        len: 2,
    }
}

const fn hidden3(a: (u8, u8), b: (u8, u8), c: (u8, u8)) -> HiddenStems {
    HiddenStems {
        stems: [a.0, b.0, c.0],
        days: [a.1, b.1, c.1],
        len: 3,
    }
}

/// Hidden stems per branch, indexed by `code - 10` (자 first). 월률분야 days:
/// 자 임10 계20 · 축 계9 신3 기18 · 인 무7 병7 갑16 · 묘 갑10 을20 · 진 을9 계3 무18 ·
/// 사 무7 경7 병16 · 오 병10 기9 정11 · 미 정9 을3 기18 · 신 무7 임7 경16 · 유 경10 신20 ·
/// 술 신9 정3 무18 · 해 무7 갑7 임16.
pub const HIDDEN_STEMS: [HiddenStems; 12] = [
    hidden2((8, 10), (9, 20)),
    hidden3((9, 9), (7, 3), (5, 18)),
    hidden3((4, 7), (2, 7), (0, 16)),
    hidden2((0, 10), (1, 20)),
    hidden3((1, 9), (9, 3), (4, 18)),
    hidden3((4, 7), (6, 7), (2, 16)),
    hidden3((2, 10), (5, 9), (3, 11)),
    hidden3((3, 9), (1, 3), (5, 18)),
    hidden3((4, 7), (8, 7), (6, 16)),
    hidden2((6, 10), (7, 20)),
    hidden3((7, 9), (3, 3), (4, 18)),
    hidden3((4, 7), (0, 7), (8, 16)),
];

/// The 60 pillar names of the sexagenary cycle, indexed by cycle position (0 = 갑자).
pub const GANJI_60: [&str; 60] = [
    "갑자", "을축", "병인", "정묘", "무진", "기사", "경오", "신미", "임신", "계유", "갑술", "을해",
    "병자", "정축", "무인", "기묘", "경진", "신사", "임오", "계미", "갑신", "을유", "병술", "정해",
    "무자", "기축", "경인", "신묘", "임진", "계사", "갑오", "을미", "병신", "정유", "무술", "기해",
    "경자", "신축", "임인", "계묘", "갑진", "을사", "병오", "정미", "무신", "기유", "경술", "신해",
    "임자", "계축", "갑인", "을묘", "병진", "정사", "무오", "기미", "경신", "신유", "임술", "계해",
];

/// Cycle position (0 = 갑자) of a stem index (0–9) and branch index (0–11) of equal parity.
pub const fn cycle_index(stem: u8, branch: u8) -> u8 {
    // The position p satisfies p ≡ stem (mod 10) and p ≡ branch (mod 12).
    ((6 * stem as u16 + 55 * branch as u16) % 60) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_indexed_by_code() {
        for (i, row) in GANJI.iter().enumerate() {
            assert_eq!(row.code as usize, i);
            assert_eq!(row.kind == Kind::Stem, i < 10);
        }
    }

    #[test]
    fn hidden_stems_cover_thirty_days_and_main_stem_matches_branch_element() {
        for (i, h) in HIDDEN_STEMS.iter().enumerate() {
            let total: u32 = h.iter().map(|(_, d)| u32::from(d)).sum();
            assert_eq!(total, 30, "branch {i}");
            assert_eq!(
                GANJI[h.main() as usize].element,
                GANJI[i + 10].element,
                "branch {i}"
            );
        }
    }

    #[test]
    fn cycle_index_round_trips() {
        for p in 0..60u8 {
            assert_eq!(cycle_index(p % 10, p % 12), p);
            let name = GANJI_60[p as usize];
            assert!(name.starts_with(GANJI[(p % 10) as usize].name_ko));
            assert!(name.ends_with(GANJI[(p % 12 + 10) as usize].name_ko));
        }
    }

    #[test]
    fn element_cycles() {
        assert_eq!(Element::Wood.generates(), Element::Fire);
        assert_eq!(Element::Water.generates(), Element::Wood);
        assert_eq!(Element::Wood.controls(), Element::Earth);
        assert_eq!(Element::Metal.controls(), Element::Wood);
    }

    #[test]
    fn groups_are_sorted_and_members_have_the_right_kind() {
        for w in INTERACTION_GROUPS.windows(2) {
            assert!(w[0].id < w[1].id);
        }
        for g in INTERACTION_GROUPS {
            assert_eq!(g.id / 100 * 100, g.category.parent_id());
            for &m in g.members {
                assert_eq!(m < 10, g.category.is_stem(), "group {}", g.id);
            }
        }
    }
}
