//! The saju (four pillars, 사주) engine: a pure library with no I/O.
//!
//! From a birth (an instant, a civil clock reading, or a Korean lunar date with a time) it
//! computes the four pillars and a full analysis, and writes the analysis as one versioned
//! JSON document (`analysis_result`). Everything is table-driven and allocation-free per
//! chart: the solar terms 1899–2101 and the KASI lunar calendar are generated tables.
//!
//! Layout, from the ground up:
//! - [`tables`]: the reference codes, interaction groups and hidden stems (the same rows
//!   the SQL migrations insert);
//! - [`calendar`], [`zone`]: Gregorian arithmetic, RFC 3339 parsing, the Korean civil
//!   clock history;
//! - [`astro`], [`solar_terms`]: the Sun's longitude and the 24 절기 instants;
//! - [`lunar`]: the Korean lunar calendar;
//! - [`pillars`]: the eight characters under explicit [`Options`];
//! - [`analysis`], [`interactions`], [`stars`], [`luck`]: the analysis (12운성, 공망, 납음,
//!   신살, 태원, 명궁 in [`stars`]);
//! - [`json`]: the `analysis_result` document;
//! - `cli` (feature `cli`, on by default): the `chart` command, [`cli::ChartArgs`] and
//!   [`cli::run_chart`].
//!
//! ```
//! use saju::{Analysis, Birth, Gender, Instant, Options};
//!
//! let birth = Birth::Instant(Instant::parse_rfc3339("2024-02-04T17:28:00+09:00")?);
//! let analysis = Analysis::compute(&birth, Gender::Female, &Options::default())?;
//! assert_eq!(analysis.pillars.ganji(), ["갑진", "병인", "무술", "신유"]);
//! let mut doc = Vec::new();
//! saju::json::write_analysis(&analysis, &mut doc);
//! assert!(doc.starts_with(br#"{"version":2,"codes":[0,14,2,12,4,20,7,19]"#));
//! # Ok::<(), saju::Error>(())
//! ```

pub mod analysis;
pub mod astro;
pub mod calendar;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod interactions;
pub mod json;
pub mod luck;
pub mod lunar;
pub mod pillars;
pub mod solar_terms;
pub mod stars;
pub mod tables;
pub mod zone;

pub use analysis::{Analysis, TenGod};
pub use calendar::{CivilDateTime, Instant};
pub use error::Error;
pub use lunar::LunarDate;
pub use pillars::{Birth, DayBoundary, Gender, Options, Pillars, SolarTime};
pub use zone::Zone;
