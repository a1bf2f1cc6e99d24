//! The initial snapshot: every pre-existing row once as `op=r`, in chunks, and a snapshot cut
//! short by kill -9 is redone from a new slot rather than silently skipped.

use std::collections::HashSet;
use std::time::Duration;

use shared::envelope::Op;
use shared::testkit::{unique_name, wait_for};

use crate::support::*;

async fn marker_exists(pool: &sqlx::PgPool, slot: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)")
        .bind(cdc_reader::slot::snapshot_marker(slot))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_snapshot_is_redone_and_complete() {
    let env = TestEnv::get();
    let db = env.database("cdc_snapshot").await;
    let pool = db.pool.clone();
    insert_profiles(&pool, 30_000).await;
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let log = std::env::temp_dir()
        .join(format!("{slot}.log"))
        .to_string_lossy()
        .into_owned();
    let args = ["--snapshot-chunk-rows", "500", "--max-in-flight", "1000"];

    let mut first = Spawned::start(&db.url, &env.kafka_brokers, &slot, &prefix, &args, &log);
    wait_for("the slot to be created", Duration::from_secs(30), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { confirmed_flush(&pool, &slot).await.map(|_| ()) }
    })
    .await;
    first.kill9();
    let interrupted = !marker_exists(&pool, &slot).await;
    eprintln!(
        "killed the reader {} its snapshot completed",
        if interrupted { "before" } else { "after" }
    );

    let mut second = Spawned::start(&db.url, &env.kafka_brokers, &slot, &prefix, &args, &log);
    wait_for("the snapshot to complete", Duration::from_secs(60), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { marker_exists(&pool, &slot).await.then_some(()) }
    })
    .await;
    sqlx::query("INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('after-snapshot', 'F', now())")
        .execute(&pool)
        .await
        .unwrap();

    let mut read = TopicReader::new(&env.kafka_brokers, &topics(&prefix)[..1]).await;
    read.read_until(
        "every row as a snapshot read, then the insert",
        Duration::from_secs(90),
        |records| {
            let reads: HashSet<_> = records
                .iter()
                .filter(|r| r.event.as_ref().map(|e| e.op) == Some(Op::Read))
                .map(|r| r.key.clone())
                .collect();
            let created = records.iter().filter_map(|r| r.event.as_ref()).any(|e| {
                e.op == Op::Create
                    && e.after
                        .as_ref()
                        .map(|a| a["name"] == "after-snapshot")
                        .unwrap_or(false)
            });
            reads.len() == 30_000 && created
        },
    )
    .await;
    let last_read = read
        .records
        .iter()
        .rposition(|r| r.event.as_ref().map(|e| e.op) == Some(Op::Read))
        .unwrap();
    let first_create = read
        .records
        .iter()
        .position(|r| r.event.as_ref().map(|e| e.op) == Some(Op::Create))
        .unwrap();
    let read_partition = read.records[last_read].partition;
    assert!(
        read.records[first_create].partition != read_partition || first_create > last_read,
        "on one partition, stream events follow the snapshot"
    );
    assert!(read
        .records
        .iter()
        .filter_map(|r| r.event.as_ref())
        .filter(|e| e.op == Op::Read)
        .all(|e| e.source.snapshot));

    assert!(second.terminate().success());
    drop_slot(&pool, &slot).await;
    db.drop_database().await;
    let _ = std::fs::remove_file(&log);
}

