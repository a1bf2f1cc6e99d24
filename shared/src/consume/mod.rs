//! The consumer runtime: what the analyzer and the asset worker both run, written once.
//!
//! ```text
//!  Source ──recv──► decide ──► prepare (≤ prepare_concurrency) ──► batch (size or time)
//!   (Kafka)          skip: finished at once                          │
//!                                                                    ▼
//!  commit ◄── finish offsets ◄── publish results + dead letters ◄── write (≤ write_concurrency)
//!   contiguous prefix             until acknowledged, in batch order   rows held elsewhere: deferred
//! ```
//!
//! A worker supplies only its domain step ([`Step`]): what a message asks for (`decide`), the
//! per-message work that may run concurrently (`prepare`: read a file, fetch a row), and the
//! batched write-back with the events it produces (`write`). Everything about delivery lives
//! here.
//!
//! # Delivery guarantee
//!
//! This is the guarantee downstream consumers of the result and dead-letter topics get; it is
//! enforced in this module and nowhere else.
//!
//! 1. **At least once.** An offset is committed only when it and every offset before it on its
//!    partition are *finished* ([`offsets::OffsetBook`]): the message needed no work, or its
//!    write committed in PostgreSQL **and** every output it produced (result event, dead
//!    letter) was acknowledged by the broker (`acks=all`). A crash at any point replays from
//!    the last commit; the domain's writes are idempotent and a replayed input whose result is
//!    already in the row publishes its event again. Outputs are published until acknowledged:
//!    a failed publish is retried with backoff and never skipped.
//! 2. **Per-key order.** Batches publish one at a time, in the order they were closed, and a
//!    batch's events are all acknowledged before the next batch's are sent: the events of one
//!    row reach a topic in the order its writes committed (a replay may repeat older ones).
//! 3. **Poison never blocks.** Tombstones are skipped (counted). Input the domain cannot use
//!    is dead-lettered (and recorded on its row by the domain when the row is known); a
//!    dead letter too large for the broker is cut to fit ([`crate::dlq::fit`]); a batch the
//!    database refuses as a whole is split until the refused message is found and
//!    dead-lettered alone.
//! 4. **Never a deadlock with the application.** Rows another transaction holds are not
//!    waited for: the domain's write skips them ([`Settled::Deferred`]) and the runtime retries
//!    them shortly after, so a worker never holds row locks while waiting for others.
//! 5. **Outages cost a pause, not the group membership.** Database and broker failures are
//!    retried with one backoff policy ([`crate::backoff::Backoff`]). While messages pile up
//!    unfinished (`max_in_flight`), consumption is *paused*, not stopped: the consumer keeps
//!    polling, so the group does not evict it however long the outage lasts. A producer whose
//!    acknowledgements stop is recreated. `/readyz` reports the database and the broker as they
//!    are ([`crate::health::Health`] components `postgres`, `kafka`, `write`, `publish`).
//! 6. **Rebalances and shutdown commit what is finished.** Revoked partitions commit their
//!    finished prefix before they go; on shutdown the runtime stops receiving, finishes what it
//!    holds within `shutdown_timeout`, commits, and returns — whatever is stuck.

pub mod kafka;
mod metrics;
pub mod offsets;
mod publish;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

pub use metrics::*;
pub use offsets::{OffsetBook, TopicPartition};
pub use publish::{until_acknowledged, Publishing, Record, RecordKind, SendError, Sink};

use crate::backoff::Backoff;
use crate::dlq;
use crate::health::Health;
use crate::shutdown::Shutdown;

/// One consumed message, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Topic it came from.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Broker timestamp, if any.
    pub timestamp_ms: Option<i64>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
}

/// Where messages come from. Implemented for Kafka by [`kafka::KafkaSource`], and by a fake
/// in this module's tests.
pub trait Source: Send + Sync + 'static {
    /// The next message. Must be cancellation safe (the runtime selects on it).
    fn recv(&self) -> impl Future<Output = Result<Message, String>> + Send + '_;
    /// The book of offsets in flight, shared with the source's rebalance handling.
    fn book(&self) -> &OffsetBook;
    /// Commits positions (next offsets to consume); `sync` waits for the broker.
    fn commit(&self, positions: &BTreeMap<TopicPartition, i64>, sync: bool) -> Result<(), String>;
    /// Stops fetching from every assigned partition, while the group membership stays alive.
    fn pause(&self) -> Result<(), String>;
    /// Undoes [`Source::pause`].
    fn resume(&self) -> Result<(), String>;
    /// Whether the broker answers (for `/readyz`); the `Ok` text is shown there.
    fn check(&self) -> impl Future<Output = Result<String, String>> + Send + '_;
}

