//! Luck pillars (대운): ten-year periods stepping from the month pillar.
//!
//! The direction is forward (순행) for a yang year stem and a man or a yin year stem and a
//! woman, backward (역행) otherwise. The start age counts the time from birth to the next
//! 절 (forward) or back to the previous 절 (backward) at 3 days = 1 year; the
//! conventional 대운수 is that rounded to the nearest year, at least 1.

use crate::pillars::{Gender, Pillars};
use crate::tables::cycle_index;

/// How many luck pillars a chart lists.
pub const LUCK_PILLARS: usize = 10;

/// Seconds of life per year of start age: 3 days.
const SECONDS_PER_START_YEAR: i64 = 3 * 86_400;

/// Which way the luck pillars step through the sexagenary cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// 순행: month pillar + 1, + 2, …
    Forward,
    /// 역행: month pillar − 1, − 2, …
    Backward,
}

impl Direction {
    /// `forward` or `backward`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        }
    }
}

/// The luck pillars of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Luck {
    /// Step direction.
    pub direction: Direction,
    /// Time from birth to the adjacent 절 in that direction, in seconds.
    pub distance_seconds: i64,
    /// 대운수: the age (in years) at which the first luck pillar begins.
    pub start_age: u8,
    /// Cycle positions (0 = 갑자) of the luck pillars, first to last.
    pub pillars: [u8; LUCK_PILLARS],
}

impl Luck {
    /// Computes the luck pillars from the natal pillars and gender.
    pub fn compute(p: &Pillars, gender: Gender) -> Luck {
        let yang_year = p.codes[0] % 2 == 0;
        let direction = if yang_year == (gender == Gender::Male) {
            Direction::Forward
        } else {
            Direction::Backward
        };
        let distance_seconds = match direction {
            Direction::Forward => p.month.end - p.instant,
            Direction::Backward => p.instant - p.month.start,
        };
        let rounded = (distance_seconds + SECONDS_PER_START_YEAR / 2) / SECONDS_PER_START_YEAR;
        let start_age = rounded.clamp(1, 99) as u8;
        let month = cycle_index(p.codes[2], p.codes[3] - 10);
        let pillars = std::array::from_fn(|i| {
            let step = i as i16 + 1;
            let step = if direction == Direction::Forward {
                step
            } else {
                -step
            };
            (i16::from(month) + step).rem_euclid(60) as u8
        });
        Luck {
            direction,
            distance_seconds,
            start_age,
            pillars,
        }
    }

    /// The exact start age in hundredths of a year (distance ÷ 3 days), for display.
    pub fn start_years_centi(&self) -> i64 {
        (self.distance_seconds * 100 + SECONDS_PER_START_YEAR / 2) / SECONDS_PER_START_YEAR
    }

    /// Age at which luck pillar `i` (0-based) begins.
    pub fn age_of(&self, i: usize) -> u16 {
        u16::from(self.start_age) + 10 * i as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CivilDateTime;
    use crate::pillars::{Birth, Options};
    use crate::tables::GANJI_60;

    #[test]
    fn direction_and_start_age() {
        // 2024-02-04 17:28 KST, just after 입춘 (17:27): 갑진 year (yang), 병인 month.
        let birth = Birth::Civil(CivilDateTime::new(2024, 2, 4, 17, 28, 0).unwrap());
        let p = Pillars::compute(&birth, &Options::default()).unwrap();
        let man = Luck::compute(&p, Gender::Male);
        assert_eq!(man.direction, Direction::Forward);
        // 경칩 is 2024-03-05: about 30 days → 10.
        assert_eq!(man.start_age, 10);
        assert_eq!(GANJI_60[man.pillars[0] as usize], "정묘");
        let woman = Luck::compute(&p, Gender::Female);
        assert_eq!(woman.direction, Direction::Backward);
        // A minute after 입춘 → rounds to 0, shown as 1.
        assert_eq!(woman.start_age, 1);
        assert_eq!(woman.start_years_centi(), 0);
        assert_eq!(GANJI_60[woman.pillars[0] as usize], "을축");
        assert_eq!(woman.age_of(3), 31);
    }
}
