//! Inserts, updates, deletes, truncates, TOAST, snapshot rows and exact numbers.

use std::time::Duration;

use serde_json::Value;
use shared::envelope::Op;
use shared::testkit::{unique_name, wait_for};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_change_comes_out_right() {
    let env = TestEnv::get();
    let db = env.database("cdc_changes").await;
    let pool = db.pool.clone();
    sqlx::raw_sql(
        "CREATE TABLE cdc_types (id bigint PRIMARY KEY, n numeric, f float8, b boolean, t text); \
         INSERT INTO cdc_types VALUES (9223372036854775807, 12345678901234567890.123456789, 0.1, true, 'snap'); \
         INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('before1', 'M', '1990-05-15 05:30:00+00'), ('before2', 'F', now());",
    )
    .execute(&pool)
    .await
    .unwrap();

    let slot = unique_name("cdc_slot");
    let prefix = unique_name("cdct");
    let tables = "public.saju_profiles,public.image_assets,public.cdc_types";
    let reader = InProcess::start(config(
        &db.url,
        &env.kafka_brokers,
        &slot,
        &prefix,
        &["--tables", tables, "--heartbeat-interval", "1s"],
    ));
    wait_for("slot streaming", Duration::from_secs(30), || {
        let pool = pool.clone();
        let slot = slot.clone();
        async move { slot_streaming(&pool, &slot).await.then_some(()) }
    })
    .await;

    let (id,): (uuid::Uuid,) = sqlx::query_as("INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('new', 'F', '2000-01-01 00:00:00+09') RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE saju_profiles SET name = 'renamed' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM saju_profiles WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    // An incompressible value large enough to be TOASTed out of line.
    sqlx::raw_sql(
        "INSERT INTO image_assets (file_name, file_path, metadata) \
         SELECT 'big.exr', '/a/', jsonb_build_object('blob', string_agg(md5(random()::text), '')) FROM generate_series(1, 400); \
         UPDATE image_assets SET width = 640 WHERE file_name = 'big.exr'; \
         INSERT INTO cdc_types VALUES (-9223372036854775808, 0.000000000000000000000000000001, 1.0000000000000002, false, 'x'); \
         TRUNCATE image_assets;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mark = current_wal_lsn(&pool).await;

    let mut topics_read = TopicReader::new(
        &env.kafka_brokers,
        &[
            format!("{prefix}.public.saju_profiles"),
            format!("{prefix}.public.image_assets"),
            format!("{prefix}.public.cdc_types"),
        ],
    )
    .await;
    // profiles: r r c u d + tombstone; assets: c u t t t; types: r c
    topics_read
        .read_until("all events", Duration::from_secs(60), |r| r.len() >= 13)
        .await;
    let records = topics_read.records.clone();
    let of = |table: &str| {
        records
            .iter()
            .filter(|r| {
                r.event
                    .as_ref()
                    .map(|e| e.source.table == table)
                    .unwrap_or(true)
            })
            .cloned()
            .collect::<Vec<_>>()
    };

    // Snapshot rows.
    let snap: Vec<_> = records
        .iter()
        .filter_map(|r| r.event.as_ref())
        .filter(|e| e.op == Op::Read)
        .collect();
    assert_eq!(
        snap.len(),
        3,
        "two profiles and one typed row existed before the slot"
    );
    for e in &snap {
        assert!(e.source.snapshot && e.before.is_none() && e.source.xid.is_none());
        assert_eq!(e.source.lsn, e.source.commit_lsn);
    }
    let typed_snap = snap.iter().find(|e| e.source.table == "cdc_types").unwrap();
    let after = typed_snap.after.as_ref().unwrap();
    assert_eq!(after["id"].to_string(), "9223372036854775807");
    assert_eq!(after["n"].to_string(), "12345678901234567890.123456789");
    assert_eq!(after["b"], Value::Bool(true));
    assert_eq!(after["t"], "snap");

    // Insert, update, delete and the tombstone of one profile, in order, on one partition.
    let key = format!("{{\"id\":\"{id}\"}}");
    let row: Vec<_> = of("saju_profiles")
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(key.as_str()))
        .collect();
    assert_eq!(row.len(), 4, "c, u, d and a tombstone: {row:?}");
    assert!(row.iter().all(|r| r.partition == row[0].partition));
    let events: Vec<_> = row.iter().filter_map(|r| r.event.clone()).collect();
    assert_eq!(
        events.iter().map(|e| e.op).collect::<Vec<_>>(),
        vec![Op::Create, Op::Update, Op::Delete]
    );
    assert!(row[3].event.is_none(), "tombstone after the delete");
    assert!(events.windows(2).all(|w| w[0].position() < w[1].position()));
    let create = &events[0];
    assert!(create.before.is_none());
    assert_eq!(create.after.as_ref().unwrap()["name"], "new");
    assert_eq!(
        create.after.as_ref().unwrap()["birth_date"],
        "1999-12-31 15:00:00+00"
    );
    assert!(create.source.xid.is_some());
    assert!((chrono::Utc::now() - create.source.ts).num_seconds().abs() < 120);
    assert_eq!(events[1].before.as_ref().unwrap()["id"], id.to_string());
    assert_eq!(events[1].after.as_ref().unwrap()["name"], "renamed");
    assert!(events[2].after.is_none());
    assert_eq!(events[2].before.as_ref().unwrap()["id"], id.to_string());

    // TOAST: the update did not touch metadata, so it is absent (not null).
    let assets: Vec<_> = of("image_assets")
        .into_iter()
        .filter_map(|r| r.event)
        .collect();
    let insert = assets.iter().find(|e| e.op == Op::Create).unwrap();
    assert!(insert.after.as_ref().unwrap()["metadata"].is_string());
    let update = assets.iter().find(|e| e.op == Op::Update).unwrap();
    assert!(
        !update.after.as_ref().unwrap().contains_key("metadata"),
        "unchanged TOAST column must be absent"
    );
    assert_eq!(update.after.as_ref().unwrap()["width"].to_string(), "640");

    // Truncate: one event per partition, no row.
    let truncates: Vec<_> = of("image_assets")
        .into_iter()
        .filter(|r| r.event.as_ref().map(|e| e.op) == Some(Op::Truncate))
        .collect();
    assert_eq!(truncates.len(), 3);
    let mut partitions: Vec<_> = truncates.iter().map(|r| r.partition).collect();
    partitions.sort();
    assert_eq!(partitions, vec![0, 1, 2]);
    assert!(
        truncates.iter().all(|r| r.key.as_deref() == Some("{}")),
        "truncates are keyed {{}}"
    );
    assert!(truncates.iter().all(|r| {
        let e = r.event.as_ref().unwrap();
        e.before.is_none() && e.after.is_none()
    }));

    // Exact numbers through the stream.
    let typed = of("cdc_types")
        .into_iter()
        .filter_map(|r| r.event)
        .find(|e| e.op == Op::Create)
        .unwrap();
    let after = typed.after.unwrap();
    assert_eq!(after["id"].to_string(), "-9223372036854775808");
    assert_eq!(after["n"].to_string(), "0.000000000000000000000000000001");
    assert_eq!(after["f"].to_string(), "1.0000000000000002");
    assert_eq!(after["b"], Value::Bool(false));

    // The slot is confirmed past all of it.
    wait_for(
        "confirmed_flush_lsn past the last change",
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
}
