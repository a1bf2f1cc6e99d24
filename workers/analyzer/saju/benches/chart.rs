//! Criterion benchmarks of the per-chart hot path: pillars alone, the full analysis, and
//! the full analysis with its JSON document (the figure the goal is about).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use saju::{Analysis, Birth, Gender, Instant, Options, Pillars};

/// 4096 reproducible instants spread over 1900–2100.
fn births() -> Vec<Birth> {
    let (lo, span) = (-2_208_988_800i64, 6_342_883_200i64);
    let mut state = 42u64;
    (0..4096)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            Birth::Instant(Instant::from_unix_seconds(
                lo + ((state >> 11) % span as u64) as i64,
            ))
        })
        .collect()
}

fn chart(c: &mut Criterion) {
    let births = births();
    let options = Options::default();
    let mut group = c.benchmark_group("chart");
    group.throughput(Throughput::Elements(births.len() as u64));
    group.bench_function("pillars", |b| {
        b.iter(|| {
            for birth in &births {
                black_box(Pillars::compute(black_box(birth), &options).ok());
            }
        })
    });
    group.bench_function("analysis", |b| {
        b.iter(|| {
            for birth in &births {
                black_box(Analysis::compute(black_box(birth), Gender::Male, &options).ok());
            }
        })
    });
    let mut buf = Vec::with_capacity(4096);
    group.bench_function("analysis_json", |b| {
        b.iter(|| {
            for birth in &births {
                if let Ok(a) = Analysis::compute(black_box(birth), Gender::Female, &options) {
                    buf.clear();
                    saju::json::write_analysis(&a, &mut buf);
                    black_box(&buf);
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, chart);
criterion_main!(benches);
