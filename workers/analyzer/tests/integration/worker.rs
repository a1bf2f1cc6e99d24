//! The worker end to end with hand-made change events: results, errors, the DLQ, edits.

use std::time::Duration;

use clap::Parser;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde_json::{json, Value};
use shared::kafka::{consumer_config, ensure_topics, producer_config};
use shared::shutdown::Shutdown;
use shared::testkit::{unique_name, wait_for, TestDatabase, TestEnv};
use uuid::Uuid;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: analyzer::Config,
}

/// An analyzer configured for one test's database and topics.
fn config(env: &TestEnv, db: &TestDatabase, prefix: &str) -> analyzer::Config {
    let args = crate::analyzer_args(env, &db.url, prefix, &unique_name("analyzer"));
    let metrics = ["--metrics-addr", "127.0.0.1:0"].map(str::to_owned);
    Cli::try_parse_from(
        std::iter::once("analyzer".to_owned())
            .chain(args)
            .chain(metrics),
    )
    .expect("valid analyzer flags")
    .config
}

/// The envelope the CDC reader publishes for a saju_profiles row, with values shaped as
/// wal2json prints them.
fn envelope(op: &str, row: Value, lsn: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "op": op, "before": null, "after": row,
        "source": {"lsn": lsn, "commit_lsn": lsn, "xid": 1, "ts": "2026-01-01T00:00:00Z",
                   "schema": "public", "table": "saju_profiles"}
    }))
    .unwrap()
}

