//! The four pillars (사주, 만세력): from a birth to eight stem and branch codes.
//!
//! - **Year** changes at the instant of 입춘; its cycle position is (Y − 4) mod 60.
//! - **Month** changes at the instant of each 절; its stem follows from the year stem
//!   (오호둔: 갑·기 → 병인, 을·경 → 무인, 병·신 → 경인, 정·임 → 임인, 무·계 → 갑인).
//! - **Day** is (JDN + 49) mod 60 of the date on the reading clock (0 = 갑자).
//! - **Hour** branch is ⌊((minute of day + 60) mod 1440) / 120⌋ (자시 23:00–01:00); its
//!   stem follows from the day stem (오서둔: 갑·기 → 갑자, 을·경 → 병자, …).
//!
//! Year and month depend on the instant only (the 절 are astronomical events); day and
//! hour are read on a clock chosen by [`Options`]: the civil clock of the zone, or mean or
//! true solar time at a longitude.

use std::fmt;
use std::str::FromStr;

use crate::astro;
use crate::calendar::{CivilDateTime, Instant, JDN_UNIX_EPOCH, SECONDS_PER_DAY};
use crate::error::Error;
use crate::lunar::LunarDate;
use crate::solar_terms::{self, JieMonth};
use crate::zone::Zone;

/// When the day pillar changes around 자시 (23:00–01:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DayBoundary {
    /// The day changes at 00:00 (default, the civil convention of most Korean 만세력).
    #[default]
    Midnight,
    /// 야자시/조자시: from 23:00 the day pillar stays, but the hour stem is that of the
    /// next day's 자시.
    SplitJasi,
    /// The day changes at 23:00, the start of 자시.
    Jasi,
}

impl DayBoundary {
    /// The option's spelling: `midnight`, `split-jasi` or `jasi`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DayBoundary::Midnight => "midnight",
            DayBoundary::SplitJasi => "split-jasi",
            DayBoundary::Jasi => "jasi",
        }
    }
}

impl FromStr for DayBoundary {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "midnight" => Ok(DayBoundary::Midnight),
            "split-jasi" => Ok(DayBoundary::SplitJasi),
            "jasi" => Ok(DayBoundary::Jasi),
            _ => Err(Error::parse(
                "day boundary",
                format!("{s:?} is not midnight, split-jasi or jasi"),
            )),
        }
    }
}

impl fmt::Display for DayBoundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which clock the day and hour pillars are read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SolarTime {
    /// The civil clock of the zone (default).
    #[default]
    None,
    /// Local mean solar time at the longitude: UT + longitude × 4 min/°. In Seoul
    /// (126.98°E) this is about 32 minutes behind the +09:00 clock.
    Mean,
    /// Apparent (true) solar time: mean solar time plus the equation of time (±16 min).
    True,
}

impl SolarTime {
    /// The option's spelling: `none`, `mean` or `true`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SolarTime::None => "none",
            SolarTime::Mean => "mean",
            SolarTime::True => "true",
        }
    }
}

impl FromStr for SolarTime {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "none" => Ok(SolarTime::None),
            "mean" => Ok(SolarTime::Mean),
            "true" => Ok(SolarTime::True),
            _ => Err(Error::parse(
                "solar time",
                format!("{s:?} is not none, mean or true"),
            )),
        }
    }
}

impl fmt::Display for SolarTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longitude of Seoul (degrees east), the default for solar time.
pub const SEOUL_LONGITUDE: f64 = 126.98;

/// The conventions a chart is computed with. The defaults are those of the common Korean
/// 만세력: `Asia/Seoul` civil time, day change at midnight, no solar-time correction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The civil clock of the birth place (default `Asia/Seoul`).
    pub zone: Zone,
    /// When the day changes around 자시 (default [`DayBoundary::Midnight`]).
    pub day_boundary: DayBoundary,
    /// Which clock reads day and hour (default [`SolarTime::None`]).
    pub solar_time: SolarTime,
    /// Longitude in degrees east (−180..=180) for solar time (default 126.98, Seoul).
    /// Ignored when `solar_time` is `None`.
    pub longitude: f64,
    /// The 신살 tables where schools differ (default: the README's).
    pub stars: crate::stars::Schools,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            zone: Zone::Seoul,
            day_boundary: DayBoundary::Midnight,
            solar_time: SolarTime::None,
            longitude: SEOUL_LONGITUDE,
            stars: crate::stars::Schools::default(),
        }
    }
}

impl Options {
    /// Fails unless the longitude is a finite number within −180..=180.
    pub fn validate(&self) -> Result<(), Error> {
        if self.longitude.is_finite() && (-180.0..=180.0).contains(&self.longitude) {
            Ok(())
        } else {
            Err(Error::parse(
                "longitude",
                format!("{} is not within -180..=180", self.longitude),
            ))
        }
    }
}

