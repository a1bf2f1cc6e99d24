//! `scripts/bench assets`: files/s enriched end to end versus files/s only decoded.
//!
//! 1. A corpus of `BENCH_FILES` (default 2,000) ≈1-megapixel photos, half JPEG, half PNG, is
//!    written once under `BENCH_DIR` (reused by later runs).
//! 2. In process, on a rayon pool of `BENCH_WORKERS` threads (default: one per CPU): what the
//!    worker does to each file (resolve under the root, read, probe) without the pipeline,
//!    then a full decode of each with the `image` library — per format and for all files,
//!    with the peak memory per thread of enrichment. `BENCH_IN_PROCESS_ONLY=1` stops here.
//! 3. End to end: a fresh database, the real `cdc-reader` (`CDC_READER_BIN`) and the worker
//!    (in this process, same thread count) on `DATABASE_URL` / `KAFKA_BROKERS`. After a warm-up
//!    row (group join, slot start), every file's row is inserted in one statement; files/s is
//!    counted from that commit until every row is `done`.
//!
//! Last line: `enrich_vs_decode_ratio=<enriched files/s end to end ÷ decoded files/s>`.
#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use asset_worker::corpus;
use rayon::prelude::*;
use shared::config::{ConsumerArgs, KafkaArgs, PostgresArgs};
use shared::shutdown::Shutdown;
use sqlx::{Connection, PgConnection};

const WIDTH: u32 = 1152;
const HEIGHT: u32 = 864;

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (run through scripts/bench assets)"))
}

fn corpus_dir(files: usize) -> anyhow::Result<PathBuf> {
    let base = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-assets")
        });
    let dir = base.join("assets/bench");
    let marker = base.join(format!(".complete-{files}-{WIDTH}x{HEIGHT}"));
    if !marker.exists() {
        eprintln!(
            "writing {files} files of {WIDTH}x{HEIGHT} to {}",
            dir.display()
        );
        std::fs::create_dir_all(&dir)?;
        (0..files).into_par_iter().try_for_each(|i| {
            let (name, bytes) = if i % 2 == 0 {
                (
                    format!("photo_{i:05}.jpg"),
                    corpus::jpeg(WIDTH, HEIGHT, i as u32, 85),
                )
            } else {
                (
                    format!("photo_{i:05}.png"),
                    corpus::png_rgb8(WIDTH, HEIGHT, i as u32),
                )
            };
            std::fs::write(dir.join(name), bytes)
        })?;
        std::fs::write(&marker, b"")?;
    }
    Ok(base)
}

fn names(files: usize) -> Vec<String> {
    (0..files)
        .map(|i| format!("photo_{i:05}.{}", if i % 2 == 0 { "jpg" } else { "png" }))
        .collect()
}

/// Files of one format (by extension), or all of them.
fn of_format<'a>(names: &'a [String], extension: Option<&str>) -> Vec<&'a String> {
    names
        .iter()
        .filter(|n| extension.is_none_or(|e| n.ends_with(e)))
        .collect()
}

/// Files/s for `work` applied to every file on a pool of `threads` threads.
fn files_per_second(
    names: &[&String],
    threads: usize,
    work: impl Fn(&str) -> u64 + Sync,
) -> anyhow::Result<(f64, u64)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let started = Instant::now();
    let total: u64 = pool.install(|| names.par_iter().map(|name| work(name)).sum());
    Ok((names.len() as f64 / started.elapsed().as_secs_f64(), total))
}

/// A full decode with the `image` library: the baseline.
fn decode(dir: &Path, name: &str) -> u64 {
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let image = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .decode()
        .unwrap();
    u64::from(image.width()) * u64::from(image.height())
}

