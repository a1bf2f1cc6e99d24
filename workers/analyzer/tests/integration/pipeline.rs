//! The whole pipeline for profiles: application INSERT/UPDATE → PostgreSQL → cdc-reader →
//! broker → analyzer → PostgreSQL, with the real reader, crashes and a second instance.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use shared::shutdown::Shutdown;
use shared::testkit::{unique_name, wait_for, TestDatabase, TestEnv};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// A database, topics and a running CDC reader, private to one test.
pub struct Stack {
    pub env: TestEnv,
    pub db: TestDatabase,
    pub prefix: String,
    slot: String,
    reader_flags: Vec<String>,
    reader_shutdown: Shutdown,
    reader: JoinHandle<Result<(), cdc_reader::Error>>,
}

impl Stack {
    pub async fn start(label: &str) -> Self {
        Self::start_with(TestEnv::get(), label).await
    }

    /// A stack on the services `env` names (a private cluster or broker).
    pub async fn start_with(env: TestEnv, label: &str) -> Self {
        Self::start_full(env, label, &[]).await
    }

    /// A stack whose reader gets extra flags.
    pub async fn start_full(env: TestEnv, label: &str, reader_flags: &[&str]) -> Self {
        let db = env.database(label).await;
        let prefix = unique_name("t");
        let slot = unique_name("slot");
        let reader_flags: Vec<String> = reader_flags.iter().map(|f| (*f).to_owned()).collect();
        Self::create_topics(&env, &prefix).await;
        let (reader_shutdown, reader) =
            Self::spawn_reader(&env, &db, &prefix, &slot, &reader_flags);
        let mut stack = Self {
            env,
            db,
            prefix,
            slot,
            reader_flags,
            reader_shutdown,
            reader,
        };
        stack.wait_reader_streaming().await;
        stack
    }

    /// Waits until the reader streams its slot; fails with the reader's error if it stopped.
    async fn wait_reader_streaming(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if self.reader.is_finished() {
                let result = (&mut self.reader).await;
                panic!("the CDC reader stopped: {result:?}");
            }
            let active: Option<bool> =
                sqlx::query_scalar("SELECT active FROM pg_replication_slots WHERE slot_name = $1")
                    .bind(&self.slot)
                    .fetch_optional(&self.db.pool)
                    .await
                    .unwrap();
            if active == Some(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the CDC reader did not start streaming"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_topics(env: &TestEnv, prefix: &str) {
        shared::kafka::ensure_topics(&env.kafka(prefix), &crate::test_topics(prefix))
            .await
            .unwrap();
    }

    fn spawn_reader(
        env: &TestEnv,
        db: &TestDatabase,
        prefix: &str,
        slot: &str,
        extra: &[String],
    ) -> (Shutdown, JoinHandle<Result<(), cdc_reader::Error>>) {
        let base = [
            "cdc-reader",
            "--database-url",
            &db.url,
            "--kafka-brokers",
            &env.kafka_brokers,
            "--topic-prefix",
            prefix,
            "--slot",
            slot,
            "--metrics-addr",
            "127.0.0.1:0",
            "--status-interval",
            "1s",
        ];
        let cli = cdc_reader::Cli::try_parse_from(
            base.into_iter()
                .map(str::to_owned)
                .chain(extra.iter().cloned()),
        )
        .expect("valid reader flags");
        let shutdown = Shutdown::new();
        let reader = tokio::spawn(cdc_reader::run(cli.config, shutdown.clone()));
        (shutdown, reader)
    }

    /// After the broker came back empty: the topics again, and a fresh reader on the same slot
    /// (it resends from its confirmed position).
    pub async fn recreate_topics_and_restart_reader(&mut self) {
        Self::create_topics(&self.env, &self.prefix).await;
        self.reader_shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.reader).await;
        let (shutdown, reader) = Self::spawn_reader(
            &self.env,
            &self.db,
            &self.prefix,
            &self.slot,
            &self.reader_flags,
        );
        self.reader_shutdown = shutdown;
        self.reader = reader;
        self.wait_reader_streaming().await;
    }

    /// The result topic of this stack's analyzers.
    pub fn results_topic(&self) -> String {
        crate::results_topic(&self.prefix)
    }

    /// Flags of an analyzer for this stack.
    pub fn analyzer_args(&self, group: &str) -> Vec<String> {
        crate::analyzer_args(&self.env, &self.db.url, &self.prefix, group)
    }

