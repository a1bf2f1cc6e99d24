//! The producer: settings, delivery callbacks feeding the [`Tracker`], oversized events
//! dead-lettered in place, and replacement of a producer that cannot deliver any more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, NoCustomPartitioner, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;
use shared::config::KafkaArgs;

use super::tracker::{Tracker, TxSeq};
use crate::error::Error;
use crate::metrics::Metrics;

/// How long a failed session's producer may take to abort its transaction
/// ([`Publisher::retire`]).
const ABORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A message as handed to the producer.
type Record<'a> = BaseRecord<'a, [u8], [u8], Box<InFlight>>;

/// What travels with each message to its delivery callback.
#[derive(Debug)]
pub struct InFlight {
    tx: TxSeq,
    sent_at: Instant,
}

/// The producer context: routes delivery reports to the tracker.
#[derive(Debug)]
pub struct DeliveryContext {
    tracker: Arc<Tracker>,
    /// The tracker generation this producer belongs to.
    generation: u64,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext<NoCustomPartitioner> for DeliveryContext {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        if self.generation != self.tracker.generation() {
            // A replaced producer's report (purged or late): the tracker forgot its messages.
            // (Checked again under the tracker's lock, against a reset racing this report.)
            return;
        }
        self.tracker
            .metrics
            .produce_latency
            .observe(opaque.sent_at.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(message) => {
                use rdkafka::Message;
                if tracing::enabled!(tracing::Level::TRACE) {
                    trace_delivery(message);
                }
                self.tracker.acknowledged(
                    self.generation,
                    opaque.tx,
                    message.topic(),
                    message.partition(),
                    message.offset(),
                );
                return;
            }
            Err((e, _))
                if matches!(
                    shared::kafka::error_code(e),
                    Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::Fenced)
                ) =>
            {
                self.tracker
                    .fenced(self.generation, opaque.tx, e.to_string());
                return;
            }
            Err((e, _)) if producer_failed(e) => {
                self.tracker
                    .broken(self.generation, opaque.tx, e.to_string());
                return;
            }
            Err((e, _)) => {
                tracing::error!(error = %e, "the broker did not accept a message");
                Err(e.to_string())
            }
        };
        self.tracker.delivered(self.generation, opaque.tx, outcome);
    }
}

/// Whether a delivery error means the producer itself cannot go on (its idempotence state
/// is gone on the broker, it was fenced, or it purged its queues after such a failure): the
/// message was not refused for what it is, and a new producer will deliver it.
fn producer_failed(e: &KafkaError) -> bool {
    matches!(
        shared::kafka::error_code(e),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::InvalidProducerIdMapping
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::PurgeQueue
                | RDKafkaErrorCode::PurgeInflight
                | RDKafkaErrorCode::MessageTimedOut
        )
    )
}

