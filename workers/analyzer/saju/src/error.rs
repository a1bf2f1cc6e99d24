//! The one error type of the engine. Every error is about the input (a date that does not
//! exist, a value outside the supported range, text that does not parse), so none is
//! retryable: a message that fails here belongs on the dead-letter path.

use std::fmt;

/// A calendar date, kept for error messages without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateText {
    /// Year (may be far outside the supported range).
    pub year: i64,
    /// Month 1–12 (as given).
    pub month: i64,
    /// Day 1–31 (as given).
    pub day: i64,
}

impl fmt::Display for DateText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Why a chart could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The civil date of birth is outside 1900-01-01..=2100-12-31.
    #[error("date {date} is outside the supported range 1900-01-01..2100-12-31")]
    OutOfRange {
        /// The offending civil date.
        date: DateText,
    },
    /// A solar (Gregorian) date that does not exist, such as 2023-02-29.
    #[error("date {date} does not exist")]
    InvalidDate {
        /// The offending date as given.
        date: DateText,
    },
    /// A lunar date outside the KASI table this crate carries (lunar years 1899–2050).
    #[error("lunar date {date} is outside the supported lunar years 1899-2050")]
    LunarOutOfRange {
        /// The lunar date as given.
        date: DateText,
    },
    /// A leap month was asked for in a year whose leap month is another one, or none.
    #[error("lunar {year:04}-{month:02} has no leap month")]
    NoLeapMonth {
        /// Lunar year.
        year: i64,
        /// Lunar month asked for.
        month: i64,
    },
    /// A lunar day beyond the end of its month (day 30 of a 29-day month), or a month
    /// outside 1–12.
    #[error("lunar {year:04}-{month:02}{leap} has {days} days, so day {day} does not exist", leap = if *leap { " (leap)" } else { "" })]
    NoSuchLunarDay {
        /// Lunar year.
        year: i64,
        /// Lunar month.
        month: i64,
        /// Whether the leap month was asked for.
        leap: bool,
        /// The day asked for.
        day: i64,
        /// The length of that month (0 when the month itself does not exist).
        days: u8,
    },
    /// Text that does not parse as what a field requires.
    #[error("invalid {field}: {message}")]
    Parse {
        /// Which field: `birth`, `time`, `zone`, `gender`, …
        field: &'static str,
        /// What was wrong, including the offending text.
        message: String,
    },
}

impl Error {
    /// Always `false`: the engine is a pure function of its input, so retrying the same
    /// input gives the same error. Callers should dead-letter the message.
    pub const fn is_retryable(&self) -> bool {
        false
    }

    pub(crate) fn parse(field: &'static str, message: impl Into<String>) -> Self {
        Error::Parse {
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        let e = Error::OutOfRange {
            date: DateText {
                year: 1850,
                month: 1,
                day: 1,
            },
        };
        assert_eq!(
            e.to_string(),
            "date 1850-01-01 is outside the supported range 1900-01-01..2100-12-31"
        );
        let e = Error::NoLeapMonth {
            year: 2021,
            month: 4,
        };
        assert_eq!(e.to_string(), "lunar 2021-04 has no leap month");
        let e = Error::NoSuchLunarDay {
            year: 2021,
            month: 2,
            leap: false,
            day: 30,
            days: 29,
        };
        assert_eq!(
            e.to_string(),
            "lunar 2021-02 has 29 days, so day 30 does not exist"
        );
        assert!(!e.is_retryable());
    }
}
