//! Handover without zombie writes: the leader loses its lock while thousands of its messages
//! are still on a slow network path to the broker; the standby takes over and streams on a
//! fast one. Without fencing, the deposed leader's late copies of older changes land after
//! its successor's newer ones, and the newest record of a key in the topic is stale. With the
//! transactional producer (the default), the successor's producer fences the old one at the
//! broker before its first write, so nothing of the old leader lands after it.
//!
//! `CDC_TEST_FENCING=none scripts/test -p cdc-reader --test integration -- fencing` runs the
//! same scenario without fencing, to see it fail.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use shared::testkit::private::{DelayProxy, PrivateBroker};
use shared::testkit::{unique_name, wait_for, TestEnv};

use crate::support::*;

const KEYS: i64 = 200;
/// How late the deposed leader's messages reach the broker.
const SLOW_PATH: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_on_a_slow_path_never_writes_after_its_successor() {
    let env = TestEnv::get();
    let proxy = DelayProxy::start().await;
    let broker = PrivateBroker::start_behind(&proxy);
    let brokers = broker.brokers();
    let db = env.database("cdc_fencing").await;
    let pool = db.pool.clone();
    sqlx::raw_sql(&format!(
        "CREATE TABLE fence_t (id int PRIMARY KEY, v bigint NOT NULL);
         INSERT INTO fence_t SELECT g, 0 FROM generate_series(1, {KEYS}) g"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let fencing = std::env::var("CDC_TEST_FENCING").unwrap_or_else(|_| "transactions".into());
    // Transactions of 5 s: the leader has thousands of messages on the wire, not yet
    // committed, when its path turns slow.
    let flags = [
        "--tables",
        "public.fence_t",
        "--fencing",
        fencing.as_str(),
        "--transaction-interval",
        "5s",
    ];
    let log = |who: &str| std::env::temp_dir().join(format!("{slot}_{who}.log"));
    let (log_a, log_b) = (log("a"), log("b"));
    let mut leader = Spawned::start(
        &db.url,
        &brokers,
        &slot,
        &prefix,
        &flags,
        log_a.to_str().unwrap(),
    );
    wait_streaming(
        &pool,
        &slot,
        "the first reader streaming",
        Duration::from_secs(60),
    )
    .await;
    let first_walsender: Option<i32> =
        sqlx::query_scalar("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1")
            .bind(&slot)
            .fetch_one(&pool)
            .await
            .unwrap();

    // Every key's version only grows: one update per transaction, round the keys.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let pool = pool.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.is_cancelled() {
                if sqlx::query("UPDATE fence_t SET v = v + 1 WHERE id = $1")
                    .bind((n * 37) % KEYS + 1)
                    .execute(&pool)
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The leader's path to the broker turns slow; the standby connects afterwards, on a fast
    // path, while the leader piles up messages it cannot get acknowledged.
    proxy.slow_existing(SLOW_PATH);
    let mut standby = Spawned::start(
        &db.url,
        &brokers,
        &slot,
        &prefix,
        &flags,
        log_b.to_str().unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let in_flight = proxy.queued();

    // The leader loses its lock (its session is ended, as a network partition would).
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
         WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ended, 1, "one leader holds the lock");
    let pool_for_wait = pool.clone();
    let slot_for_wait = slot.clone();
    wait_for(
        "the standby streaming the slot",
        Duration::from_secs(60),
        || {
            let pool = pool_for_wait.clone();
            let slot = slot_for_wait.clone();
            async move {
                let pid: Option<i32> = sqlx::query_scalar(
                    "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                )
                .bind(&slot)
                .fetch_one(&pool)
                .await
                .unwrap();
                pid.filter(|p| Some(*p) != first_walsender).map(|_| ())
            }
        },
    )
    .await;
    // The successor streams newer versions for a while, then the writes stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let updates = writer.await.unwrap();
    let end = current_wal_lsn(&pool).await;
    wait_confirmed(
        &pool,
        &slot,
        "the successor confirmed every change",
        Duration::from_secs(120),
        |l| l >= end,
    )
    .await;
    // Everything the old leader had on the slow path reaches the broker (or is refused).
    wait_for(
        "the slow path to drain",
        SLOW_PATH + Duration::from_secs(30),
        || async { (proxy.queued() == 0).then_some(()) },
    )
    .await;

    let truth: BTreeMap<i64, i64> = sqlx::query_as::<_, (i32, i64)>("SELECT id, v FROM fence_t")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, v)| (i64::from(id), v))
        .collect();
    let mut read = TopicReader::new(&brokers, &[format!("{prefix}.public.fence_t")]).await;
    read.read_to_end(Duration::from_secs(120)).await;
    // Each key's versions, in the topic's order.
    let mut versions: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for record in &read.records {
        let Some(after) = record.event.as_ref().and_then(|e| e.after.as_ref()) else {
            continue;
        };
        let id = after.get("id").and_then(Value::as_i64).unwrap();
        let v = after.get("v").and_then(Value::as_i64).unwrap();
        versions.entry(id).or_default().push(v);
    }
    let stale: Vec<String> = truth
        .iter()
        .filter(|(id, v)| versions.get(id).and_then(|vs| vs.last()) != Some(v))
        .map(|(id, v)| {
            format!(
                "{id}: newest in topic {:?}, row {v}",
                versions.get(id).and_then(|vs| vs.last())
            )
        })
        .collect();
    // A handover replays from the slot's confirmed position: each key's versions may go back
    // once, where the successor starts; a zombie write makes them go back again.
    let reordered: Vec<String> = versions
        .iter()
        .filter(|(_, vs)| vs.windows(2).filter(|w| w[1] < w[0]).count() > 1)
        .map(|(id, vs)| format!("{id}: {vs:?}"))
        .collect();
    eprintln!(
        "fencing {fencing}: {updates} updates, {in_flight} chunks on the slow path at the handover, \
         {} records read; {} keys stale, {} keys out of order",
        read.records.len(),
        stale.len(),
        reordered.len()
    );
    assert!(
        in_flight > 0,
        "the old leader had nothing on the slow path: the test proves nothing"
    );
    assert!(
        stale.is_empty() && reordered.is_empty(),
        "the deposed leader wrote after its successor (logs: {}, {}):\nstale: {:?}\nout of order: {:?}",
        log_a.display(),
        log_b.display(),
        &stale[..stale.len().min(5)],
        &reordered[..reordered.len().min(5)]
    );
    leader.terminate();
    standby.terminate();
    drop_slot(&pool, &slot).await;
    db.drop_database().await;
}
