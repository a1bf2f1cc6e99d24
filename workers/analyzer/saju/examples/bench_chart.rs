//! Throughput of full analyses, JSON included, on one thread: what `scripts/bench chart`
//! runs. Prints progress and ends with `charts_per_second_per_core=<x>`.
//!
//! `cargo run -p saju --release --example bench_chart -- [charts]` (default 2,000,000).

use std::hint::black_box;
use std::time::Instant as Clock;

use saju::{Analysis, Birth, Gender, Instant, Options};

/// Deterministic pseudo-random instants over 1900–2100 (splitmix64).
fn births(n: usize) -> Vec<(Birth, Gender)> {
    let (lo, hi) = (-2_208_988_800i64, 4_133_980_800i64 - 86_400);
    let mut state = 0x5eed_u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let t = lo + (z % (hi - lo) as u64) as i64;
            let gender = if z & 1 == 0 {
                Gender::Male
            } else {
                Gender::Female
            };
            (Birth::Instant(Instant::from_unix_seconds(t)), gender)
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(2_000_000);
    let inputs = births(n.min(1 << 16));
    let options = Options::default();
    let mut buf = Vec::with_capacity(4096);
    let mut bytes = 0usize;

    // Warm up caches and the branch predictor.
    for (birth, gender) in inputs.iter().take(10_000) {
        let a = Analysis::compute(birth, *gender, &options).unwrap_or_else(|e| panic!("{e}"));
        buf.clear();
        saju::json::write_analysis(&a, &mut buf);
    }

    println!("charting {n} births (full analysis + JSON) on one thread");
    let start = Clock::now();
    let step = (n / 4).max(1);
    for i in 0..n {
        let (birth, gender) = &inputs[i % inputs.len()];
        let a = Analysis::compute(black_box(birth), *gender, &options)
            .unwrap_or_else(|e| panic!("{e}"));
        buf.clear();
        saju::json::write_analysis(&a, &mut buf);
        bytes += black_box(&buf).len();
        if (i + 1) % step == 0 {
            let s = start.elapsed().as_secs_f64();
            println!(
                "  {} charts, {:.2} s, {:.0}/s",
                i + 1,
                s,
                (i + 1) as f64 / s
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} charts in {secs:.3} s, {:.0} bytes/chart on average",
        bytes as f64 / n as f64
    );
    println!("charts_per_second_per_core={:.0}", n as f64 / secs);
}