async fn row_of(db: &TestDatabase, id: Uuid) -> Value {
    sqlx::query_scalar::<_, Value>(
        "SELECT to_jsonb(p) - 'analysis_result' || jsonb_build_object('doc', analysis_result) \
         FROM (SELECT id, name, gender, to_char(birth_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00') AS birth_date, \
                      is_solar, is_leap_month, analysis_input, analysis_status, analysis_error, analysis_result, \
                      ARRAY[year_gan, year_ji, month_gan, month_ji, day_gan, day_ji, hour_gan, hour_ji] AS codes \
               FROM saju_profiles WHERE id = $1) p",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn insert(
    db: &TestDatabase,
    name: &str,
    gender: &str,
    birth: &str,
    solar: bool,
    leap: bool,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO saju_profiles (name, gender, birth_date, is_solar, is_leap_month) \
         VALUES ($1, $2, $3::timestamptz, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(gender)
    .bind(birth)
    .bind(solar)
    .bind(leap)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Publishes a change event keyed by the row's id, as the CDC reader does.
async fn publish(producer: &FutureProducer, topic: &str, payload: Vec<u8>, id: Uuid) {
    let key = format!("{{\"id\":\"{id}\"}}");
    producer
        .send(
            FutureRecord::to(topic).key(&key).payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// A consumer of the run's `saju.analysis.v1` topic, in a group of its own (reads from the start).
fn results_consumer(
    env: &TestEnv,
    kafka: &shared::config::KafkaArgs,
    prefix: &str,
) -> StreamConsumer {
    let results: StreamConsumer =
        consumer_config(kafka, &env.consumer(), &unique_name("results"), "test")
            .create()
            .unwrap();
    results.subscribe(&[&crate::results_topic(prefix)]).unwrap();
    results
}

/// The row as the CDC reader would publish it.
fn wal_row(row: &Value) -> Value {
    json!({
        "id": row["id"], "name": row["name"], "gender": row["gender"], "birth_date": row["birth_date"],
        "is_solar": row["is_solar"], "is_leap_month": row["is_leap_month"],
        "analysis_input": row["analysis_input"], "analysis_status": row["analysis_status"],
    })
}

#[tokio::test]
async fn analyzes_valid_rows_rejects_bad_ones_and_ignores_its_own_writes() {
    let env = TestEnv::get();
    let db = env.database("analyzer").await;
    let prefix = unique_name("t");
    let kafka = env.kafka(&prefix);
    ensure_topics(&kafka, &crate::test_topics(&prefix))
        .await
        .unwrap();
    let topic = kafka.cdc_topic("public", "saju_profiles");

    let solar = insert(&db, "입춘 직후", "F", "2024-02-04 17:28:00+09", true, false).await;
    let lunar = insert(&db, "윤달", "F", "2020-04-15 14:30:00+09", false, true).await;
    let too_old = insert(&db, "범위 밖", "M", "1850-01-01 00:00:00+09", true, false).await;
    let no_leap = insert(&db, "없는 윤달", "M", "2021-04-10 10:00:00+09", false, true).await;

    let producer: FutureProducer = producer_config(&kafka, "test").create().unwrap();
    let send = |payload: Vec<u8>, id: Uuid| publish(&producer, &topic, payload, id);
    for (i, id) in [solar, lunar, too_old, no_leap].into_iter().enumerate() {
        let row = row_of(&db, id).await;
        send(envelope("c", wal_row(&row), 100 + i as u64), id).await;
    }
    // A malformed event must not stop anything.
    send(
        b"{\"op\":\"c\",\"after\":{\"id\":42}}".to_vec(),
        Uuid::nil(),
    )
    .await;

    let shutdown = Shutdown::new();
    let worker = tokio::spawn(analyzer::run(config(&env, &db, &prefix), shutdown.clone()));

    let done = |id: Uuid| {
        let db = &db;
        async move {
            wait_for(
                "the analysis to be written",
                Duration::from_secs(90),
                || async {
                    let row = row_of(db, id).await;
                    (row["analysis_status"] != "pending").then_some(row)
                },
            )
            .await
        }
    };
    let row = done(solar).await;
    assert_eq!(row["analysis_status"], "done", "{row}");
    assert_eq!(
        row["codes"],
        json!([0, 14, 2, 12, 4, 20, 7, 19]),
        "갑진 병인 무술 신유"
    );
    assert_eq!(row["doc"]["ganji"], json!(["갑진", "병인", "무술", "신유"]));
    // Same document as the engine (and so `analyzer chart`) computes for these inputs.
    let analysis = saju::Analysis::compute(
        &saju::Birth::Instant(saju::Instant::parse_rfc3339("2024-02-04T17:28:00+09:00").unwrap()),
        saju::Gender::Female,
        &saju::Options::default(),
    )
    .unwrap();
    let mut expected = Vec::new();
    saju::json::write_analysis(&analysis, &mut expected);
    assert_eq!(
        row["doc"],
        serde_json::from_slice::<Value>(&expected).unwrap()
    );

    let row = done(lunar).await;
    assert_eq!(row["analysis_status"], "done", "{row}");
    assert_eq!(
        row["doc"]["solar_date"].as_str().map(|s| s.len()),
        Some(10),
        "{row}"
    );

    let row = done(too_old).await;
    assert_eq!(row["analysis_status"], "error");
    assert!(
        row["analysis_error"]
            .as_str()
            .unwrap()
            .contains("outside the supported range"),
        "{row}"
    );
    assert_eq!(
        row["codes"],
        json!([null, null, null, null, null, null, null, null])
    );

    let row = done(no_leap).await;
    assert_eq!(row["analysis_status"], "error");
    assert!(
        row["analysis_error"]
            .as_str()
            .unwrap()
            .contains("no leap month"),
        "{row}"
    );

    // The DLQ has the two bad profiles and the malformed event, each with a reason.
    let consumer: StreamConsumer =
        consumer_config(&kafka, &env.consumer(), &unique_name("dlq"), "test")
            .create()
            .unwrap();
    consumer.subscribe(&[&format!("{topic}.dlq")]).unwrap();
    let mut reasons = Vec::new();
    while reasons.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("3 dead letters")
            .unwrap();
        let letter: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        // The documented dead-letter shape: the original message and why.
        assert_eq!(letter["worker"], "analyzer");
        assert!(letter["original"]["offset"].is_number(), "{letter}");
        assert!(letter["original"]["value"].is_string(), "{letter}");
        assert!(!letter["error"]["message"].as_str().unwrap().is_empty());
        reasons.push(format!(
            "{}/{}",
            letter["error"]["kind"].as_str().unwrap(),
            letter["error"]["reason"].as_str().unwrap()
        ));
    }
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "decode/malformed",
            "invalid_input/invalid_date",
            "invalid_input/out_of_range"
        ]
    );

    // One saju.analysis.v1 event per written result, as documented.
    let results = results_consumer(&env, &kafka, &prefix);
    let mut seen: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    while !(seen.contains_key(&solar.to_string()) && seen.contains_key(&too_old.to_string())) {
        let message = tokio::time::timeout(Duration::from_secs(60), results.recv())
            .await
            .expect("result events")
            .unwrap();
        let event: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        if let Some(id) = event["profile_id"].as_str() {
            seen.insert(id.to_owned(), event);
        }
    }
    let done = &seen[&solar.to_string()];
    assert_eq!(done["status"], "done");
    assert_eq!(done["analysis_version"], saju::json::VERSION);
    assert!(
        done["input"]["commit_lsn"].as_u64().unwrap() >= 100,
        "{done}"
    );
    assert_eq!(done["result"]["codes"], json!([0, 14, 2, 12, 4, 20, 7, 19]));
    let failed = &seen[&too_old.to_string()];
    assert_eq!(failed["status"], "error");
    assert!(failed["error"]
        .as_str()
        .unwrap()
        .contains("outside the supported range"));
    assert!(failed.get("result").is_none());

    // Its own write-back comes back as an update: nothing is written again.
    let before = row_of(&db, solar).await;
    let updated_at = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT updated_at FROM saju_profiles WHERE id = $1",
        )
        .bind(solar)
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let stamp = updated_at().await;
    send(envelope("u", wal_row(&before), 200), solar).await;
    // A user's edit of an input is analyzed again.
    sqlx::query("UPDATE saju_profiles SET birth_date = '2024-02-04 17:26:00+09' WHERE id = $1")
        .bind(solar)
        .execute(&db.pool)
        .await
        .unwrap();
    let edited = row_of(&db, solar).await;
    send(envelope("u", wal_row(&edited), 300), solar).await;
    let row = wait_for(
        "the edit to be analyzed",
        Duration::from_secs(60),
        || async {
            let row = row_of(&db, solar).await;
            (row["codes"][0] == json!(9)).then_some(row)
        },
    )
    .await;
    assert_eq!(
        row["doc"]["ganji"][0], "계묘",
        "before 입춘 17:27 the year is still 계묘"
    );
    assert!(updated_at().await > stamp);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("stops within 30 s")
        .unwrap()
        .unwrap();
    db.drop_database().await;
}

/// A change event can reach the analyzer before its transaction is visible to other sessions
/// (the commit record is decoded before the committing backend leaves the running list). The
/// write then finds no row; it is tried again instead of being dropped as a deleted row.
#[tokio::test]
async fn an_insert_seen_before_its_transaction_is_visible_is_still_analyzed() {
    late_insert_is_analyzed(Via::ChangeEvent).await;
}

/// The same race for an insert whose change was too large for the broker: the reader's
/// `too_large` dead letter makes the analyzer read the row from the table, and a row not found
/// there yet is read again instead of being taken as deleted.
#[tokio::test]
async fn a_too_large_insert_seen_before_its_transaction_is_visible_is_still_analyzed() {
    late_insert_is_analyzed(Via::TooLargeLetter).await;
}

/// How the late insert reaches the analyzer.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Its change event on the CDC topic.
    ChangeEvent,
    /// The reader's dead letter for a change too large to publish, on the CDC topic's `.dlq`.
    TooLargeLetter,
}

async fn late_insert_is_analyzed(via: Via) {
    let env = TestEnv::get();
    let db = env.database("analyzer").await;
    let prefix = unique_name("t");
    let kafka = env.kafka(&prefix);
    ensure_topics(&kafka, &crate::test_topics(&prefix))
        .await
        .unwrap();
    let topic = kafka.cdc_topic("public", "saju_profiles");
    let producer: FutureProducer = producer_config(&kafka, "test").create().unwrap();
    let send = |payload: Vec<u8>, id: Uuid| publish(&producer, &topic, payload, id);
    let status = |id: Uuid| {
        let db = &db;
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT analysis_status FROM saju_profiles WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&db.pool)
            .await
            .unwrap()
        }
    };

    // Warm-up: the worker has joined its group and consumes.
    let warm = insert(&db, "warm-up", "M", "1990-05-05 10:00:00+09", true, false).await;
    send(envelope("c", wal_row(&row_of(&db, warm).await), 100), warm).await;
    let shutdown = Shutdown::new();
    let worker = tokio::spawn(analyzer::run(config(&env, &db, &prefix), shutdown.clone()));
    wait_for("the warm-up analysis", Duration::from_secs(90), || async {
        (status(warm).await.as_deref() == Some("done")).then_some(())
    })
    .await;

    // The insert is made but not yet visible when its event arrives.
    let id: Uuid = sqlx::query_scalar("SELECT gen_random_uuid()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO saju_profiles (id, name, gender, birth_date, is_solar, is_leap_month) \
         VALUES ($1, 'late', 'F', '2024-02-04 17:28:00+09', true, false)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    let row = json!({
        "id": id, "name": "late", "gender": "F", "birth_date": "2024-02-04 08:28:00+00",
        "is_solar": true, "is_leap_month": false, "analysis_input": null,
        "analysis_status": "pending",
    });
    match via {
        Via::ChangeEvent => send(envelope("c", row, 200), id).await,
        Via::TooLargeLetter => {
            let key = format!("{{\"id\":\"{id}\"}}");
            let change = json!({
                "op": "c", "schema": "public", "table": "saju_profiles", "lsn": 200,
                "commit_lsn": 200, "xid": 7, "ts": null, "bytes": 2_000_000,
            });
            let failure = shared::dlq::Failure {
                kind: shared::dlq::Kind::TooLarge,
                reason: "too_large",
                message: "change event of 2000000 bytes is larger than message.max.bytes",
            };
            let letter = shared::dlq::unpublished(
                &topic,
                Some(key.as_bytes()),
                change,
                failure,
                "cdc-reader",
                chrono::Utc::now(),
            );
            let dlq = shared::topics::dlq_topic(&topic);
            publish(&producer, &dlq, letter.to_string().into_bytes(), id).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(id).await, None, "not visible before the commit");
    tx.commit().await.unwrap();

    wait_for(
        "the late row's analysis",
        Duration::from_secs(60),
        || async { (status(id).await.as_deref() == Some("done")).then_some(()) },
    )
    .await;
    let written = row_of(&db, id).await;
    assert_eq!(
        written["codes"],
        json!([0, 14, 2, 12, 4, 20, 7, 19]),
        "{written}"
    );
    // Downstream sees its result event too.
    let results = results_consumer(&env, &kafka, &prefix);
    let event = loop {
        let message = tokio::time::timeout(Duration::from_secs(60), results.recv())
            .await
            .expect("the late row's result event")
            .unwrap();
        let event: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        if event["profile_id"] == json!(id.to_string()) {
            break event;
        }
    };
    assert_eq!(event["status"], "done", "{event}");
    assert_eq!(
        event["result"]["codes"],
        json!([0, 14, 2, 12, 4, 20, 7, 19])
    );

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("stops within 30 s")
        .unwrap()
        .unwrap();
    db.drop_database().await;
}
