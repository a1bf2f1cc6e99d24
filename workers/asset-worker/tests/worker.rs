//! The asset worker against the real services `scripts/test` provisions, fed by the real CDC
//! reader: rows inserted into PostgreSQL travel through wal2json, `cdc-reader` and the broker
//! to the worker, which reads files from a corpus the tests write with real encoders.
//!
//! The `cdc-reader` binary is taken from the workspace's `target/debug` (or
//! `$CARGO_TARGET_DIR/debug`); `scripts/test` builds every binary before the tests run. Run
//! with `cargo build -p cdc-reader` first when invoking `cargo test -p asset-worker` alone.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use asset_worker::corpus;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use serde_json::Value;
use shared::config::{KafkaArgs, PostgresArgs};
use shared::kafka::consumer_config;
use shared::shutdown::Shutdown;
use shared::testkit::{unique_name, wait_for, TestDatabase, TestEnv};
use sqlx::PgPool;
use uuid::Uuid;

/// A test's world: database, topics, assets root, and a running CDC reader.
struct Harness {
    env: TestEnv,
    db: TestDatabase,
    kafka: KafkaArgs,
    root: PathBuf,
    cdc: Child,
}

fn cdc_reader_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("debug/cdc-reader");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p cdc-reader` (scripts/test builds every binary)",
        bin.display()
    );
    bin
}

impl Harness {
    async fn new(label: &str) -> Self {
        Self::with_reader_flags(label, &[]).await
    }

    /// A harness whose cdc-reader gets extra flags.
    async fn with_reader_flags(label: &str, reader_flags: &[&str]) -> Self {
        let env = TestEnv::get();
        let db = env.database(label).await;
        let prefix = unique_name("a");
        let kafka = env.kafka(&prefix);
        let root = std::env::temp_dir().join(unique_name(&format!("assets_{label}")));
        std::fs::create_dir_all(&root).unwrap();
        let log = root.with_extension("cdc.log");
        let cdc = Command::new(cdc_reader_binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args([
                "--database-url",
                &db.url,
                "--kafka-brokers",
                &env.kafka_brokers,
            ])
            .args(["--topic-prefix", &prefix, "--slot", &unique_name("slot")])
            .args(["--tables", "public.image_assets", "--topic-partitions", "3"])
            .args(["--metrics-addr", "127.0.0.1:0", "--status-interval", "1s"])
            .args(["--log-format", "json"])
            .args(reader_flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn cdc-reader");
        let harness = Self {
            env,
            db,
            kafka,
            root,
            cdc,
        };
        // The reader creates the topics; wait until the CDC topic exists.
        let topic = harness.cdc_topic();
        let brokers = harness.env.kafka_brokers.clone();
        wait_for("the CDC topic", Duration::from_secs(60), || {
            let (topic, brokers) = (topic.clone(), brokers.clone());
            async move {
                let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .create()
                    .ok()?;
                let meta = consumer
                    .fetch_metadata(Some(&topic), Duration::from_secs(5))
                    .ok()?;
                meta.topics()
                    .iter()
                    .any(|t| t.name() == topic && !t.partitions().is_empty())
                    .then_some(())
            }
        })
        .await;
        // A result topic of its own: reading it back never means reading other tests' results.
        shared::kafka::ensure_topics(
            &harness.kafka,
            &[shared::kafka::TopicSpec {
                name: harness.results_topic(),
                partitions: 3,
                configs: Vec::new(),
            }],
        )
        .await
        .unwrap();
        harness
    }

    fn results_topic(&self) -> String {
        format!(
            "{}.{}",
            self.kafka.topic_prefix,
            shared::topics::ENRICHED_TOPIC
        )
    }

    fn cdc_topic(&self) -> String {
        self.kafka.cdc_topic("public", "image_assets")
    }

    fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    fn put(&self, dir: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn config(&self, group: &str) -> asset_worker::Config {
        asset_worker::Config {
            postgres: PostgresArgs {
                database_url: self.db.url.clone(),
                max_connections: 4,
                connect_timeout: Duration::from_secs(10),
            },
            kafka: self.kafka.clone(),
            consumer: self.env.consumer(),
            assets_root: self.root.clone(),
            group_id: group.to_owned(),
            batch_size: 16,
            mark_write_backs: false,
            flush_interval: Duration::from_millis(100),
            max_file_bytes: 2 << 20,
            max_pixels: 40_000_000,
            file_timeout: Duration::from_secs(20),
            workers: 2,
            queue_depth: 32,
            results_topic: self.results_topic(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
        }
    }

    async fn insert(
        &self,
        dir: &str,
        name: &str,
        width: Option<i32>,
        metadata: Option<Value>,
    ) -> Uuid {
        sqlx::query_scalar(
            "INSERT INTO image_assets (file_path, file_name, width, metadata) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(dir)
        .bind(name)
        .bind(width)
        .bind(metadata)
        .fetch_one(self.pool())
        .await
        .unwrap()
    }

    async fn wait_until_settled(&self, ids: &[Uuid], timeout: Duration) {
        let pool = self.pool().clone();
        let ids = ids.to_vec();
        wait_for("every row enriched", timeout, || {
            let (pool, ids) = (pool.clone(), ids.clone());
            async move {
                let pending: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM image_assets WHERE id = ANY($1) AND enrichment_status = 'pending'",
                )
                .bind(&ids)
                .fetch_one(&pool)
                .await
                .ok()?;
                (pending == 0).then_some(())
            }
        })
        .await;
    }

    /// Every `assets.enriched.v1` event of `ids`, read back until each has one.
    async fn events(&self, ids: &[Uuid]) -> HashMap<String, Vec<Value>> {
        let wanted: std::collections::HashSet<String> = ids.iter().map(Uuid::to_string).collect();
        let events = shared::testkit::read_events_by_id(
            &self.env.kafka_brokers,
            &[&self.results_topic()],
            Duration::from_secs(120),
            |seen| wanted.iter().all(|id| seen.contains_key(id)),
        )
        .await;
        let missing = wanted.iter().filter(|id| !events.contains_key(*id)).count();
        assert_eq!(
            missing,
            0,
            "{missing} of {} rows have no result event",
            ids.len()
        );
        events
    }

    async fn row(&self, id: Uuid) -> Row {
        sqlx::query_as(
            "SELECT enrichment_status, enrichment_error, width, height, metadata FROM image_assets WHERE id = $1",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await
        .unwrap()
    }

    /// Messages of `topic` that `keep` accepts, until `count` of them are in. (The result
    /// topic is shared by every test and run: it is filtered by asset id.)
    async fn read_topic(
        &self,
        topic: &str,
        count: usize,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<(Option<String>, Value)> {
        let consumer: StreamConsumer = consumer_config(
            &self.kafka,
            &self.env.consumer(),
            &unique_name("reader"),
            "test",
        )
        .create()
        .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut out = Vec::new();
        while out.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} messages on {topic}", out.len()))
                .unwrap();
            let key = message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            let value: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
            if keep(&value) {
                out.push((key, value));
            }
        }
        out
    }

    /// The worker binary in consumer group `group`: small batches, one decode thread.
    fn spawn_worker(&self, group: &str, metrics_addr: &str) -> Child {
        self.spawn_worker_with(group, metrics_addr, &[])
    }

    /// [`Harness::spawn_worker`] with extra environment variables.
    fn spawn_worker_with(&self, group: &str, metrics_addr: &str, vars: &[(&str, &str)]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_asset-worker"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().copied())
            .args([
                "--database-url",
                &self.db.url,
                "--kafka-brokers",
                &self.env.kafka_brokers,
            ])
            .args([
                "--topic-prefix",
                &self.kafka.topic_prefix,
                "--group-id",
                group,
                "--results-topic",
                &self.results_topic(),
            ])
            .args(["--assets-root", self.root.to_str().unwrap()])
            .args([
                "--batch-size",
                "20",
                "--flush-interval",
                "50ms",
                "--workers",
                "1",
                "--queue-depth",
                "8",
            ])
            .args([
                "--max-poll-interval",
                "7s",
                "--session-timeout",
                "6s",
                "--metrics-addr",
                metrics_addr,
            ])
            .args(["--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn asset-worker")
    }

    async fn finish(mut self) {
        let _ = self.cdc.kill();
        let _ = self.cdc.wait();
        let _ = std::fs::remove_dir_all(&self.root);
        self.db.drop_database().await;
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    enrichment_status: String,
    enrichment_error: Option<String>,
    width: Option<i32>,
    height: Option<i32>,
    metadata: Option<Value>,
}

impl Row {
    fn facts(&self) -> &Value {
        &self.metadata.as_ref().unwrap()["asset_worker"]
    }
}

#[tokio::test]
async fn enriches_every_format_and_rejects_bad_files() {
    let h = Harness::new("enrich").await;
    let jpeg = corpus::jpeg(120, 80, 2, 85);
    let png = corpus::png_rgb8(64, 64, 5);
    h.put("/assets/ui/", "button.png", &png);
    h.put("/assets/ui/", "deep.png", &corpus::png_rgba16(40, 30, 1));
    h.put(
        "/assets/refs/",
        "street.jpg",
        &corpus::jpeg_with_exif(160, 120, 3, &corpus::ExifFields::default()),
    );
    h.put("/assets/fx/", "spark.gif", &corpus::gif_animated(32, 24, 5));
    h.put("/assets/ui/", "panel.webp", &corpus::webp(50, 40, 2));
    h.put("/assets/scan/", "page.tif", &corpus::tiff(30, 20, 2));
    h.put("/assets/ui/", "legacy.bmp", &corpus::bmp(17, 13, 2));
    h.put(
        "/assets/textures/hero/",
        "hero_char_diffuse.exr",
        &corpus::exr_layers(64, 32),
    );
    h.put("/assets/ui/", "logo.svg", &corpus::svg(300, 150));
    h.put(
        "/assets/bad/",
        "cut.jpg",
        &corpus::truncated(&jpeg, jpeg.len() / 2),
    );
    h.put(
        "/assets/bad/",
        "noise.png",
        &corpus::corrupted(&png, 40, 400),
    );
    h.put("/assets/bad/", "notes.png", b"this is not an image at all");
    h.put("/assets/bad/", "huge.png", &vec![0u8; 3 << 20]);
    h.put(
        "/assets/bad/",
        "bomb.png",
        &corpus::png_claiming(100_000, 100_000),
    );
    let outside = h.root.with_extension("outside.png");
    std::fs::write(&outside, &png).unwrap();
    std::fs::create_dir_all(h.root.join("assets/bad")).unwrap();
    std::os::unix::fs::symlink(&outside, h.root.join("assets/bad/escape.png")).unwrap();

    let user = serde_json::json!({"theme": "dark", "author": "peter", "format": "custom"});
    let mut good = HashMap::new();
    for (dir, name, width, metadata) in [
        ("/assets/ui/", "button.png", Some(999), Some(user.clone())),
        ("/assets/ui/", "deep.png", None, None),
        (
            "/assets/refs/",
            "street.jpg",
            Some(160),
            Some(serde_json::json!({"source": "outdoor"})),
        ),
        ("/assets/fx/", "spark.gif", None, None),
        ("/assets/ui/", "panel.webp", None, None),
        ("/assets/scan/", "page.tif", None, None),
        ("/assets/ui/", "legacy.bmp", None, None),
        (
            "/assets/textures/hero/",
            "hero_char_diffuse.exr",
            None,
            Some(serde_json::json!({"layers": 32})),
        ),
        ("/assets/ui/", "logo.svg", None, None),
    ] {
        good.insert(name, h.insert(dir, name, width, metadata).await);
    }
    let mut bad = HashMap::new();
    for (dir, name, kind) in [
        ("/assets/bad/", "cut.jpg", "truncated"),
        ("/assets/bad/", "noise.png", "corrupt"),
        ("/assets/bad/", "notes.png", "unsupported"),
        ("/assets/bad/", "huge.png", "too_large"),
        ("/assets/bad/", "bomb.png", "too_large"),
        ("/assets/bad/", "missing.png", "missing"),
        ("/assets/bad/", "escape.png", "refused"),
        ("/../../etc/", "passwd", "refused"),
        ("/assets/", "../secret.png", "refused"),
    ] {
        bad.insert(
            name,
            (h.insert(dir, name, None, Some(user.clone())).await, kind),
        );
    }
    let deleted: Uuid = sqlx::query_scalar(
        "INSERT INTO image_assets (file_path, file_name, deleted_at) VALUES ('/assets/ui/', 'button.png', now()) RETURNING id",
    )
    .fetch_one(h.pool())
    .await
    .unwrap();

    let shutdown = Shutdown::new();
    let worker = tokio::spawn(asset_worker::run(
        h.config(&unique_name("g")),
        shutdown.clone(),
    ));
    let mut all: Vec<Uuid> = good.values().copied().collect();
    all.extend(bad.values().map(|(id, _)| *id));
    h.wait_until_settled(&all, Duration::from_secs(120)).await;

    // Valid files: every fact checked against what the corpus wrote.
    let button = h.row(good["button.png"]).await;
    assert_eq!(button.enrichment_status, "done", "{button:?}");
    assert_eq!(button.enrichment_error, None);
    let metadata = button.metadata.as_ref().unwrap();
    for (key, value) in user.as_object().unwrap() {
        assert_eq!(&metadata[key], value, "user key {key} changed");
    }
    let facts = button.facts();
    assert_eq!(facts["format"], "PNG");
    assert_eq!(
        (facts["width"].as_u64(), facts["height"].as_u64()),
        (Some(64), Some(64))
    );
    assert_eq!(
        button.width,
        Some(999),
        "a stored width is never overwritten"
    );
    assert_eq!(button.height, Some(64), "a missing height is filled in");
    assert_eq!(facts["stored_dimensions_differ"], true);
    assert_eq!(facts["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(facts["file_size"].as_u64(), Some(png.len() as u64));
    assert_eq!(facts["phash"].as_str().unwrap().len(), 16);
    assert!(facts["thumbhash"].is_string());
    assert!(facts["avg_luminance"].is_number());
    assert!(!facts["dominant_colors"].as_array().unwrap().is_empty());
    assert_eq!(facts["source"]["file_name"], "button.png");

    let deep = h.row(good["deep.png"]).await;
    assert_eq!(
        (
            deep.facts()["color_type"].as_str(),
            deep.facts()["bit_depth"].as_u64()
        ),
        (Some("rgba"), Some(16))
    );
    assert_eq!((deep.width, deep.height), (Some(40), Some(30)));

    let street = h.row(good["street.jpg"]).await;
    let exif = &street.facts()["exif"];
    assert_eq!(exif["orientation"], 6);
    assert_eq!(exif["make"], "Canon");
    assert_eq!(exif["captured_at"], "2024-05-01T10:20:30+09:00");
    assert!((exif["gps"]["latitude"].as_f64().unwrap() - 37.5665).abs() < 1e-4);
    assert_eq!(street.facts()["stored_dimensions_differ"], false);
    assert_eq!(street.metadata.as_ref().unwrap()["source"], "outdoor");

    let gif = h.row(good["spark.gif"]).await;
    assert_eq!(gif.facts()["animation"]["frames"], 5);
    assert_eq!(gif.facts()["animation"]["duration_ms"], 500);

    for (name, format, w, h_) in [
        ("panel.webp", "WEBP", 50, 40),
        ("page.tif", "TIFF", 30, 20),
        ("legacy.bmp", "BMP", 17, 13),
        ("logo.svg", "SVG", 300, 150),
    ] {
        let row = h.row(good[name]).await;
        assert_eq!(row.enrichment_status, "done", "{name}: {row:?}");
        assert_eq!(row.facts()["format"], format, "{name}");
        assert_eq!((row.width, row.height), (Some(w), Some(h_)), "{name}");
    }

    let exr = h.row(good["hero_char_diffuse.exr"]).await;
    let layout = &exr.facts()["exr"];
    let channels: Vec<&str> = layout["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(channels, corpus::EXR_CHANNELS);
    assert_eq!(
        layout["layers"],
        serde_json::json!(["", "diffuse", "normal"])
    );
    assert_eq!(
        exr.metadata.as_ref().unwrap()["layers"],
        32,
        "the user's own `layers` key is kept"
    );

    // Bad files: error status with the reason, user keys intact, nothing else written.
    for (name, (id, kind)) in &bad {
        let row = h.row(*id).await;
        assert_eq!(row.enrichment_status, "error", "{name}: {row:?}");
        let error = row.enrichment_error.clone().unwrap();
        assert!(
            error.starts_with(kind),
            "{name}: expected {kind}, got {error}"
        );
        assert_eq!(row.facts()["error"]["kind"], *kind, "{name}");
        assert_eq!(row.metadata.as_ref().unwrap()["author"], "peter", "{name}");
        assert_eq!(row.width, None, "{name}");
    }
    let untouched = h.row(deleted).await;
    assert_eq!(
        untouched.enrichment_status, "pending",
        "soft-deleted rows are skipped"
    );

    // One dead letter per bad file, one result per row.
    let dlq = shared::topics::dlq_topic(&h.cdc_topic());
    let letters = h.read_topic(&dlq, bad.len(), |_| true).await;
    let mut reasons: Vec<String> = letters
        .iter()
        .map(|(_, v)| v["error"]["reason"].as_str().unwrap().to_owned())
        .collect();
    reasons.sort();
    let mut expected: Vec<String> = bad.values().map(|(_, k)| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(reasons, expected);
    assert!(letters
        .iter()
        .all(|(_, v)| v["worker"] == "asset-worker" && v["original"]["value"].is_string()));

    // Own writes are not enriched again; a user's edit of another key neither; a rename is.
    let id = good["button.png"];
    sqlx::query(
        "UPDATE image_assets SET metadata = metadata || '{\"tag\": \"hero\"}' WHERE id = $1",
    )
    .bind(id)
    .execute(h.pool())
    .await
    .unwrap();
    h.put("/assets/ui/", "button_v2.png", &corpus::png_rgb8(32, 16, 8));
    sqlx::query("UPDATE image_assets SET file_name = 'button_v2.png' WHERE id = $1")
        .bind(id)
        .execute(h.pool())
        .await
        .unwrap();
    let pool = h.pool().clone();
    wait_for("the renamed file enriched", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let name: Option<String> = sqlx::query_scalar("SELECT metadata #>> '{asset_worker,source,file_name}' FROM image_assets WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .ok()?;
            (name.as_deref() == Some("button_v2.png")).then_some(())
        }
    })
    .await;
    let renamed = h.row(id).await;
    assert_eq!(renamed.facts()["width"], 32);
    assert_eq!(renamed.metadata.as_ref().unwrap()["tag"], "hero");

    let total = all.len() + 1;
    let ours: Vec<String> = all.iter().map(Uuid::to_string).collect();
    let results = h
        .read_topic(&h.results_topic(), total, |v| {
            ours.iter().any(|id| v["asset_id"] == id.as_str())
        })
        .await;
    let key = format!("{{\"id\":\"{id}\"}}");
    let for_button = results
        .iter()
        .filter(|(k, _)| k.as_deref() == Some(key.as_str()))
        .count();
    let keys: Vec<_> = results
        .iter()
        .map(|(k, v)| (k.clone(), v["asset_id"].clone()))
        .collect();
    assert_eq!(
        for_button, 2,
        "one result for the insert, one for the rename; none for own writes or the tag edit: {key} in {keys:?}"
    );
    let done: Vec<&Value> = results
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["status"] == "done")
        .collect();
    assert!(done
        .iter()
        .all(|v| v["metadata_patch"]["asset_worker"]["sha256"].is_string()));

    shutdown.trigger();
    worker.await.unwrap().unwrap();
    let _ = std::fs::remove_file(outside);
    h.finish().await;
}

#[tokio::test]
async fn kill_9_mid_batch_loses_nothing() {
    let h = Harness::new("kill9").await;
    const FILES: usize = 240;
    let mut expected = HashMap::new();
    for i in 0..FILES {
        let name = format!("photo_{i:04}.jpg");
        let bytes = corpus::jpeg(256, 192, i as u32, 80);
        expected.insert(name.clone(), asset_worker::probe::hash::sha256_hex(&bytes));
        h.put("/batch/", &name, &bytes);
    }
    let mut ids = Vec::new();
    for i in 0..FILES {
        ids.push(
            h.insert("/batch/", &format!("photo_{i:04}.jpg"), None, None)
                .await,
        );
    }
    let group = unique_name("g");
    let spawn = || h.spawn_worker(&group, "127.0.0.1:0");
    let mut first = spawn();
    let pool = h.pool().clone();
    let done = |min: i64| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM image_assets WHERE enrichment_status = 'done'",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (n >= min).then_some(n)
        }
    };
    let before = wait_for("a first batch", Duration::from_secs(90), || done(25)).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        before < FILES as i64,
        "killed too late to be mid-run ({before} done)"
    );

    let mut second = spawn();
    h.wait_until_settled(&ids, Duration::from_secs(180)).await;
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT file_name, enrichment_status, metadata #>> '{asset_worker,sha256}' FROM image_assets",
    )
    .fetch_all(h.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), FILES);
    for (name, status, sha) in rows {
        assert_eq!(status, "done", "{name}");
        assert_eq!(sha.as_ref(), expected.get(&name), "{name}");
    }
    // Downstream sees every one of them on the result topic.
    let events = h.events(&ids).await;
    for id in &ids {
        let newest = events[&id.to_string()].last().unwrap();
        assert_eq!(newest["status"], "done", "{id}");
    }
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    let status = second.wait().unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    h.finish().await;
}

/// Starts a worker that aborts (as SIGKILL would end it) right after its first batch with
/// events to publish was written, before any of them is acknowledged; waits for it to die.
async fn crash_after_a_write(h: &Harness, group: &str) {
    let mut crashing = h.spawn_worker_with(
        group,
        "127.0.0.1:0",
        &[("PIPELINE_FAULT", "abort-after-write")],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = crashing.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fault point never fired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
}

async fn count_status(h: &Harness, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM image_assets WHERE enrichment_status = $1")
        .bind(status)
        .fetch_one(h.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_crash_between_the_write_and_the_acknowledgement_loses_no_event_or_dead_letter() {
    let h = Harness::new("fault").await;
    let group = unique_name("g");
    // First only rows whose file is missing: the batch written before the crash holds their
    // dead letters (and error events).
    let mut missing = Vec::new();
    for i in 0..5 {
        missing.push(
            h.insert("/fault/", &format!("gone_{i}.png"), None, None)
                .await,
        );
    }
    crash_after_a_write(&h, &group).await;
    assert!(
        count_status(&h, "error").await > 0,
        "the crash came after the failures were written"
    );

    // Then files that enrich: the crash comes after a batch of results was written.
    let mut ids = Vec::new();
    for i in 0..60 {
        let name = format!("photo_{i:04}.jpg");
        h.put("/fault/", &name, &corpus::jpeg(64, 48, i, 80));
        ids.push(h.insert("/fault/", &name, None, None).await);
    }
    crash_after_a_write(&h, &group).await;
    assert!(
        count_status(&h, "done").await > 0,
        "the crash came after results were written"
    );
    ids.extend(&missing);

    let mut worker = h.spawn_worker(&group, "127.0.0.1:0");
    h.wait_until_settled(&ids, Duration::from_secs(120)).await;
    let events = h.events(&ids).await;
    for id in &ids {
        let expected = if missing.contains(id) {
            "error"
        } else {
            "done"
        };
        let newest = events[&id.to_string()].last().unwrap();
        assert_eq!(newest["status"], expected, "{id}");
    }
    let wanted: std::collections::HashSet<String> = missing.iter().map(Uuid::to_string).collect();
    let dlq = format!("{}.dlq", h.cdc_topic());
    let letters = shared::testkit::read_events_by_id(
        &h.env.kafka_brokers,
        &[&dlq],
        Duration::from_secs(120),
        |seen| wanted.iter().all(|id| seen.contains_key(id)),
    )
    .await;
    for id in &missing {
        let letter = &letters[&id.to_string()][0];
        assert_eq!(letter["error"]["reason"], "missing", "{id}");
        assert_eq!(letter["asset_id"], id.to_string());
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    h.finish().await;
}

/// Files a worker has processed, from its `/metrics` (0 while it does not answer).
fn processed(metrics_addr: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(metrics_addr) else {
        return 0.0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: {metrics_addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return 0.0;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("asset_files_processed_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Two workers in one group share the partitions (both enrich files); one is killed with
/// SIGKILL, and rows inserted afterwards, on every partition, are all enriched by the other
/// once it has taken over the dead one's partitions.
#[tokio::test]
async fn two_workers_share_the_partitions_and_either_may_die() {
    let h = Harness::new("pair").await;
    let jpeg = corpus::jpeg(256, 192, 7, 80);
    let sha = asset_worker::probe::hash::sha256_hex(&jpeg);
    h.put("/pair/", "photo.jpg", &jpeg);
    let group = unique_name("g");
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let mut a = h.spawn_worker(&group, &addr_a);
    let mut b = h.spawn_worker(&group, &addr_b);

    // Rows keep coming until both members have enriched some (the group settles on both).
    let mut ids = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while processed(&addr_a) == 0.0 || processed(&addr_b) == 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "both members should get partitions: a {} b {}",
            processed(&addr_a),
            processed(&addr_b)
        );
        for _ in 0..12 {
            ids.push(h.insert("/pair/", "photo.jpg", None, None).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    h.wait_until_settled(&ids, Duration::from_secs(120)).await;
    let shared_out = (processed(&addr_a), processed(&addr_b));

    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    let mut later = Vec::new();
    for _ in 0..60 {
        later.push(h.insert("/pair/", "photo.jpg", None, None).await);
    }
    h.wait_until_settled(&later, Duration::from_secs(120)).await;
    ids.extend(later);
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT enrichment_status, metadata #>> '{asset_worker,sha256}' FROM image_assets WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(h.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), ids.len());
    for (status, digest) in rows {
        assert_eq!(status, "done");
        assert_eq!(digest.as_deref(), Some(sha.as_str()));
    }
    eprintln!(
        "{} rows; before the kill a enriched {} and b {}; b {} in all",
        ids.len(),
        shared_out.0,
        shared_out.1,
        processed(&addr_b)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status();
    assert!(b.wait().unwrap().success(), "clean exit after SIGTERM");
    h.finish().await;
}

/// No secret from the environment in `asset-worker --help` or any subcommand's, in the refusal
/// of malformed `KAFKA_PROPERTIES`, or in the logs of a start-up failing on `DATABASE_URL`.
mod secrets {
    use shared::testkit::secrets;

    const BIN: &str = env!("CARGO_BIN_EXE_asset-worker");

    #[test]
    fn help_hides_secrets() {
        secrets::assert_help_hides_secrets(BIN, &["run", "migrate", "create-topics"]);
    }

    #[test]
    fn errors_hide_secrets() {
        secrets::assert_property_errors_hide_secrets(BIN, &["run"]);
        secrets::assert_property_errors_hide_secrets(BIN, &["create-topics"]);
        secrets::assert_database_errors_hide_secrets(BIN, &["run"]);
        secrets::assert_database_errors_hide_secrets(BIN, &["migrate"]);
    }
}

/// The reader writing Debezium's events (`--envelope debezium`, without schemas, the
/// default): the asset worker reads them like its own, enriches every row once, keeps the
/// user's metadata, and its write-backs start no loop (it recognises them in Debezium's
/// `metadata`, a JSON string).
#[tokio::test]
async fn rows_arriving_as_debezium_events_are_enriched_once() {
    let h = Harness::with_reader_flags("dbz", &["--envelope", "debezium"]).await;
    let png = corpus::png_rgb8(64, 48, 3);
    let sha = asset_worker::probe::hash::sha256_hex(&png);
    h.put("/dbz/", "tile.png", &png);
    let user = serde_json::json!({"owner": "team"});
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            h.insert("/dbz/", "tile.png", None, Some(user.clone()))
                .await,
        );
    }
    let group = unique_name("g");
    let mut worker = h.spawn_worker(&group, "127.0.0.1:0");
    h.wait_until_settled(&ids, Duration::from_secs(120)).await;
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT enrichment_status, metadata #>> '{asset_worker,sha256}', metadata ->> 'owner' \
         FROM image_assets WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(h.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), ids.len());
    for (status, digest, owner) in rows {
        assert_eq!(status, "done");
        assert_eq!(digest.as_deref(), Some(sha.as_str()));
        assert_eq!(owner.as_deref(), Some("team"));
    }
    // Settled: no row keeps being enriched again.
    let stamps = || async {
        sqlx::query_scalar::<_, Vec<chrono::DateTime<chrono::Utc>>>(
            "SELECT array_agg(updated_at ORDER BY id) FROM image_assets",
        )
        .fetch_one(h.pool())
        .await
        .unwrap()
    };
    let before = stamps().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stamps().await, before, "rows kept changing");
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    assert!(worker.wait().unwrap().success());
    h.finish().await;
}