/// Logs where the broker put one message (`cdc_reader::delivery=trace`): enough to tell,
/// after an incident, whether a change the slot moved past was acknowledged and at which offset.
fn trace_delivery(message: &rdkafka::message::BorrowedMessage<'_>) {
    use rdkafka::Message;
    #[derive(serde::Deserialize)]
    struct Source {
        lsn: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Event {
        source: Source,
    }
    let lsn = message
        .payload()
        .and_then(|p| serde_json::from_slice::<Event>(p).ok())
        .and_then(|e| e.source.lsn);
    tracing::trace!(
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        key = %String::from_utf8_lossy(message.key().unwrap_or_default()),
        lsn,
        "delivered"
    );
}

/// The dead letter of a change event the producer refused as too large: which row, which
/// position, how big (the event itself does not fit anywhere). Logged as an error too.
fn oversized_letter(topic: &str, key: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Source {
        lsn: Option<u64>,
        commit_lsn: Option<u64>,
        xid: Option<u64>,
        ts: Option<String>,
        schema: Option<String>,
        table: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Event {
        op: Option<String>,
        source: Option<Source>,
    }
    let bytes = payload.len() + key.map_or(0, <[u8]>::len);
    let event = serde_json::from_slice::<Event>(payload).ok();
    let source = event.as_ref().and_then(|e| e.source.as_ref());
    let change = serde_json::json!({
        "op": event.as_ref().and_then(|e| e.op.as_deref()),
        "schema": source.and_then(|s| s.schema.as_deref()),
        "table": source.and_then(|s| s.table.as_deref()),
        "lsn": source.and_then(|s| s.lsn),
        "commit_lsn": source.and_then(|s| s.commit_lsn),
        "xid": source.and_then(|s| s.xid),
        "ts": source.and_then(|s| s.ts.as_deref()),
        "bytes": bytes,
    });
    let message = format!(
        "change event of {bytes} bytes is larger than the producer's message.max.bytes; \
         it was not written to {topic} (the row is in the database)"
    );
    tracing::error!(
        %topic,
        key = %String::from_utf8_lossy(key.unwrap_or_default()),
        lsn = source.and_then(|s| s.lsn),
        bytes,
        "change event too large for the broker; dead-lettered"
    );
    let failure = shared::dlq::Failure {
        kind: shared::dlq::Kind::TooLarge,
        reason: "too_large",
        message: &message,
    };
    shared::dlq::unpublished(
        topic,
        key,
        change,
        failure,
        "cdc-reader",
        chrono::Utc::now(),
    )
    .to_string()
    .into_bytes()
}

/// The producer type of the reader.
type ReaderProducer = ThreadedProducer<DeliveryContext>;

/// An idempotent, `acks=all` producer whose deliveries feed a [`Tracker`]; replaced by a new
/// one when its acknowledgements stop ([`Publisher::reset`]).
///
/// With a `transactional.id` ([`crate::config::Fencing`]), every message is produced inside a Kafka
/// transaction, committed every `--transaction-interval` ([`Publisher::begin_commit`]), and a
/// position is confirmable only once the transaction holding its messages committed
/// ([`Publisher::confirmable`]). The point is fencing: the producer a new leader starts with
/// ([`Publisher::start_leadership`]) bumps the transactional id's epoch at the broker, which
/// from then on refuses every write of an older producer of that id, however late it arrives,
/// and aborts the transaction it left open. A deposed leader therefore cannot append anything
/// after the new leader's first write, so a key's records stay in commit order.
pub struct Publisher {
    /// `None` only while the publisher is dropped.
    producer: Mutex<Option<Arc<ReaderProducer>>>,
    /// Whether the current producer has initialized transactions (a new leadership needs a
    /// new one; the first can use the producer that read the topics' metadata, already
    /// connected).
    initialized: std::sync::atomic::AtomicBool,
    config: rdkafka::ClientConfig,
    tracker: Arc<Tracker>,
    /// Whether the producer is transactional (has a `transactional.id`).
    transactional: bool,
    /// The Kafka transaction's state (transactional producers only).
    txn: Mutex<TxnState>,
}

/// The open Kafka transaction of a transactional producer.
#[derive(Debug, Default)]
struct TxnState {
    /// `begin_transaction` was called and the transaction not committed yet.
    open: bool,
    /// Messages produced in the open transaction.
    sends: u64,
    /// A commit is under way: messages wait in `pending` until it ends.
    committing: bool,
    /// Messages handed over during a commit, produced right after it.
    pending: Vec<Pending>,
    /// The tracker's confirmed position when the last commit ended: every message before it
    /// is acknowledged and committed.
    committed: u64,
}

/// A message held back while a transaction commits.
#[derive(Debug)]
struct Pending {
    topic: String,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    tx: TxSeq,
}

/// How a commit ended, for the session.
#[derive(Debug)]
pub enum CommitOutcome {
    /// Committed; the confirmable position moved to this.
    Committed(u64),
    /// The broker could not be reached in time: try again (the transaction stays open).
    Retry,
}

/// A commit running on a blocking thread ([`Publisher::begin_commit`]).
pub type Committing = tokio::task::JoinHandle<(Result<(), KafkaError>, Duration)>;

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("in_flight", &self.tracker.in_flight())
            .finish_non_exhaustive()
    }
}

/// How long the reader's producer waits to fill a batch (`linger.ms`) unless
/// `--kafka-property linger.ms=…` says otherwise.
const READER_LINGER_MS: &str = "25";