/// What the worker does with a file (resolve under the root, read, probe), without the
/// pipeline around it.
fn enrich(settings: &asset_worker::enrichment::Settings, name: &str) -> u64 {
    let input = asset_worker::change::AssetInput {
        id: uuid::Uuid::nil(),
        file_path: "/assets/bench/".into(),
        file_name: name.into(),
        stored_width: None,
        stored_height: None,
        position: (0, 0),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let outcome = asset_worker::enrichment::enrich(input, settings, deadline);
    let facts = outcome.result.unwrap();
    assert!(facts.thumbhash.is_some(), "{name}: no statistics");
    outcome.bytes_read
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM`: the peak so far,
/// `VmRSS`: now), in bytes; 0 when unreadable.
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Enrichment alone versus a full decode alone, per format and for all files; prints the
/// ratios and the peak memory per thread of enrichment. Returns files/s of the full decode
/// of every file (the end-to-end baseline).
fn in_process(base: &Path, names: &[String], threads: usize) -> anyhow::Result<f64> {
    let dir = base.join("assets/bench");
    // Warm the page cache so every measurement reads from memory.
    for name in names {
        std::fs::read(dir.join(name))?;
    }
    let settings = asset_worker::enrichment::Settings {
        root: asset_worker::resolve::AssetRoot::new(base)?,
        max_file_bytes: 256 << 20,
        max_pixels: 16384 * 8192,
    };
    // Enrichment first, so the peak memory is its own (a full decode holds whole pictures).
    let before = status_bytes("VmRSS");
    let mut enriched = Vec::new();
    for (label, extension) in [("jpeg", Some(".jpg")), ("png", Some(".png")), ("all", None)] {
        let files = of_format(names, extension);
        let (rate, _) = files_per_second(&files, threads, |n| enrich(&settings, n))?;
        enriched.push((label, files, rate));
    }
    let per_thread = status_bytes("VmHWM").saturating_sub(before) / threads as u64;
    let mut decoded_all = 0.0;
    for (label, files, enrich_rate) in enriched {
        let (rate, _) = files_per_second(&files, threads, |n| decode(&dir, n))?;
        eprintln!(
            "{label}: {} files, full decode {rate:.1} files/s, enrichment alone {enrich_rate:.1} files/s",
            files.len()
        );
        println!("{label}_decode_files_per_s={rate:.1}");
        println!("{label}_enrich_only_files_per_s={enrich_rate:.1}");
        println!(
            "{label}_enrich_only_vs_decode_ratio={:.3}",
            enrich_rate / rate
        );
        decoded_all = rate;
    }
    println!("enrich_peak_rss_bytes_per_thread={per_thread}");
    Ok(decoded_all)
}

async fn end_to_end(base: &Path, names: &[String], threads: usize) -> anyhow::Result<f64> {
    let admin_url = var("DATABASE_URL")?;
    let brokers = var("KAFKA_BROKERS")?;
    let cdc_bin = var("CDC_READER_BIN")?;
    let run = format!("assets{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {run}"))
        .execute(&mut admin)
        .await?;
    let mut url = url::Url::parse(&admin_url)?;
    url.set_path(&format!("/{run}"));
    let url = url.to_string();
    let postgres = PostgresArgs {
        database_url: url.clone(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(10),
    };
    let pool = shared::db::connect(&postgres, "bench").await?;
    shared::db::migrate(&pool).await?;

    let log = base.join("cdc-reader.log");
    // Killed when dropped, on every way out of this function; the URL (with its password)
    // goes through the environment, not the command line.
    let mut cdc = shared::testkit::private::KillOnDrop(
        Command::new(&cdc_bin)
            .env("DATABASE_URL", &url)
            .args(["--kafka-brokers", &brokers, "--topic-prefix", &run])
            .args([
                "--slot",
                &run,
                "--tables",
                "public.image_assets",
                "--topic-partitions",
                "6",
            ])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--status-interval",
                "1s",
                "--log-format",
                "json",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {cdc_bin}"))?,
    );

    let config = asset_worker::Config {
        postgres,
        kafka: KafkaArgs {
            brokers,
            topic_prefix: run.clone(),
            properties: Vec::new(),
        },
        consumer: ConsumerArgs {
            max_poll_interval: Duration::from_secs(7),
            session_timeout: Duration::from_secs(6),
            fetch_wait_max: Duration::from_millis(20),
            publish_timeout: Duration::from_secs(30),
            max_in_flight: None,
            shutdown_timeout: Duration::from_secs(30),
        },
        assets_root: base.to_path_buf(),
        group_id: format!("{run}-workers"),
        batch_size: 200,
        mark_write_backs: false,
        flush_interval: Duration::from_millis(100),
        max_file_bytes: 256 << 20,
        max_pixels: 16384 * 8192,
        file_timeout: Duration::from_secs(30),
        workers: threads,
        queue_depth: 64,
        results_topic: shared::topics::ENRICHED_TOPIC.to_owned(),
        metrics_addr: "127.0.0.1:0".parse()?,
    };
    let shutdown = Shutdown::new();
    let worker = tokio::spawn(asset_worker::run(config, shutdown.clone()));

    let wait_done = |expected: i64, timeout: Duration| {
        let pool = pool.clone();
        async move {
            let deadline = Instant::now() + timeout;
            loop {
                let done: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM image_assets WHERE enrichment_status <> 'pending'",
                )
                .fetch_one(&pool)
                .await?;
                if done >= expected {
                    return anyhow::Ok(());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "only {done} of {expected} rows enriched"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    eprintln!("warming up (topic creation, group join)");
    sqlx::query("INSERT INTO image_assets (file_path, file_name) VALUES ('/assets/bench/', $1)")
        .bind(&names[0])
        .execute(&pool)
        .await?;
    if let Err(e) = wait_done(1, Duration::from_secs(120)).await {
        // A worker that stopped says why.
        if worker.is_finished() {
            worker.await??;
        }
        return Err(e);
    }

    eprintln!("inserting {} rows", names.len());
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO image_assets (file_path, file_name) SELECT '/assets/bench/', n FROM UNNEST($1::text[]) AS n",
    )
    .bind(names)
    .execute(&pool)
    .await?;
    wait_done(names.len() as i64 + 1, Duration::from_secs(1800)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM image_assets WHERE enrichment_status = 'error'")
            .fetch_one(&pool)
            .await?;
    anyhow::ensure!(errors == 0, "{errors} files failed to enrich");
    eprintln!("enriched {} files end to end in {elapsed:.2}s", names.len());

    shutdown.trigger();
    worker.await??;
    let _ = cdc.kill();
    let _ = cdc.wait();
    pool.close().await;
    sqlx::query(&format!("SELECT pg_drop_replication_slot('{run}')"))
        .execute(&mut admin)
        .await
        .ok();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {run} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .ok();
    Ok(names.len() as f64 / elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let files: usize = std::env::var("BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let threads: usize = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let base = corpus_dir(files)?;
    let names = names(files);
    let decoded = in_process(&base, &names, threads)?;
    println!("decode_files_per_s={decoded:.1}");
    if std::env::var("BENCH_IN_PROCESS_ONLY").is_ok_and(|v| v == "1") {
        return Ok(());
    }
    let enriched = end_to_end(&base, &names, threads).await?;
    println!("enrich_files_per_s={enriched:.1}");
    println!(
        "threads={threads} files={files} megapixels_per_file={:.2}",
        f64::from(WIDTH * HEIGHT) / 1e6
    );
    println!("enrich_vs_decode_ratio={:.3}", enriched / decoded);
    Ok(())
}
