//! Test helpers: a reader per test (in-process or as the real binary), a topic reader, a
//! reference slot as the oracle of what was committed, and private PostgreSQL clusters and
//! brokers for the tests that restart them.

use std::collections::BTreeSet;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::Duration;

use cdc_reader::{Cli, Config};
use clap::Parser;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use shared::envelope::ChangeEvent;
use shared::shutdown::Shutdown;
use shared::testkit::{unique_name, wait_for};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use shared::testkit::private::{free_port, PrivateBroker, PrivateCluster, PrivateS3};
pub use shared::testkit::TestEnv;

/// The wal2json options the reader uses, for the reference slot.
pub fn plugin_options_sql(tables: &str) -> String {
    cdc_reader::wal2json::plugin_options(tables.to_owned())
        .into_iter()
        .map(|(k, v)| format!("'{k}', '{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The flags of every test reader: its database, broker, slot and topic prefix, a free
/// metrics port, 1 s status updates, 3 partitions.
fn reader_args<'a>(
    url: &'a str,
    brokers: &'a str,
    slot: &'a str,
    prefix: &'a str,
) -> [&'a str; 12] {
    [
        "--database-url",
        url,
        "--kafka-brokers",
        brokers,
        "--topic-prefix",
        prefix,
        "--slot",
        slot,
        "--status-interval",
        "1s",
        "--topic-partitions",
        "3",
    ]
}

/// `--metrics-addr 127.0.0.1:0` unless `extra` names an address.
fn default_metrics_addr(extra: &[&str]) -> Vec<&'static str> {
    if extra.contains(&"--metrics-addr") {
        Vec::new()
    } else {
        vec!["--metrics-addr", "127.0.0.1:0"]
    }
}

/// Reader settings for a test: its own slot and topic prefix, fast intervals.
pub fn config(url: &str, brokers: &str, slot: &str, prefix: &str, extra: &[&str]) -> Config {
    let mut args: Vec<String> = std::iter::once("cdc-reader")
        .chain(reader_args(url, brokers, slot, prefix))
        .chain(["--slot-poll-interval", "1s"])
        .chain(default_metrics_addr(extra))
        .map(str::to_owned)
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Cli::try_parse_from(args)
        .expect("test config parses")
        .config
}

/// A reader running in this process.
pub struct InProcess {
    pub shutdown: Shutdown,
    pub handle: JoinHandle<Result<(), cdc_reader::Error>>,
}

impl InProcess {
    pub fn start(config: Config) -> Self {
        static LOGS: std::sync::Once = std::sync::Once::new();
        LOGS.call_once(|| {
            let filter = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into());
            let _ = shared::telemetry::init_with_writer(
                &filter,
                shared::config::LogFormat::Pretty,
                std::io::stderr,
            );
        });
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(cdc_reader::run(config, shutdown.clone()));
        Self { shutdown, handle }
    }

    /// Graceful stop; the reader must end cleanly.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let result = tokio::time::timeout(Duration::from_secs(60), self.handle).await;
        let result = result
            .expect("reader stops within 60 s")
            .expect("reader task");
        result.expect("reader ends without error");
    }
}

/// The `cdc-reader` binary, for kill -9.
pub struct Spawned {
    pub child: Child,
}

