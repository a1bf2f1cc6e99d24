//! A 100,000-row transaction streams through a small in-flight window.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use shared::envelope::Op;
use shared::testkit::{unique_name, wait_for};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_rows_in_one_transaction() {
    let env = TestEnv::get();
    let db = env.database("cdc_large").await;
    let pool = db.pool.clone();
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let reader = InProcess::start(config(
        &db.url,
        &env.kafka_brokers,
        &slot,
        &prefix,
        &["--max-in-flight", "5000", "--snapshot", "never"],
    ));
    wait_for("slot streaming", Duration::from_secs(30), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { slot_streaming(&pool, &slot).await.then_some(()) }
    })
    .await;

    let started = Instant::now();
    insert_profiles(&pool, 100_000).await;
    let mark = current_wal_lsn(&pool).await;
    wait_for(
        "the transaction confirmed",
        Duration::from_secs(120),
        || {
            let pool = pool.clone();
            let slot = slot.clone();
            async move { confirmed_flush(&pool, &slot).await.filter(|l| *l >= mark) }
        },
    )
    .await;
    eprintln!(
        "100k-row transaction confirmed {:?} after the insert started",
        started.elapsed()
    );

    let mut read = TopicReader::new(&env.kafka_brokers, &topics(&prefix)[..1]).await;
    read.read_until("100k events", Duration::from_secs(120), |r| {
        r.len() >= 100_000
    })
    .await;
    let events: Vec<_> = read
        .records
        .iter()
        .filter_map(|r| r.event.as_ref())
        .collect();
    assert_eq!(events.len(), 100_000);
    assert!(events.iter().all(|e| e.op == Op::Create));
    let commit = events[0].source.commit_lsn;
    assert!(
        events.iter().all(|e| e.source.commit_lsn == commit),
        "one transaction, one commit LSN"
    );
    let keys: HashSet<_> = read.records.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys.len(), 100_000);
    reader.stop().await;
    drop_slot(&pool, &slot).await;
    db.drop_database().await;
}
