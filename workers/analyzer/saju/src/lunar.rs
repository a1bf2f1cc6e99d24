//! The Korean lunar calendar (음력) as published by KASI (한국천문연구원), lunar years
//! 1899–2050: conversion of a lunar date with its leap-month flag to the solar date, and
//! back. The Korean calendar differs from the Chinese one in several years (leap months of
//! 2012 and 2017, 설날 of 1997 and 2027–28), so Chinese tables must not be used.
//!
//! The table (`lunar/table.rs`) is generated from the `korean-lunar-calendar` package by
//! `scripts/reference/gen_lunar_table.py`; the reference tests check every solar day of
//! 1900–2050 against that package.

mod table;

use crate::calendar::{civil_from_days, days_from_civil};
use crate::error::{DateText, Error};

/// A date of the Korean lunar calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LunarDate {
    /// Lunar year (the Gregorian year in which it mostly falls).
    pub year: i32,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–30.
    pub day: u8,
    /// Whether this is the leap (intercalary, 윤달) month that follows `month`.
    pub leap: bool,
}

/// First lunar year supported.
pub const FIRST_YEAR: i32 = table::FIRST_YEAR;
/// Last lunar year supported.
pub const LAST_YEAR: i32 = table::FIRST_YEAR + table::YEARS.len() as i32 - 1;

#[derive(Clone, Copy)]
struct Year {
    new_year: i64,
    packed: u32,
}

impl Year {
    fn get(year: i64) -> Option<Year> {
        let i = usize::try_from(year - i64::from(FIRST_YEAR)).ok()?;
        let &(new_year, packed) = table::YEARS.get(i)?;
        Some(Year {
            new_year: i64::from(new_year),
            packed,
        })
    }

    const fn leap_month(self) -> u8 {
        ((self.packed >> 13) & 0xF) as u8
    }

    const fn month_days(self, month: u8) -> u8 {
        if self.packed >> (month - 1) & 1 == 1 {
            30
        } else {
            29
        }
    }

    const fn leap_days(self) -> u8 {
        if self.packed >> 12 & 1 == 1 {
            30
        } else {
            29
        }
    }

    /// The months of the year in order, as `(month, leap, days)`.
    fn months(self) -> impl Iterator<Item = (u8, bool, u8)> {
        let leap = self.leap_month();
        (1..=12u8).flat_map(move |m| {
            let regular = Some((m, false, self.month_days(m)));
            let intercalary = (m == leap).then(|| (m, true, self.leap_days()));
            regular.into_iter().chain(intercalary)
        })
    }
}

impl LunarDate {
    /// Checks a lunar date and converts it to the solar (Gregorian) date, as days since
    /// 1970-01-01. Errors name what is wrong: a year outside the table, a leap month the
    /// year does not have, a day past the end of its month.
    pub fn to_days(&self) -> Result<i64, Error> {
        let (year, month, day) = (
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let y = Year::get(year).ok_or(Error::LunarOutOfRange {
            date: DateText { year, month, day },
        })?;
        let no_day = |days| Error::NoSuchLunarDay {
            year,
            month,
            leap: self.leap,
            day,
            days,
        };
        if !(1..=12).contains(&self.month) {
            return Err(no_day(0));
        }
        if self.leap && y.leap_month() != self.month {
            return Err(Error::NoLeapMonth { year, month });
        }
        let mut offset = 0i64;
        for (m, leap, days) in y.months() {
            if m == self.month && leap == self.leap {
                if self.day == 0 || self.day > days {
                    return Err(no_day(days));
                }
                return Ok(y.new_year + offset + day - 1);
            }
            offset += i64::from(days);
        }
        Err(no_day(0))
    }

    /// The solar (Gregorian) date `(year, month, day)`; see [`LunarDate::to_days`].
    pub fn to_solar(&self) -> Result<(i32, u8, u8), Error> {
        self.to_days().map(civil_from_days)
    }

    /// The lunar date of a solar date given as days since 1970-01-01, or `None` outside
    /// the table.
    pub fn from_days(days: i64) -> Option<LunarDate> {
        let i = table::YEARS.partition_point(|&(n, _)| i64::from(n) <= days);
        let year = i64::from(FIRST_YEAR) + i as i64 - 1;
        let y = Year::get(year)?;
        let mut offset = days - y.new_year;
        for (month, leap, len) in y.months() {
            if offset < i64::from(len) {
                return Some(LunarDate {
                    year: year as i32,
                    month,
                    day: offset as u8 + 1,
                    leap,
                });
            }
            offset -= i64::from(len);
        }
        None
    }

    /// The lunar date of a solar date, or `None` outside the table.
    pub fn from_solar(year: i32, month: u8, day: u8) -> Option<LunarDate> {
        Self::from_days(days_from_civil(year, month, day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lunar(year: i32, month: u8, day: u8, leap: bool) -> LunarDate {
        LunarDate {
            year,
            month,
            day,
            leap,
        }
    }

    #[test]
    fn years_are_contiguous() {
        for i in 0..table::YEARS.len() - 1 {
            let y = Year::get(i64::from(FIRST_YEAR) + i as i64).unwrap();
            let total: i64 = y.months().map(|(_, _, d)| i64::from(d)).sum();
            assert_eq!(
                y.new_year + total,
                i64::from(table::YEARS[i + 1].0),
                "year {i}"
            );
        }
    }

    #[test]
    fn known_korean_dates() {
        // 설날 differs from the Chinese calendar in 1997 and 2027.
        assert_eq!(lunar(1997, 1, 1, false).to_solar().unwrap(), (1997, 2, 8));
        assert_eq!(lunar(2027, 1, 1, false).to_solar().unwrap(), (2027, 2, 7));
        // KASI leap months: 2012 윤3월, 2017 윤5월, 2020 윤4월.
        assert!(lunar(2012, 3, 1, true).to_solar().is_ok());
        assert!(lunar(2017, 5, 1, true).to_solar().is_ok());
        assert_eq!(lunar(2020, 4, 15, true).to_solar().unwrap(), (2020, 6, 6));
        assert_eq!(
            LunarDate::from_solar(2020, 6, 6).unwrap(),
            lunar(2020, 4, 15, true)
        );
    }

    #[test]
    fn invalid_dates_are_clear_errors() {
        assert_eq!(
            lunar(2021, 4, 1, true).to_solar().unwrap_err().to_string(),
            "lunar 2021-04 has no leap month"
        );
        let e = lunar(2021, 1, 30, false).to_solar().unwrap_err();
        assert!(matches!(e, Error::NoSuchLunarDay { days: 29, .. }), "{e}");
        assert!(lunar(2021, 13, 1, false).to_solar().is_err());
        assert!(lunar(2021, 1, 0, false).to_solar().is_err());
        assert!(matches!(
            lunar(1850, 1, 1, false).to_solar(),
            Err(Error::LunarOutOfRange { .. })
        ));
        assert!(lunar(2051, 1, 1, false).to_solar().is_err());
    }

    #[test]
    fn round_trips_every_day_of_the_table() {
        let first = i64::from(table::YEARS[0].0);
        let last = i64::from(table::YEARS[table::YEARS.len() - 1].0) + 353;
        for d in first..last {
            let l = LunarDate::from_days(d).unwrap();
            assert_eq!(l.to_days().unwrap(), d, "{l:?}");
        }
    }
}