/// What one message asks for.
#[derive(Debug)]
pub enum Decision<W> {
    /// Nothing to do; the reason is a metric label (declared in [`Step::SKIP_REASONS`]).
    Skip(&'static str),
    /// Work to prepare and write.
    Work(W),
    /// Unusable: dead-letter it.
    DeadLetter(Letter),
}

/// What preparing one message gave.
#[derive(Debug)]
pub enum Prepared<R> {
    /// Ready for the batched write.
    Ready(R),
    /// Nothing to do after all (e.g. the row is gone).
    Skip(&'static str),
    /// Unusable: dead-letter it.
    DeadLetter(Letter),
}

/// A message in a batch: what it was, and the domain's item for it.
#[derive(Debug)]
pub struct Entry<R> {
    /// The consumed message (for dead letters and offsets).
    pub message: Message,
    /// The domain's prepared item.
    pub item: R,
    /// Times it was deferred (rows held by another transaction).
    pub deferrals: u32,
}

/// What the write did for one entry of a batch.
#[derive(Debug)]
pub enum Settled {
    /// Written (or nothing to write); these outputs are to be published.
    Done(Vec<Output>),
    /// Its row is held by another transaction: retry shortly.
    Deferred,
}

/// An event a write produced.
#[derive(Debug)]
pub enum Output {
    /// A result event on the runtime's result topic.
    Result {
        /// Message key (the row's id, as JSON).
        key: Vec<u8>,
        /// Message value.
        payload: Vec<u8>,
    },
    /// A dead letter for the entry's message.
    DeadLetter(Letter),
}

/// Why a message is dead-lettered, in the domain's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    /// The schema's broad kind.
    pub kind: dlq::Kind,
    /// The domain's specific reason (a metric-label-like word: `out_of_range`, `missing`…).
    pub reason: String,
    /// Human-readable message; never contains secrets or file contents.
    pub message: String,
    /// The row it is about, when known: `("profile_id", "<uuid>")`.
    pub row: Option<(&'static str, String)>,
}

/// Why a batch write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The database is unreachable, restarting, or the statement was cancelled: retried.
    #[error("{0}")]
    Transient(String),
    /// The database refused the statement because of the data (a value it cannot store):
    /// the batch is split until the refused message is found and dead-lettered.
    #[error("{0}")]
    Refused(String),
}

impl WriteError {
    /// Classifies a database error: data exceptions and integrity violations (SQLSTATE
    /// classes 22 and 23) are refusals, everything else is retried.
    pub fn from_sqlx(e: &sqlx::Error) -> Self {
        let code = e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        match code.as_deref() {
            Some(code) if code.starts_with("22") || code.starts_with("23") => {
                WriteError::Refused(e.to_string())
            }
            _ => WriteError::Transient(e.to_string()),
        }
    }
}

/// A worker's domain step.
///
/// Contract: `decide` is cheap and synchronous (it runs on the receiving loop); `prepare` may
/// run concurrently for many messages and never fails (failures are [`Prepared::DeadLetter`]
/// or an item that records the error); `write` is idempotent — written again after a crash,
/// it changes nothing that is already right and returns the same outputs — and returns one
/// [`Settled`] per entry, in order.
pub trait Step: Send + Sync + 'static {
    /// What `decide` hands to `prepare`.
    type Work: Send + 'static;
    /// What `prepare` hands to `write`.
    type Ready: Send + Sync + 'static;

    /// Every reason `decide` and `prepare` may skip with (their counters start at 0).
    const SKIP_REASONS: &'static [&'static str];

    /// What `message` (never a tombstone) asks for.
    fn decide(&self, message: &Message) -> Decision<Self::Work>;

    /// Per-message work before the batch (reading a file, fetching a row).
    fn prepare(&self, work: Self::Work) -> impl Future<Output = Prepared<Self::Ready>> + Send;

    /// Writes a batch; one [`Settled`] per entry, in order.
    fn write<'a>(
        &'a self,
        batch: &'a [Entry<Self::Ready>],
    ) -> impl Future<Output = Result<Vec<Settled>, WriteError>> + Send + 'a;

    /// Whether the step's own dependencies answer (the database), for `/readyz`.
    fn check(&self) -> impl Future<Output = Result<String, String>> + Send {
        async { Ok("ok".to_owned()) }
    }
}

