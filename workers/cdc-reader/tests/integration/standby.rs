//! A second reader on the same slot stands by and takes over within 10 s of a kill -9.

use std::time::{Duration, Instant};

use shared::envelope::Op;
use shared::testkit::{unique_name, wait_for};

use crate::support::*;

fn log_contains(path: &str, needle: &str) -> bool {
    std::fs::read_to_string(path)
        .map(|s| s.contains(needle))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_within_ten_seconds() {
    let env = TestEnv::get();
    let db = env.database("cdc_standby").await;
    let pool = db.pool.clone();
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let dir = std::env::temp_dir();
    let log_a = dir
        .join(format!("{slot}.a.log"))
        .to_string_lossy()
        .into_owned();
    let log_b = dir
        .join(format!("{slot}.b.log"))
        .to_string_lossy()
        .into_owned();

    let mut a = Spawned::start(&db.url, &env.kafka_brokers, &slot, &prefix, &[], &log_a);
    wait_for("slot streaming", Duration::from_secs(30), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { slot_streaming(&pool, &slot).await.then_some(()) }
    })
    .await;
    let mut b = Spawned::start(&db.url, &env.kafka_brokers, &slot, &prefix, &[], &log_b);
    wait_for(
        "the second reader to stand by",
        Duration::from_secs(30),
        || {
            let found = log_contains(&log_b, "standing by");
            async move { found.then_some(()) }
        },
    )
    .await;

    a.kill9();
    let killed = Instant::now();
    sqlx::query("INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('after-failover', 'M', now())")
        .execute(&pool)
        .await
        .unwrap();
    let mut read = TopicReader::new(&env.kafka_brokers, &topics(&prefix)[..1]).await;
    read.read_until(
        "the change made after the failover",
        Duration::from_secs(30),
        |records| {
            records.iter().filter_map(|r| r.event.as_ref()).any(|e| {
                e.op == Op::Create
                    && e.after
                        .as_ref()
                        .map(|a| a["name"] == "after-failover")
                        .unwrap_or(false)
            })
        },
    )
    .await;
    let took = killed.elapsed();
    eprintln!("standby published the first change {took:?} after the leader was killed");
    assert!(took < Duration::from_secs(10), "takeover took {took:?}");
    assert!(log_contains(&log_b, "holding the slot's leadership lock"));

    let status = b.terminate();
    assert!(status.success(), "exit 0 on SIGTERM, got {status}");
    drop_slot(&pool, &slot).await;
    db.drop_database().await;
    let _ = std::fs::remove_file(&log_a);
    let _ = std::fs::remove_file(&log_b);
}
