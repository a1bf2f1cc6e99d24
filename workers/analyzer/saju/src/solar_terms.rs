//! The 24 solar terms (절기) 1899–2101 as exact instants, and the 절 month (절월) an
//! instant falls in.
//!
//! The instants are computed by [`crate::astro`] (VSOP87D apparent solar longitude with
//! nutation, aberration and ΔT) and kept as a generated table of Unix seconds in
//! `solar_terms/table.rs` (regenerate with `cargo run -p saju --example gen_solar_terms`;
//! a test recomputes the whole table and checks it is unchanged). Looking a month up is
//! one table read and one comparison.

mod table;

use crate::astro;
use crate::calendar::{civil_from_days, days_from_civil, SECONDS_PER_DAY};

/// First Gregorian year in the table (so that 1900-01-01 has a preceding 절).
pub const FIRST_YEAR: i32 = 1899;
/// Last Gregorian year in the table (so that 2100-12-31 has a following 절).
pub const LAST_YEAR: i32 = 2101;
/// Terms per year.
pub const TERMS_PER_YEAR: usize = 24;

/// Korean names of the 24 terms in calendar order from 소한 (index 0). Even indices are
/// the 12 절 that open the months; odd ones are the 중기.
pub const TERM_NAMES: [&str; 24] = [
    "소한", "대한", "입춘", "우수", "경칩", "춘분", "청명", "곡우", "입하", "소만", "망종", "하지",
    "소서", "대서", "입추", "처서", "백로", "추분", "한로", "상강", "입동", "소설", "대설", "동지",
];

/// Apparent solar longitude (degrees) of term `index` (0 = 소한 at 285°).
pub const fn term_longitude(index: usize) -> u32 {
    ((285 + 15 * index) % 360) as u32
}

/// The instant (Unix seconds) of term `index` (0 = 소한 … 23 = 동지) of Gregorian `year`,
/// from the table; `None` outside [`FIRST_YEAR`]..=[`LAST_YEAR`] or for `index` ≥ 24.
pub fn term_instant(year: i32, index: usize) -> Option<i64> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) || index >= TERMS_PER_YEAR {
        return None;
    }
    Some(table::TERMS[(year - FIRST_YEAR) as usize * TERMS_PER_YEAR + index])
}

/// Computes term `index` of `year` from the theory (Unix seconds, rounded), ignoring the
/// table. Used by the table generator and its test.
pub fn compute_term(year: i32, index: usize) -> i64 {
    // Terms come about every 15.2 days from 소한 near 6 January.
    let guess_days = days_from_civil(year, 1, 6) as f64 + 15.218_4 * index as f64;
    let jd = astro::sun_longitude_instant(
        f64::from(term_longitude(index)),
        astro::JD_UNIX_EPOCH + guess_days,
    );
    ((jd - astro::JD_UNIX_EPOCH) * SECONDS_PER_DAY as f64).round() as i64
}

/// Computes the whole table from the theory (what `solar_terms/table.rs` holds).
pub fn compute_table() -> Vec<i64> {
    (FIRST_YEAR..=LAST_YEAR)
        .flat_map(|y| (0..TERMS_PER_YEAR).map(move |i| compute_term(y, i)))
        .collect()
}

/// The 절 month containing an instant: the 절 that opened it and the one that closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JieMonth {
    /// Position of the opening 절 counted from 소한 1899 (0); `% 12` is 0 for 소한 (축월),
    /// 1 for 입춘 (인월), … 11 for 대설 (자월).
    pub jie: u32,
    /// Instant (Unix seconds) of the opening 절.
    pub start: i64,
    /// Instant (Unix seconds) of the next 절.
    pub end: i64,
}

impl JieMonth {
    /// The month's branch code: 소한 → 축 (11), 입춘 → 인 (12), … 대설 → 자 (10).
    pub const fn branch_code(&self) -> u8 {
        10 + ((self.jie % 12 + 1) % 12) as u8
    }

    /// The saju year (which changes at 입춘) of the instants in this month.
    pub const fn saju_year(&self) -> i32 {
        let year = FIRST_YEAR + (self.jie / 12) as i32;
        if self.jie % 12 == 0 {
            year - 1
        } else {
            year
        }
    }

    /// Index of the opening 절 within its Gregorian year (0 = 소한, 2 = 입춘, …).
    pub const fn term_index(&self) -> usize {
        (self.jie % 12) as usize * 2
    }

    /// Gregorian year of the opening 절.
    pub const fn term_year(&self) -> i32 {
        FIRST_YEAR + (self.jie / 12) as i32
    }
}

