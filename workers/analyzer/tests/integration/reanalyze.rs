//! `analyzer reanalyze` on 200,000 rows: killed mid-way, resumed, every row ends with the
//! engine's analysis and its event; rows an older engine analyzed are analyzed again, rows
//! already current (or from a newer engine) are not touched.

use std::process::{Command, Stdio};
use std::time::Duration;

use shared::testkit::private::KillOnDrop;
use shared::testkit::{read_keys, unique_name, wait_for, TestEnv};
use uuid::Uuid;

const ROWS: i64 = 200_000;
const CURRENT: i64 = 1_000;
const OLDER: i64 = 500;

fn reanalyze(env: &TestEnv, url: &str, topic: &str, log: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_analyzer"));
    command
        .args(["--log-format", "json", "reanalyze", "--chunk-size", "5000"])
        .args(["--database-url", url, "--kafka-brokers", &env.kafka_brokers])
        .args(["--results-topic", topic])
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BROKERS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    command
}

#[tokio::test]
async fn reanalyze_walks_two_hundred_thousand_rows_resumes_after_a_kill_and_publishes_every_result()
{
    let env = TestEnv::get();
    let db = env.database("reanalyze").await;
    let prefix = unique_name("t");
    shared::kafka::ensure_topics(&env.kafka(&prefix), &crate::test_topics(&prefix))
        .await
        .unwrap();
    let topic = crate::results_topic(&prefix);
    // Rows as an application leaves them (no analysis yet), and some that already hold this
    // engine's version (a stand-in document that must survive untouched).
    sqlx::query(
        "INSERT INTO saju_profiles (name, gender, birth_date)
         SELECT 'r' || g, CASE WHEN g % 2 = 0 THEN 'M' ELSE 'F' END,
                timestamptz '1901-01-01 00:00+09' + (g * 7919 % 72000) * interval '1 day'
                                                  + (g % 1440) * interval '1 minute'
         FROM generate_series(1, $1) g",
    )
    .bind(ROWS)
    .execute(&db.pool)
    .await
    .unwrap();
    // Half of them hold a newer engine's version: never downgraded.
    sqlx::query(
        "UPDATE saju_profiles SET analysis_status = 'done',
                analysis_version = $2 + (row_number % 2)::int,
                analysis_result = '{\"stand_in\": true}'
         FROM (SELECT id, row_number() OVER (ORDER BY id) FROM saju_profiles ORDER BY id LIMIT $1) s
         WHERE saju_profiles.id = s.id",
    )
    .bind(CURRENT)
    .bind(saju::json::VERSION as i32)
    .execute(&db.pool)
    .await
    .unwrap();
    // Rows an older engine analyzed are analyzed again.
    sqlx::query(
        "UPDATE saju_profiles SET analysis_status = 'done', analysis_version = $2 - 1,
                analysis_result = '{\"older\": true}'
         WHERE id IN (SELECT id FROM saju_profiles ORDER BY id DESC LIMIT $1)",
    )
    .bind(OLDER)
    .bind(saju::json::VERSION as i32)
    .execute(&db.pool)
    .await
    .unwrap();

    let started = std::time::Instant::now();
    // Killed once a quarter is done.
    let dir = std::env::temp_dir();
    let first_log = dir.join(format!("{}.log", unique_name("reanalyze")));
    let mut first = KillOnDrop(
        reanalyze(&env, &db.url, &topic, &first_log)
            .spawn()
            .expect("spawn analyzer reanalyze"),
    );
    let pool = db.pool.clone();
    wait_for("a quarter re-analyzed", Duration::from_secs(300), || {
        let pool = pool.clone();
        async move {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT rows_done FROM reanalyze_progress WHERE job = $1")
                    .bind(format!("v{}", saju::json::VERSION))
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
            done.filter(|&d| d >= ROWS / 4).map(|_| ())
        }
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let (done_before, last): (i64, Option<Uuid>) = sqlx::query_as(
        "SELECT rows_done, last_id FROM reanalyze_progress WHERE job = $1 AND finished_at IS NULL",
    )
    .bind(format!("v{}", saju::json::VERSION))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        last.is_some() && done_before < ROWS - CURRENT,
        "{done_before}"
    );
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM saju_profiles WHERE analysis_status = 'pending'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(pending > 0, "the kill came too late to test the resume");

    // The second run resumes after the last key done and finishes.
    let second_log = dir.join(format!("{}.log", unique_name("reanalyze")));
    let mut second = reanalyze(&env, &db.url, &topic, &second_log)
        .spawn()
        .expect("run analyzer reanalyze");
    // Its peak resident memory while it walks the rest of the table: bounded by the two
    // chunks in flight (5,000 rows of ≈ 4 kB documents each, written, published and
    // queued in the producer), not by the table, whose documents alone come to ≈ 800 MB.
    //
    // Its connections are cut on the way (as by a server restart or a failover), each time it
    // has done another chunk, until a statement they were running is sent again: the job goes on.
    let mut peak_kib = 0u64;
    let mut cuts = 0;
    let mut cut_at = done_before;
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        peak_kib = peak_kib.max(peak_rss_kib(second.id()));
        let done: i64 =
            sqlx::query_scalar("SELECT rows_done FROM reanalyze_progress WHERE job = $1")
                .bind(format!("v{}", saju::json::VERSION))
                .fetch_one(&db.pool)
                .await
                .unwrap();
        let retried = || {
            std::fs::read_to_string(&second_log)
                .unwrap_or_default()
                .contains("failed; retrying")
        };
        if cuts < 20 && done > cut_at && !retried() {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'analyzer-reanalyze' AND datname = current_database()",
            )
            .execute(&db.pool)
            .await
            .unwrap();
            cuts += 1;
            cut_at = done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&second_log).unwrap();
    assert!(
        status.success(),
        "reanalyze failed ({status}):\n{}",
        log_tail(&log)
    );
    assert!(
        log.contains("failed; retrying"),
        "no statement was retried after the run's connections were cut {cuts} times:\n{}",
        log_tail(&log)
    );
    eprintln!("connections cut {cuts} times before a statement was retried");
    eprintln!("peak RSS of the resumed run: {} MiB", peak_kib / 1024);
    assert!(
        peak_kib < 400 * 1024,
        "reanalyze held {peak_kib} KiB at its peak"
    );
    assert!(
        log.contains(&format!("Some({})", last.unwrap())),
        "the second run did not resume after {last:?}:\n{}",
        log_tail(&log)
    );
    assert!(
        log.contains("rows/s"),
        "no progress shown:\n{}",
        log_tail(&log)
    );
    eprintln!(
        "re-analysis done ({:.0?}); its last progress line: {}",
        started.elapsed(),
        log.lines()
            .rev()
            .find(|l| l.contains("rows/s"))
            .unwrap_or_default()
    );

    let (done, stand_ins, older): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE analysis_status = 'done' AND analysis_version = $1
                                   AND analysis_result ? 'twelve_stages'),
                count(*) FILTER (WHERE analysis_result = '{\"stand_in\": true}'),
                count(*) FILTER (WHERE analysis_result ? 'older')
         FROM saju_profiles",
    )
    .bind(saju::json::VERSION as i32)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(done, ROWS - CURRENT);
    assert_eq!(
        stand_ins, CURRENT,
        "rows already current (or newer) were rewritten"
    );
    assert_eq!(older, 0, "rows of an older engine were left as they were");
    // Every re-analyzed row as the chart command computes it.
    sqlx::query(
        "UPDATE saju_profiles SET analysis_status = 'pending' WHERE analysis_result ? 'stand_in'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let sampled = crate::pipeline::assert_sample_matches_chart_command(&db, 20).await as i64;
    assert!(
        sampled > (ROWS - CURRENT) / 30,
        "only {sampled} rows compared"
    );
    eprintln!(
        "{sampled} re-analyzed rows equal `analyzer chart` ({:.0?})",
        started.elapsed()
    );
    // Every re-analyzed row has its result event.
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM saju_profiles WHERE analysis_status = 'done' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let keys = read_keys(
        &env.kafka_brokers,
        &[&topic],
        Duration::from_secs(180),
        ids.len(),
    )
    .await;
    let missing = ids
        .iter()
        .filter(|id| !keys.contains(&id.to_string()))
        .count();
    assert_eq!(
        missing, 0,
        "{missing} re-analyzed rows have no result event"
    );
    eprintln!(
        "every re-analyzed row has its event ({:.0?})",
        started.elapsed()
    );

    // A third run finds nothing to do.
    let third_log = dir.join(format!("{}.log", unique_name("reanalyze")));
    let status = reanalyze(&env, &db.url, &topic, &third_log)
        .status()
        .unwrap();
    let log = std::fs::read_to_string(&third_log).unwrap();
    assert!(
        status.success(),
        "reanalyze failed ({status}):\n{}",
        log_tail(&log)
    );
    assert!(log.contains("\"rows\":0"), "{}", log_tail(&log));
    for path in [first_log, second_log, third_log] {
        let _ = std::fs::remove_file(path);
    }
}

/// The last lines of a run's log, without the slow-statement warnings (each repeats a whole
/// write-back statement) that would bury the error.
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("slow statement"))
        .collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `VmHWM` (peak resident set) of a running process, in KiB (0 once it is gone).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