    /// An analyzer in this process.
    pub fn analyzer_task(&self, shutdown: &Shutdown) -> JoinHandle<anyhow::Result<()>> {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: analyzer::Config,
        }
        let mut args = vec!["analyzer".to_owned()];
        args.extend(self.analyzer_args(&unique_name("analyzer")));
        args.extend(["--metrics-addr".to_owned(), "127.0.0.1:0".to_owned()]);
        let config = Cli::try_parse_from(args)
            .expect("valid analyzer flags")
            .config;
        tokio::spawn(analyzer::run(config, shutdown.clone()))
    }

    /// An analyzer as its own process (so it can be killed with SIGKILL).
    pub fn analyzer_process(&self, group: &str, metrics_port: u16) -> KillOnDrop {
        self.analyzer_process_with(group, metrics_port, &[], &[])
    }

    /// [`Stack::analyzer_process`] with extra flags and environment variables.
    pub fn analyzer_process_with(
        &self,
        group: &str,
        metrics_port: u16,
        flags: &[&str],
        vars: &[(&str, &str)],
    ) -> KillOnDrop {
        let child = Command::new(env!("CARGO_BIN_EXE_analyzer"))
            .arg("run")
            .args(self.analyzer_args(group))
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--log-format",
                "json",
            ])
            .args(flags)
            .env_remove("DATABASE_URL")
            .env_remove("KAFKA_BROKERS")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file("analyzer"))
            .spawn()
            .expect("spawn the analyzer binary");
        KillOnDrop(child)
    }

    /// Inserts profiles in one statement; returns their ids in order.
    pub async fn insert(&self, births: &[(i64, &str)]) -> Vec<Uuid> {
        let seconds: Vec<f64> = births.iter().map(|b| b.0 as f64).collect();
        let genders: Vec<String> = births.iter().map(|b| b.1.to_owned()).collect();
        sqlx::query_scalar(
            "INSERT INTO saju_profiles (name, gender, birth_date) \
             SELECT 'p' || ord, g, to_timestamp(s) FROM UNNEST($1::float8[], $2::text[]) WITH ORDINALITY AS u(s, g, ord) \
             ORDER BY ord RETURNING id",
        )
        .bind(&seconds)
        .bind(&genders)
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    /// Waits until no profile is pending.
    pub async fn wait_all_analyzed(&self, timeout: Duration) {
        let pool = self.db.pool.clone();
        wait_for("every profile to be analyzed", timeout, || {
            let pool = pool.clone();
            async move {
                let pending: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM saju_profiles WHERE analysis_status = 'pending'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (pending == 0).then_some(())
            }
        })
        .await
    }

    /// The application moves the birth dates of `ids` by `interval`; waits until every one of
    /// them was analyzed again.
    pub async fn edit_birth_dates(&self, ids: &[Uuid], interval: &str) {
        sqlx::query(
            "UPDATE saju_profiles SET birth_date = birth_date + $2::interval WHERE id = ANY($1)",
        )
        .bind(ids)
        .bind(interval)
        .execute(&self.db.pool)
        .await
        .unwrap();
        let pool = self.db.pool.clone();
        let what = format!("the {} edits to be analyzed again", ids.len());
        wait_for(&what, Duration::from_secs(60), || {
            let pool = pool.clone();
            async move {
                let stale: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM saju_profiles \
                     WHERE id = ANY($1) AND analyzed_at < updated_at - interval '1 ms'",
                )
                .bind(ids)
                .fetch_one(&pool)
                .await
                .unwrap();
                (stale == 0).then_some(())
            }
        })
        .await
    }

    pub async fn stop(self) {
        self.reader_shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.reader).await;
        self.db.drop_database().await;
    }
}

/// Deterministic pseudo-random instants 1900–2100 and genders.
pub fn births(seed: u64, n: usize) -> Vec<(i64, &'static str)> {
    (0..n as u64)
        .map(|i| {
            let mut z = (seed * 1_000_003 + i)
                .wrapping_add(0x9E37_79B9_7F4A_7C15)
                .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let start = -2_208_988_800i64 + 86_400;
            let span = 4_133_894_400i64 - start;
            (
                start + (z % span as u64) as i64,
                if z & 1 == 0 { "M" } else { "F" },
            )
        })
        .collect()
}

