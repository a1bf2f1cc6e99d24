//! A slot PostgreSQL invalidated (`max_slot_wal_keep_size` exceeded while the reader was
//! away): the reader stops with exit code 3 and says why, and with
//! `--on-slot-invalidated resnapshot` it creates a new slot and snapshots the tables again.

use std::time::Duration;

use shared::envelope::Op;
use shared::testkit::{unique_name, wait_for};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_stops_the_reader_or_is_replaced_by_a_new_snapshot() {
    let env = TestEnv::get();
    let cluster = PrivateCluster::start();
    cluster.configure(
        "max_slot_wal_keep_size = 1MB\nwal_keep_size = 0\nmin_wal_size = 32MB\nmax_wal_size = 32MB",
    );
    let name = unique_name("cdc_invalid");
    let pool = cluster.database(&name).await;
    let url = cluster.url(&name);
    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    sqlx::query("INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('kept', 'F', now())")
        .execute(&pool)
        .await
        .unwrap();
    let log = std::env::temp_dir().join(format!("{slot}.log"));
    let mut reader = Spawned::start(
        &url,
        &env.kafka_brokers,
        &slot,
        &prefix,
        &[],
        log.to_str().unwrap(),
    );
    wait_streaming(&pool, &slot, "slot streaming", Duration::from_secs(60)).await;
    assert!(reader.terminate().success());

    // While the reader is away, far more WAL than the slot may keep.
    sqlx::raw_sql("CREATE TABLE filler (x text)")
        .execute(&pool)
        .await
        .unwrap();
    wait_for("the slot to be invalidated", Duration::from_secs(120), || async {
        sqlx::raw_sql(
            "INSERT INTO filler SELECT md5(g::text) || md5(random()::text) FROM generate_series(1, 50000) g; \
             SELECT pg_switch_wal(); CHECKPOINT;",
        )
        .execute(&pool)
        .await
        .unwrap();
        let status: Option<String> = sqlx::query_scalar(
            "SELECT to_jsonb(s) ->> 'wal_status' FROM pg_replication_slots s WHERE slot_name = $1",
        )
        .bind(&slot)
        .fetch_one(&pool)
        .await
        .unwrap();
        (status.as_deref() == Some("lost")).then_some(())
    })
    .await;

    // By default the reader refuses to go on, with a distinct exit code and the reason, which
    // its /readyz and metrics show until it exits.
    let port = shared::testkit::private::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut refusing = Spawned::start(
        &url,
        &env.kafka_brokers,
        &slot,
        &prefix,
        &["--metrics-addr", &addr, "--fatal-linger", "20s"],
        log.to_str().unwrap(),
    );
    let (ready, metric) = wait_for(
        "the reader to report the invalidated slot",
        Duration::from_secs(60),
        || {
            let addr = addr.clone();
            async move {
                let metrics = http_get(&addr, "/metrics").await?;
                let readyz = http_get(&addr, "/readyz").await?;
                let invalidated = metrics
                    .lines()
                    .any(|l| l.trim() == "cdc_slot_invalidated 1");
                (invalidated && readyz.contains("invalidated")).then_some((readyz, metrics))
            }
        },
    )
    .await;
    assert!(
        ready.split_whitespace().nth(1) == Some("503") && ready.contains("invalidated"),
        "/readyz fails with the reason: {ready}"
    );
    assert!(metric.contains("cdc_slot_invalidated 1"));
    let status = refusing.child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "exit code of an invalidated slot");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("was invalidated by PostgreSQL"),
        "the log says why"
    );
    assert!(
        text.contains("--on-slot-invalidated resnapshot"),
        "the log says what to do"
    );

    // Opted in: a new slot, a new snapshot, and streaming again.
    let mut recovering = Spawned::start(
        &url,
        &env.kafka_brokers,
        &slot,
        &prefix,
        &["--on-slot-invalidated", "resnapshot"],
        log.to_str().unwrap(),
    );
    wait_streaming(
        &pool,
        &slot,
        "the new slot streaming",
        Duration::from_secs(60),
    )
    .await;
    sqlx::query(
        "INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('after', 'M', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut read = TopicReader::new(
        &env.kafka_brokers,
        &[format!("{prefix}.public.saju_profiles")],
    )
    .await;
    read.read_until(
        "the snapshot and the new insert",
        Duration::from_secs(60),
        |records| {
            let named = |name: &str, op: Op| {
                records.iter().any(|r| {
                    r.event.as_ref().is_some_and(|e| {
                        e.op == op && e.after.as_ref().is_some_and(|a| a["name"] == name)
                    })
                })
            };
            named("kept", Op::Read) && named("after", Op::Create)
        },
    )
    .await;
    assert!(recovering.terminate().success());
    drop(pool);
    drop(cluster);
}

/// The whole HTTP/1.0 answer to `GET path`, or `None` while nothing listens.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.ok()?;
    Some(reply)
}
