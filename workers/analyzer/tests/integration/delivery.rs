//! What downstream consumers and the application see when things go wrong: a crash between
//! the database commit and the broker's acknowledgement, a broker outage longer than the
//! publish timeout, a broker that comes back empty, a database outage, and application bulk
//! updates of the rows being written back. Every test reads the result and dead-letter topics
//! back with a consumer, not only the table.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use shared::testkit::private::{PrivateBroker, PrivateCluster};
use shared::testkit::{read_events_by_id, unique_name, wait_for, TestEnv};
use uuid::Uuid;

use crate::pipeline::{births, free_port, metric, Stack};

/// 1840-01-01: outside the engine's range, so analyzed as an error with a dead letter.
const TOO_OLD: i64 = -4_102_444_800;

/// Reads the CDC topic's dead letters until every id in `ids` has one.
async fn dead_letters(stack: &Stack, ids: &[Uuid]) -> HashMap<String, Vec<Value>> {
    let wanted: HashSet<String> = ids.iter().map(Uuid::to_string).collect();
    let topic = format!(
        "{}.dlq",
        stack
            .env
            .kafka(&stack.prefix)
            .cdc_topic("public", "saju_profiles")
    );
    read_events_by_id(
        &stack.env.kafka_brokers,
        &[&topic],
        Duration::from_secs(120),
        |seen| wanted.iter().all(|id| seen.contains_key(id)),
    )
    .await
}

/// Every id has an event whose status is the row's, and the newest event of each id carries
/// the inputs the row holds now (events of a row reach the topic in the order its writes
/// committed).
pub async fn assert_every_row_has_its_event(stack: &Stack, ids: &[Uuid]) {
    let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, analysis_status, analysis_input FROM saju_profiles WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), ids.len());
    let expected: HashMap<String, (String, Option<String>)> = rows
        .into_iter()
        .map(|(id, status, fingerprint)| (id.to_string(), (status, fingerprint)))
        .collect();
    let matches = |events: &[Value], (status, fingerprint): &(String, Option<String>)| {
        events.last().is_some_and(|newest| {
            newest["status"] == status.as_str()
                && newest["input"]["fingerprint"].as_str() == fingerprint.as_deref()
        })
    };
    let topic = stack.results_topic();
    let events = read_events_by_id(
        &stack.env.kafka_brokers,
        &[&topic],
        Duration::from_secs(120),
        |seen| {
            expected
                .iter()
                .all(|(id, want)| seen.get(id).is_some_and(|e| matches(e, want)))
        },
    )
    .await;
    let missing: Vec<&String> = expected
        .keys()
        .filter(|id| !events.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} analyzed profiles have no event on {topic}: {:?}…",
        missing.len(),
        ids.len(),
        &missing[..missing.len().min(5)]
    );
    for (id, want) in &expected {
        assert!(
            matches(&events[id], want),
            "the newest event of {id} is not about the row as it is ({want:?}): {:?}",
            events[id].last()
        );
    }
}

/// Waits for `child` to exit, without blocking the runtime (the test's CDC reader runs on it).
async fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the process did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(stack: &Stack, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&stack.db.pool)
        .await
        .unwrap()
}

/// Starts an analyzer that aborts (as SIGKILL would end it) right after its first batch with
/// events to publish was written, before any of them reached the broker; waits for it to die.
async fn crash_after_a_write(stack: &Stack, group: &str) {
    let mut crashing = stack.analyzer_process_with(
        group,
        free_port(),
        &[],
        &[("PIPELINE_FAULT", "abort-after-write")],
    );
    let status = wait_exit(&mut crashing, Duration::from_secs(120)).await;
    assert!(!status.success(), "the fault point aborts the process");
}

