//! The consuming pipeline: CDC topic → decision → probing pool → batches → PostgreSQL →
//! result and dead-letter events → offset commit.
//!
//! ```text
//!  read loop ──(permit: --queue-depth)──► rayon pool (--workers) ──► file task ──► batcher
//!   recv, decide                            resolve, read, probe       timeout      UPDATE … UNNEST
//!   skip → finished at once                                                         publish, commit
//! ```
//!
//! Guarantees:
//! - **At least once.** An offset is committed only when it and every offset before it on its
//!   partition are finished: the row written (or the event needed no write) and its events
//!   acknowledged by the broker ([`OffsetTracker`]). A crash replays from there; the write-back
//!   is idempotent and never lets an older event overwrite a newer result.
//! - **Bounded memory.** At most `--queue-depth` files are in flight; when all permits are
//!   taken the read loop stops polling, so a backlog stays in the broker.
//! - **Poison never blocks.** A bad file is recorded on its row (`status = 'error'`) and
//!   dead-lettered; a bad event is dead-lettered; the next events keep flowing. Database and
//!   broker failures are retried, never skipped.
//! - **Shutdown.** Stop reading, let in-flight files finish (each bounded by
//!   `--file-timeout`), flush the last batch, commit offsets synchronously.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus::IntGaugeVec;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, Statistics, TopicPartitionList};
use shared::envelope::ChangeEvent;
use shared::shutdown::Shutdown;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::change::{self, AssetInput, Decision};
use crate::enrichment::{self, Failure, Outcome, Settings};
use crate::events::{self, DeadLetterKind, Original};
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;
use crate::writeback::{self, RowWrite};

/// Consumer context: feeds the lag gauge from librdkafka statistics and, before partitions
/// are revoked, commits their finished prefix and forgets their in-flight offsets.
pub struct AssetContext {
    /// Shared with the pipeline.
    pub tracker: Arc<Mutex<OffsetTracker>>,
    /// The consumed topic (offsets are committed for it only).
    pub topic: String,
    /// `asset_consumer_lag{partition}`.
    pub lag: IntGaugeVec,
}

impl std::fmt::Debug for AssetContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetContext")
            .field("topic", &self.topic)
            .finish()
    }
}