/// What `analyzer chart --jsonl` says for each row's inputs, compared with what the pipeline
/// stored. Returns the number of rows compared.
pub async fn assert_rows_match_chart_command(db: &TestDatabase) -> usize {
    assert_sample_matches_chart_command(db, 1).await
}

/// [`assert_rows_match_chart_command`] on one analyzed row in `every` (by a hash of the id).
pub async fn assert_sample_matches_chart_command(db: &TestDatabase, every: i32) -> usize {
    let rows: Vec<(Uuid, String, String, Value)> = sqlx::query_as(
        "SELECT id, to_char(birth_date AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), gender::text, analysis_result \
         FROM saju_profiles WHERE analysis_status = 'done' AND abs(hashtext(id::text)) % $1 = 0 ORDER BY id",
    )
    .bind(every)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_analyzer"))
        .args(["chart", "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn analyzer chart");
    let mut stdin = child.stdin.take().unwrap();
    let input: String = rows
        .iter()
        .map(|(_, birth, gender, _)| format!("{{\"birth\":\"{birth}\",\"gender\":\"{gender}\"}}\n"))
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(lines.len(), rows.len(), "one chart line per input line");
    for ((id, birth, gender, stored), line) in rows.iter().zip(lines) {
        let expected: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            stored, &expected,
            "profile {id} ({birth}, {gender}) differs from `analyzer chart`"
        );
    }
    rows.len()
}

/// `updated_at` of every row.
async fn stamps(db: &TestDatabase) -> HashMap<Uuid, chrono::DateTime<chrono::Utc>> {
    sqlx::query_as::<_, (Uuid, chrono::DateTime<chrono::Utc>)>(
        "SELECT id, updated_at FROM saju_profiles",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test]
async fn ten_thousand_profiles_then_edits_all_match_the_chart_command_and_settle() {
    let stack = Stack::start("e2e").await;
    let shutdown = Shutdown::new();
    let analyzer = stack.analyzer_task(&shutdown);

    let ids = stack.insert(&births(1, 10_000)).await;
    stack.wait_all_analyzed(Duration::from_secs(180)).await;
    assert_eq!(assert_rows_match_chart_command(&stack.db).await, 10_000);

    // 100 birth dates edited → recomputed.
    let edited: Vec<Uuid> = ids.iter().step_by(100).copied().collect();
    stack.edit_birth_dates(&edited, "7 days 5 hours").await;
    // Fingerprints match the new inputs, and results match the chart command again.
    assert_eq!(assert_rows_match_chart_command(&stack.db).await, 10_000);

    // Idle: no row keeps changing (the analyzer's own write-backs trigger nothing).
    let before = stamps(&stack.db).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        stamps(&stack.db).await,
        before,
        "rows kept changing after the pipeline went idle"
    );

    shutdown.trigger();
    analyzer.await.unwrap().unwrap();
    stack.stop().await;
}

/// The reader writing Debezium's events (`--envelope debezium`, with schemas): the analyzer
/// reads them like its own, every row ends equal to the chart command, and the write-backs
/// start no loop.
#[tokio::test]
async fn profiles_arriving_as_debezium_events_are_analyzed_like_the_chart_command() {
    let stack = Stack::start_full(
        TestEnv::get(),
        "dbz",
        &["--envelope", "debezium", "--debezium-schemas", "true"],
    )
    .await;
    let shutdown = Shutdown::new();
    let analyzer = stack.analyzer_task(&shutdown);
    let ids = stack.insert(&births(1, 2_000)).await;
    stack.wait_all_analyzed(Duration::from_secs(120)).await;
    assert_eq!(assert_rows_match_chart_command(&stack.db).await, 2_000);
    sqlx::query(
        "UPDATE saju_profiles SET birth_date = birth_date + interval '3 hours' WHERE id = ANY($1)",
    )
    .bind(&ids[..100])
    .execute(&stack.db.pool)
    .await
    .unwrap();
    let pool = stack.db.pool.clone();
    wait_for("the edits to be analyzed again", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let stale: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM saju_profiles WHERE analyzed_at < updated_at - interval '1 ms'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (stale == 0).then_some(())
        }
    })
    .await;
    assert_eq!(assert_rows_match_chart_command(&stack.db).await, 2_000);
    let before = stamps(&stack.db).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stamps(&stack.db).await, before, "rows kept changing");
    shutdown.trigger();
    analyzer.await.unwrap().unwrap();
    stack.stop().await;
}