/// How the runtime runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Worker name recorded in dead letters (`analyzer`).
    pub worker: &'static str,
    /// Consumer group, recorded in dead letters.
    pub group: String,
    /// Topic of the result events.
    pub result_topic: Arc<str>,
    /// Topic of the dead letters.
    pub dlq_topic: Arc<str>,
    /// Messages per batch at most.
    pub batch_size: usize,
    /// Longest time a message waits in an open batch.
    pub flush_interval: Duration,
    /// Batches written at once.
    pub write_concurrency: usize,
    /// Messages prepared at once.
    pub prepare_concurrency: usize,
    /// Unfinished messages at most before consumption pauses (resumes at half).
    pub max_in_flight: usize,
    /// Longest drain at shutdown before unfinished work is abandoned (and replayed later).
    pub shutdown_timeout: Duration,
    /// Largest message the broker accepts: dead letters are cut to fit.
    pub max_message_bytes: usize,
    /// Retry policy for the database and the broker.
    pub backoff: Backoff,
    /// Retry policy for rows held by another transaction.
    pub defer_backoff: Backoff,
    /// How often `/readyz` components are re-checked.
    pub health_interval: Duration,
    /// A crash to inject, for tests of the guarantee (`PIPELINE_FAULT`).
    pub fault: Option<Fault>,
}

/// A crash injected at a point of the runtime, so that tests can prove what survives it.
/// Read from the environment variable `PIPELINE_FAULT`; never set it in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `abort-after-write`: abort the process (as SIGKILL would end it) right after the first
    /// batch with events to publish (results or dead letters) was written, before any of them
    /// is published.
    AbortAfterWrite,
}

impl Fault {
    /// The fault named by `PIPELINE_FAULT`, if any.
    pub fn from_env() -> Option<Self> {
        match std::env::var("PIPELINE_FAULT").ok()?.as_str() {
            "abort-after-write" => Some(Fault::AbortAfterWrite),
            other => {
                tracing::warn!(fault = other, "unknown PIPELINE_FAULT ignored");
                None
            }
        }
    }
}

impl Settings {
    /// Defaults for a worker; callers override from their flags.
    pub fn new(worker: &'static str, group: &str, result_topic: &str, dlq_topic: &str) -> Self {
        Self {
            worker,
            group: group.to_owned(),
            result_topic: Arc::from(result_topic),
            dlq_topic: Arc::from(dlq_topic),
            batch_size: 1000,
            flush_interval: Duration::from_millis(20),
            write_concurrency: 1,
            prepare_concurrency: usize::MAX,
            max_in_flight: 10_000,
            shutdown_timeout: Duration::from_secs(30),
            max_message_bytes: 1_000_000,
            backoff: Backoff::default(),
            defer_backoff: crate::db::RECHECK_BACKOFF,
            health_interval: Duration::from_secs(5),
            fault: Fault::from_env(),
        }
    }
}

/// Why the runtime stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A write or publish task panicked (a bug): nothing past it was committed.
    #[error("a {stage} task failed: {source}")]
    Task {
        /// `write` or `publish`.
        stage: &'static str,
        /// The panic.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The step broke its contract (a bug).
    #[error("the step returned {got} outcomes for a batch of {expected}")]
    Contract {
        /// Entries in the batch.
        expected: usize,
        /// Outcomes returned.
        got: usize,
    },
}

/// What a drain left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Messages still unfinished when the shutdown deadline passed (replayed by the next
    /// owner of their partitions).
    pub abandoned: usize,
}

/// State shared with the write and publish tasks.
struct Context<S, K> {
    step: Arc<S>,
    sink: Arc<K>,
    settings: Settings,
    metrics: Metrics,
    health: Health,
}

/// A closed batch.
struct Batch<R> {
    /// Close order: batches publish in this order.
    seq: u64,
    entries: Vec<Entry<R>>,
    letters: Vec<(Message, Letter)>,
    closed_at: Instant,
}

/// A written batch, ready to publish: outputs per message.
struct Written {
    seq: u64,
    done: Vec<(Message, Vec<Output>)>,
    closed_at: Instant,
    size: usize,
}

