//! Civil clocks: which wall-clock reading an instant had where the person was born.
//!
//! `Asia/Seoul` carries the full Korean history from the IANA time zone database (local
//! mean time +8:27:52 until 1908-04-01, +8:30 in 1908–1911 and 1954-03-21–1961-08-10, +9
//! otherwise, and daylight saving in 1948–51, 1955–60 and 1987–88). A fixed offset such
//! as `+09:00` is a clock that never changes.

use std::fmt;

use crate::error::Error;

/// Where the civil clock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    /// Korean civil time with its history of offsets and daylight saving (IANA `Asia/Seoul`).
    Seoul,
    /// A fixed offset from UTC, in seconds east of Greenwich.
    Fixed(i32),
}

impl Default for Zone {
    /// `Asia/Seoul`.
    fn default() -> Self {
        Zone::Seoul
    }
}

/// Offset of `Asia/Seoul` before its first transition: local mean time of Seoul.
const SEOUL_LMT: i32 = 8 * 3600 + 27 * 60 + 52;

/// `(first instant in Unix seconds, offset in seconds)` for every `Asia/Seoul` period from
/// 1908 on, as `zdump -v Asia/Seoul` lists them (comments give the local reading just after).
const SEOUL_TRANSITIONS: [(i64, i32); 28] = [
    (-1_948_782_472, 30_600), // 1908-04-01 00:02 KST (+8:30, from LMT)
    (-1_830_414_600, 32_400), // 1912-01-01 00:30 (+9)
    (-681_210_000, 36_000),   // 1948-06-01 01:00 KDT
    (-672_228_000, 32_400),   // 1948-09-12 23:00 KST
    (-654_771_600, 36_000),   // 1949-04-03 01:00 KDT
    (-640_864_800, 32_400),   // 1949-09-10 23:00 KST
    (-623_408_400, 36_000),   // 1950-04-01 01:00 KDT
    (-609_415_200, 32_400),   // 1950-09-09 23:00 KST
    (-588_848_400, 36_000),   // 1951-05-06 01:00 KDT
    (-577_965_600, 32_400),   // 1951-09-08 23:00 KST
    (-498_128_400, 30_600),   // 1954-03-20 23:30 KST (+8:30)
    (-462_702_600, 34_200),   // 1955-05-05 01:00 KDT
    (-451_733_400, 30_600),   // 1955-09-08 23:00 KST
    (-429_784_200, 34_200),   // 1956-05-20 01:00 KDT
    (-418_296_600, 30_600),   // 1956-09-29 23:00 KST
    (-399_544_200, 34_200),   // 1957-05-05 01:00 KDT
    (-387_451_800, 30_600),   // 1957-09-21 23:00 KST
    (-368_094_600, 34_200),   // 1958-05-04 01:00 KDT
    (-356_002_200, 30_600),   // 1958-09-20 23:00 KST
    (-336_645_000, 34_200),   // 1959-05-03 01:00 KDT
    (-324_552_600, 30_600),   // 1959-09-19 23:00 KST
    (-305_195_400, 34_200),   // 1960-05-01 01:00 KDT
    (-293_103_000, 30_600),   // 1960-09-17 23:00 KST
    (-264_933_000, 32_400),   // 1961-08-10 00:30 KST (+9)
    (547_578_000, 36_000),    // 1987-05-10 03:00 KDT
    (560_883_600, 32_400),    // 1987-10-11 02:00 KST
    (579_027_600, 36_000),    // 1988-05-08 03:00 KDT
    (592_333_200, 32_400),    // 1988-10-09 02:00 KST
];

/// Number of entries in [`SEOUL_TRANSITIONS`].
const SEOUL_TRANSITION_COUNT: usize = SEOUL_TRANSITIONS.len();

impl Zone {
    /// Parses `Asia/Seoul` (or `KST`'s history under its IANA name only), `UTC`/`Z`, or a
    /// fixed offset `±HH:MM`, `±HHMM`, `±HH`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "Asia/Seoul" => return Ok(Zone::Seoul),
            "UTC" | "Z" | "Etc/UTC" => return Ok(Zone::Fixed(0)),
            _ => {}
        }
        let bad = || {
            Error::parse(
                "zone",
                format!("{text:?} is neither Asia/Seoul, UTC nor an offset like +09:00"),
            )
        };
        let b = text.as_bytes();
        let sign = match b.first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let num = |at: usize| -> Option<i32> {
            let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
            (x.is_ascii_digit() && y.is_ascii_digit())
                .then(|| i32::from(x - b'0') * 10 + i32::from(y - b'0'))
        };
        let h = num(1).ok_or_else(bad)?;
        let m = match b.len() {
            3 => 0,
            5 => num(3).ok_or_else(bad)?,
            6 if b[3] == b':' => num(4).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        if h > 14 || m > 59 {
            return Err(bad());
        }
        Ok(Zone::Fixed(sign * (h * 3600 + m * 60)))
    }

    /// The offset from UTC, in seconds, of the civil clock at `unix_seconds`.
    #[inline]
    pub fn offset_at(self, unix_seconds: i64) -> i32 {
        match self {
            Zone::Fixed(offset) => offset,
            Zone::Seoul => seoul_offset(unix_seconds),
        }
    }

    /// The instant at which the civil clock read `clock_seconds` (seconds since
    /// 1970-01-01 00:00 on that clock). A reading that happened twice (when the clock was
    /// set back) gives the earlier instant; one that never happened (when the clock was
    /// set forward) is read with the offset in force before the change, which lands the
    /// same amount of time after the change (as Python's `fold=0`).
    pub fn instant_of(self, clock_seconds: i64) -> i64 {
        match self {
            Zone::Fixed(offset) => clock_seconds - i64::from(offset),
            Zone::Seoul => {
                // Offsets lie within +8:27:52..=+10:00, so the candidates come from the
                // offsets in force 10 and 8 hours before the reading.
                let early = seoul_offset(clock_seconds - 36_000);
                let late = seoul_offset(clock_seconds - 28_800);
                let mut best: Option<i64> = None;
                for offset in [early, late] {
                    let instant = clock_seconds - i64::from(offset);
                    if seoul_offset(instant) == offset {
                        best = Some(best.map_or(instant, |b| b.min(instant)));
                    }
                }
                best.unwrap_or(clock_seconds - i64::from(early))
            }
        }
    }
}

