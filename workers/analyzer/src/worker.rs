//! The consume → compute → write → publish → commit loop.
//!
//! A reader task polls the CDC topic and closes batches by size or by time, whichever comes
//! first (a bounded channel of two, so reading runs at most two batches ahead). Up to
//! `write_concurrency` closed batches are written at once, each on its own connection: the
//! charts are computed on the rayon pool and every result of the batch is written in one
//! statement. Batches then finish in the order they were read: their result and dead-letter
//! events are published and acknowledged, and only then are their offsets committed. A crash
//! anywhere replays the uncommitted batches; the write is idempotent, so a replay changes
//! nothing that was written.
//!
//! Two batches written at once never share a row: a batch first claims its profiles' ids and
//! waits while another batch holds any of them (so concurrent statements cannot deadlock, and
//! the later event of a row is written after the earlier one).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use saju::Options;
use shared::dlq::{dead_letter, Failure, Kind, Original};
use shared::kafka::LagContext;
use shared::shutdown::Shutdown;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::profile::{decide, Decision, Fingerprint, MalformedEvent, Profile, SkipReason};
use crate::writeback::{self, Outcome};

/// One consumed message, reduced to what the writer needs.
#[derive(Debug)]
struct Item {
    /// The message as consumed, for a dead letter (its offset and partition too).
    original: Original,
    work: Work,
}

#[derive(Debug)]
enum Work {
    Analyze(Profile),
    Skip,
    /// Unreadable: forwarded to the DLQ with the reason.
    Malformed(String),
}

/// A batch whose results are committed in the database: what is left to publish, and the
/// offsets to commit after that.
#[derive(Debug)]
struct Written {
    outcomes: Vec<Outcome>,
    /// Rows the write-back changed, and the `analyzed_at` it recorded.
    written: HashMap<Uuid, DateTime<Utc>>,
    /// Dead letters: the original key and the payload.
    dead: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    offsets: HashMap<i32, i64>,
}

/// A closed batch.
#[derive(Debug, Default)]
struct Batch {
    items: Vec<Item>,
}

/// What the loop needs, shared by the reader and the writer.
pub(crate) struct Worker {
    pub(crate) pool: PgPool,
    pub(crate) consumer: Arc<StreamConsumer<LagContext>>,
    pub(crate) producer: FutureProducer,
    pub(crate) metrics: Metrics,
    pub(crate) options: Options,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) topic: String,
    pub(crate) dlq_topic: String,
    pub(crate) result_topic: String,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    /// Consumer group, named in dead letters.
    pub(crate) group: String,
    /// Batches written at once (each on its own connection).
    pub(crate) write_concurrency: usize,
    pub(crate) claims: RowClaims,
}

/// Ids of the rows being written by batches in flight.
#[derive(Debug, Default)]
pub(crate) struct RowClaims {
    held: std::sync::Mutex<HashSet<Uuid>>,
    released: tokio::sync::Notify,
}

impl RowClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims every id at once, waiting while any of them is held by another batch.
    async fn claim(&self, ids: Vec<Uuid>) -> Claim<'_> {
        loop {
            // Registered before the check, so a release in between is not missed.
            let released = self.released.notified();
            {
                let mut held = self.lock();
                if ids.iter().all(|id| !held.contains(id)) {
                    held.extend(ids.iter().copied());
                    return Claim { claims: self, ids };
                }
            }
            released.await;
        }
    }
}

/// Releases its ids when dropped.
struct Claim<'a> {
    claims: &'a RowClaims,
    ids: Vec<Uuid>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.lock();
        for id in &self.ids {
            held.remove(id);
        }
        drop(held);
        self.claims.released.notify_waiters();
    }
}

/// A batch being written.
struct Writing {
    task: tokio::task::JoinHandle<anyhow::Result<Option<Written>>>,
    started: Instant,
    size: usize,
    span: tracing::Span,
}

