//! On an idle database the slot's confirmed position still advances.

use std::time::Duration;

use shared::testkit::{unique_name, wait_for};

use crate::support::*;

/// WAL written elsewhere (another database) reaches the walsender, which reports it in a
/// keepalive; with nothing in flight the reader confirms it. No heartbeat involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_advances_on_keepalives() {
    let env = TestEnv::get();
    let db = env.database("cdc_idle").await;
    let other = env.database("cdc_idle_other").await;
    let pool = db.pool.clone();
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let reader = InProcess::start(config(
        &db.url,
        &env.kafka_brokers,
        &slot,
        &prefix,
        &["--heartbeat-interval", "0", "--snapshot", "never"],
    ));
    wait_for("slot streaming", Duration::from_secs(30), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { slot_streaming(&pool, &slot).await.then_some(()) }
    })
    .await;
    let start = confirmed_flush(&pool, &slot).await.unwrap();
    insert_profiles(&other.pool, 1000).await;
    let mark = current_wal_lsn(&pool).await;
    assert!(mark > start);
    wait_for(
        "confirmed_flush_lsn to pass WAL written in another database",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            let slot = slot.clone();
            async move { confirmed_flush(&pool, &slot).await.filter(|l| *l >= mark) }
        },
    )
    .await;
    reader.stop().await;
    drop_slot(&pool, &slot).await;
    db.drop_database().await;
    other.drop_database().await;
}

/// The heartbeat's own transaction flows through the slot and is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_advances_on_heartbeats() {
    let env = TestEnv::get();
    let db = env.database("cdc_beat").await;
    let pool = db.pool.clone();
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let reader = InProcess::start(config(
        &db.url,
        &env.kafka_brokers,
        &slot,
        &prefix,
        &["--heartbeat-interval", "1s", "--snapshot", "never"],
    ));
    wait_for("slot streaming", Duration::from_secs(30), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { slot_streaming(&pool, &slot).await.then_some(()) }
    })
    .await;
    let mark = current_wal_lsn(&pool).await;
    let beat = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, Option<String>>("SELECT lsn::text FROM cdc_heartbeat WHERE id = 1")
            .fetch_one(&pool)
            .await
            .ok()
            .flatten()
    };
    wait_for(
        "a heartbeat after the mark",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                beat(pool)
                    .await
                    .and_then(|l| shared::envelope::parse_lsn(&l))
                    .filter(|l| *l >= mark)
            }
        },
    )
    .await;
    wait_for(
        "confirmed_flush_lsn to pass the mark",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            let slot = slot.clone();
            async move { confirmed_flush(&pool, &slot).await.filter(|l| *l > mark) }
        },
    )
    .await;
    reader.stop().await;
    drop_slot(&pool, &slot).await;
    db.drop_database().await;
}