#[tokio::test]
async fn a_crash_between_the_write_and_the_acknowledgement_loses_no_event_or_dead_letter() {
    let stack = Stack::start("fault").await;
    let group = unique_name("analyzers");

    // First only rows that end in error: the batch written before the crash holds their
    // dead letters (and error events), none of which reached the broker.
    let bad = stack.insert(&[(TOO_OLD, "F"); 20]).await;
    crash_after_a_write(&stack, &group).await;
    let written = count(
        &stack,
        "SELECT count(*) FROM saju_profiles WHERE analysis_status = 'error'",
    )
    .await;
    assert!(
        written > 0,
        "the crash came after the rejections were written"
    );

    // Then rows that analyze: the crash comes after a batch of results was written.
    let mut ids = stack.insert(&births(7, 1_500)).await;
    crash_after_a_write(&stack, &group).await;
    let written = count(
        &stack,
        "SELECT count(*) FROM saju_profiles WHERE analysis_status = 'done'",
    )
    .await;
    assert!(written > 0, "the crash came after results were written");
    ids.extend(&bad);

    // The replacement finds those rows already written and publishes their events and dead
    // letters anyway.
    let port = free_port();
    let mut analyzer = stack.analyzer_process(&group, port);
    stack.wait_all_analyzed(Duration::from_secs(120)).await;
    assert_every_row_has_its_event(&stack, &ids).await;
    let letters = dead_letters(&stack, &bad).await;
    for id in &bad {
        let letter = &letters[&id.to_string()][0];
        assert_eq!(letter["error"]["reason"], "out_of_range");
        assert_eq!(letter["profile_id"], id.to_string());
    }
    analyzer.kill().unwrap();
    analyzer.wait().unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn application_bulk_updates_never_fail_while_the_write_back_runs_on_the_same_rows() {
    let stack = Stack::start("contention").await;
    let port = free_port();
    let mut analyzer = stack.analyzer_process(&unique_name("analyzers"), port);
    let ids = stack.insert(&births(8, 3_000)).await;
    stack.wait_all_analyzed(Duration::from_secs(120)).await;

    // Each round rewrites every row in one statement while the analyzer writes back the
    // results of the previous round: both lock the same rows, in their own orders.
    for round in 0..10 {
        let order = if round % 2 == 0 { "ASC" } else { "DESC" };
        sqlx::query(&format!(
            "UPDATE saju_profiles p SET birth_date = p.birth_date + interval '1 minute' \
             FROM (SELECT id FROM saju_profiles WHERE id = ANY($1) ORDER BY id {order}) o WHERE p.id = o.id"
        ))
        .bind(&ids)
        .execute(&stack.db.pool)
        .await
        .unwrap_or_else(|e| panic!("the application's update failed in round {round}: {e}"));
    }
    let pool = stack.db.pool.clone();
    wait_for(
        "every row analyzed for its latest inputs",
        Duration::from_secs(180),
        || {
            let pool = pool.clone();
            async move {
                // By the recorded input fingerprint (it starts with the birth instant in
                // microseconds), not by timestamps: a write-back of the previous round's
                // result can commit just before the application's update it raced with,
                // and so look newer than it until that update's event is analyzed.
                let behind: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM saju_profiles WHERE analysis_input IS NULL \
                     OR split_part(analysis_input, '|', 1) \
                        <> (extract(epoch FROM birth_date) * 1000000)::bigint::text",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (behind == 0).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        crate::pipeline::assert_rows_match_chart_command(&stack.db).await,
        3_000
    );
    assert_every_row_has_its_event(&stack, &ids).await;
    let deferred = metric(port, "analyzer_rows_deferred_total").await;
    eprintln!("rows deferred because the application held them: {deferred:?}");
    analyzer.kill().unwrap();
    analyzer.wait().unwrap();
    stack.stop().await;
}

/// A stack whose reader and analyzers use a broker of their own.
async fn stack_on(broker: &PrivateBroker, label: &str) -> Stack {
    let env = TestEnv {
        kafka_brokers: broker.brokers(),
        ..TestEnv::get()
    };
    Stack::start_with(env, label).await
}

#[tokio::test]
async fn a_broker_outage_longer_than_the_publish_timeout_loses_no_event() {
    let broker = PrivateBroker::start();
    let stack = stack_on(&broker, "outage").await;
    let port = free_port();
    let mut analyzer = stack.analyzer_process_with(
        &unique_name("analyzers"),
        port,
        &["--publish-timeout", "2s", "--batch-size", "100"],
        &[],
    );
    let mut ids = stack.insert(&births(9, 200)).await;
    stack.wait_all_analyzed(Duration::from_secs(120)).await;

    // A backlog whose rows the application holds: the analyzer receives it and defers it.
    // The broker freezes, the application lets go, and the analyzer writes the backlog and
    // publishes into the frozen broker for four times the publish timeout.
    let backlog = stack.insert(&births(10, 2_000)).await;
    ids.extend(&backlog);
    let mut app = stack.db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM saju_profiles WHERE id = ANY($1) FOR UPDATE")
        .bind(&backlog)
        .execute(&mut *app)
        .await
        .unwrap();
    wait_for(
        "the analyzer to defer held rows",
        Duration::from_secs(60),
        || async {
            let deferred = metric(port, "analyzer_rows_deferred_total").await;
            deferred.filter(|d| *d > 0.0)
        },
    )
    .await;
    broker.pause();
    let paused = tokio::time::Instant::now();
    app.commit().await.unwrap();
    // Operators see it: /readyz fails while the broker does not answer.
    wait_for(
        "/readyz to fail while the broker is frozen",
        Duration::from_secs(30),
        || async { (!readyz_ok(port).await).then_some(()) },
    )
    .await;
    tokio::time::sleep_until(paused + Duration::from_secs(8)).await;
    broker.resume();

    stack.wait_all_analyzed(Duration::from_secs(180)).await;
    assert_every_row_has_its_event(&stack, &ids).await;
    wait_for(
        "/readyz to answer 200 once the broker is back",
        Duration::from_secs(30),
        || async { readyz_ok(port).await.then_some(()) },
    )
    .await;
    let resets = metric(port, "analyzer_producer_resets_total").await;
    assert!(
        resets.unwrap_or(0.0) >= 1.0,
        "publishes timed out during the outage and the producer was recreated: {resets:?}"
    );
    analyzer.kill().unwrap();
    analyzer.wait().unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn a_broker_that_comes_back_empty_does_not_wedge_the_analyzer() {
    let mut broker = PrivateBroker::start();
    let mut stack = stack_on(&broker, "empty").await;
    let port = free_port();
    let group = unique_name("analyzers");
    let mut analyzer = stack.analyzer_process_with(&group, port, &["--publish-timeout", "3s"], &[]);
    stack.insert(&births(11, 300)).await;
    stack.wait_all_analyzed(Duration::from_secs(120)).await;

    // The in-memory broker restarts empty: topics, offsets and producer state are gone, and
    // the topics are recreated.
    broker.stop();
    broker.relaunch();
    stack.recreate_topics_and_restart_reader().await;
    // This broker (Tansu 0.6) may tag a Fetch v12 response with a partition leader change
    // after its restart, on which librdkafka 2.12 dereferences a null topic name and the
    // process dies (SIGSEGV in rd_kafka_metadata_update_op; confluentinc/librdkafka#5280).
    // Kafka and Redpanda never send that tag at v12. A worker that dies is restarted by its
    // supervisor (scripts/up, compose `restart:`), as here; it must then go on by itself.
    let after = stack.insert(&births(12, 300)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = analyzer.try_wait().unwrap() {
            eprintln!("the analyzer died when the broker came back ({status}); restarting it");
            analyzer = stack.analyzer_process_with(&group, port, &["--publish-timeout", "3s"], &[]);
        }
        let pending = count(
            &stack,
            "SELECT count(*) FROM saju_profiles WHERE analysis_status = 'pending'",
        )
        .await;
        if pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} profiles still pending after the broker came back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_every_row_has_its_event(&stack, &after).await;
    let ready = readyz_ok(port).await;
    assert!(ready, "/readyz answers 200 once the broker is back");
    analyzer.kill().unwrap();
    analyzer.wait().unwrap();
    stack.stop().await;
}

/// Whether `/readyz` answers 200.
async fn readyz_ok(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream
        .write_all(b"GET /readyz HTTP/1.0\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn a_database_outage_costs_a_pause_not_the_group_membership_nor_an_event() {
    let cluster = PrivateCluster::start();
    let env = TestEnv {
        database_url: cluster.url("postgres"),
        ..TestEnv::get()
    };
    let stack = Stack::start_with(env, "dbdown").await;
    let port = free_port();
    let mut analyzer = stack.analyzer_process(&unique_name("analyzers"), port);
    let mut ids = stack.insert(&births(13, 200)).await;
    stack.wait_all_analyzed(Duration::from_secs(120)).await;

    ids.extend(stack.insert(&births(14, 3_000)).await);
    wait_for(
        "the analyzer to be writing",
        Duration::from_secs(60),
        || async {
            let done = count(
                &stack,
                "SELECT count(*) FROM saju_profiles WHERE analysis_status <> 'pending'",
            )
            .await;
            (done > 200).then_some(())
        },
    )
    .await;
    // Down for 40 s: more than five times the group's poll interval in these tests (7 s).
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        !readyz_ok(port).await,
        "/readyz must report the database down"
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    cluster.start_again();

    stack.wait_all_analyzed(Duration::from_secs(180)).await;
    assert_every_row_has_its_event(&stack, &ids).await;
    assert_eq!(
        metric(port, "analyzer_rebalances_total{kind=\"revoke\"}").await,
        Some(0.0),
        "the analyzer was evicted from its group during the outage"
    );
    wait_for("/readyz to recover", Duration::from_secs(30), || async {
        readyz_ok(port).await.then_some(())
    })
    .await;
    analyzer.kill().unwrap();
    analyzer.wait().unwrap();
    stack.stop().await;
    drop(cluster);
}

#[tokio::test]
async fn rows_the_analyzer_cannot_process_never_stay_pending() {
    // The reader refuses change events above 100 kB (dead-lettered as too_large).
    let stack = Stack::start_full(
        TestEnv::get(),
        "unprocessable",
        &["--kafka-property", "message.max.bytes=100000"],
    )
    .await;
    let port = free_port();
    let mut analyzer = stack.analyzer_process(&unique_name("analyzers"), port);
    let insert = |birth: &'static str, name: String| {
        let pool = stack.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, Uuid>(
                "INSERT INTO saju_profiles (name, gender, birth_date) VALUES ($1, 'F', $2::timestamptz) RETURNING id",
            )
            .bind(name)
            .bind(birth)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let bc = insert("0001-01-01 00:00:00+00 BC", "bc".into()).await;
    let infinite = insert("infinity", "inf".into()).await;
    // Its inputs are fine, but its change event is too large for the broker.
    let huge = insert("1990-05-15 14:30:00+09", "가".repeat(60_000)).await;
    stack.wait_all_analyzed(Duration::from_secs(120)).await;

    let row = |id: Uuid| {
        let pool = stack.db.pool.clone();
        async move {
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT analysis_status, analysis_error FROM saju_profiles WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (status, error) = row(bc).await;
    assert_eq!(status, "error");
    assert!(error.unwrap().contains("before the common era"));
    let (status, error) = row(infinite).await;
    assert_eq!(status, "error");
    assert!(error.unwrap().contains("not an instant"));
    assert_eq!(row(huge).await.0, "done", "analyzed from the table");

    let letters = dead_letters(&stack, &[bc, infinite]).await;
    for id in [bc, infinite] {
        let letter = &letters[&id.to_string()][0];
        assert_eq!(letter["error"]["kind"], "decode");
        assert_eq!(letter["profile_id"], id.to_string());
    }
    let topic = stack.results_topic();
    let events = read_events_by_id(
        &stack.env.kafka_brokers,
        &[&topic],
        Duration::from_secs(120),
        |seen| {
            [bc, infinite, huge]
                .iter()
                .all(|id| seen.contains_key(&id.to_string()))
        },
    )
    .await;
    assert_eq!(events[&bc.to_string()].last().unwrap()["status"], "error");
    assert_eq!(events[&huge.to_string()].last().unwrap()["status"], "done");

    // A delete's tombstone is counted, not dead-lettered.
    sqlx::query("DELETE FROM saju_profiles WHERE id = $1")
        .bind(infinite)
        .execute(&stack.db.pool)
        .await
        .unwrap();
    wait_for(
        "the tombstone to be skipped",
        Duration::from_secs(60),
        || async {
            metric(port, "analyzer_skipped_total{reason=\"tombstone\"}")
                .await
                .filter(|n| *n >= 1.0)
        },
    )
    .await;
    assert_eq!(
        metric(port, "analyzer_dead_letters_total{kind=\"decode\"}").await,
        Some(2.0),
        "only the two unreadable rows were dead-lettered"
    );
    analyzer.kill().unwrap();
    analyzer.wait().unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn sigterm_ends_the_analyzer_within_its_shutdown_timeout_while_the_broker_is_frozen() {
    let broker = PrivateBroker::start();
    let stack = stack_on(&broker, "sigterm").await;
    let mut analyzer = stack.analyzer_process_with(
        &unique_name("analyzers"),
        free_port(),
        &["--shutdown-timeout", "3s", "--batch-size", "100"],
        &[],
    );
    stack.insert(&births(15, 100)).await;
    stack.wait_all_analyzed(Duration::from_secs(120)).await;
    // Work in hand, and a broker that answers nothing: publishes and commits hang.
    stack.insert(&births(16, 2_000)).await;
    wait_for("the backlog to start", Duration::from_secs(60), || async {
        let done = count(
            &stack,
            "SELECT count(*) FROM saju_profiles WHERE analysis_status <> 'pending'",
        )
        .await;
        (done > 150).then_some(())
    })
    .await;
    broker.pause();
    let started = std::time::Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &analyzer.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    // --shutdown-timeout, then at most the 15 s exit grace.
    let status = wait_exit(&mut analyzer, Duration::from_secs(3 + 15 + 5)).await;
    eprintln!("exited {status} after {:?}", started.elapsed());
    broker.resume();
    stack.stop().await;
}