type Writing<R> = JoinHandle<(Batch<R>, Vec<Settled>)>;
type Preparing<R> = Pin<Box<dyn Future<Output = (Message, Prepared<R>)> + Send>>;

/// Runs the consumer runtime until `shutdown`, then drains (see the module docs).
pub async fn run<S, Src, K>(
    step: Arc<S>,
    source: Arc<Src>,
    sink: Arc<K>,
    settings: Settings,
    metrics: Metrics,
    health: Health,
    shutdown: Shutdown,
) -> Result<Report, RuntimeError>
where
    S: Step,
    Src: Source,
    K: Sink,
{
    health.set("write", true, "no write has failed");
    health.set("publish", true, "no publish has failed");
    let context = Arc::new(Context {
        step,
        sink,
        settings,
        metrics,
        health,
    });
    let probes = tokio::spawn(probe_loop(
        Arc::clone(&context),
        Arc::clone(&source),
        shutdown.clone(),
    ));
    let mut engine = Engine::new(Arc::clone(&context), source);
    let result = engine.run(&shutdown).await;
    probes.abort();
    result
}

/// Re-checks the broker and the database for `/readyz`.
async fn probe_loop<S: Step, Src: Source, K: Sink>(
    context: Arc<Context<S, K>>,
    source: Arc<Src>,
    shutdown: Shutdown,
) {
    loop {
        match source.check().await {
            Ok(detail) => context.health.set("kafka", true, detail),
            Err(e) => context.health.set("kafka", false, e),
        }
        match context.step.check().await {
            Ok(detail) => context.health.set("postgres", true, detail),
            Err(e) => context.health.set("postgres", false, e),
        }
        if !shutdown.sleep(context.settings.health_interval).await {
            return;
        }
    }
}

struct Engine<S: Step, Src, K> {
    context: Arc<Context<S, K>>,
    source: Arc<Src>,
    /// Decided, waiting for a prepare slot.
    waiting: VecDeque<(Message, S::Work)>,
    preparing: FuturesUnordered<Preparing<S::Ready>>,
    /// The open batch and when it opened.
    open: Vec<Entry<S::Ready>>,
    open_letters: Vec<(Message, Letter)>,
    opened_at: Option<Instant>,
    /// Entries whose rows were held elsewhere, with the time of their next try.
    deferred: Vec<(Instant, Entry<S::Ready>)>,
    closed: VecDeque<Batch<S::Ready>>,
    writing: FuturesUnordered<Writing<S::Ready>>,
    /// Written batches by close order, waiting for their turn to publish.
    written: BTreeMap<u64, Written>,
    publishing: Option<JoinHandle<Written>>,
    next_seq: u64,
    next_publish: u64,
    /// Messages received and not finished (skips finish at once and never count).
    held: usize,
    paused: bool,
    /// Receiving stops until then after a consumer error.
    recv_after: Instant,
    recv_errors: u32,
    last_commit: Instant,
}

impl<S: Step, Src: Source, K: Sink> Engine<S, Src, K> {
    fn new(context: Arc<Context<S, K>>, source: Arc<Src>) -> Self {
        let now = Instant::now();
        Self {
            context,
            source,
            waiting: VecDeque::new(),
            preparing: FuturesUnordered::new(),
            open: Vec::new(),
            open_letters: Vec::new(),
            opened_at: None,
            deferred: Vec::new(),
            closed: VecDeque::new(),
            writing: FuturesUnordered::new(),
            written: BTreeMap::new(),
            publishing: None,
            next_seq: 0,
            next_publish: 0,
            held: 0,
            paused: false,
            recv_after: now,
            recv_errors: 0,
            last_commit: now,
        }
    }

    fn settings(&self) -> &Settings {
        &self.context.settings
    }

    fn metrics(&self) -> &Metrics {
        &self.context.metrics
    }

