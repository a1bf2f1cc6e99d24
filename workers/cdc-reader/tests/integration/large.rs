//! A 100,000-row transaction streams through a small in-flight window.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use shared::envelope::Op;
use shared::testkit::{unique_name, wait_for};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_rows_in_one_transaction() {
    let s = Scenario::new("cdc_large").await;
    let (env, pool, slot, prefix) = (&s.env, s.pool.clone(), s.slot.clone(), s.prefix.clone());
    let reader = s
        .reader(&["--max-in-flight", "5000", "--snapshot", "never"])
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
    s.finish(reader).await;
}

/// A change event larger than the producer accepts is not written to its topic: a dead letter
/// naming the row, its LSN and size goes to `<topic>.dlq` in its place, the reader keeps
/// streaming, and the slot is confirmed past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_change_is_dead_lettered_and_the_stream_goes_on() {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;

    let s = Scenario::new("cdc_oversized").await;
    let (env, pool, slot, prefix) = (&s.env, s.pool.clone(), s.slot.clone(), s.prefix.clone());
    let reader = s
        .reader(&[
            "--snapshot",
            "never",
            "--kafka-property",
            "message.max.bytes=100000",
        ])
        .await;

    // ~300 kB of name: three times the limit.
    let (big,): (uuid::Uuid,) = sqlx::query_as(
        "INSERT INTO saju_profiles (name, gender, birth_date) \
         SELECT string_agg(md5(i::text), ''), 'F', now() FROM generate_series(1, 10000) i RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (small,): (uuid::Uuid,) = sqlx::query_as(
        "INSERT INTO saju_profiles (name, gender, birth_date) VALUES ('after', 'M', now()) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let end = current_wal_lsn(&pool).await;

    let topic = format!("{prefix}.public.saju_profiles");
    let mut read = TopicReader::new(&env.kafka_brokers, std::slice::from_ref(&topic)).await;
    read.read_until("the row after the big one", Duration::from_secs(60), |r| {
        r.iter().any(|r| {
            r.event
                .as_ref()
                .and_then(|e| e.after.as_ref())
                .and_then(|a| a.get("id"))
                == Some(&serde_json::json!(small))
        })
    })
    .await;
    assert!(
        !read.records.iter().any(|r| r
            .key
            .as_deref()
            .is_some_and(|k| k.contains(&big.to_string()))),
        "the oversized event reached the table topic"
    );

    let dlq: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.kafka_brokers)
        .set("group.id", unique_name("dlq_reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&format!("{topic}.dlq")]).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(60), dlq.recv())
        .await
        .expect("a dead letter within 60 s")
        .unwrap();
    let key = String::from_utf8_lossy(message.key().unwrap()).into_owned();
    assert_eq!(canonical(&key), canonical(&format!(r#"{{"id":"{big}"}}"#)));
    let letter: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
    assert_eq!(letter["error"]["kind"], "too_large");
    assert_eq!(letter["worker"], "cdc-reader");
    assert_eq!(letter["original"]["topic"], topic.as_str());
    assert!(letter["original"]["value"].is_null());
    assert_eq!(letter["change"]["table"], "saju_profiles");
    assert_eq!(letter["change"]["op"], "c");
    assert!(letter["change"]["lsn"].as_u64().unwrap() > 0);
    assert!(letter["change"]["bytes"].as_u64().unwrap() > 300_000);

    wait_confirmed(
        &pool,
        &slot,
        "the slot confirmed past both rows",
        Duration::from_secs(30),
        |l| l >= end,
    )
    .await;
    assert!(!reader.handle.is_finished(), "the reader stopped");
    s.finish(reader).await;
}