impl Spawned {
    pub fn start(
        url: &str,
        brokers: &str,
        slot: &str,
        prefix: &str,
        extra: &[&str],
        log: &str,
    ) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = StdCommand::new(env!("CARGO_BIN_EXE_cdc-reader"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(reader_args(url, brokers, slot, prefix))
            .args(default_metrics_addr(extra))
            .args(["--log-format", "json"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn cdc-reader");
        Self { child }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = StdCommand::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for cdc-reader")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub event: Option<ChangeEvent>,
}

/// Reads whole topics from the beginning (no consumer group: partitions are assigned).
pub struct TopicReader {
    consumer: StreamConsumer,
    pub records: Vec<Record>,
}

impl TopicReader {
    /// A reader of committed messages (`read_committed`, what consumers see by default).
    pub async fn new(brokers: &str, topics: &[String]) -> Self {
        Self::with_isolation(brokers, topics, "read_committed").await
    }

    /// A reader with the given `isolation.level` (`read_uncommitted` also returns messages
    /// of transactions still open or aborted).
    pub async fn with_isolation(brokers: &str, topics: &[String], isolation: &str) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", unique_name("cdc_test_reader"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", isolation)
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        for topic in topics {
            let partitions = wait_for("topic metadata", Duration::from_secs(30), || {
                let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
                let count = metadata
                    .ok()
                    .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
                    .unwrap_or(0);
                async move { (count > 0).then_some(count) }
            })
            .await;
            for p in 0..partitions {
                list.add_partition_offset(topic, p as i32, Offset::Beginning)
                    .expect("partition");
            }
        }
        consumer.assign(&list).expect("assign");
        Self {
            consumer,
            records: Vec::new(),
        }
    }

    /// Reads until `done(records)` holds, or panics after `timeout`.
    pub async fn read_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Record]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        // `done` is checked whenever the topic is quiet for a moment or a batch was read, so
        // expensive checks over many records stay cheap.
        while !done(&self.records) {
            if tokio::time::Instant::now() >= deadline {
                let assignment = self.consumer.assignment().map(|a| {
                    a.elements()
                        .iter()
                        .map(|e| {
                            let marks = self.consumer.fetch_watermarks(
                                e.topic(),
                                e.partition(),
                                Duration::from_secs(5),
                            );
                            format!(
                                "{}[{}] {:?} at {:?}",
                                e.topic(),
                                e.partition(),
                                marks,
                                e.offset()
                            )
                        })
                        .collect::<Vec<_>>()
                });
                panic!("timed out after {timeout:?} waiting for {what}; have {} records; {assignment:?}", self.records.len());
            }
            for _ in 0..1000 {
                match tokio::time::timeout(Duration::from_millis(200), self.consumer.recv()).await {
                    Ok(Ok(message)) => Self::push(&mut self.records, &message),
                    _ => break,
                }
            }
        }
    }

    /// Reads every partition to the end it has now (its high watermark), or panics after
    /// `timeout`.
    pub async fn read_to_end(&mut self, timeout: Duration) {
        let assignment = self.consumer.assignment().expect("assignment");
        let mut ends = Vec::new();
        for e in assignment.elements() {
            let (_, high) = self
                .consumer
                .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(10))
                .expect("watermarks");
            ends.push((e.topic().to_owned(), e.partition(), high));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let position = self.consumer.position().expect("position");
            let at_end = ends.iter().all(|(topic, partition, high)| {
                *high == 0
                    || matches!(
                        position.find_partition(topic, *partition).map(|p| p.offset()),
                        Some(Offset::Offset(o)) if o >= *high
                    )
            });
            if at_end {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out reading to the end {ends:?}; at {position:?}"
            );
            for _ in 0..1000 {
                match tokio::time::timeout(Duration::from_millis(200), self.consumer.recv()).await {
                    Ok(Ok(message)) => Self::push(&mut self.records, &message),
                    _ => break,
                }
            }
        }
    }

    /// Reads until every expected `(table, key, lsn)` was seen; on timeout, fails naming the
    /// missing ones.
    pub async fn read_until_all(
        &mut self,
        expected: &BTreeSet<(String, String, u64)>,
        timeout: Duration,
    ) {
        let seen = self.read_until_seen(expected, timeout).await;
        assert_none_missing(expected, &seen);
    }

    /// Reads until every expected `(table, key, lsn)` was seen or `timeout` passed; returns
    /// what was seen.
    pub async fn read_until_seen(
        &mut self,
        expected: &BTreeSet<(String, String, u64)>,
        timeout: Duration,
    ) -> BTreeSet<(String, String, u64)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = BTreeSet::new();
        let mut counted = 0;
        loop {
            for r in &self.records[counted..] {
                if let (Some(e), Some(key)) = (&r.event, &r.key) {
                    seen.insert((
                        format!("{}.{}", e.source.schema, e.source.table),
                        canonical(key),
                        e.source.lsn,
                    ));
                }
            }
            counted = self.records.len();
            if expected.is_subset(&seen) || tokio::time::Instant::now() >= deadline {
                break;
            }
            let until = tokio::time::Instant::now() + Duration::from_millis(500);
            while tokio::time::Instant::now() < until {
                match tokio::time::timeout(Duration::from_millis(200), self.consumer.recv()).await {
                    Ok(Ok(message)) => Self::push(&mut self.records, &message),
                    _ => break,
                }
            }
        }
        seen
    }

    fn push(records: &mut Vec<Record>, message: &rdkafka::message::BorrowedMessage<'_>) {
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        let event = message
            .payload()
            .map(|p| ChangeEvent::from_slice(p).expect("payload is a change event"));
        records.push(Record {
            partition: message.partition(),
            offset: message.offset(),
            key,
            event,
        });
    }
}

