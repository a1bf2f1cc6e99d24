//! Helpers for integration tests against the real services `scripts/test` provisions.
//!
//! Enabled by the `testkit` feature (tests only). Each test gets its own database (migrated),
//! its own topic names and consumer groups, so tests run in parallel without seeing each
//! other's data.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use crate::config::{ConsumerArgs, KafkaArgs, PostgresArgs};

pub mod private;
pub mod secrets;

/// Addresses of the test services, from the environment `scripts/test` exports.
#[derive(Clone, Debug)]
pub struct TestEnv {
    /// Superuser URL of the test cluster (database `pipeline`).
    pub database_url: String,
    /// Bootstrap brokers.
    pub kafka_brokers: String,
}

impl TestEnv {
    /// Reads the environment; panics with a message naming `scripts/test` when it is absent,
    /// so a bare `cargo test` fails fast instead of hanging on a connection.
    pub fn get() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: integration tests need the real services; run them with scripts/test")
            })
        };
        Self {
            database_url: var("PIPELINE_TEST_DATABASE_URL"),
            kafka_brokers: var("PIPELINE_TEST_KAFKA_BROKERS"),
        }
    }

    /// Kafka settings for a test, with a topic prefix of its own.
    pub fn kafka(&self, topic_prefix: &str) -> KafkaArgs {
        KafkaArgs {
            brokers: self.kafka_brokers.clone(),
            topic_prefix: topic_prefix.to_owned(),
            properties: Vec::new(),
        }
    }

    /// Consumer settings suited to the test broker: group joins wait up to the poll interval,
    /// so it is kept short.
    pub fn consumer(&self) -> ConsumerArgs {
        ConsumerArgs {
            max_poll_interval: Duration::from_secs(7),
            session_timeout: Duration::from_secs(6),
            fetch_wait_max: Duration::from_millis(20),
            publish_timeout: Duration::from_secs(30),
            max_in_flight: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    /// Creates a fresh, migrated database for one test.
    pub async fn database(&self, label: &str) -> TestDatabase {
        let name = unique_name(label);
        let mut admin = PgConnection::connect(&self.database_url)
            .await
            .expect("connect to the test cluster");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = with_database(&self.database_url, &name);
        let postgres = PostgresArgs {
            database_url: url.clone(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
        };
        let pool = crate::db::connect(&postgres, "test")
            .await
            .expect("connect to test database");
        crate::db::migrate(&pool)
            .await
            .expect("migrate test database");
        TestDatabase {
            name,
            url,
            pool,
            postgres,
            admin_url: self.database_url.clone(),
        }
    }
}

/// A database of one test. Drop it with [`TestDatabase::drop_database`] at the end (slots
/// created in it must be dropped first: they pin WAL).
#[derive(Debug)]
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    /// URL of this database.
    pub url: String,
    /// A pool on it.
    pub pool: PgPool,
    /// Settings as a worker would receive them.
    pub postgres: PostgresArgs,
    admin_url: String,
}

impl TestDatabase {
    /// Drops the database (and any replication slot still in it).
    pub async fn drop_database(self) {
        self.pool.close().await;
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the test cluster");
        let _ = sqlx::query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active",
        )
        .bind(&self.name)
        .execute(&mut admin)
        .await;
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await;
    }
}

/// A name unique to this test run: `<label>_<pid>_<counter>_<nanos>` in lowercase ASCII.
pub fn unique_name(label: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{clean}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a wal2json logical slot named after `label` ([`unique_name`]) in the pool's
/// database; returns its name. Drop it before the database: a slot pins WAL.
pub async fn create_wal2json_slot(pool: &PgPool, label: &str) -> String {
    let name = unique_name(label);
    sqlx::query("SELECT pg_create_logical_replication_slot($1, 'wal2json')")
        .bind(&name)
        .execute(pool)
        .await
        .expect("create a wal2json slot (is wal2json installed and wal_level=logical?)");
    name
}

/// Replaces the database of a PostgreSQL URL.
pub fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("test database URL parses");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what` in the message.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The distinct message keys on `topics` (the `id` of a `{"id": "…"}` key), read from their
/// beginning until `expected` of them were seen or `timeout` passes; payloads are not parsed.
pub async fn read_keys(
    brokers: &str,
    topics: &[&str],
    timeout: Duration,
    expected: usize,
) -> std::collections::HashSet<String> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "20")
        .create()
        .expect("a test consumer");
    consumer.subscribe(topics).expect("subscribe");
    let mut keys = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while keys.len() < expected {
        let Ok(received) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let Ok(message) = received else { continue };
        if let Some(k) = message.key() {
            let key = serde_json::from_slice::<serde_json::Value>(k)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(k).into_owned());
            keys.insert(key);
        }
    }
    keys
}

/// Reads `topics` from their beginning with a consumer group of its own, collecting every JSON
/// value by the `id` of its key (`{"id": "…"}`; other keys as they are), in topic order, until
/// `done` holds for what was read or `timeout` passes. This is what a downstream consumer sees.
pub async fn read_events_by_id<F>(
    brokers: &str,
    topics: &[&str],
    timeout: Duration,
    done: F,
) -> std::collections::HashMap<String, Vec<serde_json::Value>>
where
    F: Fn(&std::collections::HashMap<String, Vec<serde_json::Value>>) -> bool,
{
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("max.poll.interval.ms", "7000")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "20")
        .create()
        .expect("a test consumer");
    consumer.subscribe(topics).expect("subscribe");
    let mut events: std::collections::HashMap<String, Vec<serde_json::Value>> =
        std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&events) {
        let Ok(received) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let Ok(message) = received else { continue };
        let key = message
            .key()
            .map(|k| {
                serde_json::from_slice::<serde_json::Value>(k)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(k).into_owned())
            })
            .unwrap_or_default();
        let value = message
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or(serde_json::Value::Null);
        events.entry(key).or_default().push(value);
    }
    events
}