/// Sex at birth; with the year stem's polarity it sets the direction of the luck pillars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// `M`
    Male,
    /// `F`
    Female,
}

impl Gender {
    /// `M` or `F`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "M",
            Gender::Female => "F",
        }
    }
}

impl FromStr for Gender {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "M" | "m" => Ok(Gender::Male),
            "F" | "f" => Ok(Gender::Female),
            _ => Err(Error::parse("gender", format!("{s:?} is not M or F"))),
        }
    }
}

/// When someone was born.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Birth {
    /// An instant (e.g. a `TIMESTAMPTZ`); the civil clock reading comes from the zone.
    Instant(Instant),
    /// A reading of the zone's civil clock.
    Civil(CivilDateTime),
    /// A lunar date and a reading of the zone's civil clock (seconds after midnight).
    Lunar {
        /// The lunar date, with its leap-month flag.
        date: LunarDate,
        /// Clock time of day in seconds (0..86400).
        time_of_day: u32,
    },
}

impl Birth {
    /// The birth a `saju_profiles` row describes: `birth_date` is an instant; for solar
    /// input (`is_solar`) that instant is the birth; for lunar input its reading on the
    /// `zone` clock carries the lunar date (year-month-day) and the clock time of birth,
    /// with `is_leap_month` marking the leap month.
    pub fn from_profile(
        birth_date: Instant,
        is_solar: bool,
        is_leap_month: bool,
        zone: Zone,
    ) -> Birth {
        if is_solar {
            return Birth::Instant(birth_date);
        }
        let t = birth_date.unix_seconds();
        let reading =
            CivilDateTime::from_clock_seconds(t.saturating_add(i64::from(zone.offset_at(t))));
        Birth::Lunar {
            date: LunarDate {
                year: reading.year,
                month: reading.month,
                day: reading.day,
                leap: is_leap_month,
            },
            time_of_day: u32::from(reading.hour) * 3600
                + u32::from(reading.minute) * 60
                + u32::from(reading.second),
        }
    }
}

/// Instants (Unix seconds) worth converting to a civil date: a day beyond the supported
/// dates on either side, so that any offset still gives a precise out-of-range error.
const INSTANT_RANGE: (i64, i64) = (
    -2_208_988_800 - 2 * SECONDS_PER_DAY,
    4_133_980_800 + 2 * SECONDS_PER_DAY,
);

/// The eight characters and what was needed to find them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pillars {
    /// Codes in the schema's numbering: year stem, year branch, month stem, month branch,
    /// day stem, day branch, hour stem, hour branch (stems 0–9, branches 10–21).
    pub codes: [u8; 8],
    /// The birth instant, Unix seconds.
    pub instant: i64,
    /// The civil clock reading at birth in the zone.
    pub civil: CivilDateTime,
    /// The zone's offset from UTC at birth, in seconds.
    pub utc_offset: i32,
    /// The saju year (changes at 입춘).
    pub saju_year: i32,
    /// The 절 month the birth falls in (for the luck pillars).
    pub month: JieMonth,
}

impl Pillars {
    /// Computes the pillars of a birth under the given options.
    pub fn compute(birth: &Birth, options: &Options) -> Result<Pillars, Error> {
        let zone = options.zone;
        let (instant, civil, utc_offset) = match *birth {
            Birth::Instant(Instant(t)) => {
                if !(INSTANT_RANGE.0..=INSTANT_RANGE.1).contains(&t) {
                    let (year, month, day) = crate::calendar::civil_from_days(
                        t.div_euclid(SECONDS_PER_DAY).clamp(-1 << 25, 1 << 25),
                    );
                    return Err(Error::OutOfRange {
                        date: crate::error::DateText {
                            year: i64::from(year),
                            month: i64::from(month),
                            day: i64::from(day),
                        },
                    });
                }
                let offset = zone.offset_at(t);
                let civil = CivilDateTime::from_clock_seconds(t + i64::from(offset));
                (t, civil, offset)
            }
            Birth::Civil(c) => {
                c.check_supported()?;
                let t = zone.instant_of(c.clock_seconds());
                (t, c, zone.offset_at(t))
            }
            Birth::Lunar { date, time_of_day } => {
                let days = date.to_days()?;
                let clock = days * SECONDS_PER_DAY + i64::from(time_of_day % 86_400);
                let c = CivilDateTime::from_clock_seconds(clock);
                c.check_supported()?;
                let t = zone.instant_of(clock);
                (t, c, zone.offset_at(t))
            }
        };
        civil.check_supported()?;
        let reading = match options.solar_time {
            SolarTime::None => civil.clock_seconds(),
            SolarTime::Mean => instant + (options.longitude * 240.0).round() as i64,
            SolarTime::True => {
                let eot = astro::equation_of_time_minutes(instant);
                instant + (options.longitude * 240.0 + eot * 60.0).round() as i64
            }
        };
        let month = solar_terms::jie_month(instant).ok_or(Error::OutOfRange {
            date: civil.date_text(),
        })?;
        Ok(Self::from_parts(
            instant,
            civil,
            utc_offset,
            month,
            reading,
            options.day_boundary,
        ))
    }

