//! The asset worker's domain step in the shared consumer runtime ([`shared::consume`]).
//!
//! ```text
//!  decide (change.rs) ──► prepare: one file on the probing pool ──► write: UPDATE … UNNEST
//!   enrich / skip / reject      resolve, read, probe; timeout       merge under metadata.asset_worker
//! ```
//!
//! - **decide**: [`change::decide`]; an unusable event of a known row is *rejected*: recorded
//!   on the row (`enrichment_status = 'error'`, `invalid_row: …`) and dead-lettered. A change
//!   the CDC reader could not publish (its `too_large` dead letter, read from the CDC topic's
//!   `.dlq`) is enriched from the row itself.
//! - **prepare**: at most `--queue-depth` files are on or waiting for the probing pool; a
//!   file's `--file-timeout` runs from the moment a thread starts on it (waiting in the queue is
//!   not work), and a file that timed out keeps its slot until its thread really lets go.
//!   Transient read errors are retried with backoff first.
//! - **write**: the newest event of each asset wins within a batch; one statement
//!   ([`writeback`]); each written row gets its `assets.enriched.v1` event, and each failed file
//!   a dead letter as well.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::consume::{Decision, Entry, Letter, Message, Output, Prepared, Settled, WriteError};
use shared::db::RowState;
use shared::dlq::Kind;
use shared::envelope::{ChangeEvent, Op, Source};
use sqlx::PgPool;
use tokio::sync::{oneshot, Semaphore};
use uuid::Uuid;

use crate::change::{self, AssetInput};
use crate::enrichment::{self, Failure, Outcome, Settings};
use crate::events;
use crate::metrics::Metrics;
use crate::writeback::{self, RowWrite};

/// What a message asks for.
#[derive(Debug)]
pub enum Work {
    /// Read and probe the file.
    Enrich(AssetInput),
    /// The change was too large for the broker: read the row from the table.
    Fetch {
        /// The row.
        id: Uuid,
        /// `(commit_lsn, lsn)` of the unpublished change.
        position: (u64, u64),
    },
    /// The event names no usable file: record why on the row.
    Reject {
        /// The row.
        id: Uuid,
        /// Position of the event.
        position: (u64, u64),
        /// What is wrong.
        reason: String,
    },
}

/// The asset worker's step.
pub struct Assets {
    /// Where results are written.
    pub pool: PgPool,
    /// The probing pool.
    pub probe_pool: Arc<rayon::ThreadPool>,
    /// Files on or waiting for the pool (`--queue-depth`): a slot is held until the file's
    /// thread lets go, even past its timeout.
    pub slots: Arc<Semaphore>,
    /// Root and limits.
    pub settings: Arc<Settings>,
    /// `--file-timeout`.
    pub file_timeout: Duration,
    /// The worker's own metrics.
    pub metrics: Metrics,
    /// The CDC topic (events from any other subscribed topic are dead letters).
    pub cdc_topic: String,
}

impl std::fmt::Debug for Assets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assets")
            .field("cdc_topic", &self.cdc_topic)
            .finish_non_exhaustive()
    }
}

const SKIP_DEAD_LETTER: &str = "other_dead_letter";
const SKIP_REASONS: [&str; 4] = [
    change::SKIP_REASONS[0],
    change::SKIP_REASONS[1],
    change::SKIP_REASONS[2],
    SKIP_DEAD_LETTER,
];

impl shared::consume::Step for Assets {
    type Work = Work;
    type Ready = Box<Outcome>;
    const SKIP_REASONS: &'static [&'static str] = &SKIP_REASONS;

    fn decide(&self, message: &Message) -> Decision<Work> {
        let payload = message.payload.as_deref().unwrap_or_default();
        if *message.topic != *self.cdc_topic {
            return decide_dead_letter(message, payload);
        }
        let event = match ChangeEvent::from_slice(payload) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(partition = message.partition, offset = message.offset, error = %e, "malformed event");
                return Decision::DeadLetter(Letter {
                    kind: Kind::Decode,
                    reason: "malformed_event".to_owned(),
                    message: format!("not a change envelope: {e}"),
                    row: None,
                });
            }
        };
        decision_of(&event)
    }

    async fn prepare(&self, work: Work) -> Prepared<Box<Outcome>> {
        match work {
            Work::Enrich(input) => Prepared::Ready(Box::new(self.probe(input).await)),
            Work::Fetch { id, position } => match self.fetch(id, position).await {
                Some(Work::Enrich(input)) => Prepared::Ready(Box::new(self.probe(input).await)),
                Some(Work::Reject {
                    id,
                    position,
                    reason,
                }) => Prepared::Ready(Box::new(rejection(id, position, reason))),
                Some(Work::Fetch { .. }) | None => Prepared::Skip("deleted"),
            },
            Work::Reject {
                id,
                position,
                reason,
            } => Prepared::Ready(Box::new(rejection(id, position, reason))),
        }
    }

    fn write<'a>(
        &'a self,
        batch: &'a [Entry<Box<Outcome>>],
    ) -> impl Future<Output = Result<Vec<Settled>, WriteError>> + Send + 'a {
        self.write_batch(batch)
    }

    async fn check(&self) -> Result<String, String> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| "answers".to_owned())
            .map_err(|e| format!("PostgreSQL does not answer: {e}"))
    }
}

