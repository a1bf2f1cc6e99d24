//! Positional astronomy for the solar terms: the Sun's apparent ecliptic longitude from
//! the VSOP87D theory of the Earth (the truncated series of Meeus, *Astronomical
//! Algorithms*, 2nd ed., appendix III: 129 terms, better than 1″ over 1900–2100), with the
//! FK5 correction, nutation in longitude (the 13 largest IAU 1980 terms), aberration, and
//! ΔT = TT − UT from the Espenak–Meeus polynomials. The instants of the 24 solar terms
//! follow by Newton iteration.
//!
//! This runs at generation time ([`crate::solar_terms`] keeps the results as a table) and
//! in tests; the per-chart path only uses [`equation_of_time_minutes`], a few
//! trigonometric calls.

use std::f64::consts::PI;

const DEG: f64 = PI / 180.0;
const ARCSEC: f64 = DEG / 3600.0;

/// Julian Date of the Unix epoch (1970-01-01T00:00:00 UT).
pub const JD_UNIX_EPOCH: f64 = 2_440_587.5;

/// Julian Date of J2000.0.
const J2000: f64 = 2_451_545.0;

/// ΔT = TT − UT in seconds for a decimal year (Espenak & Meeus polynomials, valid 1860–2150;
/// beyond 2024 these are extrapolations, the main source of uncertainty after ~2050).
pub fn delta_t_seconds(year: f64) -> f64 {
    let y = year;
    if y < 1900.0 {
        let t = y - 1860.0;
        7.62 + 0.5737 * t - 0.251754 * t.powi(2) + 0.01680668 * t.powi(3) - 0.0004473624 * t.powi(4)
            + t.powi(5) / 233_174.0
    } else if y < 1920.0 {
        let t = y - 1900.0;
        -2.79 + 1.494119 * t - 0.0598939 * t.powi(2) + 0.0061966 * t.powi(3) - 0.000197 * t.powi(4)
    } else if y < 1941.0 {
        let t = y - 1920.0;
        21.20 + 0.84493 * t - 0.076100 * t.powi(2) + 0.0020936 * t.powi(3)
    } else if y < 1961.0 {
        let t = y - 1950.0;
        29.07 + 0.407 * t - t.powi(2) / 233.0 + t.powi(3) / 2547.0
    } else if y < 1986.0 {
        let t = y - 1975.0;
        45.45 + 1.067 * t - t.powi(2) / 260.0 - t.powi(3) / 718.0
    } else if y < 2005.0 {
        let t = y - 2000.0;
        63.86 + 0.3345 * t - 0.060374 * t.powi(2)
            + 0.0017275 * t.powi(3)
            + 0.000651814 * t.powi(4)
            + 0.00002373599 * t.powi(5)
    } else if y < 2050.0 {
        let t = y - 2000.0;
        62.92 + 0.32217 * t + 0.005589 * t.powi(2)
    } else {
        let u = (y - 1820.0) / 100.0;
        -20.0 + 32.0 * u * u - 0.5628 * (2150.0 - y)
    }
}

fn decimal_year(jd: f64) -> f64 {
    2000.0 + (jd - J2000) / 365.25
}

/// TT Julian Date for a UT Julian Date.
pub fn ut_to_tt(jd_ut: f64) -> f64 {
    jd_ut + delta_t_seconds(decimal_year(jd_ut)) / 86_400.0
}

fn series(terms: &[(f64, f64, f64)], tau: f64) -> f64 {
    terms.iter().map(|&(a, b, c)| a * (b + c * tau).cos()).sum()
}

/// Heliocentric ecliptic longitude of the Earth (radians, VSOP87D, mean equinox of date),
/// `tau` in Julian millennia of TT from J2000.0.
fn earth_longitude(tau: f64) -> f64 {
    let l = series(&L0, tau)
        + tau
            * (series(&L1, tau)
                + tau
                    * (series(&L2, tau)
                        + tau
                            * (series(&L3, tau)
                                + tau * (series(&L4, tau) + tau * series(&L5, tau)))));
    l / 1e8
}

/// Sun–Earth distance in AU (the leading VSOP87D radius terms; only used for aberration).
fn earth_radius(tau: f64) -> f64 {
    let r0 = 100_013_989.0 + series(&R0, tau);
    let r1 = series(&R1, tau);
    let r2 = 4359.0 * (5.7846 + 6283.0758 * tau).cos();
    (r0 + tau * (r1 + tau * r2)) / 1e8
}