/// A snapshot that is redone (here: its completion marker is gone, as after a crash before it
/// was written) loses no delete: rows the first attempt published and that were deleted before
/// the second get a delete and a tombstone, stamped at the new slot's consistent point, so the
/// newest record of their key says they are gone; every other row's newest record is its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redone_snapshot_deletes_the_rows_deleted_since_the_first_attempt() {
    let env = TestEnv::get();
    let db = env.database("cdc_resnapshot").await;
    let pool = db.pool.clone();
    insert_profiles(&pool, 3_000).await;
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let log = std::env::temp_dir()
        .join(format!("{slot}.log"))
        .to_string_lossy()
        .into_owned();
    let args = ["--snapshot-chunk-rows", "500"];
    let mut first = Spawned::start(&db.url, &env.kafka_brokers, &slot, &prefix, &args, &log);
    wait_for("the first snapshot", Duration::from_secs(60), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { marker_exists(&pool, &slot).await.then_some(()) }
    })
    .await;
    assert!(first.terminate().success());
    // As if the first attempt had died before recording its completion.
    sqlx::query("SELECT pg_replication_origin_drop($1)")
        .bind(cdc_reader::slot::snapshot_marker(&slot))
        .execute(&pool)
        .await
        .unwrap();
    let deleted: Vec<String> = sqlx::query_scalar(
        "DELETE FROM saju_profiles WHERE id IN (SELECT id FROM saju_profiles ORDER BY id LIMIT 100) \
         RETURNING id::text",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(deleted.len(), 100);

    let mut second = Spawned::start(&db.url, &env.kafka_brokers, &slot, &prefix, &args, &log);
    wait_for("the snapshot to be redone", Duration::from_secs(60), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { marker_exists(&pool, &slot).await.then_some(()) }
    })
    .await;
    let mut read = TopicReader::new(&env.kafka_brokers, &topics(&prefix)[..1]).await;
    read.read_to_end(Duration::from_secs(60)).await;
    // The newest record of each key, and whether it came after a delete event of that key.
    let mut newest: std::collections::HashMap<String, (Option<Op>, bool)> =
        std::collections::HashMap::new();
    for record in &read.records {
        let Some(key) = &record.key else { continue };
        let id = serde_json::from_str::<serde_json::Value>(key).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let op = record.event.as_ref().map(|e| e.op);
        let deleted_before = newest
            .get(&id)
            .is_some_and(|(op, _)| *op == Some(Op::Delete));
        newest.insert(id, (op, op.is_none() && deleted_before));
    }
    assert_eq!(newest.len(), 3_000, "every key the topic has seen");
    for id in &deleted {
        assert_eq!(
            newest.get(id),
            Some(&(None, true)),
            "{id}, deleted between the attempts, must end with a delete and a tombstone (log: {log})"
        );
    }
    let rows = newest
        .values()
        .filter(|(op, _)| *op == Some(Op::Read))
        .count();
    assert_eq!(rows, 3_000 - deleted.len());
    assert!(second.terminate().success());
    drop_slot(&pool, &slot).await;
    db.drop_database().await;
    let _ = std::fs::remove_file(&log);
}

/// Only the session that holds the slot's leadership lock may mark the snapshot complete: a
/// reader deposed mid-snapshot (its lock session gone) writes no marker, so the next leader
/// redoes the snapshot instead of streaming past rows never copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_mark_the_snapshot_complete() {
    use sqlx::Connection;
    let env = TestEnv::get();
    let db = env.database("cdc_marker").await;
    let slot = shared::testkit::unique_name("cdc_slot");
    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (locked, pid): (bool, i32) =
        sqlx::query_as("SELECT pg_try_advisory_lock(hashtext($1)), pg_backend_pid()")
            .bind(format!("cdc-reader:{slot}"))
            .fetch_one(&mut lock)
            .await
            .unwrap();
    assert!(locked);
    // Deposed: its lock session ended. Closing only sends Terminate; the backend releases the
    // lock when it has exited, so wait for that before asking.
    lock.close().await.unwrap();
    let gone = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = $1)",
        )
        .bind(pid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if !held {
            break;
        }
        assert!(
            tokio::time::Instant::now() < gone,
            "backend {pid} still holds its lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let refused = cdc_reader::slot::mark_snapshot_done(&db.pool, &slot, pid).await;
    assert!(
        matches!(refused, Err(cdc_reader::Error::LeadershipLost)),
        "{refused:?}"
    );
    assert!(!cdc_reader::slot::snapshot_done(&db.pool, &slot)
        .await
        .unwrap());
    // The leader: marked, and marking again is harmless.
    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (_, pid): (bool, i32) =
        sqlx::query_as("SELECT pg_try_advisory_lock(hashtext($1)), pg_backend_pid()")
            .bind(format!("cdc-reader:{slot}"))
            .fetch_one(&mut lock)
            .await
            .unwrap();
    cdc_reader::slot::mark_snapshot_done(&db.pool, &slot, pid)
        .await
        .unwrap();
    cdc_reader::slot::mark_snapshot_done(&db.pool, &slot, pid)
        .await
        .unwrap();
    assert!(cdc_reader::slot::snapshot_done(&db.pool, &slot)
        .await
        .unwrap());
    cdc_reader::slot::clear_snapshot_marker(&db.pool, &slot)
        .await
        .unwrap();
    lock.close().await.unwrap();
    db.drop_database().await;
}