/// The producer settings on top of [`shared::kafka::producer_config`]: messages never expire
/// (a broker outage is waited out, librdkafka retries; dropping one would lose a change), keys
/// are partitioned like the Java client does, and the local queue is sized to hold everything
/// the reader lets fly. Each can be overridden with `--kafka-property`.
pub fn producer_settings(
    kafka: &KafkaArgs,
    max_in_flight: u64,
    transactional_id: Option<&str>,
) -> rdkafka::ClientConfig {
    let mut config = shared::kafka::producer_config(kafka, "cdc-reader");
    let overridden = |key: &str| kafka.properties.iter().any(|(k, _)| k == key);
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    if !overridden("message.timeout.ms") {
        config.set("message.timeout.ms", "0");
    }
    if !overridden("queue.buffering.max.messages") {
        config.set(
            "queue.buffering.max.messages",
            (max_in_flight + 10_000).min(2_000_000).to_string(),
        );
    }
    if !overridden("partitioner") {
        // The Java client's partitioner (what Debezium uses): a key lands on the same
        // partition whichever client wrote it.
        config.set("partitioner", "murmur2_random");
    }
    if !overridden("linger.ms") {
        // The change stream arrives a transaction at a time; waiting up to 25 ms (not the
        // workers' 5) gathers a partition's changes into a few produce requests instead of one
        // every few milliseconds. A broker's cost goes with requests and stored batches more
        // than with bytes: at a steady 1,000 profiles/s the bench's broker took about half the
        // CPU it did with 5 ms, and the pipeline's p99 over a minute was 80–227 ms instead of
        // 300 (README, "Where a profile's time goes").
        config.set("linger.ms", READER_LINGER_MS);
    }
    if !overridden("queue.buffering.max.kbytes") {
        // Bytes bound what is unacknowledged too (`--max-in-flight` counts messages): a
        // Debezium value with its schema block is several kilobytes.
        config.set("queue.buffering.max.kbytes", "16384");
    }
    if config.get("transactional.id").is_some() {
        // A transaction may stay open as long as a broker outage lasts: messages are not
        // expired before the transaction would be (librdkafka requires message.timeout.ms ≤
        // transaction.timeout.ms). 10 minutes, under brokers' usual 15-minute maximum; an
        // outage longer than that costs a restart of the session.
        if !overridden("transaction.timeout.ms") {
            config.set("transaction.timeout.ms", "600000");
        }
        let transaction_timeout = config
            .get("transaction.timeout.ms")
            .unwrap_or("600000")
            .to_owned();
        if !overridden("message.timeout.ms") {
            config.set("message.timeout.ms", &transaction_timeout);
        }
    }
    if !overridden("socket.timeout.ms") {
        // A produce request to a broker that is paused is not timed out and retried for five
        // minutes: the retry of a batch the broker meanwhile appended is a duplicate, which
        // some brokers (Tansu) acknowledge without offsets, and the reader must then take the
        // batch as lost and resend the session. A dead broker closes the connection sooner.
        config.set("socket.timeout.ms", "300000");
    }
    config
}

impl Drop for Publisher {
    /// librdkafka's destroy joins the producer's polling thread, which wakes every 100 ms:
    /// done on a thread of its own, it costs the caller (a reader that reached
    /// `--stop-at-lsn`, with everything acknowledged) nothing.
    fn drop(&mut self) {
        if let Some(producer) = self.producer.get_mut().ok().and_then(Option::take) {
            std::thread::spawn(move || drop(producer));
        }
    }
}

impl Publisher {
    /// Creates the producer; transactional when `transactional_id` is given (it is then
    /// initialized only by [`Publisher::start_leadership`]).
    pub fn new(
        kafka: &KafkaArgs,
        max_in_flight: u64,
        metrics: Metrics,
        transactional_id: Option<&str>,
    ) -> Result<Self, KafkaError> {
        let tracker = Arc::new(Tracker::new(max_in_flight, metrics));
        let config = producer_settings(kafka, max_in_flight, transactional_id);
        let producer = Self::create(&config, &tracker)?;
        Ok(Self {
            producer: Mutex::new(Some(Arc::new(producer))),
            initialized: std::sync::atomic::AtomicBool::new(false),
            transactional: config.get("transactional.id").is_some(),
            config,
            tracker,
            txn: Mutex::new(TxnState::default()),
        })
    }