    #[inline]
    fn from_parts(
        instant: i64,
        civil: CivilDateTime,
        utc_offset: i32,
        month: JieMonth,
        reading: i64,
        day_boundary: DayBoundary,
    ) -> Pillars {
        let saju_year = month.saju_year();
        let year_pos = (saju_year - 4).rem_euclid(60) as u8;
        let year_stem = year_pos % 10;
        let year_branch = year_pos % 12;

        let month_branch = month.branch_code() - 10;
        let month_stem = crate::stars::month_stem(year_stem, month.branch_code());

        let days = reading.div_euclid(SECONDS_PER_DAY);
        let second_of_day = reading.rem_euclid(SECONDS_PER_DAY);
        let late_jasi = second_of_day >= 23 * 3600;
        let (day_days, hour_days) = match day_boundary {
            DayBoundary::Midnight => (days, days),
            DayBoundary::Jasi if late_jasi => (days + 1, days + 1),
            DayBoundary::Jasi => (days, days),
            DayBoundary::SplitJasi if late_jasi => (days, days + 1),
            DayBoundary::SplitJasi => (days, days),
        };
        let day_pos = (day_days + JDN_UNIX_EPOCH + 49).rem_euclid(60) as u8;
        let hour_day_stem = ((hour_days + JDN_UNIX_EPOCH + 49).rem_euclid(10)) as u8;
        let minute_of_day = second_of_day / 60;
        let hour_branch = (((minute_of_day + 60) % 1440) / 120) as u8;
        let hour_stem = ((hour_day_stem % 5) * 2 + hour_branch) % 10;

        Pillars {
            codes: [
                year_stem,
                10 + year_branch,
                month_stem,
                10 + month_branch,
                day_pos % 10,
                10 + day_pos % 12,
                hour_stem,
                10 + hour_branch,
            ],
            instant,
            civil,
            utc_offset,
            saju_year,
            month,
        }
    }

    /// Cycle positions (0 = 갑자) of the year, month, day and hour pillars.
    pub fn cycle_positions(&self) -> [u8; 4] {
        let c = &self.codes;
        [0, 1, 2, 3].map(|i| crate::tables::cycle_index(c[2 * i], c[2 * i + 1] - 10))
    }

