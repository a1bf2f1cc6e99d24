//! The saju (four pillars, 사주) engine: a pure library with no I/O.
pub mod astro;
pub mod calendar;
pub mod error;
pub mod lunar;
pub mod solar_terms;
pub mod tables;
pub mod zone;

pub use error::Error;