    async fn run(&mut self, shutdown: &Shutdown) -> Result<Report, RuntimeError> {
        let mut drain_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            self.advance(now, drain_deadline.is_some());
            if drain_deadline.is_some() && self.is_idle() {
                break;
            }
            if let Some(deadline) = drain_deadline {
                if now >= deadline {
                    let abandoned = self.held;
                    tracing::warn!(
                        abandoned,
                        "shutdown timeout passed; unfinished messages stay uncommitted and will be replayed"
                    );
                    self.abandon();
                    self.commit(true);
                    return Ok(Report { abandoned });
                }
            }
            let wake = self.next_wake(now, drain_deadline);
            let receiving = drain_deadline.is_none() && now >= self.recv_after;
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if drain_deadline.is_none() => {
                    tracing::info!(held = self.held, "draining");
                    drain_deadline = Some(Instant::now() + self.settings().shutdown_timeout);
                }
                published = async { self.publishing.as_mut().expect("guarded").await },
                    if self.publishing.is_some() =>
                {
                    self.publishing = None;
                    let written = published.map_err(|source| RuntimeError::Task { stage: "publish", source })?;
                    self.finish_published(written);
                }
                Some(done) = self.writing.next(), if !self.writing.is_empty() => {
                    let (batch, result) = done.map_err(|source| RuntimeError::Task { stage: "write", source })?;
                    self.settle(batch, result)?;
                }
                Some((message, prepared)) = self.preparing.next(), if !self.preparing.is_empty() => {
                    self.add_prepared(message, prepared);
                }
                _ = tokio::time::sleep_until(wake) => {}
                received = self.source.recv(), if receiving => match received {
                    Ok(message) => {
                        self.recv_errors = 0;
                        self.receive(message);
                    }
                    Err(e) => {
                        self.recv_errors += 1;
                        self.metrics().retry("consume");
                        tracing::warn!(error = %e, "consumer error");
                        self.recv_after = Instant::now() + self.settings().backoff.delay(self.recv_errors);
                    }
                },
            }
        }
        self.commit(true);
        tracing::info!("drained; offsets committed");
        Ok(Report::default())
    }

    /// Moves work along every stage that has room; closes batches that are due.
    fn advance(&mut self, now: Instant, draining: bool) {
        while self.preparing.len() < self.settings().prepare_concurrency.max(1) {
            let Some((message, work)) = self.waiting.pop_front() else {
                break;
            };
            let step = Arc::clone(&self.context.step);
            self.preparing.push(Box::pin(async move {
                let prepared = step.prepare(work).await;
                (message, prepared)
            }));
        }
        // Deferred entries whose time has come join the open batch.
        let mut i = 0;
        while i < self.deferred.len() {
            if self.deferred[i].0 <= now {
                let (_, entry) = self.deferred.swap_remove(i);
                self.push_entry(entry, now);
            } else {
                i += 1;
            }
        }
        let open_len = self.open.len() + self.open_letters.len();
        let due = self
            .opened_at
            .is_some_and(|at| now >= at + self.settings().flush_interval);
        let nothing_coming = draining && self.waiting.is_empty() && self.preparing.is_empty();
        if open_len > 0 && (open_len >= self.settings().batch_size || due || nothing_coming) {
            self.close_open(now);
        }
        while self.writing.len() < self.settings().write_concurrency.max(1) {
            let Some(batch) = self.closed.pop_front() else {
                break;
            };
            self.start_write(batch);
        }
        if self.publishing.is_none() {
            if let Some(written) = self.written.remove(&self.next_publish) {
                self.next_publish += 1;
                self.start_publish(written);
            }
        }
        self.flow_control();
        if now >= self.last_commit + Duration::from_secs(1) {
            self.commit(false);
        }
    }

    fn next_wake(&self, now: Instant, drain_deadline: Option<Instant>) -> Instant {
        let mut wake = now + Duration::from_secs(1);
        if let Some(at) = self.opened_at {
            wake = wake.min(at + self.settings().flush_interval);
        }
        if let Some(at) = self.deferred.iter().map(|(at, _)| *at).min() {
            wake = wake.min(at);
        }
        if now < self.recv_after {
            wake = wake.min(self.recv_after);
        }
        if let Some(at) = drain_deadline {
            wake = wake.min(at);
        }
        wake.max(now)
    }

    fn is_idle(&self) -> bool {
        self.waiting.is_empty()
            && self.preparing.is_empty()
            && self.open.is_empty()
            && self.open_letters.is_empty()
            && self.deferred.is_empty()
            && self.closed.is_empty()
            && self.writing.is_empty()
            && self.written.is_empty()
            && self.publishing.is_none()
    }

    fn abandon(&mut self) {
        for task in self.writing.iter() {
            task.abort();
        }
        if let Some(task) = self.publishing.take() {
            task.abort();
        }
    }

    fn receive(&mut self, message: Message) {
        let book = self.source.book();
        book.begin(&message.topic, message.partition, message.offset);
        if message.payload.is_none() {
            self.metrics().skip(SKIP_TOMBSTONE);
            book.finish(&message.topic, message.partition, message.offset);
            return;
        }
        match self.context.step.decide(&message) {
            Decision::Skip(reason) => {
                self.metrics().skip(reason);
                book.finish(&message.topic, message.partition, message.offset);
            }
            Decision::Work(work) => {
                self.hold();
                self.waiting.push_back((message, work));
            }
            Decision::DeadLetter(letter) => {
                self.hold();
                self.push_letter(message, letter, Instant::now());
            }
        }
        if self.paused {
            // A partition assigned while paused starts unpaused: pause it too.
            if let Err(e) = self.source.pause() {
                tracing::warn!(error = %e, "pausing consumption failed");
            }
        }
    }

    fn hold(&mut self) {
        self.held += 1;
        self.metrics().in_flight.set(self.held as i64);
    }

    fn release(&mut self, n: usize) {
        self.held = self.held.saturating_sub(n);
        self.metrics().in_flight.set(self.held as i64);
    }

    fn add_prepared(&mut self, message: Message, prepared: Prepared<S::Ready>) {
        let now = Instant::now();
        match prepared {
            Prepared::Ready(item) => {
                let entry = Entry {
                    message,
                    item,
                    deferrals: 0,
                };
                self.push_entry(entry, now);
            }
            Prepared::Skip(reason) => {
                self.metrics().skip(reason);
                self.source
                    .book()
                    .finish(&message.topic, message.partition, message.offset);
                self.release(1);
            }
            Prepared::DeadLetter(letter) => self.push_letter(message, letter, now),
        }
    }

    fn push_entry(&mut self, entry: Entry<S::Ready>, now: Instant) {
        self.open.push(entry);
        self.opened(now);
    }

    fn push_letter(&mut self, message: Message, letter: Letter, now: Instant) {
        self.open_letters.push((message, letter));
        self.opened(now);
    }

    fn opened(&mut self, now: Instant) {
        if self.opened_at.is_none() {
            self.opened_at = Some(now);
        }
        if self.open.len() + self.open_letters.len() >= self.settings().batch_size {
            self.close_open(now);
        }
    }

    fn close_open(&mut self, now: Instant) {
        let batch = Batch {
            seq: self.next_seq,
            entries: std::mem::take(&mut self.open),
            letters: std::mem::take(&mut self.open_letters),
            closed_at: now,
        };
        self.next_seq += 1;
        self.opened_at = None;
        self.closed.push_back(batch);
    }

    fn start_write(&mut self, batch: Batch<S::Ready>) {
        let context = Arc::clone(&self.context);
        let span = tracing::info_span!(
            "batch",
            seq = batch.seq,
            entries = batch.entries.len(),
            letters = batch.letters.len(),
        );
        self.writing.push(tokio::spawn(
            async move {
                let result = if batch.entries.is_empty() {
                    Vec::new()
                } else {
                    write_until_done(&context, &batch.entries).await
                };
                (batch, result)
            }
            .instrument(span),
        ));
    }

    /// A batch's write finished: deferred entries wait for their retry, the rest is queued
    /// for publishing in close order.
    fn settle(
        &mut self,
        batch: Batch<S::Ready>,
        settled: Vec<Settled>,
    ) -> Result<(), RuntimeError> {
        let Batch {
            seq,
            entries,
            letters,
            closed_at,
        } = batch;
        let size = entries.len() + letters.len();
        if settled.len() != entries.len() {
            return Err(RuntimeError::Contract {
                expected: entries.len(),
                got: settled.len(),
            });
        }
        if self.settings().fault == Some(Fault::AbortAfterWrite)
            && (!letters.is_empty()
                || settled
                    .iter()
                    .any(|s| matches!(s, Settled::Done(outputs) if !outputs.is_empty())))
        {
            tracing::error!("PIPELINE_FAULT=abort-after-write: aborting after a committed write");
            std::process::abort();
        }
        let now = Instant::now();
        let mut done = Vec::with_capacity(size);
        for (mut entry, settled) in entries.into_iter().zip(settled) {
            match settled {
                Settled::Done(outputs) => done.push((entry.message, outputs)),
                Settled::Deferred => {
                    entry.deferrals += 1;
                    self.context.metrics.deferred.inc();
                    let due = now + self.settings().defer_backoff.delay(entry.deferrals);
                    self.deferred.push((due, entry));
                }
            }
        }
        done.extend(
            letters
                .into_iter()
                .map(|(message, letter)| (message, vec![Output::DeadLetter(letter)])),
        );
        self.written.insert(
            seq,
            Written {
                seq,
                done,
                closed_at,
                size,
            },
        );
        Ok(())
    }

    fn start_publish(&mut self, written: Written) {
        let context = Arc::clone(&self.context);
        let records = publish::records(&context.settings, &context.metrics, &written.done);
        let span = tracing::info_span!("publish", seq = written.seq, events = records.len());
        self.publishing = Some(tokio::spawn(
            async move {
                publish::until_acknowledged(context.publishing(), records).await;
                written
            }
            .instrument(span),
        ));
    }

    fn finish_published(&mut self, written: Written) {
        let book = self.source.book();
        for (message, _) in &written.done {
            book.finish(&message.topic, message.partition, message.offset);
        }
        let finished = written.done.len();
        self.release(finished);
        self.metrics().batch_size.observe(written.size as f64);
        self.metrics()
            .flush_seconds
            .observe(written.closed_at.elapsed().as_secs_f64());
        self.commit(false);
    }

    fn commit(&mut self, sync: bool) {
        self.last_commit = Instant::now();
        let positions = self.source.book().take_commits();
        if positions.is_empty() {
            return;
        }
        if let Err(e) = self.source.commit(&positions, sync) {
            self.metrics().retry("commit");
            tracing::warn!(error = %e, "offset commit failed; the messages may be replayed");
        }
    }

    /// Pauses consumption while too much is unfinished; resumes at half.
    fn flow_control(&mut self) {
        let max = self.settings().max_in_flight.max(1);
        if !self.paused && self.held >= max {
            match self.source.pause() {
                Ok(()) => {
                    self.paused = true;
                    self.metrics().paused.set(1);
                    tracing::info!(held = self.held, "consumption paused");
                }
                Err(e) => tracing::warn!(error = %e, "pausing consumption failed"),
            }
        } else if self.paused && self.held <= max / 2 {
            match self.source.resume() {
                Ok(()) => {
                    self.paused = false;
                    self.metrics().paused.set(0);
                    tracing::info!(held = self.held, "consumption resumed");
                }
                Err(e) => tracing::warn!(error = %e, "resuming consumption failed"),
            }
        }
    }
}