    /// The four pillar names, e.g. `["갑진", "병인", "무술", "기미"]`.
    pub fn ganji(&self) -> [&'static str; 4] {
        self.cycle_positions()
            .map(|p| crate::tables::GANJI_60[p as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kst(y: i32, mo: u8, d: u8, h: u8, mi: u8) -> Birth {
        Birth::Civil(CivilDateTime::new(y, mo, d, h, mi, 0).unwrap())
    }

    fn ganji(birth: Birth, options: &Options) -> [&'static str; 4] {
        Pillars::compute(&birth, options).unwrap().ganji()
    }

    fn fixed9() -> Options {
        Options {
            zone: Zone::Fixed(32_400),
            ..Options::default()
        }
    }

    #[test]
    fn saju_md_edge_cases() {
        let o = fixed9();
        let g = ganji(kst(2024, 2, 4, 17, 26), &o);
        assert_eq!(&g[..2], ["계묘", "을축"]);
        let g = ganji(kst(2024, 2, 4, 17, 28), &o);
        assert_eq!(&g[..2], ["갑진", "병인"]);
        let g = ganji(kst(2017, 2, 4, 0, 10), &o);
        assert_eq!(&g[..2], ["병신", "신축"]);
        let g = ganji(kst(2023, 1, 6, 0, 3), &o);
        assert_eq!(g[1], "임자");
        // The same through Asia/Seoul (+9 in those years).
        let g = ganji(kst(2024, 2, 4, 17, 28), &Options::default());
        assert_eq!(&g[..2], ["갑진", "병인"]);
    }

    #[test]
    fn day_anchors() {
        let o = fixed9();
        assert_eq!(ganji(kst(2000, 1, 7, 12, 0), &o)[2], "갑자");
        assert_eq!(ganji(kst(2023, 1, 6, 12, 0), &o)[2], "갑자");
        assert_eq!(ganji(kst(1900, 1, 1, 12, 0), &o)[2], "갑술");
        assert_eq!(ganji(kst(2024, 1, 1, 12, 0), &o)[2], "갑자");
    }

    #[test]
    fn hour_pillar_by_the_oseodun_rule() {
        let o = fixed9();
        // 2000-01-07 is a 갑 day: 자시 is 갑자, 오시 경오.
        assert_eq!(ganji(kst(2000, 1, 7, 0, 30), &o)[3], "갑자");
        assert_eq!(ganji(kst(2000, 1, 7, 12, 0), &o)[3], "경오");
        assert_eq!(ganji(kst(2000, 1, 7, 1, 0), &o)[3], "을축");
        // 23:30 on the 갑 day, the three conventions.
        let b = kst(2000, 1, 7, 23, 30);
        let with = |day_boundary| Options {
            day_boundary,
            ..fixed9()
        };
        assert_eq!(
            &ganji(b, &with(DayBoundary::Midnight))[2..],
            ["갑자", "갑자"]
        );
        assert_eq!(
            &ganji(b, &with(DayBoundary::SplitJasi))[2..],
            ["갑자", "병자"]
        );
        assert_eq!(&ganji(b, &with(DayBoundary::Jasi))[2..], ["을축", "병자"]);
    }

    #[test]
    fn solar_time_moves_the_reading_clock() {
        let mean = Options {
            solar_time: SolarTime::Mean,
            ..fixed9()
        };
        // 13:20 KST is 12:48 mean time in Seoul: still 오시 (11:00–13:00).
        assert_eq!(ganji(kst(2000, 1, 7, 13, 20), &fixed9())[3], "신미");
        assert_eq!(ganji(kst(2000, 1, 7, 13, 20), &mean)[3], "경오");
        let true_time = Options {
            solar_time: SolarTime::True,
            ..fixed9()
        };
        // In early January the equation of time is about −6 min: 13:36 KST ≈ 12:58 true.
        assert_eq!(ganji(kst(2000, 1, 7, 13, 36), &mean)[3], "신미");
        assert_eq!(ganji(kst(2000, 1, 7, 13, 36), &true_time)[3], "경오");
    }

    #[test]
    fn seoul_history_changes_the_civil_reading() {
        // 1988-07-01 00:30 KDT is 1988-06-30 23:30 KST: the civil date is the 1st.
        let t = Instant::parse_rfc3339("1988-06-30T14:30:00Z").unwrap();
        let p = Pillars::compute(&Birth::Instant(t), &Options::default()).unwrap();
        assert_eq!((p.civil.day, p.civil.hour, p.utc_offset), (1, 0, 36_000));
        let p = Pillars::compute(&Birth::Instant(t), &fixed9()).unwrap();
        assert_eq!((p.civil.day, p.civil.hour), (30, 23));
    }

    #[test]
    fn profile_rows_become_births() {
        let t = Instant::parse_rfc3339("2020-04-15T14:30:00+09:00").unwrap();
        assert_eq!(
            Birth::from_profile(t, true, false, Zone::Seoul),
            Birth::Instant(t)
        );
        let lunar = Birth::from_profile(t, false, true, Zone::Seoul);
        let p = Pillars::compute(&lunar, &Options::default()).unwrap();
        assert_eq!((p.civil.year, p.civil.month, p.civil.day), (2020, 6, 6));
        assert_eq!((p.civil.hour, p.civil.minute), (14, 30));
        let bad = Birth::from_profile(t, false, false, Zone::Seoul);
        assert!(Pillars::compute(
            &Birth::from_profile(
                Instant::parse_rfc3339("2021-04-01T12:00:00+09:00").unwrap(),
                false,
                true,
                Zone::Seoul
            ),
            &Options::default()
        )
        .is_err());
        assert!(Pillars::compute(&bad, &Options::default()).is_ok());
    }

    #[test]
    fn range_is_enforced() {
        let o = Options::default();
        let e = Pillars::compute(&kst(1899, 12, 31, 12, 0), &o).unwrap_err();
        assert_eq!(
            e.to_string(),
            "date 1899-12-31 is outside the supported range 1900-01-01..2100-12-31"
        );
        assert!(Pillars::compute(&kst(2101, 1, 1, 0, 0), &o).is_err());
        assert!(Pillars::compute(&kst(1900, 1, 1, 0, 0), &o).is_ok());
        assert!(Pillars::compute(&kst(2100, 12, 31, 23, 59), &o).is_ok());
        let t = Instant::parse_rfc3339("1850-01-01T00:00:00Z").unwrap();
        assert!(Pillars::compute(&Birth::Instant(t), &o).is_err());
    }
}