impl Worker {
    /// Runs until `shutdown`, then finishes the batches in hand and commits their offsets.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel::<Batch>(2);
        let writer = tokio::spawn(Arc::clone(&self).write_loop(rx, shutdown.clone()));
        let read = self.read_loop(tx, &shutdown).await;
        // The sender is dropped: the writer drains what is queued and returns.
        let written = writer.await?;
        read.and(written)
    }

    async fn read_loop(&self, tx: mpsc::Sender<Batch>, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut batch = Batch::default();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let flush_due = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = flush_due => {
                    deadline = None;
                    if tx.send(std::mem::take(&mut batch)).await.is_err() { break; }
                }
                message = self.consumer.recv() => match message {
                    Ok(message) => {
                        batch.items.push(self.read(&message));
                        if deadline.is_none() {
                            deadline = Some(tokio::time::Instant::now() + self.flush_interval);
                        }
                        if batch.items.len() >= self.batch_size {
                            deadline = None;
                            if tx.send(std::mem::take(&mut batch)).await.is_err() { break; }
                        }
                    }
                    Err(e) => {
                        self.metrics.errors.with_label_values(&["consume"]).inc();
                        tracing::warn!(error = %e, "consume error; retrying");
                    }
                },
            }
        }
        if !batch.items.is_empty() {
            let _ = tx.send(batch).await;
        }
        Ok(())
    }

    fn read(&self, message: &BorrowedMessage<'_>) -> Item {
        let payload = message.payload().unwrap_or_default();
        let work = match crate::profile::read_event(payload)
            .map_err(MalformedEvent::NotAnEnvelope)
            .and_then(|event| {
                self.metrics
                    .events_consumed
                    .with_label_values(&[event.op.as_str()])
                    .inc();
                decide(&event, &self.fingerprint)
            }) {
            Ok(Decision::Analyze(profile)) => Work::Analyze(profile),
            Ok(Decision::Skip(reason)) => {
                self.metrics
                    .skipped
                    .with_label_values(&[reason.as_str()])
                    .inc();
                Work::Skip
            }
            Err(e) => {
                self.metrics.errors.with_label_values(&["malformed"]).inc();
                tracing::warn!(partition = message.partition(), offset = message.offset(), error = %e, "malformed event");
                Work::Malformed(e.to_string())
            }
        };
        let original = match work {
            // Only its position is needed: the payload (a write-back's whole document) is
            // not copied.
            Work::Skip => Original {
                topic: String::new(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp_ms: None,
                key: None,
                value: None,
            },
            _ => Original::from_message(message),
        };
        Item { original, work }
    }

    async fn write_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Batch>,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        // Batches being written, oldest first; they finish in this order.
        let mut writing: VecDeque<Writing> = VecDeque::new();
        // The batch whose events are being published and whose offsets then get committed.
        // At most one: batch N is published while later batches are written, and offsets are
        // committed in batch order.
        let mut publishing: Option<tokio::task::JoinHandle<()>> = None;
        let mut open = true;
        loop {
            let room = open && writing.len() < self.write_concurrency.max(1);
            tokio::select! {
                biased;
                done = async { (&mut writing.front_mut().expect("checked non-empty").task).await },
                    if !writing.is_empty() =>
                {
                    let Writing { started, size, span, .. } =
                        writing.pop_front().expect("checked non-empty");
                    let Some(written) = done?? else {
                        // Shutting down with the batch unwritten: its offsets (and those of
                        // every later batch) stay uncommitted.
                        break;
                    };
                    if let Some(previous) = publishing.take() {
                        previous.await?;
                    }
                    let worker = Arc::clone(&self);
                    publishing = Some(tokio::spawn(
                        async move {
                            worker.publish(&written).await;
                            worker.commit(&written.offsets);
                            worker.metrics.batch_size.observe(size as f64);
                            worker
                                .metrics
                                .flush_seconds
                                .observe(started.elapsed().as_secs_f64());
                        }
                        .instrument(span),
                    ));
                }
                batch = rx.recv(), if room => match batch {
                    Some(batch) if batch.items.is_empty() => {}
                    Some(batch) => {
                        let size = batch.items.len();
                        let span = tracing::info_span!(
                            "batch",
                            size,
                            first_offset = batch.items[0].original.offset
                        );
                        let worker = Arc::clone(&self);
                        let shutdown = shutdown.clone();
                        let task = tokio::spawn(
                            async move { worker.write(batch, &shutdown).await }
                                .instrument(span.clone()),
                        );
                        writing.push_back(Writing { task, started: Instant::now(), size, span });
                    }
                    None => open = false,
                },
                else => break,
            }
        }
        for unfinished in writing {
            // Only after a shutdown: let them finish their statement, commit nothing.
            let _ = unfinished.task.await;
        }
        if let Some(previous) = publishing {
            previous.await?;
        }
        Ok(())
    }

    /// Publishes result and dead-letter events and waits for the broker's acknowledgements.
    /// Computes and writes one batch. Returns `None` if shutdown came while the database was
    /// unreachable (the batch will be replayed by the partitions' next owner).
    async fn write(&self, batch: Batch, shutdown: &Shutdown) -> anyhow::Result<Option<Written>> {
        // The latest event of each row wins within a batch; older ones are superseded.
        let mut latest: HashMap<Uuid, Profile> = HashMap::new();
        let mut originals: HashMap<Uuid, Original> = HashMap::new();
        let failed_at = chrono::Utc::now();
        let mut offsets: HashMap<i32, i64> = HashMap::new();
        let mut dead: Vec<(Option<Vec<u8>>, Vec<u8>)> = Vec::new();
        for item in batch.items {
            let offset = item.original.offset;
            let next = offsets.entry(item.original.partition).or_insert(offset);
            *next = (*next).max(offset);
            match item.work {
                Work::Analyze(profile) => match latest.get(&profile.id) {
                    Some(newer) if newer.position > profile.position => {}
                    _ => {
                        originals.insert(profile.id, item.original);
                        latest.insert(profile.id, profile);
                    }
                },
                Work::Skip => {}
                Work::Malformed(message) => {
                    let failure = Failure {
                        kind: Kind::Decode,
                        reason: "malformed",
                        message: &message,
                    };
                    let letter =
                        dead_letter(&item.original, failure, "analyzer", &self.group, failed_at);
                    dead.push((item.original.key.clone(), letter.to_string().into_bytes()));
                }
            }
        }
        let profiles: Vec<Profile> = latest.into_values().collect();
        let claim = self
            .claims
            .claim(profiles.iter().map(|p| p.id).collect())
            .await;
        let outcomes = {
            let options = self.options;
            let fingerprint = self.fingerprint.clone();
            tokio::task::spawn_blocking(move || {
                writeback::compute_all(profiles, &options, &fingerprint)
            })
            .await?
        };

        let written = loop {
            match writeback::write(&self.pool, &outcomes).await {
                Ok(ids) => break ids,
                Err(e) => {
                    self.metrics.errors.with_label_values(&["database"]).inc();
                    tracing::warn!(error = %e, rows = outcomes.len(), "write-back failed; retrying in 1 s");
                    if !shutdown.sleep(Duration::from_secs(1)).await {
                        return Ok(None);
                    }
                }
            }
        };
        drop(claim);
        let written: HashMap<Uuid, DateTime<Utc>> = written.into_iter().collect();
        let stale = outcomes.len() - written.len();
        if stale > 0 {
            self.metrics
                .skipped
                .with_label_values(&[SkipReason::Unchanged.as_str()])
                .inc_by(stale as u64);
        }
        self.metrics.analyses_written.inc_by(written.len() as u64);
        for outcome in &outcomes {
            if let Err(e) = &outcome.result {
                self.metrics.errors.with_label_values(&[e.kind()]).inc();
                let original = originals.get(&outcome.profile.id);
                if let (true, Some(original)) =
                    (written.contains_key(&outcome.profile.id), original)
                {
                    let message = e.to_string();
                    let failure = Failure {
                        kind: Kind::InvalidInput,
                        reason: e.kind(),
                        message: &message,
                    };
                    let mut letter =
                        dead_letter(original, failure, "analyzer", &self.group, failed_at);
                    letter["profile_id"] = serde_json::json!(outcome.profile.id);
                    dead.push((original.key.clone(), letter.to_string().into_bytes()));
                }
            }
        }

        Ok(Some(Written {
            outcomes,
            written,
            dead,
            offsets,
        }))
    }

    async fn publish(&self, batch: &Written) {
        let Written {
            outcomes,
            written,
            dead,
            ..
        } = batch;
        let mut sends = Vec::new();
        for outcome in outcomes {
            let Some(analyzed_at) = written.get(&outcome.profile.id) else {
                continue;
            };
            let key = format!("{{\"id\":\"{}\"}}", outcome.profile.id);
            let payload = result_event(outcome, *analyzed_at);
            let producer = self.producer.clone();
            let topic = self.result_topic.clone();
            sends.push(tokio::spawn(async move {
                producer
                    .send(
                        FutureRecord::to(&topic).key(&key).payload(&payload),
                        Duration::from_secs(60),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            }));
        }
        let dead_count = dead.len();
        for (key, payload) in dead {
            let (key, payload) = (key.clone(), payload.clone());
            let producer = self.producer.clone();
            let topic = self.dlq_topic.clone();
            sends.push(tokio::spawn(async move {
                let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&topic).payload(&payload);
                if let Some(key) = &key {
                    record = record.key(key);
                }
                producer
                    .send(record, Duration::from_secs(60))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            }));
        }
        for send in sends {
            match send.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.metrics.errors.with_label_values(&["publish"]).inc();
                    tracing::error!(error = %e, "publishing a result or dead letter failed");
                }
                Err(e) => tracing::error!(error = %e, "publish task failed"),
            }
        }
        self.metrics.dead_letters.inc_by(dead_count as u64);
    }

    fn commit(&self, offsets: &HashMap<i32, i64>) {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            if let Err(e) =
                list.add_partition_offset(&self.topic, *partition, Offset::Offset(offset + 1))
            {
                tracing::warn!(error = %e, "bad offset");
            }
        }
        // Async: a lost commit only means a replay, which the conditional write absorbs.
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit failed; the batch may be replayed");
        }
    }
}

