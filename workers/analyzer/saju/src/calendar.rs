//! Proleptic Gregorian calendar arithmetic and the parsing of birth instants and clock
//! times. Days are counted from 1970-01-01 (day 0), instants in whole seconds since the
//! Unix epoch; both fit any date this crate meets with room to spare.

use std::borrow::Cow;

use crate::error::{DateText, Error};

/// Seconds in a civil day.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Julian Day Number of 1970-01-01.
pub const JDN_UNIX_EPOCH: i64 = 2_440_588;

/// First supported civil date of birth.
pub const MIN_DATE: (i32, u8, u8) = (1900, 1, 1);
/// Last supported civil date of birth.
pub const MAX_DATE: (i32, u8, u8) = (2100, 12, 31);

/// A point in time, in whole seconds since 1970-01-01T00:00:00Z (sub-second parts of the
/// input are dropped: no convention resolves a pillar finer than a minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub i64);

impl Instant {
    /// The instant `seconds` after the Unix epoch.
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Instant(seconds)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix_seconds(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM[:SS[.frac]]` followed by `Z` or a
    /// `±HH:MM` offset. Also accepts a space or `t` for `T`, `z` for `Z`, and the shorter
    /// offsets `±HH` and `±HHMM` that PostgreSQL prints for `TIMESTAMPTZ`. Never panics.
    pub fn parse_rfc3339(text: &str) -> Result<Self, Error> {
        parse_rfc3339(text.as_bytes()).map_err(|why| {
            Error::parse(
                "birth",
                format!(
                    "{why} in {text:?} (expected an RFC 3339 date and time with its offset, \
                         e.g. 1990-05-15T14:30:00+09:00)"
                ),
            )
        })
    }
}

/// A date and time on some civil clock (no zone attached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDateTime {
    /// Gregorian year.
    pub year: i32,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
    /// Hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Second 0–59.
    pub second: u8,
}

impl CivilDateTime {
    /// Builds a validated date-time.
    pub fn new(
        year: i32,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
    ) -> Result<Self, Error> {
        check_date(i64::from(year), i64::from(month), i64::from(day))?;
        if hour > 23 || minute > 59 || second > 59 {
            return Err(Error::parse(
                "time",
                format!("{hour:02}:{minute:02}:{second:02} is not a clock time"),
            ));
        }
        Ok(CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Seconds since 1970-01-01 00:00:00 on the same clock.
    pub fn clock_seconds(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * SECONDS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The date-time `seconds` after 1970-01-01 00:00:00 on some clock.
    pub fn from_clock_seconds(seconds: i64) -> Self {
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let rem = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        CivilDateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Fails with [`Error::OutOfRange`] unless the date is within
    /// [`MIN_DATE`]..=[`MAX_DATE`].
    pub fn check_supported(&self) -> Result<(), Error> {
        let key = (self.year, self.month, self.day);
        if key < MIN_DATE || key > MAX_DATE {
            return Err(Error::OutOfRange {
                date: self.date_text(),
            });
        }
        Ok(())
    }

    pub(crate) fn date_text(&self) -> DateText {
        DateText {
            year: i64::from(self.year),
            month: i64::from(self.month),
            day: i64::from(self.day),
        }
    }
}

/// Whether `year` is a Gregorian leap year.
pub const fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in a Gregorian month (0 for a month outside 1–12).
pub const fn days_in_month(year: i64, month: i64) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Fails with [`Error::InvalidDate`] unless the date exists.
pub fn check_date(year: i64, month: i64, day: i64) -> Result<(), Error> {
    if (1..=12).contains(&month) && day >= 1 && day <= i64::from(days_in_month(year, month)) {
        Ok(())
    } else {
        Err(Error::InvalidDate {
            date: DateText { year, month, day },
        })
    }
}

/// Days from 1970-01-01 to the given Gregorian date (H. Hinnant's algorithm).
pub const fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = year as i64 - (month <= 2) as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Gregorian date `days` after 1970-01-01.
pub const fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + (month <= 2) as i64;
    (year as i32, month, day)
}

/// Parses a clock time `HH:MM` or `HH:MM:SS` into seconds after midnight.
pub fn parse_clock_time(text: &str) -> Result<u32, Error> {
    let b = text.as_bytes();
    let bad = || Error::parse("time", format!("{text:?} is not HH:MM or HH:MM:SS"));
    if b.len() != 5 && b.len() != 8 {
        return Err(bad());
    }
    let h = two_digits(b, 0).ok_or_else(bad)?;
    let m = two_digits(b, 3).ok_or_else(bad)?;
    let s = if b.len() == 8 {
        if b[5] != b':' {
            return Err(bad());
        }
        two_digits(b, 6).ok_or_else(bad)?
    } else {
        0
    };
    if b[2] != b':' || h > 23 || m > 59 || s > 59 {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + s)
}

fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
    if x.is_ascii_digit() && y.is_ascii_digit() {
        Some(u32::from(x - b'0') * 10 + u32::from(y - b'0'))
    } else {
        None
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for i in 0..n {
        let c = *b.get(at + i)?;
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn parse_rfc3339(b: &[u8]) -> Result<Instant, Cow<'static, str>> {
    let year = digits(b, 0, 4).ok_or("bad year")?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err("bad date separator".into());
    }
    let month = two_digits(b, 5).ok_or("bad month")?;
    let day = two_digits(b, 8).ok_or("bad day")?;
    if month == 0 || month > 12 {
        return Err(format!("month {month:02} is not 01-12").into());
    }
    let days = days_in_month(year.into(), month.into());
    if day == 0 || day > u32::from(days) {
        return Err(format!(
            "{year:04}-{month:02} has {days} days, so day {day:02} does not exist"
        )
        .into());
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return Err("missing time".into());
    }
    let hour = two_digits(b, 11).ok_or("bad hour")?;
    if b.get(13) != Some(&b':') {
        return Err("bad time separator".into());
    }
    let minute = two_digits(b, 14).ok_or("bad minute")?;
    let mut at = 16;
    let mut second = 0;
    if b.get(at) == Some(&b':') {
        second = two_digits(b, at + 1).ok_or("bad second")?;
        at += 3;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return Err("bad fraction".into());
            }
        }
    }
    let offset = match b.get(at) {
        Some(b'Z' | b'z') if b.len() == at + 1 => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = two_digits(b, at + 1).ok_or("bad offset")?;
            let rest = &b[at + 3..];
            let om = match rest {
                [] => 0,
                [b':', ..] if rest.len() == 3 => two_digits(rest, 1).ok_or("bad offset")?,
                _ if rest.len() == 2 => two_digits(rest, 0).ok_or("bad offset")?,
                _ => return Err("bad offset".into()),
            };
            if oh > 23 || om > 59 {
                return Err("bad offset".into());
            }
            let secs = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err("missing or bad UTC offset".into()),
    };
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!(
            "{hour:02}:{minute:02}:{second:02} is not a clock time (00:00:00-23:59:59)"
        )
        .into());
    }
    // A leap second is read as the last second of its minute.
    let second = second.min(59);
    let clock = CivilDateTime {
        year: year as i32,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
    }
    .clock_seconds();
    Ok(Instant(clock - offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 7) + JDN_UNIX_EPOCH, 2_451_551);
        for d in days_from_civil(1899, 1, 1)..days_from_civil(2102, 1, 1) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn parses_rfc3339_variants() {
        let base = Instant::parse_rfc3339("2024-02-04T17:28:00+09:00").unwrap();
        assert_eq!(base.0, 1_707_035_280);
        for t in [
            "2024-02-04T08:28:00Z",
            "2024-02-04t08:28:00z",
            "2024-02-04 17:28:00+09",
            "2024-02-04T17:28+09:00",
            "2024-02-04T17:28:00.999+0900",
            "2024-02-04T03:28:00-05:00",
        ] {
            assert_eq!(Instant::parse_rfc3339(t).unwrap(), base, "{t}");
        }
        for t in [
            "",
            "2024-02-04",
            "2024-02-30T00:00:00Z",
            "2024-02-04T24:00:00Z",
            "2024-02-04T17:28:00",
            "2024-02-04T17:28:00+9",
            "2024-02-04T17:28:00Zjunk",
            "２０２４-02-04T00:00:00Z",
            "2024-02-04T17:28:00.+09:00",
        ] {
            assert!(Instant::parse_rfc3339(t).is_err(), "{t}");
        }
    }

    #[test]
    fn parses_clock_times() {
        assert_eq!(parse_clock_time("14:30").unwrap(), 52_200);
        assert_eq!(parse_clock_time("23:59:59").unwrap(), 86_399);
        for t in ["24:00", "1:30", "12:60", "12-30", "12:30:6"] {
            assert!(parse_clock_time(t).is_err(), "{t}");
        }
    }

    #[test]
    fn validates_dates() {
        assert!(check_date(2024, 2, 29).is_ok());
        assert!(check_date(2023, 2, 29).is_err());
        assert!(check_date(2100, 2, 29).is_err());
        assert!(check_date(2000, 13, 1).is_err());
    }
}