#[inline]
fn seoul_offset(unix_seconds: i64) -> i32 {
    let last = SEOUL_TRANSITIONS[SEOUL_TRANSITION_COUNT - 1];
    if unix_seconds >= last.0 {
        return last.1;
    }
    let i =
        SEOUL_TRANSITIONS[..SEOUL_TRANSITION_COUNT].partition_point(|&(t, _)| t <= unix_seconds);
    if i == 0 {
        SEOUL_LMT
    } else {
        SEOUL_TRANSITIONS[i - 1].1
    }
}

impl std::str::FromStr for Zone {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Zone::parse(s)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Zone::Seoul => f.write_str("Asia/Seoul"),
            Zone::Fixed(offset) => {
                let sign = if offset < 0 { '-' } else { '+' };
                let a = offset.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CivilDateTime;

    fn clock(y: i32, mo: u8, d: u8, h: u8, mi: u8) -> i64 {
        CivilDateTime::new(y, mo, d, h, mi, 0)
            .unwrap()
            .clock_seconds()
    }

    #[test]
    fn seoul_history_matches_the_documented_offsets() {
        let at = |y, mo, d, h, mi| Zone::Seoul.offset_at(clock(y, mo, d, h, mi) - 32_400);
        assert_eq!(at(1900, 1, 1, 0, 0), SEOUL_LMT);
        assert_eq!(at(1910, 6, 1, 0, 0), 30_600);
        assert_eq!(at(1930, 6, 1, 0, 0), 32_400);
        assert_eq!(at(1948, 7, 1, 0, 0), 36_000);
        assert_eq!(at(1955, 1, 1, 0, 0), 30_600);
        assert_eq!(at(1958, 7, 1, 0, 0), 34_200);
        assert_eq!(at(1961, 8, 11, 0, 0), 32_400);
        assert_eq!(at(1987, 7, 1, 0, 0), 36_000);
        assert_eq!(at(1988, 12, 1, 0, 0), 32_400);
        assert_eq!(at(2024, 2, 4, 17, 27), 32_400);
    }

    #[test]
    fn local_readings_map_back_to_instants() {
        // Plain reading.
        let c = clock(2024, 2, 4, 17, 27);
        assert_eq!(Zone::Seoul.instant_of(c), c - 32_400);
        // 1987-05-10 02:30 never happened (02:00 → 03:00): read at +9, i.e. 03:30 KDT.
        let c = clock(1987, 5, 10, 2, 30);
        assert_eq!(Zone::Seoul.instant_of(c), c - 32_400);
        // 1987-10-11 02:30 happened twice: the earlier one is KDT.
        let c = clock(1987, 10, 11, 2, 30);
        assert_eq!(Zone::Seoul.instant_of(c), c - 36_000);
        // Every transition is consistent both ways.
        for &(t, _) in &SEOUL_TRANSITIONS[..SEOUL_TRANSITION_COUNT] {
            for dt in [-7200, -1, 0, 1, 7200] {
                let instant = t + dt;
                let local = instant + i64::from(Zone::Seoul.offset_at(instant));
                let back = Zone::Seoul.instant_of(local);
                assert_eq!(back + i64::from(Zone::Seoul.offset_at(back)), local);
            }
        }
    }

    #[test]
    fn parses_zones() {
        assert_eq!(Zone::parse("Asia/Seoul").unwrap(), Zone::Seoul);
        assert_eq!(Zone::parse("+09:00").unwrap(), Zone::Fixed(32_400));
        assert_eq!(Zone::parse("+0830").unwrap(), Zone::Fixed(30_600));
        assert_eq!(Zone::parse("-05").unwrap(), Zone::Fixed(-18_000));
        assert_eq!(Zone::parse("UTC").unwrap(), Zone::Fixed(0));
        for bad in ["", "Asia/Tokyo", "+9", "+09:0", "+15:00", "09:00"] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Zone::Fixed(30_600).to_string(), "+08:30");
        assert_eq!(Zone::Fixed(-18_000).to_string(), "-05:00");
    }
}
