//! Incremental snapshots: a table added to `--tables` on an existing slot gets its existing
//! rows while streaming goes on and the table keeps changing, resumes after a kill -9, and the
//! newest record of every key in the topic equals the row (or deletes it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shared::envelope::Op;
use shared::testkit::wait_for;
use tokio_util::sync::CancellationToken;

use crate::support::*;

const ROWS: i64 = 200_000;

/// What a record says of a row: its op and `v` (None for a tombstone).
type Seen = (Op, Option<i64>);

/// Small transactions updating, deleting and inserting rows of `big` all over its key range,
/// until stopped. Returns how many committed.
fn churn(url: String) -> (CancellationToken, tokio::task::JoinHandle<u64>) {
    let stop = CancellationToken::new();
    let flag = stop.clone();
    let handle = tokio::spawn(async move {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let (mut committed, mut i) = (0u64, 0i64);
        while !flag.is_cancelled() {
            i += 1;
            // Spread over the whole range, so that some land in the chunk being read.
            let at = (i * 7_919) % ROWS + 1;
            let sql = format!(
                "BEGIN; \
                 UPDATE big SET v = v + 1, note = 'u{i}' WHERE id BETWEEN {at} AND {at} + 20; \
                 DELETE FROM big WHERE id = {gone}; \
                 INSERT INTO big VALUES ({new}, 0, 'n{i}'); \
                 COMMIT;",
                gone = (at * 13) % ROWS + 1,
                new = ROWS + i,
            );
            if sqlx::raw_sql(&sql).execute(&pool).await.is_ok() {
                committed += 1;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        committed
    });
    (stop, handle)
}

async fn request_state(pool: &sqlx::PgPool, slot: &str) -> Option<(i64, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT rows_sent, finished_at IS NOT NULL, error FROM cdc_signals \
         WHERE slot = $1 AND table_name = 'public.big'",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_added_to_a_running_slot_is_snapshotted_while_it_changes_and_resumes_after_a_kill()
{
    let s = Scenario::new("cdc_incr").await;
    sqlx::raw_sql(&format!(
        "CREATE TABLE acct (id int PRIMARY KEY, v int); \
         CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, note text); \
         INSERT INTO big SELECT g, 0, 'row ' || g FROM generate_series(1, {ROWS}) g;"
    ))
    .execute(&s.pool)
    .await
    .unwrap();
    // The slot starts with acct only.
    let first = s.reader(&["--tables", "public.acct"]).await;
    sqlx::raw_sql("INSERT INTO acct VALUES (1, 1)")
        .execute(&s.pool)
        .await
        .unwrap();
    first.stop().await;
    assert_eq!(request_state(&s.pool, &s.slot).await, None);

    // big joins the capture set on the same slot, while it keeps changing.
    let (stop, churned) = churn(s.db.url.clone());
    let log = std::env::temp_dir().join(format!("{}.log", s.slot));
    let log = log.to_str().unwrap();
    let extra = [
        "--tables",
        "public.acct,public.big",
        "--incremental-chunk-rows",
        "4000",
    ];
    let started = Instant::now();
    let mut reader = Spawned::start(
        &s.db.url,
        &s.env.kafka_brokers,
        &s.slot,
        &s.prefix,
        &extra,
        log,
    );
    // Killed once some progress was recorded: it resumes from there.
    let recorded = wait_for("recorded progress", Duration::from_secs(120), || async {
        request_state(&s.pool, &s.slot)
            .await
            .filter(|(rows, _, _)| *rows >= 40_000)
            .map(|(rows, _, _)| rows)
    })
    .await;
    reader.kill9();
    eprintln!("killed after {recorded} rows recorded");
    let mut reader = Spawned::start(
        &s.db.url,
        &s.env.kafka_brokers,
        &s.slot,
        &s.prefix,
        &extra,
        log,
    );
    let (sent, error) = wait_for(
        "the snapshot to finish",
        Duration::from_secs(300),
        || async {
            request_state(&s.pool, &s.slot)
                .await
                .filter(|(_, finished, _)| *finished)
                .map(|(rows, _, error)| (rows, error))
        },
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(error, None);
    eprintln!(
        "incremental snapshot: {sent} rows in {seconds:.1}s with a kill -9 ({:.0} rows/s)",
        sent as f64 / seconds
    );
    stop.cancel();
    let churned = churned.await.unwrap();
    assert!(
        churned > 50,
        "the table hardly changed: {churned} transactions"
    );
    let end = current_wal_lsn(&s.pool).await;
    wait_confirmed(
        &s.pool,
        &s.slot,
        "the reader to confirm every change",
        Duration::from_secs(120),
        |l| l >= end,
    )
    .await;
    assert!(reader.terminate().success());

    // The newest record of every key equals the row, or deletes it.
    let mut read =
        TopicReader::new(&s.env.kafka_brokers, &[format!("{}.public.big", s.prefix)]).await;
    read.read_to_end(Duration::from_secs(180)).await;
    let mut newest: HashMap<i64, (i64, Option<Seen>)> = HashMap::new();
    let mut reads = 0u64;
    for r in &read.records {
        let key: serde_json::Value = serde_json::from_str(r.key.as_deref().unwrap()).unwrap();
        let id = key["id"].as_i64().unwrap();
        let state = r.event.as_ref().map(|e| {
            if e.op == Op::Read {
                reads += 1;
            }
            (e.op, e.after.as_ref().and_then(|a| a["v"].as_i64()))
        });
        let entry = newest.entry(id).or_insert((-1, None));
        if r.offset > entry.0 {
            *entry = (r.offset, state);
        }
    }
    let rows: Vec<(i64, i32)> = sqlx::query_as("SELECT id, v FROM big")
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert!(reads >= sent as u64, "{reads} op=r records, {sent} sent");
    let mut wrong = Vec::new();
    for (id, v) in &rows {
        match newest.remove(id) {
            Some((_, Some((op, Some(seen))))) if op != Op::Delete && seen == i64::from(*v) => {}
            other => wrong.push(format!("{id}: row v={v}, topic {other:?}")),
        }
    }
    for (id, (_, state)) in newest {
        if !matches!(state, None | Some((Op::Delete, _))) {
            wrong.push(format!("{id}: deleted, topic {state:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} keys wrong (of {} rows), e.g. {:?}",
        wrong.len(),
        rows.len(),
        &wrong[..wrong.len().min(10)]
    );
    // Asked again by the command line: the same table once more, while streaming.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cdc-reader"))
        .env_clear()
        .args(["--database-url", &s.db.url, "--slot", &s.slot])
        .args([
            "--tables",
            "public.acct,public.big",
            "snapshot",
            "public.big",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_cdc-reader"))
        .env_clear()
        .args(["--database-url", &s.db.url, "--slot", &s.slot])
        .args(["--tables", "public.acct", "snapshot", "public.big"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not captured"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cdc_signals WHERE slot = $1 AND finished_at IS NULL",
    )
    .bind(&s.slot)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(pending, 1);
    drop_slot(&s.pool, &s.slot).await;
    s.db.drop_database().await;
}
