//! `analyzer reanalyze`: gives existing rows the current engine's analysis.
//!
//! A new engine version (a richer document) changes nothing by itself: rows are analyzed when
//! their inputs change. This command walks `saju_profiles` in primary-key order, a chunk at a
//! time (bounded memory whatever the table's size), and for every row whose
//! `analysis_version` is older than the engine's, or missing (or every row, with `--all`; a
//! row a newer engine wrote is never downgraded otherwise) computes the analysis
//! and writes it back with the worker's own batched, conditional statement: a row whose inputs
//! changed meanwhile, or that an application holds locked, is left to the pipeline or retried.
//! Each written row's result event goes to the results topic, acknowledged before the chunk
//! counts as done. The last key done is kept in `reanalyze_progress`, so a run that stops for
//! any reason resumes where it was (`--restart` starts over). A statement that fails for a
//! reason that may pass (a lost connection, a server restarting or out of resources) is sent
//! again for up to `--retry-for` before the run stops: every statement of the job is safe to
//! repeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;
use shared::config::{KafkaArgs, PostgresArgs};
use shared::consume::kafka::KafkaSink;
use shared::consume::{Publishing, Record, RecordKind};
use shared::db::{retry_transient, RowState};
use sqlx::PgPool;
use uuid::Uuid;

use crate::profile::{Fingerprint, Inputs, Profile};
use crate::writeback::{self, Outcome};

/// Arguments of `reanalyze`.
#[derive(Args, Debug)]
pub struct ReanalyzeArgs {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Rows per chunk: one read, one write-back statement and one checkpoint each.
    #[arg(
        long = "chunk-size",
        env = "REANALYZE_CHUNK_SIZE",
        default_value_t = 4000,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub chunk_size: u32,

    /// Re-analyze every row, not only those whose analysis_version is older than the engine's.
    #[arg(long, env = "REANALYZE_ALL")]
    pub all: bool,

    /// Only rows with this analysis_status: pending, done or error.
    #[arg(long, env = "REANALYZE_STATUS", value_parser = ["pending", "done", "error"])]
    pub status: Option<String>,

    /// Name of the job in reanalyze_progress; a run with the name of an unfinished job resumes
    /// it. Default: derived from the engine version and the filters (e.g. `v2`, `v2-all-done`).
    #[arg(long, env = "REANALYZE_JOB")]
    pub job: Option<String>,

    /// Forget the job's progress and start from the first row.
    #[arg(long)]
    pub restart: bool,

    /// Topic the result events go to (as the worker's --results-topic).
    #[arg(
        long = "results-topic",
        env = "ANALYZER_RESULTS_TOPIC",
        default_value = shared::topics::ANALYSIS_TOPIC
    )]
    pub results_topic: String,

    /// Write the rows only; publish no result events.
    #[arg(long = "no-publish", env = "REANALYZE_NO_PUBLISH")]
    pub no_publish: bool,

    /// Longest wait for the broker's acknowledgement of an event before it is sent again
    /// (with a new producer): events are published until acknowledged, as by the worker.
    #[arg(long = "publish-timeout", env = "KAFKA_PUBLISH_TIMEOUT", default_value = "30s", value_parser = shared::config::parse_duration)]
    pub publish_timeout: Duration,

    /// How long a statement that fails for a reason that may pass (the connection lost, the
    /// server restarting or out of disk, memory or connections) is tried again before the job
    /// stops with the error; a stopped job resumes where it was when run again.
    #[arg(long = "retry-for", env = "REANALYZE_RETRY_FOR", default_value = "5m", value_parser = shared::config::parse_duration)]
    pub retry_for: Duration,

    /// Chart conventions (same flags and variables as the worker; use the worker's).
    #[command(flatten)]
    pub conventions: saju::cli::ConventionArgs,
}