#[inline]
fn jie_at(g: usize) -> i64 {
    table::TERMS[g * 2]
}

/// Number of 절 in the table.
const JIE_COUNT: usize = (LAST_YEAR - FIRST_YEAR + 1) as usize * 12;

/// The 절 month containing `unix_seconds`, or `None` if the table does not cover both its
/// ends (before 소한 1899 or from 대설 2101 on).
#[inline]
pub fn jie_month(unix_seconds: i64) -> Option<JieMonth> {
    // Each 절 falls on day 3–9 of its Gregorian month in any clock, so the UTC month gives
    // the right 절 or the one after it.
    let (y, m, _) = civil_from_days(unix_seconds.div_euclid(SECONDS_PER_DAY));
    let mut g = (i64::from(y) - i64::from(FIRST_YEAR)) * 12 + i64::from(m) - 1;
    if g < 0 || g as usize >= JIE_COUNT {
        return None;
    }
    if unix_seconds < jie_at(g as usize) {
        g -= 1;
        if g < 0 {
            return None;
        }
    }
    let g = g as usize;
    if g + 1 >= JIE_COUNT {
        return None;
    }
    Some(JieMonth {
        jie: g as u32,
        start: jie_at(g),
        end: jie_at(g + 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CivilDateTime;

    const KST: i64 = 9 * 3600;

    fn kst(y: i32, mo: u8, d: u8, h: u8, mi: u8) -> i64 {
        CivilDateTime::new(y, mo, d, h, mi, 0)
            .unwrap()
            .clock_seconds()
            - KST
    }

    fn kst_minute(t: i64) -> CivilDateTime {
        CivilDateTime::from_clock_seconds(t + KST)
    }

    #[test]
    fn table_is_what_the_theory_gives() {
        let computed = compute_table();
        assert_eq!(computed.len(), table::TERMS.len());
        for (i, (a, b)) in computed.iter().zip(table::TERMS.iter()).enumerate() {
            // Allow one second for floating-point differences between platforms.
            assert!((a - b).abs() <= 1, "term {i}: computed {a}, table {b}");
        }
    }

    #[test]
    fn each_jie_falls_early_in_its_own_month() {
        for g in 0..JIE_COUNT {
            let t = jie_at(g);
            let (y, m, d) = civil_from_days(t.div_euclid(SECONDS_PER_DAY));
            assert_eq!((y - FIRST_YEAR) as usize * 12 + m as usize - 1, g);
            assert!((3..=9).contains(&d), "jie {g} on day {d}");
        }
        for w in table::TERMS.windows(2) {
            assert!(w[1] - w[0] > 14 * SECONDS_PER_DAY && w[1] - w[0] < 17 * SECONDS_PER_DAY);
        }
    }

    #[test]
    fn published_kasi_minutes() {
        // (year, term index, KST date-time to the minute) as published by KASI, which
        // rounds to the nearest minute (소한 2023 is 00:04:4x, published as 00:05).
        let cases = [
            (2024, 2, (2024, 2, 4, 17, 27)), // 입춘
            (2017, 2, (2017, 2, 4, 0, 34)),  // 입춘
            (2023, 0, (2023, 1, 6, 0, 5)),   // 소한
        ];
        for (year, index, (y, mo, d, h, mi)) in cases {
            let t = term_instant(year, index).unwrap();
            let c = kst_minute(t + 30);
            assert_eq!(
                (c.year, c.month, c.day, c.hour, c.minute),
                (y, mo, d, h, mi),
                "{} {year}",
                TERM_NAMES[index]
            );
        }
    }

    #[test]
    fn month_lookup_switches_at_the_jie() {
        let before = jie_month(kst(2024, 2, 4, 17, 26)).unwrap();
        let after = jie_month(kst(2024, 2, 4, 17, 28)).unwrap();
        assert_eq!((before.saju_year(), before.branch_code()), (2023, 11));
        assert_eq!((after.saju_year(), after.branch_code()), (2024, 12));
        let m = jie_month(kst(2023, 1, 6, 0, 3)).unwrap();
        assert_eq!((m.saju_year(), m.branch_code()), (2022, 10));
        for g in 1..JIE_COUNT - 1 {
            let t = jie_at(g);
            assert_eq!(jie_month(t).unwrap().jie as usize, g);
            assert_eq!(jie_month(t - 1).unwrap().jie as usize, g - 1);
        }
        assert!(jie_month(kst(1899, 1, 1, 0, 0)).is_none());
        assert!(jie_month(kst(2101, 12, 31, 0, 0)).is_none());
    }
}
