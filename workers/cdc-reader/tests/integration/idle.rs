//! On an idle database the slot's confirmed position still advances.

use std::time::Duration;

use shared::testkit::wait_for;

use crate::support::*;

/// WAL written elsewhere (another database) reaches the walsender, which reports it in a
/// keepalive; with nothing in flight the reader confirms it. No heartbeat involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_advances_on_keepalives() {
    let s = Scenario::new("cdc_idle").await;
    let other = s.env.database("cdc_idle_other").await;
    let (pool, slot) = (s.pool.clone(), s.slot.clone());
    let reader = s
        .reader(&["--heartbeat-interval", "0", "--snapshot", "never"])
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
    s.finish(reader).await;
    other.drop_database().await;
}

/// The heartbeat's own transaction flows through the slot and is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_advances_on_heartbeats() {
    let s = Scenario::new("cdc_beat").await;
    let (pool, slot) = (s.pool.clone(), s.slot.clone());
    let reader = s
        .reader(&["--heartbeat-interval", "1s", "--snapshot", "never"])
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
    s.finish(reader).await;
}