/// What a readable change event asks for.
fn decision_of(event: &ChangeEvent) -> Decision<Work> {
    match change::decide(event) {
        change::Decision::Enrich(input) => Decision::Work(Work::Enrich(input)),
        change::Decision::Skip(reason) => Decision::Skip(reason),
        change::Decision::Malformed { id, reason } => {
            tracing::warn!(?id, %reason, "unusable event");
            match id {
                Some(id) => Decision::Work(Work::Reject {
                    id,
                    position: event.position(),
                    reason,
                }),
                None => Decision::DeadLetter(Letter {
                    kind: Kind::InvalidInput,
                    reason: "invalid_row".to_owned(),
                    message: reason,
                    row: None,
                }),
            }
        }
    }
}

/// A message on the CDC topic's `.dlq`: the reader's `too_large` letters of this table are
/// enriched from the row; every other letter (this worker's own) is not input.
fn decide_dead_letter(message: &Message, payload: &[u8]) -> Decision<Work> {
    let change = shared::dlq::unpublished_change(payload)
        .filter(|c| c.table == "image_assets" && c.op.as_deref() != Some("d"));
    let id = message.key.as_deref().and_then(|key| {
        let key: Value = serde_json::from_slice(key).ok()?;
        Uuid::parse_str(shared::envelope::key_object(&key).get("id")?.as_str()?).ok()
    });
    match (change, id) {
        (Some(change), Some(id)) => {
            tracing::info!(%id, lsn = change.lsn, "change too large for the broker; enriching the row from the table");
            Decision::Work(Work::Fetch {
                id,
                position: (change.commit_lsn, change.lsn),
            })
        }
        _ => Decision::Skip(SKIP_DEAD_LETTER),
    }
}

/// A rejected row, as an outcome (its document records the error, no file).
fn rejection(id: Uuid, position: (u64, u64), reason: String) -> Outcome {
    Outcome {
        input: AssetInput {
            id,
            file_path: String::new(),
            file_name: String::new(),
            stored_width: None,
            stored_height: None,
            position,
        },
        result: Err(Failure::InvalidRow(reason)),
        bytes_read: 0,
    }
}