/// A key in canonical JSON form (for comparing keys from different sources).
pub fn canonical(key: &str) -> String {
    serde_json::from_str::<serde_json::Value>(key)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| key.to_owned())
}

/// A logical slot with the reader's wal2json options: what it holds is what was committed.
pub struct ReferenceSlot {
    pub name: String,
    tables: String,
}

impl ReferenceSlot {
    pub async fn create(pool: &PgPool, tables: &str) -> Self {
        let name = shared::testkit::create_wal2json_slot(pool, "cdc_ref").await;
        Self {
            name,
            tables: tables.to_owned(),
        }
    }

    /// `(table, key, lsn)` of every row change committed since the slot was created.
    pub async fn changes(&self, pool: &PgPool) -> BTreeSet<(String, String, u64)> {
        let sql = format!(
            "SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL, {})",
            plugin_options_sql(&self.tables)
        );
        let rows: Vec<(String,)> = sqlx::query_as(&sql)
            .bind(&self.name)
            .fetch_all(pool)
            .await
            .expect("peek reference slot");
        let mut out = BTreeSet::new();
        let mut key = Vec::new();
        for (data,) in rows {
            let m = cdc_reader::wal2json::Message::parse(data.as_bytes()).expect("wal2json");
            if !matches!(m.action.as_ref(), "I" | "U" | "D") {
                continue;
            }
            let row = if m.action == "D" {
                m.identity.as_deref()
            } else {
                m.columns.as_deref()
            };
            assert!(cdc_reader::envelope::encode_key(
                &mut key,
                m.pk.as_deref().unwrap_or(&[]),
                row.unwrap_or(&[])
            ));
            let table = format!(
                "{}.{}",
                m.schema.as_deref().unwrap_or(""),
                m.table.as_deref().unwrap_or("")
            );
            out.insert((
                table,
                canonical(std::str::from_utf8(&key).expect("utf8")),
                m.lsn().expect("lsn"),
            ));
        }
        out
    }

    /// Waits until more than `count + 100` changes are committed; returns how many there are.
    pub async fn wait_beyond(
        &self,
        pool: &PgPool,
        count: usize,
        what: &str,
        timeout: Duration,
    ) -> usize {
        wait_for(what, timeout, || async move {
            let now = self.changes(pool).await.len();
            (now > count + 100).then_some(now)
        })
        .await
    }

    pub async fn drop(self, pool: &PgPool) {
        let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
            .bind(&self.name)
            .execute(pool)
            .await;
    }
}

/// Asserts every expected change is in the topic; returns how many duplicates were seen.
pub fn assert_none_missing(
    expected: &BTreeSet<(String, String, u64)>,
    seen: &BTreeSet<(String, String, u64)>,
) {
    let missing: Vec<_> = expected.difference(seen).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} committed changes missing from the topics, e.g. {missing:?}",
        expected.difference(seen).count(),
        expected.len()
    );
}

