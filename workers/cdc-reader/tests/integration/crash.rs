//! kill -9 of the reader at random points while changes are committed: nothing is missing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared::testkit::{unique_name, wait_for};

use crate::support::*;

/// A pseudo-random delay in `[min, min + span)` (the kill points).
fn random_delay(min_ms: u64, span_ms: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_millis(min_ms + nanos % span_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_five_times_loses_nothing() {
    let env = TestEnv::get();
    let db = env.database("cdc_crash").await;
    let pool = db.pool.clone();
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let log = std::env::temp_dir().join(format!("{slot}.log"));
    let log = log.to_string_lossy().into_owned();
    let start = || {
        Spawned::start(
            &db.url,
            &env.kafka_brokers,
            &slot,
            &prefix,
            &["--max-in-flight", "2000"],
            &log,
        )
    };
    let active = || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { slot_streaming(&pool, &slot).await.then_some(()) }
    };

    let mut reader = start();
    wait_for("slot streaming", Duration::from_secs(30), active).await;
    let reference = ReferenceSlot::create(&pool, TABLES).await;
    let workload = Workload::start(db.url.clone());
    for round in 0..5 {
        tokio::time::sleep(random_delay(200, 1500)).await;
        reader.kill9();
        eprintln!("round {round}: killed the reader with SIGKILL");
        reader = start();
        wait_for("slot streaming again", Duration::from_secs(30), active).await;
    }
    let committed = workload.stop().await;
    assert!(
        committed > 10,
        "the workload committed only {committed} transactions"
    );

    let expected = reference.changes(&pool).await;
    let mut read = TopicReader::new(&env.kafka_brokers, &topics(&prefix)).await;
    read.read_until_all(&expected, Duration::from_secs(120))
        .await;
    let events = read.records.iter().filter(|r| r.event.is_some()).count();
    eprintln!(
        "{} committed changes, {events} events read ({} duplicates from the restarts)",
        expected.len(),
        events.saturating_sub(expected.len())
    );

    let status = reader.terminate();
    assert!(
        status.success(),
        "the reader exits 0 on SIGTERM, got {status}"
    );
    reference.drop(&pool).await;
    drop_slot(&pool, &slot).await;
    db.drop_database().await;
    let _ = std::fs::remove_file(&log);
}
