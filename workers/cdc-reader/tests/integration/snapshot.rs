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
    // Deposed: its lock session ended.
    lock.close().await.unwrap();
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