/// The `saju.analysis.v1` payload (`redpanda/schemas/saju.analysis.v1.schema.json`): the row,
/// the inputs and event position it was computed from, and the document or the error.
fn result_event(outcome: &Outcome, analyzed_at: DateTime<Utc>) -> Vec<u8> {
    let profile = &outcome.profile;
    let inputs = &profile.inputs;
    let mut header = serde_json::json!({
        "profile_id": profile.id,
        "status": if outcome.result.is_ok() { "done" } else { "error" },
        "analysis_version": saju::json::VERSION,
        "analyzed_at": analyzed_at,
        "input": {
            "commit_lsn": profile.position.0,
            "lsn": profile.position.1,
            "birth_date": inputs.birth_date,
            "is_solar": inputs.is_solar,
            "is_leap_month": inputs.is_leap_month,
            "gender": inputs.gender,
            "fingerprint": outcome.fingerprint,
        },
    });
    match &outcome.result {
        Err(e) => {
            header["error"] = serde_json::json!(e.to_string());
            header.to_string().into_bytes()
        }
        Ok(computed) => {
            // Splice the already-serialized document in rather than parsing it again.
            let header = header.to_string();
            let mut out = Vec::with_capacity(header.len() + computed.document.len() + 16);
            out.extend_from_slice(&header.as_bytes()[..header.len() - 1]);
            out.extend_from_slice(b",\"result\":");
            out.extend_from_slice(computed.document.as_bytes());
            out.push(b'}');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_claim_waits_only_for_shared_rows() {
        let claims = RowClaims::default();
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let first = claims.claim(vec![a, b]).await;
        // Disjoint rows: claimed at once.
        let other = tokio::time::timeout(Duration::from_millis(100), claims.claim(vec![c])).await;
        assert!(other.is_ok());
        drop(other);
        // A shared row: waits until the first claim is released.
        let shared = claims.claim(vec![c, b]);
        tokio::pin!(shared);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut shared)
                .await
                .is_err(),
            "claimed a row another batch holds"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), &mut shared)
            .await
            .expect("released rows are claimable");
        assert_eq!(second.ids, vec![c, b]);
        drop(second);
        assert!(claims.lock().is_empty());
    }
}
