//! Stem and branch interactions (합·충·형·파·해) found among the eight characters, by the
//! reference tables' group ids.
//!
//! A two-member group is present when both members appear (at any positions); a
//! three-member group (삼합, 방합, 삼형) when all three do, and is reported as partial
//! (`complete = false`, e.g. a 반합) when exactly two of its three members appear. A
//! combination between two members (천간합, 지지육합) is contested (쟁합) when one member
//! appears once and the other at two or more positions. A partial 삼합 records whether its
//! 왕지 (the middle member: 자, 묘, 오, 유) is among the two (`with_wangji`): most texts count
//! a 반합 only with it. A 자형 (진진, 오오, 유유, 해해: a group of one member) is present when
//! its branch stands at two pillars or more.

use crate::tables::{Category, InteractionGroup, INTERACTION_GROUPS};

/// Pillar names in position order.
pub const PILLAR_NAMES: [&str; 4] = ["year", "month", "day", "hour"];

/// One interaction group found in a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interaction {
    /// The reference group.
    pub group: &'static InteractionGroup,
    /// Bit `i` is set when pillar `i` (0 = year … 3 = hour) holds a member: stems for stem
    /// groups, branches for branch groups.
    pub positions: u8,
    /// Whether every member is present (always true for two-member groups).
    pub complete: bool,
    /// 쟁합: a two-member combination where one member appears once and the other twice
    /// or more.
    pub contested: bool,
    /// For a 삼합: whether its 왕지 is present (always true when complete).
    pub with_wangji: bool,
}

impl Interaction {
    /// The pillar names of [`Interaction::positions`], in order.
    pub fn position_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..4)
            .filter(move |i| self.positions >> i & 1 == 1)
            .map(|i| PILLAR_NAMES[i])
    }
}

/// Most interactions one chart can hold: every group needs two distinct codes among the
/// chart's at most four stems or four branches, which bounds the count well below this.
const CAPACITY: usize = 32;

/// Per group, the bit set of its member codes (bit = code), in table order.
const MEMBER_MASKS: [u32; INTERACTION_GROUPS.len()] = {
    let mut masks = [0u32; INTERACTION_GROUPS.len()];
    let mut i = 0;
    while i < masks.len() {
        let members = INTERACTION_GROUPS[i].members;
        let mut j = 0;
        while j < members.len() {
            masks[i] |= 1 << members[j];
            j += 1;
        }
        i += 1;
    }
    masks
};

/// One found group, compactly: index into [`INTERACTION_GROUPS`], pillar bits, flags.
#[derive(Debug, Clone, Copy, Default)]
struct Found {
    group: u8,
    positions: u8,
    complete: bool,
    contested: bool,
    with_wangji: bool,
}

/// The interactions of one chart, without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Interactions {
    items: [Found; CAPACITY],
    len: u8,
}

impl Interactions {
    /// Finds the interactions among the eight codes (as in [`crate::Pillars::codes`]).
    pub fn find(codes: &[u8; 8]) -> Interactions {
        let pillars: [[u8; 2]; 4] = std::array::from_fn(|p| [codes[2 * p], codes[2 * p + 1]]);
        Self::find_among(&pillars)
    }

    /// The interactions a fifth pillar (a year's or a month's luck pillar, `stem` and
    /// `branch` codes) takes part in with the chart: position bit 4 is that pillar.
    pub fn with_pillar(codes: &[u8; 8], stem: u8, branch: u8) -> Interactions {
        let mut pillars = [[stem, branch]; 5];
        for (p, pillar) in pillars.iter_mut().enumerate().take(4) {
            *pillar = [codes[2 * p], codes[2 * p + 1]];
        }
        let mut all = Self::find_among(&pillars);
        let mut kept = 0;
        for i in 0..usize::from(all.len) {
            if all.items[i].positions >> 4 & 1 == 1 {
                all.items[kept] = all.items[i];
                kept += 1;
            }
        }
        all.len = kept as u8;
        all
    }

    /// Finds the interactions among up to eight pillars (`[stem, branch]` codes); pillar
    /// `i` is position bit `i`.
    fn find_among(pillars: &[[u8; 2]]) -> Interactions {
        // Per code, the bit set of pillars holding it; and the set of codes present.
        let mut at = [0u8; 22];
        let mut present = 0u32;
        for (pillar, codes) in pillars.iter().enumerate() {
            for &code in codes {
                at[code as usize] |= 1 << pillar;
                present |= 1 << code;
            }
        }
        let mut out = Interactions {
            items: [Found::default(); CAPACITY],
            len: 0,
        };
        for (index, (&mask, group)) in MEMBER_MASKS.iter().zip(&INTERACTION_GROUPS).enumerate() {
            let hit = present & mask;
            if group.members.len() == 1 {
                // 자형: the one member at two pillars or more.
                let pillars = at[group.members[0] as usize];
                if pillars.count_ones() >= 2 {
                    out.push(Found {
                        group: index as u8,
                        positions: pillars,
                        complete: true,
                        contested: false,
                        with_wangji: false,
                    });
                }
                continue;
            }
            if hit.count_ones() < 2 {
                continue;
            }
            // Two of two, three of three, or two of three (partial).
            let complete = hit == mask;
            let mut positions = 0;
            let mut bits = hit;
            while bits != 0 {
                positions |= at[bits.trailing_zeros() as usize];
                bits &= bits - 1;
            }
            let contested = complete && group.category.is_pair_combination() && {
                let a = at[group.members[0] as usize].count_ones();
                let b = at[group.members[1] as usize].count_ones();
                a.min(b) == 1 && a.max(b) >= 2
            };
            let with_wangji = matches!(group.category, Category::TripleCombination)
                && present >> group.members[1] & 1 == 1;
            out.push(Found {
                group: index as u8,
                positions,
                complete,
                contested,
                with_wangji,
            });
        }
        out
    }