pub use shared::testkit::private::{free_port, KillOnDrop};

/// A file in the temporary directory for a spawned process's log, named on stderr so that a
/// failing test points to it.
pub fn log_file(what: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("{}.log", unique_name(what)));
    eprintln!("{what} logs to {}", path.display());
    std::fs::File::create(&path).expect("create a log file")
}

/// The value of the first series of `name` on a process's `/metrics`.
pub async fn metric(port: u16, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn kill_nine_mid_batch_loses_nothing_and_two_instances_share_the_work() {
    let stack = Stack::start("crash").await;
    let group = unique_name("analyzers");
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = stack.analyzer_process(&group, port_a);
    let mut ids = stack.insert(&births(2, 3_000)).await;
    // Kill -9 once it is mid-way.
    let pool = stack.db.pool.clone();
    wait_for("the first results", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM saju_profiles WHERE analysis_status <> 'pending'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (done > 0).then_some(())
        }
    })
    .await;
    a.kill().unwrap();
    a.wait().unwrap();

    // Two members in the group now; more input while both run, then one dies.
    let mut a = stack.analyzer_process(&group, port_a);
    let mut b = stack.analyzer_process(&group, port_b);
    ids.extend(stack.insert(&births(3, 3_000)).await);
    stack.wait_all_analyzed(Duration::from_secs(120)).await;
    let written_a = metric(port_a, "analyzer_analyses_written_total")
        .await
        .unwrap_or(0.0);
    let written_b = metric(port_b, "analyzer_analyses_written_total")
        .await
        .unwrap_or(0.0);
    assert!(
        written_a > 0.0 && written_b > 0.0,
        "both members should have written: {written_a} / {written_b}"
    );

    b.kill().unwrap();
    b.wait().unwrap();
    ids.extend(stack.insert(&births(4, 2_000)).await);
    stack.wait_all_analyzed(Duration::from_secs(120)).await;
    // Killed the moment the last rows are written: their events may not be acknowledged yet,
    // and their offsets are not committed. The next member replays them and publishes the
    // results the rows already hold.
    a.kill().unwrap();
    a.wait().unwrap();
    let mut c = stack.analyzer_process(&group, port_a);

    // Every row analyzed, each exactly as the chart command computes it, and each with its
    // event on the result topic.
    assert_eq!(assert_rows_match_chart_command(&stack.db).await, 8_000);
    crate::delivery::assert_every_row_has_its_event(&stack, &ids).await;
    c.kill().unwrap();
    c.wait().unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn a_profile_with_a_bad_date_ends_in_the_dlq_and_the_row_says_why() {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let stack = Stack::start("baddate").await;
    let shutdown = Shutdown::new();
    let analyzer = stack.analyzer_task(&shutdown);
    let ok = stack.insert(&[(0, "M")]).await[0];
    let bad = stack.insert(&[(-4_102_444_800, "F")]).await[0]; // 1840-01-01
    stack.wait_all_analyzed(Duration::from_secs(90)).await;
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT analysis_status, analysis_error FROM saju_profiles WHERE id = $1")
            .bind(bad)
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(status, "error");
    assert!(error.unwrap().contains("outside the supported range"));
    let status: String =
        sqlx::query_scalar("SELECT analysis_status FROM saju_profiles WHERE id = $1")
            .bind(ok)
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(status, "done");

    let kafka = stack.env.kafka(&stack.prefix);
    let consumer: StreamConsumer =
        shared::kafka::consumer_config(&kafka, &stack.env.consumer(), &unique_name("dlq"), "test")
            .create()
            .unwrap();
    consumer
        .subscribe(&[&format!(
            "{}.dlq",
            kafka.cdc_topic("public", "saju_profiles")
        )])
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a dead letter")
        .unwrap();
    let letter: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
    assert_eq!(letter["error"]["kind"], "invalid_input");
    assert_eq!(letter["error"]["reason"], "out_of_range");
    assert!(letter["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1840"));
    assert_eq!(letter["profile_id"], bad.to_string());
    // The original CDC event, as consumed: replayable as is.
    let original: Value =
        serde_json::from_str(letter["original"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(original["after"]["id"], bad.to_string());
    assert_eq!(
        message.key(),
        Some(format!("{{\"id\":\"{bad}\"}}").as_bytes())
    );

    shutdown.trigger();
    analyzer.await.unwrap().unwrap();
    stack.stop().await;
}