/// Nutation in longitude Δψ (radians), `t` in Julian centuries of TT from J2000.0.
pub fn nutation_in_longitude(t: f64) -> f64 {
    let d = (297.85036 + 445_267.111_480 * t - 0.001_914_2 * t * t + t.powi(3) / 189_474.0) * DEG;
    let m = (357.52772 + 35_999.050_340 * t - 0.000_160_3 * t * t - t.powi(3) / 300_000.0) * DEG;
    let mp = (134.96298 + 477_198.867_398 * t + 0.008_697_2 * t * t + t.powi(3) / 56_250.0) * DEG;
    let f = (93.27191 + 483_202.017_538 * t - 0.003_682_5 * t * t + t.powi(3) / 327_270.0) * DEG;
    let om = (125.04452 - 1_934.136_261 * t + 0.002_070_8 * t * t + t.powi(3) / 450_000.0) * DEG;
    // (D, M, M', F, Ω multipliers, coefficient, rate per century) in 0.0001″.
    const TERMS: [([f64; 5], f64, f64); 13] = [
        ([0.0, 0.0, 0.0, 0.0, 1.0], -171_996.0, -174.2),
        ([-2.0, 0.0, 0.0, 2.0, 2.0], -13_187.0, -1.6),
        ([0.0, 0.0, 0.0, 2.0, 2.0], -2274.0, -0.2),
        ([0.0, 0.0, 0.0, 0.0, 2.0], 2062.0, 0.2),
        ([0.0, 1.0, 0.0, 0.0, 0.0], 1426.0, -3.4),
        ([0.0, 0.0, 1.0, 0.0, 0.0], 712.0, 0.1),
        ([-2.0, 1.0, 0.0, 2.0, 2.0], -517.0, 1.2),
        ([0.0, 0.0, 0.0, 2.0, 1.0], -386.0, -0.4),
        ([0.0, 0.0, 1.0, 2.0, 2.0], -301.0, 0.0),
        ([-2.0, -1.0, 0.0, 2.0, 2.0], 217.0, -0.5),
        ([-2.0, 0.0, 1.0, 0.0, 0.0], -158.0, 0.0),
        ([-2.0, 0.0, 0.0, 2.0, 1.0], 129.0, 0.1),
        ([0.0, 0.0, -1.0, 2.0, 2.0], 123.0, 0.0),
    ];
    let args = [d, m, mp, f, om];
    let sum: f64 = TERMS
        .iter()
        .map(|(k, c, r)| {
            let arg: f64 = k.iter().zip(args).map(|(k, a)| k * a).sum();
            (c + r * t) * arg.sin()
        })
        .sum();
    sum * 1e-4 * ARCSEC
}

/// The Sun's apparent geocentric ecliptic longitude in degrees `[0, 360)` at a TT Julian
/// Date.
pub fn sun_apparent_longitude(jd_tt: f64) -> f64 {
    let t = (jd_tt - J2000) / 36_525.0;
    let tau = t / 10.0;
    let mut lon = earth_longitude(tau) + PI;
    lon += -0.09033 * ARCSEC; // VSOP87 → FK5
    lon += nutation_in_longitude(t);
    lon -= 20.4898 * ARCSEC / earth_radius(tau); // annual aberration
    (lon / DEG).rem_euclid(360.0)
}

/// The UT Julian Date at which the Sun's apparent longitude reaches `target_deg`, searched
/// from `jd_guess` (UT, within ±20 days of the answer).
pub fn sun_longitude_instant(target_deg: f64, jd_guess: f64) -> f64 {
    let mut jd = jd_guess;
    for _ in 0..50 {
        let lon = sun_apparent_longitude(ut_to_tt(jd));
        let diff = (lon - target_deg + 540.0).rem_euclid(360.0) - 180.0;
        if diff.abs() < 1e-10 {
            break;
        }
        // The Sun moves 0.9856°/day on average; Newton with that slope converges quickly.
        jd -= diff / 0.985_647_36;
    }
    jd
}

