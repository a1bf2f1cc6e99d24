//! Keys: a table without a primary key is refused at start-up with the fix; one with
//! `REPLICA IDENTITY FULL` is keyed by all its columns; an update that changes the key is a
//! delete (and tombstone) of the old key and a create of the new one, as Debezium publishes it.

use std::time::Duration;

use shared::envelope::Op;
use shared::testkit::unique_name;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_primary_key_is_refused_with_the_fix() {
    let env = TestEnv::get();
    let db = env.database("cdc_nopk").await;
    sqlx::raw_sql("CREATE TABLE no_key (a int, b text)")
        .execute(&db.pool)
        .await
        .unwrap();
    let reader = InProcess::start(config(
        &db.url,
        &env.kafka_brokers,
        &unique_name("cdc_slot"),
        &unique_name("cdct"),
        &["--tables", "public.saju_profiles,public.no_key"],
    ));
    let result = tokio::time::timeout(Duration::from_secs(60), reader.handle)
        .await
        .expect("the reader stops at once")
        .unwrap();
    let error = result.expect_err("a table without a key cannot be captured");
    let text = error.to_string();
    assert!(!error.is_retryable(), "{text}");
    assert!(
        text.contains("public.no_key") && text.contains("no primary key"),
        "{text}"
    );
    assert!(text.contains("REPLICA IDENTITY FULL"), "{text}");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_changes_are_a_delete_and_a_create_and_full_identity_keys_by_all_columns() {
    let s = Scenario::new("cdc_keys").await;
    sqlx::raw_sql(
        "CREATE TABLE keyed (id int PRIMARY KEY, v text); \
         CREATE TABLE full_row (a int, b text); ALTER TABLE full_row REPLICA IDENTITY FULL; \
         INSERT INTO keyed VALUES (1, 'x'); INSERT INTO full_row VALUES (1, 'snap');",
    )
    .execute(&s.pool)
    .await
    .unwrap();
    let reader = s
        .reader(&["--tables", "public.keyed,public.full_row"])
        .await;
    sqlx::raw_sql(
        "UPDATE keyed SET id = 2 WHERE id = 1; \
         UPDATE keyed SET v = 'y' WHERE id = 2; \
         INSERT INTO full_row VALUES (2, 'new'); \
         UPDATE full_row SET b = 'changed' WHERE a = 2; \
         DELETE FROM full_row WHERE a = 1;",
    )
    .execute(&s.pool)
    .await
    .unwrap();
    let mut read = TopicReader::new(
        &s.env.kafka_brokers,
        &[
            format!("{}.public.keyed", s.prefix),
            format!("{}.public.full_row", s.prefix),
        ],
    )
    .await;
    // keyed: r(1), d(1), tombstone(1), c(2), u(2); full_row: r, c, d, tombstone, c, d, tombstone
    read.read_until("every event", Duration::from_secs(60), |r| r.len() >= 12)
        .await;
    let of = |key: &str| -> Vec<Option<Op>> {
        let mut records: Vec<&Record> = read
            .records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key))
            .collect();
        records.sort_by_key(|r| r.offset);
        records
            .iter()
            .map(|r| r.event.as_ref().map(|e| e.op))
            .collect()
    };
    assert_eq!(
        of(r#"{"id":1}"#),
        vec![Some(Op::Read), Some(Op::Delete), None],
        "the old key ends in a tombstone"
    );
    assert_eq!(of(r#"{"id":2}"#), vec![Some(Op::Create), Some(Op::Update)]);
    // All columns make the key: a change of any column moves the row to a new key.
    assert_eq!(
        of(r#"{"a":1,"b":"snap"}"#),
        vec![Some(Op::Read), Some(Op::Delete), None]
    );
    assert_eq!(
        of(r#"{"a":2,"b":"new"}"#),
        vec![Some(Op::Create), Some(Op::Delete), None]
    );
    assert_eq!(of(r#"{"a":2,"b":"changed"}"#), vec![Some(Op::Create)]);
    let delete = read
        .records
        .iter()
        .find(|r| {
            r.key.as_deref() == Some(r#"{"id":1}"#)
                && r.event.as_ref().is_some_and(|e| e.op == Op::Delete)
        })
        .and_then(|r| r.event.as_ref())
        .unwrap();
    assert_eq!(delete.before.as_ref().unwrap()["id"], 1);
    assert!(delete.after.is_none());
    s.finish(reader).await;
}