impl ReanalyzeArgs {
    fn job_name(&self) -> String {
        self.job.clone().unwrap_or_else(|| {
            let mut name = format!("v{}", saju::json::VERSION);
            if self.all {
                name.push_str("-all");
            }
            if let Some(status) = &self.status {
                name.push('-');
                name.push_str(status);
            }
            name
        })
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Rows written with the new analysis.
    pub written: u64,
    /// Rows that already held it (a resumed chunk), or were left to the pipeline (inputs
    /// changed meanwhile) or deleted meanwhile.
    pub skipped: u64,
    /// Result events acknowledged.
    pub published: u64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    birth_date: Option<chrono::DateTime<Utc>>,
    is_solar: bool,
    is_leap_month: bool,
    lunar_birth: Option<String>,
    gender: Option<String>,
    lsn: i64,
}

/// A chunk of rows, each with the WAL position at which it was read: its result events carry
/// that position, so a consumer keeping the newest result per profile by position (as the
/// result schema says) takes the re-analysis over older results and any later edit's result
/// over it.
const CHUNK: &str = "\
SELECT id, birth_date, is_solar, is_leap_month, lunar_birth, gender,
       (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS lsn
FROM saju_profiles
WHERE id > COALESCE($1::uuid, '00000000-0000-0000-0000-000000000000')
  AND ($2 OR analysis_version IS NULL OR analysis_version < $3 OR id <= $6)
  AND ($4::text IS NULL OR analysis_status::text = $4)
ORDER BY id LIMIT $5";

const REMAINING: &str = "\
SELECT count(*) FROM saju_profiles
WHERE id > COALESCE($1::uuid, '00000000-0000-0000-0000-000000000000')
  AND ($2 OR analysis_version IS NULL OR analysis_version < $3 OR id <= $5)
  AND ($4::text IS NULL OR analysis_status::text = $4)";

/// Runs the job to its end.
pub async fn run(args: ReanalyzeArgs) -> anyhow::Result<Summary> {
    let options = args.conventions.options()?;
    let fingerprint = Fingerprint::new(&options);
    let pool = shared::db::connect(&args.postgres, "analyzer-reanalyze").await?;
    let job = args.job_name();
    let version = saju::json::VERSION as i32;
    let retry_for = args.retry_for;
    let (mut last, high, done_before) =
        retry_transient("reading the job's progress", retry_for, || {
            start_job(&pool, &job, version, args.restart)
        })
        .await
        .context(
            "cannot read or start the job in reanalyze_progress (run `analyzer migrate` first)",
        )?;
    let publisher = if args.no_publish {
        None
    } else {
        Some(Arc::new(EventPublisher::new(&args)?))
    };
    let remaining: i64 = retry_transient("counting the rows to do", retry_for, || {
        sqlx::query_scalar(REMAINING)
            .bind(last)
            .bind(args.all)
            .bind(version)
            .bind(&args.status)
            .bind(high)
            .fetch_one(&pool)
    })
    .await?;
    tracing::info!(
        %job,
        resumed_after = ?last,
        rows = remaining,
        "re-analyzing rows with the engine's analysis version {version}"
    );
    let mut progress = Progress::new(remaining.max(0) as u64, done_before.max(0) as u64);
    let mut summary = Summary::default();
    // Two chunks in flight: the next is read, computed and written while the previous one's
    // events are acknowledged. A chunk is checkpointed once it and every chunk before it are
    // done.
    let mut previous: Option<(tokio::task::JoinHandle<anyhow::Result<Summary>>, Uuid, u64)> = None;
    loop {
        let rows: Vec<Row> = retry_transient("reading a chunk", retry_for, || {
            sqlx::query_as(CHUNK)
                .bind(last)
                .bind(args.all)
                .bind(version)
                .bind(&args.status)
                .bind(i64::from(args.chunk_size))
                .bind(high)
                .fetch_all(&pool)
        })
        .await?;
        let Some(end) = rows.last().map(|r| r.id) else {
            break;
        };
        let n = rows.len() as u64;
        retry_transient("recording the chunk begun", retry_for, || {
            sqlx::query(
                "UPDATE reanalyze_progress SET high_id = GREATEST(high_id, $2) WHERE job = $1",
            )
            .bind(&job)
            .bind(end)
            .execute(&pool)
        })
        .await?;
        let chunk = tokio::spawn(process_chunk(
            pool.clone(),
            retry_for,
            publisher.clone(),
            options,
            fingerprint.clone(),
            rows,
        ));
        if let Some((handle, done_end, done_n)) = previous.take() {
            settle(
                &pool,
                &job,
                retry_for,
                handle,
                (done_end, done_n),
                &mut summary,
                &mut progress,
            )
            .await?;
        }
        previous = Some((chunk, end, n));
        last = Some(end);
    }
    if let Some((handle, done_end, done_n)) = previous.take() {
        settle(
            &pool,
            &job,
            retry_for,
            handle,
            (done_end, done_n),
            &mut summary,
            &mut progress,
        )
        .await?;
    }
    retry_transient("recording the job finished", retry_for, || {
        sqlx::query(
            "UPDATE reanalyze_progress SET finished_at = now(), updated_at = now() WHERE job = $1",
        )
        .bind(&job)
        .execute(&pool)
    })
    .await?;
    progress.finish();
    tracing::info!(
        %job,
        written = summary.written,
        skipped = summary.skipped,
        published = summary.published,
        "re-analysis finished"
    );
    Ok(summary)
}

/// The job's resume point (`None` to start at the first row), the end of the last chunk it
/// had begun and the rows it has done.
async fn start_job(
    pool: &PgPool,
    job: &str,
    version: i32,
    restart: bool,
) -> Result<(Option<Uuid>, Option<Uuid>, i64), sqlx::Error> {
    type Progress = (
        Option<Uuid>,
        Option<Uuid>,
        i64,
        Option<chrono::DateTime<Utc>>,
    );
    let existing: Option<Progress> = sqlx::query_as(
        "SELECT last_id, high_id, rows_done, finished_at FROM reanalyze_progress WHERE job = $1",
    )
    .bind(job)
    .fetch_optional(pool)
    .await?;
    match existing {
        Some((last, high, done, None)) if !restart => Ok((last, high, done)),
        _ => {
            sqlx::query(
                "INSERT INTO reanalyze_progress (job, target_version) VALUES ($1, $2) \
                 ON CONFLICT (job) DO UPDATE SET target_version = $2, last_id = NULL, high_id = NULL, rows_done = 0, \
                 started_at = now(), updated_at = now(), finished_at = NULL",
            )
            .bind(job)
            .bind(version)
            .execute(pool)
            .await?;
            Ok((None, None, 0))
        }
    }
}

/// Waits for a chunk (its last key and its row count) and records it as done.
async fn settle(
    pool: &PgPool,
    job: &str,
    retry_for: Duration,
    handle: tokio::task::JoinHandle<anyhow::Result<Summary>>,
    (end, n): (Uuid, u64),
    summary: &mut Summary,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let chunk = handle.await??;
    summary.written += chunk.written;
    summary.skipped += chunk.skipped;
    summary.published += chunk.published;
    // The job's total, not an increment: a statement sent again after a lost connection may
    // have committed the first time.
    let rows_done = (progress.before + progress.done + n) as i64;
    retry_transient("recording the chunk done", retry_for, || {
        sqlx::query(
            "UPDATE reanalyze_progress SET last_id = $2, rows_done = $3, updated_at = now() \
             WHERE job = $1",
        )
        .bind(job)
        .bind(end)
        .bind(rows_done)
        .execute(pool)
    })
    .await?;
    progress.advance(n);
    Ok(())
}

/// Attempts at a row another transaction holds before it is left to a later run.
const LOCKED_ATTEMPTS: u32 = 50;

async fn process_chunk(
    pool: PgPool,
    retry_for: Duration,
    publisher: Option<Arc<EventPublisher>>,
    options: saju::Options,
    fingerprint: Fingerprint,
    rows: Vec<Row>,
) -> anyhow::Result<Summary> {
    let mut profiles: Vec<Profile> = rows
        .into_iter()
        .map(|r| Profile {
            id: r.id,
            // Not read from a change event: the WAL position of the read.
            position: (r.lsn as u64, r.lsn as u64),
            inputs: Inputs {
                birth_date: r.birth_date,
                is_solar: r.is_solar,
                is_leap_month: r.is_leap_month,
                lunar_birth: r.lunar_birth,
                gender: r.gender,
            },
        })
        .collect();
    let mut summary = Summary::default();
    let mut events: Vec<(Uuid, Vec<u8>)> = Vec::new();
    let mut attempt = 0;
    while !profiles.is_empty() {
        let fingerprint = fingerprint.clone();
        let outcomes: Vec<Outcome> = tokio::task::spawn_blocking(move || {
            writeback::compute_all(profiles, &options, &fingerprint)
        })
        .await?;
        // The write-back is conditional on the row's inputs: sent again, it finds the rows it
        // wrote current.
        let states = retry_transient("writing a chunk back", retry_for, || {
            writeback::write(&pool, &outcomes)
        })
        .await?;
        let mut locked = Vec::new();
        for (outcome, row) in outcomes.into_iter().zip(&states) {
            match row.state {
                // A row that already holds this result (its chunk was written before a stop)
                // gets its event again: it may never have been acknowledged.
                RowState::Written | RowState::Current => {
                    if row.state == RowState::Written {
                        summary.written += 1;
                    } else {
                        summary.skipped += 1;
                    }
                    let at = row.analyzed_at.unwrap_or_else(Utc::now);
                    events.push((row.id, crate::step::result_event(&outcome, at)));
                }
                RowState::Locked if attempt < LOCKED_ATTEMPTS => locked.push(outcome.profile),
                _ => summary.skipped += 1,
            }
        }
        profiles = locked;
        if !profiles.is_empty() {
            attempt += 1;
            tokio::time::sleep(shared::backoff::Backoff::default().delay(attempt)).await;
        }
    }
    if let Some(publisher) = &publisher {
        summary.published = publisher.publish(events).await;
    }
    Ok(summary)
}

/// Publishes the job's result events with the consumer runtime's own publishing
/// ([`shared::consume::until_acknowledged`]): every event until acknowledged, with the same
/// retries, producer replacement and handling of events too large for the broker.
struct EventPublisher {
    sink: KafkaSink,
    settings: shared::consume::Settings,
    metrics: shared::consume::Metrics,
    health: shared::health::Health,
}

impl EventPublisher {
    fn new(args: &ReanalyzeArgs) -> anyhow::Result<Self> {
        let sink = KafkaSink::new(&args.kafka, "analyzer-reanalyze", args.publish_timeout)
            .context("cannot create the Kafka producer")?;
        let cdc_topic = args.kafka.cdc_topic("public", "saju_profiles");
        let settings = shared::consume::Settings::new(
            "analyzer",
            "reanalyze",
            &args.results_topic,
            &shared::topics::dlq_topic(&cdc_topic),
        );
        // The job serves no /metrics: its counters are for the shared code only.
        let metrics =
            shared::consume::Metrics::register("reanalyze", &[], &prometheus::Registry::new())?;
        Ok(Self {
            sink,
            settings,
            metrics,
            health: shared::health::Health::new(),
        })
    }

    /// Publishes `events` (keyed by profile id); returns how many, once all are acknowledged.
    async fn publish(&self, events: Vec<(Uuid, Vec<u8>)>) -> u64 {
        let count = events.len() as u64;
        let records = events
            .into_iter()
            .map(|(id, payload)| Record {
                topic: Arc::clone(&self.settings.result_topic),
                key: Some(crate::step::key_of(id)),
                payload,
                kind: RecordKind::Result,
            })
            .collect();
        let publishing = Publishing {
            sink: &self.sink,
            settings: &self.settings,
            metrics: &self.metrics,
            health: &self.health,
        };
        shared::consume::until_acknowledged(publishing, records).await;
        count
    }
}

/// A progress line every few seconds: a bar, rows done of the total, rate and time left.
struct Progress {
    total: u64,
    /// Rows earlier runs of the job did.
    before: u64,
    done: u64,
    started: Instant,
    shown: Instant,
}

impl Progress {
    fn new(total: u64, before: u64) -> Self {
        let now = Instant::now();
        Self {
            total,
            before,
            done: 0,
            started: now,
            shown: now,
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        if self.shown.elapsed() >= Duration::from_secs(2) {
            self.shown = Instant::now();
            self.show();
        }
    }

    fn show(&self) {
        let total = self.total.max(self.done).max(1);
        let filled = (self.done * 30 / total) as usize;
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / seconds;
        let left = (total - self.done) as f64 / rate.max(1.0);
        tracing::info!(
            "reanalyze [{}{}] {:>3}% {}/{} rows, {:.0} rows/s, {:.0} s left",
            "#".repeat(filled),
            ".".repeat(30 - filled),
            self.done * 100 / total,
            self.done,
            total,
            rate,
            left
        );
    }

    fn finish(&self) {
        self.show();
    }
}