    fn push(&mut self, found: Found) {
        if usize::from(self.len) < CAPACITY {
            self.items[usize::from(self.len)] = found;
            self.len += 1;
        }
    }

    /// All interactions found, ordered by group id.
    pub fn iter(&self) -> impl Iterator<Item = Interaction> + '_ {
        self.items[..usize::from(self.len)]
            .iter()
            .map(|f| Interaction {
                group: &INTERACTION_GROUPS[usize::from(f.group)],
                positions: f.positions,
                complete: f.complete,
                contested: f.contested,
                with_wangji: f.with_wangji,
            })
    }

    /// Index into [`INTERACTION_GROUPS`] of each interaction, with its pillar bits and
    /// flags `(index, positions, complete, contested, with_wangji)`, for writers that keep
    /// per-group tables.
    pub fn raw(&self) -> impl Iterator<Item = (usize, u8, bool, bool, bool)> + '_ {
        self.items[..usize::from(self.len)].iter().map(|f| {
            (
                usize::from(f.group),
                f.positions,
                f.complete,
                f.contested,
                f.with_wangji,
            )
        })
    }

    /// Ids of the complete groups, ordered (what the `groups` array holds).
    pub fn complete_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.items[..usize::from(self.len)]
            .iter()
            .filter(|f| f.complete)
            .map(|f| INTERACTION_GROUPS[usize::from(f.group)].id)
    }

    /// Whether a complete group with this id was found.
    pub fn has_group(&self, id: u16) -> bool {
        self.complete_ids().any(|g| g == id)
    }

    /// Number of interactions found (complete and partial).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pairs_triples_and_contested_combinations() {
        // 을유 경진 을묘 무인: stems 을 ×2 + 경 → 을경합 contested; branches 유진 합 (304),
        // 인묘진 방합 (501), 묘유충 (604), 묘진해 (904).
        let codes = [1, 19, 6, 14, 1, 13, 4, 12];
        let found = Interactions::find(&codes);
        let ids: Vec<u16> = found.complete_ids().collect();
        assert_eq!(ids, [102, 304, 501, 604, 904]);
        let hap = found.iter().find(|i| i.group.id == 102).unwrap();
        assert!(hap.contested);
        assert_eq!(
            hap.position_names().collect::<Vec<_>>(),
            ["year", "month", "day"]
        );
        // 인오술 with only 인 present is not reported; 사유축 gets 유 only → nothing.
        assert!(found.iter().all(|i| i.group.id != 402 && i.group.id != 403));
        // 신자진: 진 only → nothing; 해묘미: 묘 only → nothing.
        let partial: Vec<u16> = found
            .iter()
            .filter(|i| !i.complete)
            .map(|i| i.group.id)
            .collect();
        assert!(partial.is_empty(), "{partial:?}");
        assert!(found.has_group(501));
        assert!(!found.has_group(401));
    }

    #[test]
    fn partial_triples_are_reported_but_not_as_groups() {
        // Branches 해 묘 자 자 with stems 갑갑갑갑: 해묘 of 해묘미 → partial 401;
        // 해자 of 해자축 → partial 504; 자묘형 703 complete.
        let codes = [0, 21, 0, 13, 0, 10, 0, 10];
        let found = Interactions::find(&codes);
        let complete: Vec<u16> = found.complete_ids().collect();
        let partial: Vec<u16> = found
            .iter()
            .filter(|i| !i.complete)
            .map(|i| i.group.id)
            .collect();
        assert_eq!(complete, [703]);
        assert_eq!(partial, [401, 504]);
        // 해묘 holds 묘, the 왕지 of 해묘미.
        assert!(
            found
                .iter()
                .find(|i| i.group.id == 401)
                .unwrap()
                .with_wangji
        );
    }

    #[test]
    fn self_punishment_needs_the_branch_twice_and_a_half_combination_its_wangji() {
        // Branches 진 인 진 술 (stems 갑): 진진자형 at year and day; 인술 of 인오술 without 오.
        let codes = [0, 14, 2, 12, 0, 14, 2, 20];
        let found = Interactions::find(&codes);
        let jahyeong = found.iter().find(|i| i.group.id == 704).unwrap();
        assert!(jahyeong.complete);
        assert_eq!(
            jahyeong.position_names().collect::<Vec<_>>(),
            ["year", "day"]
        );
        assert!(found.has_group(704));
        let half = found.iter().find(|i| i.group.id == 402).unwrap();
        assert!(!half.complete && !half.with_wangji);
        // One 오 alone is no 자형.
        let codes = [0, 16, 2, 12, 0, 14, 2, 20];
        assert!(!Interactions::find(&codes).has_group(705));
    }
}