    /// Whether messages go through Kafka transactions.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    fn txn(&self) -> std::sync::MutexGuard<'_, TxnState> {
        self.txn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// On becoming leader, before anything is produced: a transactional publisher starts
    /// over with a new producer and initializes its transactions, which fences every older
    /// producer of the transactional id (a deposed leader, this process's previous session)
    /// and aborts the transaction it left open. Retried while the broker cannot be reached;
    /// an idempotent publisher has nothing to do.
    pub async fn start_leadership(
        &self,
        shutdown: &shared::shutdown::Shutdown,
    ) -> Result<(), Error> {
        if !self.transactional {
            return Ok(());
        }
        let mut attempt = 0u32;
        loop {
            if attempt > 0 || self.initialized.load(std::sync::atomic::Ordering::Acquire) {
                self.replace()
                    .map_err(Error::kafka("creating the producer"))?;
            }
            self.initialized
                .store(true, std::sync::atomic::Ordering::Release);
            let producer = self.current();
            let started = Instant::now();
            let init = tokio::task::spawn_blocking(move || {
                producer.init_transactions(Duration::from_secs(30))
            })
            .await
            .map_err(|_| Error::ShuttingDown)?;
            match init {
                Ok(()) => {
                    tracing::info!(
                        took = ?started.elapsed(),
                        "transactions initialized: older producers of this transactional id are fenced"
                    );
                    return Ok(());
                }
                Err(e) if shared::kafka::error_code(&e) == Some(RDKafkaErrorCode::Fatal) => {
                    return Err(Error::kafka("initializing transactions")(e));
                }
                Err(e) if no_transactions(&e).is_some() => {
                    return Err(no_transactions(&e).expect("checked"));
                }
                Err(e) => {
                    attempt += 1;
                    let wait = shared::backoff::Backoff::default().delay(attempt);
                    tracing::warn!(error = %e, retry_in = ?wait, "cannot initialize transactions; retrying");
                    if !shutdown.sleep(wait).await {
                        return Err(Error::ShuttingDown);
                    }
                }
            }
        }
    }

    /// The position that may be confirmed: the tracker's, except that with transactions only
    /// what a committed transaction holds counts.
    pub fn confirmable(&self) -> u64 {
        let confirmed = self.tracker.confirmed();
        if !self.transactional {
            return confirmed;
        }
        let txn = self.txn();
        if !txn.open && !txn.committing && txn.pending.is_empty() {
            // Nothing produced since the last commit (an idle stream, empty transactions).
            confirmed
        } else {
            txn.committed.min(confirmed)
        }
    }

    /// Starts committing the open transaction on a blocking thread, if it holds messages and
    /// no commit is under way. Messages handed over meanwhile wait until it ends.
    pub fn begin_commit(&self) -> Option<Committing> {
        if !self.transactional {
            return None;
        }
        {
            let mut txn = self.txn();
            if !txn.open || txn.committing || txn.sends == 0 {
                return None;
            }
            txn.committing = true;
        }
        Some(self.retry_commit())
    }