/// Equation of time (apparent minus mean solar time) in minutes at a Unix instant, by
/// Smart's formula (Meeus eq. 28.3): accurate to a few seconds, cheap enough per chart.
pub fn equation_of_time_minutes(unix_seconds: i64) -> f64 {
    let jd = JD_UNIX_EPOCH + unix_seconds as f64 / 86_400.0;
    let t = (jd - J2000) / 36_525.0;
    let l0 = (280.46646 + 36_000.769_83 * t + 0.000_303_2 * t * t) * DEG;
    let m = (357.52911 + 35_999.050_29 * t - 0.000_153_7 * t * t) * DEG;
    let e = 0.016_708_634 - 0.000_042_037 * t - 0.000_000_126_7 * t * t;
    let eps = (23.439_291 - 0.013_004_2 * t) * DEG;
    let y = (eps / 2.0).tan().powi(2);
    let eot = y * (2.0 * l0).sin() - 2.0 * e * m.sin() + 4.0 * e * y * m.sin() * (2.0 * l0).cos()
        - 0.5 * y * y * (4.0 * l0).sin()
        - 1.25 * e * e * (2.0 * m).sin();
    eot / DEG * 4.0
}

/// Leading terms of the VSOP87D Earth radius series R0 (beyond the constant term) and R1.
const R0: [(f64, f64, f64); 6] = [
    (1_670_700.0, 3.098_463_5, 6_283.075_85),
    (13_956.0, 3.055_25, 12_566.151_7),
    (3084.0, 5.1985, 77_713.771_5),
    (1628.0, 1.1739, 5753.3849),
    (1576.0, 2.8469, 7860.4194),
    (925.0, 5.453, 11_506.77),
];
const R1: [(f64, f64, f64); 2] = [
    (103_019.0, 1.107_49, 6_283.075_85),
    (1721.0, 1.0644, 12_566.151_7),
];

