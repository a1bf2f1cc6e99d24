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

/// First and last year [`YearLuck::compute`] covers (the solar-term table's years, less
/// the last, whose 축 month ends after it).
pub const LUCK_YEARS: std::ops::RangeInclusive<i32> =
    crate::solar_terms::FIRST_YEAR..=crate::solar_terms::LAST_YEAR - 1;

/// One month of a year's luck (월운): the 절 month's pillar and when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthLuck {
    /// Cycle position of the month pillar (stem by 오호둔 from the year stem).
    pub pillar: u8,
    /// The opening 절, index into [`crate::solar_terms::TERM_NAMES`].
    pub term: usize,
    /// Instant (Unix seconds) of the opening 절 (절입).
    pub starts: i64,
}

/// A year's luck (세운) for a chart: the pillar of the saju year that begins at that
/// Gregorian year's 입춘, its ten gods for the chart's day master, the interactions it
/// takes part in with the chart, and its twelve months from 인월 (입춘) to 축월 (소한 of the
/// next Gregorian year).
#[derive(Debug, Clone, Copy)]
pub struct YearLuck {
    /// The Gregorian year whose 입춘 begins it.
    pub year: i32,
    /// Cycle position of the year pillar.
    pub pillar: u8,
    /// Ten gods of its stem and of its branch (main hidden stem) for the day master.
    pub ten_gods: [crate::analysis::TenGod; 2],
    /// Interactions with the chart the year pillar takes part in (position bit 4).
    pub interactions: crate::interactions::Interactions,
    /// The twelve months, 인 first.
    pub months: [MonthLuck; 12],
}

impl YearLuck {
    /// The luck of `year` for the chart with the eight `codes`; an error outside
    /// [`LUCK_YEARS`].
    pub fn compute(codes: &[u8; 8], year: i32) -> Result<YearLuck, crate::Error> {
        use crate::analysis::TenGod;
        use crate::solar_terms::term_instant;
        use crate::tables::HIDDEN_STEMS;
        if !LUCK_YEARS.contains(&year) {
            return Err(crate::Error::parse(
                "luck year",
                format!(
                    "{year} is outside the years with solar terms, {}..={}",
                    LUCK_YEARS.start(),
                    LUCK_YEARS.end()
                ),
            ));
        }
        let stem = (year - 4).rem_euclid(10) as u8;
        let branch = 10 + (year - 4).rem_euclid(12) as u8;
        let day_stem = codes[4];
        let months = std::array::from_fn(|i| {
            // 인 (12) … 자 (10) open at 입춘 (2) … 대설 (22); 축 at 소한 (0) of the next year.
            let month_branch = 10 + ((i + 2) % 12) as u8;
            let (term_year, term) = if i < 11 {
                (year, 2 + 2 * i)
            } else {
                (year + 1, 0)
            };
            let month_stem = crate::stars::month_stem(stem, month_branch);
            MonthLuck {
                pillar: cycle_index(month_stem, month_branch - 10),
                term,
                starts: term_instant(term_year, term).unwrap_or_default(),
            }
        });
        Ok(YearLuck {
            year,
            pillar: cycle_index(stem, branch - 10),
            ten_gods: [
                TenGod::of(day_stem, stem),
                TenGod::of(day_stem, HIDDEN_STEMS[usize::from(branch - 10)].main()),
            ],
            interactions: crate::interactions::Interactions::with_pillar(codes, stem, branch),
            months,
        })
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

    #[test]
    fn a_year_of_luck() {
        // 2024-02-04 17:28 KST: 갑진 병인 무술 신유 (day master 무).
        let birth = Birth::Civil(CivilDateTime::new(2024, 2, 4, 17, 28, 0).unwrap());
        let p = Pillars::compute(&birth, &Options::default()).unwrap();
        let luck = YearLuck::compute(&p.codes, 2027).unwrap();
        // 2027 is 정미; 정 is 정인 of 무, 미 (main 기) 겁재.
        assert_eq!(GANJI_60[usize::from(luck.pillar)], "정미");
        assert_eq!(luck.ten_gods.map(|g| g.name_ko()), ["정인", "겁재"]);
        // 정미 years start with 임인 and end with 계축.
        assert_eq!(GANJI_60[usize::from(luck.months[0].pillar)], "임인");
        assert_eq!(GANJI_60[usize::from(luck.months[11].pillar)], "계축");
        assert_eq!(luck.months[0].term, 2);
        assert_eq!(luck.months[11].term, 0);
        assert!(luck.months.windows(2).all(|w| w[0].starts < w[1].starts));
        // 입춘 2027 falls on 4 February.
        let day = CivilDateTime::from_clock_seconds(luck.months[0].starts + 9 * 3600);
        assert_eq!((day.month, day.day), (2, 4));
        // The year's 미 clashes with the chart's 축? No: the chart has 진 인 술 유; 미 with 술
        // is 술미파 (806) and with 진 nothing; 정 with the chart's stems: none of 계.
        let ids: Vec<u16> = luck.interactions.iter().map(|i| i.group.id).collect();
        assert!(ids.contains(&806), "{ids:?}");
        assert!(luck.interactions.iter().all(|i| i.positions >> 4 & 1 == 1));
        assert!(YearLuck::compute(&p.codes, 2101).is_err());
        assert!(YearLuck::compute(&p.codes, 2100).is_ok());
    }

    #[test]
    fn year_and_month_luck_pillars_are_the_pillars_of_those_instants() {
        let codes = [0, 14, 2, 12, 4, 20, 7, 19];
        // Charts end on 2100-12-31: the 2100 축 month lies beyond.
        for year in 1900..=2099 {
            let luck = YearLuck::compute(&codes, year).unwrap();
            for (i, month) in luck.months.iter().enumerate() {
                for t in [
                    month.starts,
                    luck.months
                        .get(i + 1)
                        .map_or(month.starts + 86_400, |m| m.starts - 1),
                ] {
                    let birth = Birth::Instant(crate::Instant::from_unix_seconds(t));
                    let p = Pillars::compute(&birth, &Options::default()).unwrap();
                    let pos = p.cycle_positions();
                    assert_eq!(pos[0], luck.pillar, "year {year} month {i}");
                    assert_eq!(pos[1], month.pillar, "year {year} month {i}");
                }
            }
        }
    }
}