    /// Starts the commit again after [`CommitOutcome::Retry`] (messages still wait for it).
    pub fn retry_commit(&self) -> Committing {
        let producer = self.current();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            // rdkafka's own flush before the commit sleeps in steps of 100 ms while the
            // producer's polling thread serves the delivery reports; waiting here in steps of
            // 1 ms makes a commit take its broker round trips, not a tenth of a second.
            while producer.in_flight_count() > 0 && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let result = producer.commit_transaction(Duration::from_secs(10));
            (result, started.elapsed())
        })
    }

    /// Takes the end of a commit [`Publisher::begin_commit`] started. On success the
    /// confirmable position moves and the messages held back are produced in a new
    /// transaction. A commit that timed out is to be retried; any other failure ends the
    /// session (fenced: another leader took over; otherwise the transaction is lost and the
    /// session resends from the slot with a new producer).
    pub async fn finish_commit(
        &self,
        outcome: (Result<(), KafkaError>, Duration),
    ) -> Result<CommitOutcome, Error> {
        let (result, took) = outcome;
        let metrics = &self.tracker.metrics;
        match result {
            Ok(()) => {
                metrics.commit_seconds.observe(took.as_secs_f64());
                metrics.commits.inc();
                tracing::debug!(
                    ?took,
                    held_back = self.txn().pending.len(),
                    "transaction committed"
                );
                let (committed, pending) = {
                    let mut txn = self.txn();
                    txn.open = false;
                    txn.sends = 0;
                    txn.committing = false;
                    // Nothing produced after the commit started (those wait in `pending`), so
                    // every acknowledged message is committed.
                    txn.committed = self.tracker.confirmed();
                    (txn.committed, std::mem::take(&mut txn.pending))
                };
                for held in pending {
                    self.tracker.unsent();
                    self.send(
                        &held.topic,
                        held.partition,
                        held.key.as_deref(),
                        held.payload.as_deref(),
                        held.tx,
                    )
                    .await
                    .map_err(send_failed)?;
                }
                Ok(CommitOutcome::Committed(committed))
            }
            Err(e) => {
                if let Some(unsupported) = no_transactions(&e) {
                    return Err(unsupported);
                }
                if matches!(
                    shared::kafka::error_code(&e),
                    Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced)
                ) {
                    tracing::error!(error = %e, "another reader's producer fenced this one; stepping down");
                    return Err(Error::LeadershipLost);
                }
                // The commit's own timeout, or the flush before it (the broker does not answer:
                // nothing was decided, the same commit is tried again).
                let timed_out = matches!(&e, KafkaError::Transaction(t) if t.is_retriable())
                    || matches!(&e, KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
                if timed_out {
                    tracing::warn!(error = %e, "committing the transaction timed out; retrying");
                    return Ok(CommitOutcome::Retry);
                }
                Err(Error::ProducerLost(format!(
                    "committing the transaction: {e}"
                )))
            }
        }
    }

    /// With transactions: commits the open transaction and waits for it (retrying while the
    /// broker cannot be reached), up to `deadline`; returns whether everything produced is
    /// committed. Without: waits until nothing is in flight.
    pub async fn settle_committed(&self, deadline: Duration) -> Result<bool, Error> {
        if !self.transactional {
            return Ok(self.drain(deadline).await);
        }
        let until = tokio::time::Instant::now() + deadline;
        let Some(mut commit) = self.begin_commit() else {
            return Ok(true);
        };
        loop {
            let Ok(joined) = tokio::time::timeout_at(until, &mut commit).await else {
                return Ok(false);
            };
            let outcome = joined.map_err(|_| Error::ShuttingDown)?;
            commit = match self.finish_commit(outcome).await? {
                // The messages held back during the commit went into a new transaction.
                CommitOutcome::Committed(_) => match self.begin_commit() {
                    Some(next) => next,
                    None => return Ok(true),
                },
                CommitOutcome::Retry => self.retry_commit(),
            };
        }
    }

    fn create(
        config: &rdkafka::ClientConfig,
        tracker: &Arc<Tracker>,
    ) -> Result<ReaderProducer, KafkaError> {
        let context = DeliveryContext {
            tracker: tracker.clone(),
            generation: tracker.generation(),
        };
        config.create_with_context(context)
    }

    fn current(&self) -> Arc<ReaderProducer> {
        self.producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .expect("the producer is there until the publisher is dropped")
    }

    /// Replaces the producer with a new one (a new producer id, empty queues) and forgets
    /// what was in flight: the next session resends everything after the confirmed position.
    /// The old producer is dropped on a thread of its own (dropping purges and flushes).
    /// Counted in `cdc_producer_resets_total`: for a producer whose acknowledgements stopped.
    pub fn reset(&self) -> Result<(), KafkaError> {
        self.replace()?;
        self.tracker.metrics.producer_resets.inc();
        Ok(())
    }

    /// Whether a Kafka transaction is open or committing (a session that stopped at its
    /// shutdown deadline may leave one).
    pub fn transaction_open(&self) -> bool {
        let txn = self.txn();
        txn.open || txn.committing
    }

    /// Ends a failed session's transactional producer: its open transaction is aborted first
    /// (librdkafka purges what is queued, waits for the produce requests already on the wire,
    /// then sends the abort), so that nothing of it reaches the broker after the next
    /// producer's fencing and no consumer waits on the transaction until it times out; then
    /// the producer is replaced. Best effort, for at most [`ABORT_TIMEOUT`]: a producer that
    /// cannot abort (fenced, broker unreachable, a commit still running) is replaced all the
    /// same, and the next producer's fencing aborts its transaction at the broker. A producer
    /// known to be broken is not retired but [`Publisher::reset`].
    pub async fn retire(&self) -> Result<(), KafkaError> {
        if self.transaction_open() && self.initialized.load(std::sync::atomic::Ordering::Acquire) {
            // What the abort purges is not to be counted against the next session.
            self.tracker.reset();
            let producer = self.current();
            let started = Instant::now();
            let aborted =
                tokio::task::spawn_blocking(move || producer.abort_transaction(ABORT_TIMEOUT))
                    .await;
            match aborted {
                Ok(Ok(())) => tracing::info!(
                    took = ?started.elapsed(),
                    "aborted the failed session's transaction"
                ),
                Ok(Err(e)) => tracing::warn!(
                    error = %e,
                    "could not abort the failed session's transaction; the next producer's \
                     fencing aborts it"
                ),
                Err(_) => {}
            }
        }
        self.replace()
    }

    /// [`Publisher::reset`] as a matter of course, not counted: a transactional publisher
    /// starts every leadership with a new producer, and retires it when its session fails.
    pub fn replace(&self) -> Result<(), KafkaError> {
        self.tracker.reset();
        *self.txn() = TxnState {
            committed: self.tracker.confirmed(),
            ..TxnState::default()
        };
        let fresh = Arc::new(Self::create(&self.config, &self.tracker)?);
        let old = self
            .producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(fresh);
        self.initialized
            .store(false, std::sync::atomic::Ordering::Release);
        std::thread::spawn(move || drop(old));
        Ok(())
    }

    /// Whether the broker answers a metadata request within 5 s (telling an outage, to be
    /// waited out, from a producer whose acknowledgements stopped).
    pub async fn broker_answers(&self) -> bool {
        let producer = self.current();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Asks the broker whether it still holds what was acknowledged: each partition's log end
    /// (`ListOffsets`, latest) must be above `floor`, the highest offset known to be held
    /// before (at the previous check, or just before the first acknowledgement). A broker
    /// that came back empty or truncated its log fails this. The floor is not the highest
    /// acknowledged offset itself, because some brokers (Tansu) report the log end as the
    /// start of the last record batch plus one. `Ok(Err(reason))` is a loss; `Err` means the
    /// broker could not be asked (asked again later).
    pub fn verify(
        &self,
        floors: Vec<(String, i32, i64)>,
    ) -> impl std::future::Future<Output = Result<Result<(), String>, KafkaError>> + Send + 'static
    {
        let producer = self.current();
        let checked = tokio::task::spawn_blocking(move || {
            for (topic, partition, floor) in floors {
                let (_, end) = producer.client().fetch_watermarks(
                    &topic,
                    partition,
                    Duration::from_secs(5),
                )?;
                if end <= floor {
                    return Ok(Err(format!(
                        "{topic}[{partition}] ends at offset {end}, but offset {floor} was acknowledged"
                    )));
                }
            }
            Ok(Ok(()))
        });
        async move { checked.await.map_err(|_| KafkaError::Canceled)? }
    }

    /// The tracker fed by this producer.
    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    /// Hands one message of transaction `tx` to the producer. Waits while librdkafka's local
    /// queue is full; any other refusal is permanent.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        tx: TxSeq,
    ) -> Result<(), KafkaError> {
        if self.transactional {
            let mut txn = self.txn();
            if txn.committing {
                self.tracker.sent();
                txn.pending.push(Pending {
                    topic: topic.to_owned(),
                    partition,
                    key: key.map(<[u8]>::to_vec),
                    payload: payload.map(<[u8]>::to_vec),
                    tx,
                });
                return Ok(());
            }
            if !txn.open {
                self.current().begin_transaction()?;
                txn.open = true;
            }
            txn.sends += 1;
        }
        let mut record: Record<'_> = BaseRecord::with_opaque_to(
            topic,
            Box::new(InFlight {
                tx,
                sent_at: Instant::now(),
            }),
        );
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        self.tracker.sent();
        let result = match self.enqueue(record).await {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), back)) => {
                // In its place (same transaction, same key), a dead letter naming it.
                let letter = oversized_letter(topic, key, payload.unwrap_or_default());
                let dlq = shared::topics::dlq_topic(topic);
                let mut letter_record: Record<'_> =
                    BaseRecord::with_opaque_to(&dlq, back.delivery_opaque).payload(&letter[..]);
                if let Some(key) = key {
                    letter_record = letter_record.key(key);
                }
                let sent = self.enqueue(letter_record).await;
                if sent.is_ok() {
                    self.tracker.metrics.oversized.inc();
                }
                sent.map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        };
        if result.is_err() {
            self.tracker.unsent();
        }
        result
    }

    /// Hands `record` to librdkafka, waiting while its local queue is full; any other refusal
    /// comes back with the record.
    async fn enqueue<'r>(&self, mut record: Record<'r>) -> Result<(), (KafkaError, Record<'r>)> {
        let producer = self.current();
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(refused) => return Err(refused),
            }
        }
    }

    /// Waits while `max_in_flight` messages or more are unacknowledged; fails on a delivery
    /// fault.
    pub async fn wait_for_room(&self, max_in_flight: u64) -> Result<(), Error> {
        loop {
            if let Some(fault) = self.tracker.fault() {
                return Err(fault);
            }
            if self.tracker.in_flight() < max_in_flight {
                return Ok(());
            }
            self.tracker.progressed().await;
        }
    }

    /// Partition count of a topic, from the broker's metadata.
    pub async fn partitions(self: &Arc<Self>, topic: &str) -> Result<i32, KafkaError> {
        let producer = self.current();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(30))?;
            let count = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len());
            Ok(i32::try_from(count).unwrap_or(i32::MAX).max(1))
        })
        .await
        .map_err(|_| KafkaError::Canceled)?
    }

    /// Waits until nothing is in flight or `deadline` passes; returns whether it drained.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        while self.tracker.in_flight() > 0 {
            if self.tracker.failure().is_some() {
                return false;
            }
            let wait = tokio::time::timeout_at(until, self.tracker.progressed());
            if wait.await.is_err() {
                return self.tracker.in_flight() == 0;
            }
        }
        true
    }
}