/// Waits until the slot's walsender is streaming.
pub async fn wait_streaming(pool: &PgPool, slot: &str, what: &str, timeout: Duration) {
    wait_for(what, timeout, || async {
        slot_streaming(pool, slot).await.then_some(())
    })
    .await
}

/// Waits until the slot's confirmed flush LSN satisfies `done`.
pub async fn wait_confirmed(
    pool: &PgPool,
    slot: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(u64) -> bool,
) {
    wait_for(what, timeout, || async {
        confirmed_flush(pool, slot).await.filter(|l| done(*l))
    })
    .await;
}

/// The slot's confirmed flush LSN.
pub async fn confirmed_flush(pool: &PgPool, slot: &str) -> Option<u64> {
    let lsn: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await
    .ok()?;
    lsn.and_then(|(l,)| l)
        .as_deref()
        .and_then(shared::envelope::parse_lsn)
}

/// Whether a walsender streams the slot.
pub async fn slot_active(pool: &PgPool, slot: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT active FROM pg_replication_slots WHERE slot_name = $1")
        .bind(slot)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

pub async fn current_wal_lsn(pool: &PgPool) -> u64 {
    let (lsn,): (String,) = sqlx::query_as("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await
        .expect("wal lsn");
    shared::envelope::parse_lsn(&lsn).expect("lsn")
}

/// Inserts `count` profiles in one transaction.
pub async fn insert_profiles(pool: &PgPool, count: i64) {
    sqlx::query(
        "INSERT INTO saju_profiles (name, gender, birth_date) \
         SELECT 'p' || g, CASE WHEN g % 2 = 0 THEN 'M' ELSE 'F' END, '1990-05-15 05:30:00+00'::timestamptz + g * interval '1 minute' \
         FROM generate_series(1, $1) g",
    )
    .bind(count)
    .execute(pool)
    .await
    .expect("insert profiles");
}

/// A writer committing small mixed transactions until stopped; survives server restarts.
pub struct Workload {
    stop: CancellationToken,
    handle: JoinHandle<u64>,
}

impl Workload {
    pub fn start(url: String) -> Self {
        let stop = CancellationToken::new();
        let flag = stop.clone();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(&url)
            .expect("workload pool");
        let handle = tokio::spawn(async move {
            let mut committed = 0u64;
            let mut i = 0u64;
            while !flag.is_cancelled() {
                i += 1;
                let sql = format!(
                    "BEGIN; \
                     INSERT INTO saju_profiles (name, gender, birth_date) SELECT 'w{i}_' || g, 'M', now() FROM generate_series(1, 5) g; \
                     UPDATE saju_profiles SET name = name || '+' WHERE id = (SELECT id FROM saju_profiles ORDER BY id DESC LIMIT 1 OFFSET 3); \
                     DELETE FROM saju_profiles WHERE id = (SELECT id FROM saju_profiles ORDER BY id DESC LIMIT 1 OFFSET 4); \
                     INSERT INTO image_assets (file_name, file_path) VALUES ('f{i}.png', '/w/'); \
                     COMMIT;"
                );
                match sqlx::raw_sql(&sql).execute(&pool).await {
                    Ok(_) => committed += 1,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            pool.close().await;
            committed
        });
        Self { stop, handle }
    }

    /// Stops the writer; returns how many transactions it committed.
    pub async fn stop(self) -> u64 {
        self.stop.cancel();
        self.handle.await.expect("workload task")
    }
}

/// The canonical tables string.
pub const TABLES: &str = "public.saju_profiles,public.image_assets";

/// Topics of a prefix.
pub fn topics(prefix: &str) -> Vec<String> {
    TABLES.split(',').map(|t| format!("{prefix}.{t}")).collect()
}

/// Drops a test's slot and its snapshot marker.
pub async fn drop_slot(pool: &PgPool, slot: &str) {
    wait_for("slot to become inactive", Duration::from_secs(30), || {
        let pool = pool.clone();
        let slot = slot.to_owned();
        async move { (!slot_active(&pool, &slot).await).then_some(()) }
    })
    .await;
    let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(slot)
        .execute(pool)
        .await;
    let _ = sqlx::query(
        "SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1",
    )
    .bind(cdc_reader::slot::snapshot_marker(slot))
    .execute(pool)
    .await;
}

/// Whether a walsender is streaming the slot (`START_REPLICATION` done). An active slot is not
/// enough: while `CREATE_REPLICATION_SLOT` waits for a consistent point the slot is already
/// active, and transactions that commit meanwhile belong to the snapshot, not the stream.
pub async fn slot_streaming(pool: &PgPool, slot: &str) -> bool {
    sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid \
         WHERE s.slot_name = $1 AND r.state IN ('catchup', 'streaming'))",
    )
    .bind(slot)
    .fetch_one(pool)
    .await
    .unwrap_or(false)
}

/// One test's own database, slot name and topic prefix on the shared test services.
pub struct Scenario {
    pub env: TestEnv,
    pub db: shared::testkit::TestDatabase,
    pub pool: PgPool,
    pub slot: String,
    pub prefix: String,
}

impl Scenario {
    pub async fn new(label: &str) -> Self {
        let env = TestEnv::get();
        let db = env.database(label).await;
        let pool = db.pool.clone();
        Self {
            env,
            db,
            pool,
            slot: unique_name("cdc_slot"),
            prefix: unique_name("cdct"),
        }
    }

    /// A reader in this process on the scenario's slot (with `extra` flags), once streaming.
    pub async fn reader(&self, extra: &[&str]) -> InProcess {
        let reader = InProcess::start(config(
            &self.db.url,
            &self.env.kafka_brokers,
            &self.slot,
            &self.prefix,
            extra,
        ));
        wait_streaming(
            &self.pool,
            &self.slot,
            "slot streaming",
            Duration::from_secs(30),
        )
        .await;
        reader
    }

    /// Stops `reader`, drops the slot and the database.
    pub async fn finish(self, reader: InProcess) {
        reader.stop().await;
        drop_slot(&self.pool, &self.slot).await;
        self.db.drop_database().await;
    }
}

/// A reference slot and a workload on `url`, once the reader on `slot` has confirmed some of
/// its changes.
pub async fn start_workload(
    pool: &PgPool,
    url: &str,
    slot: &str,
    timeout: Duration,
) -> (ReferenceSlot, Workload) {
    let reference = ReferenceSlot::create(pool, TABLES).await;
    let workload = Workload::start(url.to_owned());
    let start = confirmed_flush(pool, slot).await.unwrap();
    wait_confirmed(pool, slot, "the reader to confirm changes", timeout, |l| {
        l > start
    })
    .await;
    (reference, workload)
}

/// The value of a metric on a `/metrics` endpoint (0 when absent or unreachable).
pub fn scrape(addr: &str, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return 0.0;
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Every record of `topic` (all its partitions, from the beginning) as (key, value) JSON,
/// once `count` were read (a tombstone's value is `None`); then, with `quiet`, fails if
/// another record arrives within that time.
pub async fn read_json_records(
    brokers: &str,
    topic: &str,
    count: usize,
    quiet: Option<Duration>,
) -> Vec<(serde_json::Value, Option<serde_json::Value>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("cdc_test_json"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut list = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        list.add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} records on {topic}: {out:?}",
            out.len()
        );
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            let key = serde_json::from_slice(m.key().expect("a key")).expect("a JSON key");
            let value = m
                .payload()
                .map(|p| serde_json::from_slice(p).expect("a JSON value"));
            out.push((key, value));
        }
    }
    if let Some(quiet) = quiet {
        if let Ok(Ok(m)) = tokio::time::timeout(quiet, consumer.recv()).await {
            panic!(
                "unexpected record on {topic}: {:?}",
                m.payload().map(String::from_utf8_lossy)
            );
        }
    }
    out
}
