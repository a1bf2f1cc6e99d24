//! Transaction boundaries (`--transaction-metadata`): a BEGIN and an END event per
//! transaction with captured changes on `<prefix>.transaction`, in commit order, whose counts
//! match the change records a consumer reads back from the table topics.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_events_bracket_each_transaction_with_its_counts() {
    let s = Scenario::new("cdc_tx").await;
    sqlx::raw_sql(
        "CREATE TABLE acct (id int PRIMARY KEY, v int); \
         CREATE TABLE ledger (id int PRIMARY KEY, amount int); \
         CREATE TABLE other (id int PRIMARY KEY);",
    )
    .execute(&s.pool)
    .await
    .unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let reader = s
        .reader(&[
            "--tables",
            "public.acct,public.ledger",
            "--transaction-metadata",
            "true",
            "--metrics-addr",
            &metrics_addr,
        ])
        .await;

    // Each transaction returns its xid: (xid, expected records per table).
    let mut expected: Vec<(u64, BTreeMap<&str, u64>)> = Vec::new();
    let run = |sql: &'static str| {
        let pool = s.pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
            let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            xid as u64
        }
    };
    let xid = run(
        "INSERT INTO acct SELECT g, 0 FROM generate_series(1, 3) g; \
                   INSERT INTO ledger VALUES (1, 10), (2, 20);",
    )
    .await;
    expected.push((
        xid,
        BTreeMap::from([("public.acct", 3), ("public.ledger", 2)]),
    ));
    // A delete's tombstone is not an event; the delete is.
    let xid = run("UPDATE acct SET v = 1 WHERE id = 1; DELETE FROM ledger WHERE id = 1;").await;
    expected.push((
        xid,
        BTreeMap::from([("public.acct", 1), ("public.ledger", 1)]),
    ));
    // Nothing captured: no BEGIN, no END.
    let silent = run("INSERT INTO other VALUES (1);").await;
    // A key change is a delete and a create, then three updates; a truncate is one record
    // per partition (3).
    let xid = run("UPDATE acct SET id = 10 WHERE id = 2; \
                   UPDATE acct SET v = v + 1; TRUNCATE ledger;")
    .await;
    expected.push((
        xid,
        BTreeMap::from([("public.acct", 5), ("public.ledger", 3)]),
    ));

    let topic = format!("{}.transaction", s.prefix);
    // Nothing more after them: a transaction without captured changes has no events.
    let events: Vec<(Value, Value)> = read_json_records(
        &s.env.kafka_brokers,
        &topic,
        expected.len() * 2,
        Some(Duration::from_secs(3)),
    )
    .await
    .into_iter()
    .map(|(key, value)| (key, value.expect("no tombstones on the transaction topic")))
    .collect();

    // The change records, read back from the table topics, grouped by transaction.
    let mut read = TopicReader::new(
        &s.env.kafka_brokers,
        &[
            format!("{}.public.acct", s.prefix),
            format!("{}.public.ledger", s.prefix),
        ],
    )
    .await;
    read.read_to_end(Duration::from_secs(60)).await;
    let mut records: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for event in read.records.iter().filter_map(|r| r.event.as_ref()) {
        if let Some(xid) = event.source.xid {
            *records
                .entry(format!("{xid}:{}", event.source.commit_lsn))
                .or_default()
                .entry(format!("{}.{}", event.source.schema, event.source.table))
                .or_default() += 1;
        }
    }

    let mut last_commit = 0;
    for (pair, (xid, counts)) in events.chunks(2).zip(&expected) {
        let [(begin_key, begin), (end_key, end)] = pair else {
            unreachable!()
        };
        let id = begin["id"].as_str().unwrap().to_owned();
        assert_eq!(begin["status"], "BEGIN", "{pair:?}");
        assert_eq!(end["status"], "END", "{pair:?}");
        assert_eq!(begin_key["id"], id.as_str());
        assert_eq!(end_key["id"], id.as_str());
        assert_eq!(end["id"], id.as_str());
        assert_eq!(begin["xid"], *xid, "{pair:?}");
        let commit_lsn = begin["commit_lsn"].as_u64().unwrap();
        assert_eq!(id, format!("{xid}:{commit_lsn}"));
        assert!(commit_lsn > last_commit, "commit order: {events:?}");
        last_commit = commit_lsn;
        assert!(begin["event_count"].is_null() && begin["data_collections"].is_null());
        assert_eq!(begin["ts"], end["ts"]);
        let listed: BTreeMap<String, u64> = end["data_collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["data_collection"].as_str().unwrap().to_owned(),
                    c["event_count"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: BTreeMap<String, u64> = counts.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        assert_eq!(listed, want, "END of {id}");
        assert_eq!(end["event_count"], want.values().sum::<u64>());
        // What the consumer reads back carries the same id and counts.
        assert_eq!(records.get(&id), Some(&want), "records of {id}");
        records.remove(&id);
    }
    assert!(
        records.is_empty(),
        "records outside the announced transactions: {records:?}"
    );
    assert!(
        events.iter().all(|(_, e)| e["xid"] != silent),
        "a transaction without captured changes has no events"
    );
    // Operators see them counted.
    assert_eq!(
        scrape(
            &metrics_addr,
            "cdc_transaction_events_total{status=\"END\"}"
        ),
        expected.len() as f64
    );
    s.finish(reader).await;
}