/// The session's error for a message the producer did not take: a transactional producer in
/// an error state (its transaction must be aborted, or it was fenced) is replaced, or steps
/// down; anything else is a refusal of the message itself.
pub fn send_failed(e: KafkaError) -> Error {
    match &e {
        _ if matches!(
            shared::kafka::error_code(&e),
            Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced)
        ) =>
        {
            Error::LeadershipLost
        }
        KafkaError::Transaction(_) => Error::ProducerLost(format!("the transaction failed: {e}")),
        _ if producer_failed(&e) => Error::ProducerLost(e.to_string()),
        _ => Error::Delivery(e.to_string()),
    }
}

/// A broker without Kafka transactions: a configuration error, with the way out.
fn no_transactions(e: &KafkaError) -> Option<Error> {
    matches!(
        shared::kafka::error_code(e),
        Some(RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion)
    )
    .then(|| {
        Error::Config(format!(
            "the broker does not support Kafka transactions ({e}), which --fencing transactions \
             needs: run with --fencing none (CDC_FENCING=none), which gives up fencing a deposed \
             leader's late writes"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(properties: &[(&str, &str)]) -> KafkaArgs {
        KafkaArgs {
            brokers: "b:9092".into(),
            topic_prefix: "cdc".into(),
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_reader_lingers_longer_than_the_workers_unless_told() {
        let config = producer_settings(&kafka(&[]), 20_000, None);
        assert_eq!(config.get("linger.ms"), Some(READER_LINGER_MS));
        assert_eq!(config.get("message.timeout.ms"), Some("0"));
        assert_eq!(config.get("queue.buffering.max.messages"), Some("30000"));
        let config = producer_settings(&kafka(&[("linger.ms", "0")]), 20_000, None);
        assert_eq!(config.get("linger.ms"), Some("0"));
    }

    #[test]
    fn a_transactional_reader_expires_messages_with_its_transaction() {
        let config = producer_settings(&kafka(&[]), 20_000, Some("cdc-reader-x"));
        assert_eq!(config.get("transactional.id"), Some("cdc-reader-x"));
        assert_eq!(config.get("message.timeout.ms"), Some("600000"));
    }
}