impl Assets {
    /// Probes one file on the pool. The timeout runs from the moment a thread takes the file.
    async fn probe(&self, input: AssetInput) -> Outcome {
        let slot = match Arc::clone(&self.slots).acquire_owned().await {
            Ok(slot) => slot,
            Err(_) => {
                return Outcome {
                    input,
                    result: Err(Failure::Internal("probing pool closed".into())),
                    bytes_read: 0,
                }
            }
        };
        self.metrics.queue_depth.inc();
        let (started_tx, started_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let settings = Arc::clone(&self.settings);
        let timeout = self.file_timeout;
        let job_input = input.clone();
        let depth = self.metrics.queue_depth.clone();
        let retries = self.metrics.read_retries.clone();
        self.probe_pool.spawn(move || {
            let deadline = Instant::now() + timeout;
            let _ = started_tx.send(());
            let mut retried = 0;
            let outcome = enrichment::enrich_counting(job_input, &settings, deadline, &mut retried);
            retries.inc_by(u64::from(retried));
            // The depth falls before the waiter hears of the outcome, so that a caller who
            // has every outcome sees an empty queue; the slot is given back only after the
            // work, even when the waiter gave up.
            depth.dec();
            let _ = done_tx.send(outcome);
            drop(slot);
        });
        if started_rx.await.is_err() {
            return Outcome {
                input,
                result: Err(Failure::Internal(
                    "probe job ended before it started".into(),
                )),
                bytes_read: 0,
            };
        }
        match tokio::time::timeout(timeout, done_rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome {
                input,
                result: Err(Failure::Internal("probe job ended without a result".into())),
                bytes_read: 0,
            },
            Err(_) => Outcome {
                input,
                result: Err(Failure::Timeout(timeout)),
                bytes_read: 0,
            },
        }
    }

    /// Reads a row whose change event could not be published and decides on it as if the
    /// event had carried it ([`shared::db::read_row`]: a row not found yet is read again before
    /// it counts as deleted).
    async fn fetch(&self, id: Uuid, position: (u64, u64)) -> Option<Work> {
        let row = shared::db::read_row("an asset row", || {
            sqlx::query_scalar(
                "SELECT jsonb_build_object('id', id, 'file_path', file_path, 'file_name', file_name, \
                        'width', width, 'height', height, 'deleted_at', deleted_at, \
                        'enrichment_status', enrichment_status, 'enrichment_error', enrichment_error, \
                        'metadata', jsonb_build_object('asset_worker', \
                            jsonb_build_object('source', metadata -> 'asset_worker' -> 'source'))) \
                 FROM image_assets WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
        })
        .await?;
        let event = ChangeEvent {
            op: Op::Update,
            before: None,
            after: row.as_object().cloned(),
            source: Source {
                lsn: position.1,
                commit_lsn: position.0,
                xid: None,
                ts: chrono::Utc::now(),
                schema: "public".to_owned(),
                table: "image_assets".to_owned(),
                snapshot: false,
            },
        };
        match decision_of(&event) {
            Decision::Work(work) => Some(work),
            Decision::Skip(_) | Decision::DeadLetter(_) => None,
        }
    }

    async fn write_batch(&self, batch: &[Entry<Box<Outcome>>]) -> Result<Vec<Settled>, WriteError> {
        // The newest event of each asset is written; older ones in the batch are stale.
        let mut newest: HashMap<Uuid, usize> = HashMap::with_capacity(batch.len());
        for (i, entry) in batch.iter().enumerate() {
            let input = &entry.item.input;
            newest
                .entry(input.id)
                .and_modify(|j| {
                    if batch[*j].item.input.position <= input.position {
                        *j = i;
                    }
                })
                .or_insert(i);
        }
        let mut documents: HashMap<usize, Value> = HashMap::with_capacity(newest.len());
        let mut rows = Vec::with_capacity(newest.len());
        for &i in newest.values() {
            let outcome = &batch[i].item;
            let document = enrichment::document(outcome);
            let facts = outcome.result.as_ref().ok();
            let to_i32 = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
            let rejected = matches!(outcome.result, Err(Failure::InvalidRow(_)));
            rows.push(RowWrite {
                id: outcome.input.id,
                file_path: (!rejected).then(|| outcome.input.file_path.clone()),
                file_name: (!rejected).then(|| outcome.input.file_name.clone()),
                document: document.to_string(),
                status: if facts.is_some() { "done" } else { "error" },
                error: outcome
                    .result
                    .as_ref()
                    .err()
                    .map(|f| format!("{}: {f}", f.kind())),
                width: to_i32(facts.and_then(|f| f.width)),
                height: to_i32(facts.and_then(|f| f.height)),
                commit_lsn: i64::try_from(outcome.input.position.0).unwrap_or(i64::MAX),
                lsn: i64::try_from(outcome.input.position.1).unwrap_or(i64::MAX),
            });
            documents.insert(i, document);
        }
        let written = writeback::write(&self.pool, &rows)
            .await
            .map_err(|e| WriteError::from_sqlx(&e))?;
        let written: HashMap<Uuid, writeback::Written> =
            written.into_iter().map(|w| (w.id, w)).collect();

        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let outcome = &entry.item;
                let row = written
                    .get(&outcome.input.id)
                    .filter(|_| newest.get(&outcome.input.id) == Some(&i));
                if row.is_some_and(|r| r.state.retry(entry.deferrals)) {
                    return Settled::Deferred;
                }
                let is_written = row.is_some_and(|r| r.state == RowState::Written);
                self.record(outcome, is_written);
                match (row, documents.get(&i)) {
                    (Some(row), Some(document)) if is_written => {
                        Settled::Done(self.outputs(outcome, row, document))
                    }
                    _ => Settled::Done(Vec::new()),
                }
            })
            .collect())
    }

    fn record(&self, outcome: &Outcome, is_written: bool) {
        let format = outcome.result.as_ref().ok().map(|f| f.format);
        let label = Metrics::format_label(format);
        self.metrics.read_bytes.inc_by(outcome.bytes_read);
        if let Ok(facts) = &outcome.result {
            if !facts.decode_time.is_zero() {
                self.metrics
                    .decode_seconds
                    .with_label_values(&[label])
                    .observe(facts.decode_time.as_secs_f64());
            }
        }
        let outcome_label = match (&outcome.result, is_written) {
            (_, false) => "stale",
            (Ok(_), true) => "done",
            (Err(failure), true) => failure.kind(),
        };
        self.metrics
            .files_processed
            .with_label_values(&[label, outcome_label])
            .inc();
    }

    fn outputs(
        &self,
        outcome: &Outcome,
        row: &writeback::Written,
        document: &Value,
    ) -> Vec<Output> {
        let mut outputs = vec![Output::Result {
            key: events::asset_key(&outcome.input.id),
            payload: events::enriched(outcome, row, document),
        }];
        if let Err(failure) = &outcome.result {
            let kind = match failure {
                Failure::File(crate::resolve::FileError::Refused(_)) | Failure::InvalidRow(_) => {
                    Kind::InvalidInput
                }
                _ => Kind::Processing,
            };
            outputs.push(Output::DeadLetter(Letter {
                kind,
                reason: failure.kind().to_owned(),
                message: failure.to_string(),
                row: Some(("asset_id", outcome.input.id.to_string())),
            }));
        }
        outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus;
    use crate::resolve::AssetRoot;

    fn input(i: u32) -> AssetInput {
        AssetInput {
            id: Uuid::from_u128(u128::from(i)),
            file_path: "/t/".into(),
            file_name: format!("{i}.png"),
            stored_width: None,
            stored_height: None,
            position: (1, u64::from(i)),
        }
    }

    fn assets(dir: &std::path::Path, timeout: Duration) -> Assets {
        let registry = prometheus::Registry::new();
        Assets {
            // Never connected: probing does not touch the database.
            pool: PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap(),
            probe_pool: Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap(),
            ),
            slots: Arc::new(Semaphore::new(16)),
            settings: Arc::new(Settings {
                root: AssetRoot::new(dir).unwrap(),
                max_file_bytes: 1 << 26,
                max_pixels: 1 << 26,
            }),
            file_timeout: timeout,
            metrics: Metrics::register(&registry).unwrap(),
            cdc_topic: "t".into(),
        }
    }

    /// Sixteen files queued at once on one probing thread: the last waits for fifteen others,
    /// several times its timeout, and still is not timed out, because only its own work
    /// counts. One file's work is the median of three probes, so one slow sample on a busy
    /// machine neither shrinks the queue below the timeout nor the timeout below the work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_file_timeout_measures_work_not_waiting_in_the_queue() {
        const FILES: u32 = 16;
        let dir = std::env::temp_dir().join(format!("asset-timeout-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("t")).unwrap();
        for i in 0..FILES {
            std::fs::write(
                dir.join(format!("t/{i}.png")),
                corpus::png_rgb8(700, 700, i),
            )
            .unwrap();
        }
        let warm = assets(&dir, Duration::from_secs(600));
        warm.probe(input(0)).await.result.unwrap();
        let mut samples = Vec::new();
        for i in 1..4 {
            let started = Instant::now();
            warm.probe(input(i)).await.result.unwrap();
            samples.push(started.elapsed());
        }
        samples.sort();
        let one = samples[1];

        let timeout = one * 4;
        let assets = assets(&dir, timeout);
        let started = Instant::now();
        let outcomes = futures::future::join_all((0..FILES).map(|i| assets.probe(input(i)))).await;
        let total = started.elapsed();
        assert!(
            total > timeout * 2,
            "the queue should take longer than the timeout ({total:?} vs {timeout:?})"
        );
        for outcome in outcomes {
            assert!(
                outcome.result.is_ok(),
                "{} timed out after waiting in the queue: {:?}",
                outcome.input.file_name,
                outcome.result.err()
            );
        }
        assert_eq!(assets.metrics.queue_depth.get(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