/// Writes `entries` until the database takes them: transient failures are retried with
/// backoff; a refusal splits the batch in halves until the refused entry is alone, which
/// then becomes a dead letter.
fn write_until_done<'a, S: Step, K: Sink>(
    context: &'a Context<S, K>,
    entries: &'a [Entry<S::Ready>],
) -> Pin<Box<dyn Future<Output = Vec<Settled>> + Send + 'a>> {
    Box::pin(async move {
        let mut attempt = 0u32;
        loop {
            match context.step.write(entries).await {
                Ok(settled) => {
                    if attempt > 0 {
                        context.health.set("write", true, "writing again");
                        tracing::info!(attempt, "write-back succeeded after retries");
                    }
                    return settled;
                }
                Err(WriteError::Transient(e)) => {
                    attempt += 1;
                    context.metrics.retry("database");
                    context
                        .health
                        .set("write", false, format!("write-back failing: {e}"));
                    let delay = context.settings.backoff.delay(attempt);
                    tracing::warn!(error = %e, attempt, entries = entries.len(), ?delay, "write-back failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(WriteError::Refused(e)) if entries.len() > 1 => {
                    tracing::warn!(error = %e, entries = entries.len(), "the database refused the batch; splitting it");
                    let (left, right) = entries.split_at(entries.len() / 2);
                    let mut settled = write_until_done(context, left).await;
                    settled.extend(write_until_done(context, right).await);
                    return settled;
                }
                Err(refused) => {
                    tracing::warn!(error = %refused, "the database refused a message; dead-lettering it");
                    return vec![Settled::Done(vec![Output::DeadLetter(Letter {
                        kind: dlq::Kind::Processing,
                        reason: "refused_by_database".to_owned(),
                        message: refused.to_string(),
                        row: None,
                    })])];
                }
            }
        }
    })
}