impl ClientContext for AssetContext {
    fn stats(&self, statistics: Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            for (id, partition) in &topic.partitions {
                if *id >= 0 && partition.consumer_lag >= 0 {
                    self.lag
                        .with_label_values(&[&id.to_string()])
                        .set(partition.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for AssetContext {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<i32> = list
                .elements()
                .iter()
                .filter(|e| e.topic() == self.topic)
                .map(|e| e.partition())
                .collect();
            let mut tracker = lock(&self.tracker);
            let mut commit = TopicPartitionList::new();
            for partition in &partitions {
                if let Some(position) = tracker.position(*partition) {
                    let _ = commit.add_partition_offset(
                        &self.topic,
                        *partition,
                        Offset::Offset(position),
                    );
                }
            }
            if commit.count() > 0 {
                if let Err(e) = base.commit(&commit, CommitMode::Sync) {
                    tracing::warn!(error = %e, "commit before revocation failed; messages may be replayed");
                }
            }
            tracker.revoke(&partitions);
            self.lag.reset();
            tracing::info!(partitions = partitions.len(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            tracing::info!(partitions = list.count(), "partitions assigned");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything the pipeline's tasks share.
pub struct Pipeline {
    /// The group member.
    pub consumer: Arc<StreamConsumer<AssetContext>>,
    /// Shared with the consumer context.
    pub tracker: Arc<Mutex<OffsetTracker>>,
    /// Results and dead letters.
    pub producer: FutureProducer,
    /// Where results are written.
    pub pool: PgPool,
    /// The probing pool.
    pub probe_pool: Arc<rayon::ThreadPool>,
    /// Root and limits.
    pub settings: Arc<Settings>,
    /// Metric handles.
    pub metrics: Metrics,
    /// The consumed topic.
    pub topic: String,
    /// Its dead-letter topic.
    pub dlq_topic: String,
    /// `assets.enriched.v1`.
    pub enriched_topic: String,
    /// Consumer group (recorded in dead letters).
    pub group: String,
    /// `--batch-size`.
    pub batch_size: usize,
    /// `--flush-interval`.
    pub flush_interval: Duration,
    /// `--file-timeout`.
    pub file_timeout: Duration,
    /// `--queue-depth`.
    pub queue_depth: usize,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .finish()
    }
}

/// Work handed to the batcher.
enum Item {
    /// A probed (or failed) file.
    File {
        original: Original,
        outcome: Box<Outcome>,
    },
    /// An event that cannot be used.
    DeadLetter {
        original: Original,
        kind: DeadLetterKind,
        message: String,
    },
}

impl Item {
    fn position(&self) -> (i32, i64) {
        let original = match self {
            Item::File { original, .. } | Item::DeadLetter { original, .. } => original,
        };
        (original.partition, original.offset)
    }
}

/// A queue slot: the permit, and the depth gauge kept in step with it.
struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Pipeline {
    /// Runs until `shutdown`, then drains as described in the module docs.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel(self.batch_size.max(16));
        let batcher = tokio::spawn(self.clone().batch_loop(rx, shutdown.clone()));
        let read = self.read_loop(tx, &shutdown).await;
        let batched = batcher.await;
        read?;
        batched??;
        let mut commit = TopicPartitionList::new();
        for (partition, position) in lock(&self.tracker).take_commits() {
            commit.add_partition_offset(&self.topic, partition, Offset::Offset(position))?;
        }
        if commit.count() > 0 {
            if let Err(e) = self.consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(error = %e, "final offset commit failed; messages may be replayed");
            }
        }
        Ok(())
    }

    async fn read_loop(&self, tx: mpsc::Sender<Item>, shutdown: &Shutdown) -> anyhow::Result<()> {
        let slots = Arc::new(Semaphore::new(self.queue_depth));
        let span = tracing::info_span!("read_loop", topic = %self.topic, group = %self.group);
        let _enter = span.enter();
        loop {
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                message = self.consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    if !shutdown.sleep(Duration::from_millis(200)).await {
                        break;
                    }
                    continue;
                }
            };
            let original = Original::from_message(&message);
            drop(message);
            lock(&self.tracker).begin(original.partition, original.offset);
            let decision = match original.value.as_deref() {
                None => Decision::Skip("skip_other"),
                Some(payload) => match ChangeEvent::from_slice(payload) {
                    Ok(event) => change::decide(&event),
                    Err(e) => {
                        self.metrics.events.with_label_values(&["malformed"]).inc();
                        tracing::warn!(partition = original.partition, offset = original.offset, error = %e, "malformed event");
                        let message = format!("not a change envelope: {e}");
                        if tx
                            .send(Item::DeadLetter {
                                original,
                                kind: DeadLetterKind::Decode,
                                message,
                            })
                            .await
                            .is_err()
                        {
                            break;
                        }
                        continue;
                    }
                },
            };
            match decision {
                Decision::Skip(reason) => {
                    self.metrics.events.with_label_values(&[reason]).inc();
                    lock(&self.tracker).finish(original.partition, original.offset);
                }
                Decision::Malformed(message) => {
                    self.metrics.events.with_label_values(&["malformed"]).inc();
                    tracing::warn!(partition = original.partition, offset = original.offset, %message, "unusable event");
                    if tx
                        .send(Item::DeadLetter {
                            original,
                            kind: DeadLetterKind::InvalidInput,
                            message,
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Decision::Enrich(input) => {
                    self.metrics.events.with_label_values(&["enrich"]).inc();
                    let permit = tokio::select! {
                        biased;
                        // Not started: stays uncommitted and is redelivered.
                        _ = shutdown.cancelled() => break,
                        permit = slots.clone().acquire_owned() => permit?,
                    };
                    self.metrics.queue_depth.inc();
                    let slot = Arc::new(Slot {
                        _permit: permit,
                        gauge: self.metrics.queue_depth.clone(),
                    });
                    self.spawn_file(input, original, slot, tx.clone());
                }
            }
        }
        // Every file task holds a sender: the batcher ends once they all have delivered.
        drop(tx);
        Ok(())
    }

    /// Probes one file on the pool; a task waits for it (up to the timeout) and hands the
    /// outcome to the batcher. The slot is released when both are done, so a timed-out probe
    /// still occupies its place in the queue until it really ends.
    fn spawn_file(
        &self,
        input: AssetInput,
        original: Original,
        slot: Arc<Slot>,
        tx: mpsc::Sender<Item>,
    ) {
        let deadline = Instant::now() + self.file_timeout;
        let (done_tx, done_rx) = oneshot::channel();
        let settings = self.settings.clone();
        let job_input = input.clone();
        let job_slot = slot.clone();
        self.probe_pool.spawn(move || {
            let outcome = enrichment::enrich(job_input, &settings, deadline);
            let _ = done_tx.send(outcome);
            drop(job_slot);
        });
        let timeout = self.file_timeout;
        tokio::spawn(async move {
            let outcome = match tokio::time::timeout_at(deadline.into(), done_rx).await {
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
            };
            let _ = tx
                .send(Item::File {
                    original,
                    outcome: Box::new(outcome),
                })
                .await;
            drop(slot);
        });
    }

    async fn batch_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Item>,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let mut batch: Vec<Item> = Vec::with_capacity(self.batch_size);
        let mut opened = Instant::now();
        loop {
            let wake = if batch.is_empty() {
                Instant::now() + self.flush_interval
            } else {
                opened + self.flush_interval
            };
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => {
                        if batch.is_empty() {
                            opened = Instant::now();
                        }
                        batch.push(item);
                        if batch.len() >= self.batch_size {
                            self.flush(std::mem::take(&mut batch), &shutdown).await?;
                        }
                    }
                    None => {
                        if !batch.is_empty() {
                            self.flush(std::mem::take(&mut batch), &shutdown).await?;
                        }
                        return Ok(());
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    if batch.is_empty() {
                        // Skipped events finish without a batch: commit their offsets too.
                        self.commit_async();
                    } else {
                        self.flush(std::mem::take(&mut batch), &shutdown).await?;
                    }
                }
            }
        }
    }

    /// Writes a batch, publishes its events, marks its offsets finished and commits.
    async fn flush(&self, batch: Vec<Item>, shutdown: &Shutdown) -> anyhow::Result<()> {
        let started = Instant::now();
        let first = batch.first().map(Item::position);
        let span = tracing::info_span!(
            "batch",
            size = batch.len(),
            first_partition = first.map(|f| f.0),
            first_offset = first.map(|f| f.1)
        );
        let _enter = span.enter();

        // The newest event of each asset is written; older ones in the same batch are stale.
        let mut newest: HashMap<uuid::Uuid, usize> = HashMap::new();
        let mut documents: Vec<Option<serde_json::Value>> = Vec::with_capacity(batch.len());
        for (i, item) in batch.iter().enumerate() {
            if let Item::File { outcome, .. } = item {
                let position = outcome.input.position;
                newest
                    .entry(outcome.input.id)
                    .and_modify(|j| {
                        if let Item::File { outcome: other, .. } = &batch[*j] {
                            if other.input.position <= position {
                                *j = i;
                            }
                        }
                    })
                    .or_insert(i);
                documents.push(Some(enrichment::document(outcome)));
            } else {
                documents.push(None);
            }
        }
        let mut rows = Vec::with_capacity(newest.len());
        let mut row_items = Vec::with_capacity(newest.len());
        for &i in newest.values() {
            let (Item::File { outcome, .. }, Some(document)) = (&batch[i], &documents[i]) else {
                continue;
            };
            let facts = outcome.result.as_ref().ok();
            let to_i32 = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
            rows.push(RowWrite {
                id: outcome.input.id,
                file_path: outcome.input.file_path.clone(),
                file_name: outcome.input.file_name.clone(),
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
            row_items.push(i);
        }

        let written = self.write_with_retry(&rows, shutdown).await?;
        let written: HashMap<uuid::Uuid, writeback::Written> =
            written.into_iter().map(|w| (w.id, w)).collect();
        self.metrics.batch_rows.observe(written.len() as f64);

        let now = Utc::now();
        let mut messages: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
        for (i, item) in batch.iter().enumerate() {
            match item {
                Item::File { original, outcome } => {
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
                    let is_written = newest.get(&outcome.input.id) == Some(&i)
                        && written.contains_key(&outcome.input.id);
                    let outcome_label = match (&outcome.result, is_written) {
                        (_, false) => "stale",
                        (Ok(_), true) => "done",
                        (Err(failure), true) => failure.kind(),
                    };
                    self.metrics
                        .files_processed
                        .with_label_values(&[label, outcome_label])
                        .inc();
                    if !is_written {
                        continue;
                    }
                    let (Some(row), Some(document)) =
                        (written.get(&outcome.input.id), &documents[i])
                    else {
                        continue;
                    };
                    let key = events::asset_key(&outcome.input.id);
                    messages.push((
                        self.enriched_topic.clone(),
                        key.clone(),
                        events::enriched(outcome, row, document),
                    ));
                    if let Err(failure) = &outcome.result {
                        let kind = if matches!(
                            failure,
                            Failure::File(crate::resolve::FileError::Refused(_))
                        ) {
                            DeadLetterKind::InvalidInput
                        } else {
                            DeadLetterKind::Processing
                        };
                        let value = events::dead_letter(
                            original,
                            kind,
                            failure.kind(),
                            &failure.to_string(),
                            Some(&outcome.input.id),
                            &self.group,
                            now,
                        );
                        messages.push((
                            self.dlq_topic.clone(),
                            original.key.clone().unwrap_or(key),
                            value,
                        ));
                    }
                }
                Item::DeadLetter {
                    original,
                    kind,
                    message,
                } => {
                    let value = events::dead_letter(
                        original,
                        *kind,
                        kind_reason(*kind),
                        message,
                        None,
                        &self.group,
                        now,
                    );
                    messages.push((
                        self.dlq_topic.clone(),
                        original.key.clone().unwrap_or_default(),
                        value,
                    ));
                }
            }
        }
        let dead_letters = messages
            .iter()
            .filter(|(topic, ..)| *topic == self.dlq_topic)
            .count();
        self.publish_with_retry(&messages, shutdown).await?;
        self.metrics.dead_letters.inc_by(dead_letters as u64);

        {
            let mut tracker = lock(&self.tracker);
            for item in &batch {
                let (partition, offset) = item.position();
                tracker.finish(partition, offset);
            }
        }
        self.commit_async();
        self.metrics
            .flush_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            written = written.len(),
            events = messages.len(),
            "batch flushed"
        );
        Ok(())
    }

    async fn write_with_retry(
        &self,
        rows: &[RowWrite],
        shutdown: &Shutdown,
    ) -> anyhow::Result<Vec<writeback::Written>> {
        let mut attempt = 0u32;
        loop {
            match writeback::write(&self.pool, rows).await {
                Ok(written) => return Ok(written),
                Err(e) => {
                    attempt += 1;
                    self.metrics.retries.with_label_values(&["database"]).inc();
                    tracing::warn!(error = %e, attempt, rows = rows.len(), "batch write failed; retrying");
                    if shutdown.is_triggered() && attempt >= 3 {
                        anyhow::bail!(
                            "batch write still failing at shutdown (offsets left uncommitted): {e}"
                        );
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }

    async fn publish_with_retry(
        &self,
        messages: &[(String, Vec<u8>, Vec<u8>)],
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let deliveries: Vec<_> = pending
                .iter()
                .map(|&i| {
                    let (topic, key, value) = &messages[i];
                    let record = FutureRecord::to(topic).key(key).payload(value);
                    let producer = self.producer.clone();
                    async move { (i, producer.send(record, Duration::from_secs(30)).await) }
                })
                .collect();
            let results = futures::future::join_all(deliveries).await;
            pending = results
                .into_iter()
                .filter_map(|(i, result)| match result {
                    Ok(_) => None,
                    Err((e, _)) => {
                        tracing::warn!(error = %e, topic = %messages[i].0, "publish failed; retrying");
                        Some(i)
                    }
                })
                .collect();
            if !pending.is_empty() {
                attempt += 1;
                self.metrics.retries.with_label_values(&["publish"]).inc();
                if shutdown.is_triggered() && attempt >= 3 {
                    anyhow::bail!(
                        "publishing still failing at shutdown (offsets left uncommitted)"
                    );
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Ok(())
    }

    fn commit_async(&self) {
        let commits = lock(&self.tracker).take_commits();
        if commits.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (partition, position) in commits {
            if let Err(e) =
                list.add_partition_offset(&self.topic, partition, Offset::Offset(position))
            {
                tracing::warn!(error = %e, partition, "bad offset");
            }
        }
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit failed; messages may be replayed");
        }
    }
}

fn kind_reason(kind: DeadLetterKind) -> &'static str {
    match kind {
        DeadLetterKind::Decode => "malformed_event",
        DeadLetterKind::InvalidInput => "invalid_row",
        DeadLetterKind::Processing => "processing",
        DeadLetterKind::TooLarge => "too_large",
    }
}

/// 100 ms doubling to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}