// VSOP87D Earth longitude series L0–L5 (Meeus, appendix III): (A, B, C) with
// term = A·cos(B + C·τ), A in 1e-8 rad.
const L0: [(f64, f64, f64); 64] = [
    (175347046.0, 0.0, 0.0),
    (3341656.0, 4.6692568, 6283.07585),
    (34894.0, 4.6261, 12566.1517),
    (3497.0, 2.7441, 5753.3849),
    (3418.0, 2.8289, 3.5231),
    (3136.0, 3.6277, 77713.7715),
    (2676.0, 4.4181, 7860.4194),
    (2343.0, 6.1352, 3930.2097),
    (1324.0, 0.7425, 11506.7698),
    (1273.0, 2.0371, 529.691),
    (1199.0, 1.1096, 1577.3435),
    (990.0, 5.233, 5884.927),
    (902.0, 2.045, 26.298),
    (857.0, 3.508, 398.149),
    (780.0, 1.179, 5223.694),
    (753.0, 2.533, 5507.553),
    (505.0, 4.583, 18849.228),
    (492.0, 4.205, 775.523),
    (357.0, 2.92, 0.067),
    (317.0, 5.849, 11790.629),
    (284.0, 1.899, 796.298),
    (271.0, 0.315, 10977.079),
    (243.0, 0.345, 5486.778),
    (206.0, 4.806, 2544.314),
    (205.0, 1.869, 5573.143),
    (202.0, 2.458, 6069.777),
    (156.0, 0.833, 213.299),
    (132.0, 3.411, 2942.463),
    (126.0, 1.083, 20.775),
    (115.0, 0.645, 0.98),
    (103.0, 0.636, 4694.003),
    (102.0, 0.976, 15720.839),
    (102.0, 4.267, 7.114),
    (99.0, 6.21, 2146.17),
    (98.0, 0.68, 155.42),
    (86.0, 5.98, 161000.69),
    (85.0, 1.3, 6275.96),
    (85.0, 3.67, 71430.7),
    (80.0, 1.81, 17260.15),
    (79.0, 3.04, 12036.46),
    (75.0, 1.76, 5088.63),
    (74.0, 3.5, 3154.69),
    (74.0, 4.68, 801.82),
    (70.0, 0.83, 9437.76),
    (62.0, 3.98, 8827.39),
    (61.0, 1.82, 7084.9),
    (57.0, 2.78, 6286.6),
    (56.0, 4.39, 14143.5),
    (56.0, 3.47, 6279.55),
    (52.0, 0.19, 12139.55),
    (52.0, 1.33, 1748.02),
    (51.0, 0.28, 5856.48),
    (49.0, 0.49, 1194.45),
    (41.0, 5.37, 8429.24),
    (41.0, 2.4, 19651.05),
    (39.0, 6.17, 10447.39),
    (37.0, 6.04, 10213.29),
    (37.0, 2.57, 1059.38),
    (36.0, 1.71, 2352.87),
    (36.0, 1.78, 6812.77),
    (33.0, 0.59, 17789.85),
    (30.0, 0.44, 83996.85),
    (30.0, 2.74, 1349.87),
    (25.0, 3.16, 4690.48),
];
const L1: [(f64, f64, f64); 34] = [
    (628331966747.0, 0.0, 0.0),
    (206059.0, 2.678235, 6283.07585),
    (4303.0, 2.6351, 12566.1517),
    (425.0, 1.59, 3.523),
    (119.0, 5.796, 26.298),
    (109.0, 2.966, 1577.344),
    (93.0, 2.59, 18849.23),
    (72.0, 1.14, 529.69),
    (68.0, 1.87, 398.15),
    (67.0, 4.41, 5507.55),
    (59.0, 2.89, 5223.69),
    (56.0, 2.17, 155.42),
    (45.0, 0.4, 796.3),
    (36.0, 0.47, 775.52),
    (29.0, 2.65, 7.11),
    (21.0, 5.34, 0.98),
    (19.0, 1.85, 5486.78),
    (19.0, 4.97, 213.3),
    (17.0, 2.99, 6275.96),
    (16.0, 0.03, 2544.31),
    (16.0, 1.43, 2146.17),
    (15.0, 1.21, 10977.08),
    (12.0, 2.83, 1748.02),
    (12.0, 3.26, 5088.63),
    (12.0, 5.27, 1194.45),
    (12.0, 2.08, 4694.0),
    (11.0, 0.77, 553.57),
    (10.0, 1.3, 6286.6),
    (10.0, 4.24, 1349.87),
    (9.0, 2.7, 242.73),
    (9.0, 5.64, 951.72),
    (8.0, 5.3, 2352.87),
    (6.0, 2.65, 9437.76),
    (6.0, 4.67, 4690.48),
];
const L2: [(f64, f64, f64); 20] = [
    (52919.0, 0.0, 0.0),
    (8720.0, 1.0721, 6283.0758),
    (309.0, 0.867, 12566.152),
    (27.0, 0.05, 3.52),
    (16.0, 5.19, 26.3),
    (16.0, 3.68, 155.42),
    (10.0, 0.76, 18849.23),
    (9.0, 2.06, 77713.77),
    (7.0, 0.83, 775.52),
    (5.0, 4.66, 1577.34),
    (4.0, 1.03, 7.11),
    (4.0, 3.44, 5573.14),
    (3.0, 5.14, 796.3),
    (3.0, 6.05, 5507.55),
    (3.0, 1.19, 242.73),
    (3.0, 6.12, 529.69),
    (3.0, 0.31, 398.15),
    (3.0, 2.28, 553.57),
    (2.0, 4.38, 5223.69),
    (2.0, 3.75, 0.98),
];
const L3: [(f64, f64, f64); 7] = [
    (289.0, 5.844, 6283.076),
    (35.0, 0.0, 0.0),
    (17.0, 5.49, 12566.15),
    (3.0, 5.2, 155.42),
    (1.0, 4.72, 3.52),
    (1.0, 5.3, 18849.23),
    (1.0, 5.97, 242.73),
];
#[allow(clippy::approx_constant)] // Meeus tabulates 3.142, not π.
const L4: [(f64, f64, f64); 3] = [
    (114.0, 3.142, 0.0),
    (8.0, 4.13, 6283.08),
    (1.0, 3.84, 12566.15),
];
#[allow(clippy::approx_constant)] // Meeus tabulates 3.14, not π.
const L5: [(f64, f64, f64); 1] = [(1.0, 3.14, 0.0)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sun_longitude_matches_meeus_example() {
        // Meeus example 25.b: 1992-10-13 0h TD, apparent longitude 199°54′21.818″.
        let lon = sun_apparent_longitude(2_448_908.5);
        let expected = 199.0 + 54.0 / 60.0 + 21.818 / 3600.0;
        assert!((lon - expected).abs() < 1.0 / 3600.0, "{lon} vs {expected}");
    }

    #[test]
    fn equation_of_time_is_in_range() {
        // Around 3 November the Sun is ≈16.4 minutes ahead; around 11 February ≈14.2 behind.
        let nov = equation_of_time_minutes(1_699_000_000); // 2023-11-03
        let feb = equation_of_time_minutes(1_707_609_600); // 2024-02-11
        assert!((nov - 16.4).abs() < 0.3, "{nov}");
        assert!((feb + 14.2).abs() < 0.3, "{feb}");
    }
}
