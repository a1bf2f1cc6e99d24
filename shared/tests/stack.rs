//! The foundation against the real services `scripts/test` provisions: the schema migrates
//! idempotently, a row written to PostgreSQL comes back through a wal2json replication slot,
//! and that change makes a round trip through the broker.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde_json::Value;
use shared::kafka::{consumer_config, ensure_topics, producer_config, TopicSpec};
use shared::testkit::{create_wal2json_slot, unique_name, TestEnv};

#[tokio::test]
async fn migrations_are_idempotent_and_complete() {
    let env = TestEnv::get();
    let db = env.database("migrations").await;
    // The migrator a second time: nothing to do.
    shared::db::migrate(&db.pool)
        .await
        .expect("second migration run");
    // Every file by hand a second time: each is written to be re-runnable.
    for migration in shared::db::MIGRATOR.iter() {
        sqlx::raw_sql(&migration.sql)
            .execute(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("re-running {} failed: {e}", migration.description));
    }
    let count = |table: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("ganji_metadata").await, 22);
    assert_eq!(count("interaction_metadata").await, 48);
    assert_eq!(count("ganji_interaction").await, 102);
    // UUIDv7 keys on every supported server version.
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('a', 'M', now()) RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(id.get_version_num(), 7);
    // updated_at is maintained by the trigger.
    let (created, updated): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "UPDATE saju_profiles SET name = 'b', updated_at = '2000-01-01' WHERE id = $1 RETURNING created_at, updated_at",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        updated >= created,
        "updated_at was not maintained: {updated} < {created}"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn a_row_comes_back_through_wal2json_and_the_broker() {
    let env = TestEnv::get();
    let db = env.database("roundtrip").await;
    let slot = create_wal2json_slot(&db.pool, "slot").await;

    sqlx::query(
        "INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('홍길동', 'F', '1990-05-15 14:30+09')",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let changes = drain_slot(&db.pool, &slot, &["include-lsn"]).await;

    let insert = changes
        .iter()
        .map(|c| serde_json::from_str::<Value>(c).expect("wal2json emits JSON"))
        .find(|c| c["action"] == "I")
        .unwrap_or_else(|| panic!("no insert in {changes:?}"));
    assert_eq!(insert["table"], "saju_profiles");
    let name = insert["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "name")
        .map(|c| c["value"].clone());
    assert_eq!(name, Some(Value::from("홍길동")));

    // Through the broker and back, byte for byte.
    let kafka = env.kafka(&unique_name("t"));
    let topic = kafka.cdc_topic("public", "saju_profiles");
    ensure_topics(
        &kafka,
        &[TopicSpec {
            name: topic.clone(),
            partitions: 1,
            configs: vec![],
        }],
    )
    .await
    .unwrap();
    let payload = serde_json::to_vec(&insert).unwrap();
    let producer: FutureProducer = producer_config(&kafka, "test").create().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("broker acknowledged");
    let consumer: StreamConsumer =
        consumer_config(&kafka, &env.consumer(), &unique_name("g"), "test")
            .create()
            .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a message within 60 s")
        .unwrap();
    assert_eq!(message.key(), Some(&b"k"[..]));
    assert_eq!(message.payload(), Some(&payload[..]));
    db.drop_database().await;
}

/// A worker session marked with a write-back origin commits under it, and PostgreSQL then
/// takes the commit's time from the origin's timestamp: what logical decoding reports (and
/// `pg_xact_commit_timestamp`) must be each write's own time, not 0 (2000-01-01) for the
/// session's first transaction and that first one's time for every later one.
#[tokio::test]
async fn marked_write_backs_commit_with_their_own_time() {
    let env = TestEnv::get();
    let db = env.database("origin_time").await;
    let slot = create_wal2json_slot(&db.pool, "slot").await;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('a', 'M', now()) RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // One connection: every write goes through the same marked session.
    let args = shared::config::PostgresArgs {
        max_connections: 1,
        ..db.postgres.clone()
    };
    let writer = shared::db::connect_writer(&args, "test-writer", true)
        .await
        .unwrap();
    let clock = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("SELECT clock_timestamp()")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let mut windows = Vec::new();
    for name in ["first", "second", "third"] {
        let before = clock().await;
        sqlx::query("UPDATE saju_profiles SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(&writer)
            .await
            .unwrap();
        windows.push((before, clock().await));
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    writer.close().await;

    let changes = drain_slot(&db.pool, &slot, &["include-timestamp", "include-origin"]).await;
    db.drop_database().await;

    // Each update's transaction: its begin record carries the commit time and origin.
    let changes: Vec<Value> = changes
        .iter()
        .map(|c| serde_json::from_str(c).expect("wal2json emits JSON"))
        .collect();
    let mut commits = Vec::new();
    let mut begin: Option<&Value> = None;
    for change in &changes {
        match change["action"].as_str() {
            Some("B") => begin = Some(change),
            Some("U") => commits.push(begin.expect("a begin before each change")),
            _ => {}
        }
    }
    assert_eq!(commits.len(), 3, "three updates decoded: {changes:?}");
    for ((begin, (before, after)), name) in commits
        .iter()
        .zip(&windows)
        .zip(["first", "second", "third"])
    {
        assert!(
            begin["origin"].as_u64().is_some_and(|o| o > 0),
            "the {name} write-back was committed under its origin: {begin}"
        );
        let at = begin["timestamp"].as_str().expect("include-timestamp");
        let at = chrono::DateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S%.f%#z")
            .unwrap_or_else(|e| panic!("{at}: {e}"))
            .with_timezone(&chrono::Utc);
        assert!(
            *before <= at && at <= *after,
            "the {name} write-back's commit time {at} lies outside its statement ({before} .. {after})"
        );
    }
}

/// Everything the slot decoded of `saju_profiles` (wal2json format 2, with the named options
/// turned on), then the slot dropped.
async fn drain_slot(pool: &sqlx::PgPool, slot: &str, include: &[&str]) -> Vec<String> {
    let mut options = vec!["format-version", "2", "add-tables", "public.saju_profiles"];
    for option in include {
        options.extend([*option, "1"]);
    }
    let changes: Vec<String> = sqlx::query_scalar(
        "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL, VARIADIC $2::text[])",
    )
    .bind(slot)
    .bind(&options)
    .fetch_all(pool)
    .await
    .expect("read the slot's changes");
    sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(slot)
        .execute(pool)
        .await
        .expect("drop the slot");
    changes
}
