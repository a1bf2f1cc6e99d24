//! `scripts/bench assets`: files/s enriched end to end versus files/s only decoded.
//!
//! 1. A corpus of `BENCH_FILES` (default 2,000) ≈1-megapixel photos, half JPEG, half PNG, is
//!    written once under `BENCH_DIR` (reused by later runs).
//! 2. Decode only: every file read and decoded with the same `image` library on a rayon pool
//!    of `BENCH_WORKERS` threads (default: one per CPU).
//! 3. End to end: a fresh database, the real `cdc-reader` (`CDC_READER_BIN`) and the worker
//!    (in this process, same thread count) on `DATABASE_URL` / `KAFKA_BROKERS`. After a warm-up
//!    row (group join, slot start), every file's row is inserted in one statement; files/s is
//!    counted from that commit until every row is `done`.
//!
//! Last line: `enrich_vs_decode_ratio=<enriched files/s ÷ decoded files/s>`.
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

fn decode_only(dir: &Path, names: &[String], threads: usize) -> anyhow::Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    // Warm the page cache so both measurements read from memory.
    for name in names {
        std::fs::read(dir.join(name))?;
    }
    let started = Instant::now();
    let pixels: u64 = pool.install(|| {
        names
            .par_iter()
            .map(|name| {
                let bytes = std::fs::read(dir.join(name)).unwrap();
                let image = image::ImageReader::new(Cursor::new(bytes))
                    .with_guessed_format()
                    .unwrap()
                    .decode()
                    .unwrap();
                u64::from(image.width()) * u64::from(image.height())
            })
            .sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "decoded {} files ({pixels} pixels) in {elapsed:.2}s",
        names.len()
    );
    Ok(names.len() as f64 / elapsed)
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
    wait_done(1, Duration::from_secs(120)).await?;

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
    let decoded = decode_only(&base.join("assets/bench"), &names, threads)?;
    println!("decode_files_per_s={decoded:.1}");
    let enriched = end_to_end(&base, &names, threads).await?;
    println!("enrich_files_per_s={enriched:.1}");
    println!(
        "threads={threads} files={files} megapixels_per_file={:.2}",
        f64::from(WIDTH * HEIGHT) / 1e6
    );
    println!("enrich_vs_decode_ratio={:.3}", enriched / decoded);
    Ok(())
}
