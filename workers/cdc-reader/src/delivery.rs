//! Publishing to Kafka and knowing what may be confirmed.
//!
//! Guarantee: the position returned by [`Tracker::confirmed`] is the end LSN of a transaction
//! all of whose messages *and those of every earlier transaction* the broker acknowledged
//! (`acks=all`, idempotent producer). Confirming it to PostgreSQL therefore never skips an
//! unacknowledged change; a crash resends at most what followed it (at-least-once, consumers
//! deduplicate by `(commit_lsn, lsn)`).
//!
//! Transactions are tracked in arrival order in a queue of `(end_lsn, pending)`; the delivery
//! callback (on librdkafka's polling thread) decrements `pending` and pops completed
//! transactions from the front. Memory is bounded by the number of messages in flight, which
//! the reader caps: it stops reading the replication stream at `max_in_flight`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, NoCustomPartitioner, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;
use shared::config::KafkaArgs;
use tokio::sync::Notify;

use crate::error::Error;
use crate::metrics::{lsn_gauge, Metrics};

/// Sequence number of a tracked transaction.
pub type TxSeq = u64;

#[derive(Debug)]
struct TrackedTx {
    /// Position to confirm once complete; `None` until the commit was seen.
    end_lsn: Option<u64>,
    /// Messages sent minus messages acknowledged; the commit adds the sent count, so it may
    /// be negative before the commit.
    pending: i64,
}

#[derive(Debug, Default)]
struct State {
    /// Sequence of `txs[0]`.
    front_seq: TxSeq,
    txs: VecDeque<TrackedTx>,
    confirmed: u64,
    failure: Option<String>,
    /// A broker acknowledgement that went backwards (see [`Error::AckRegression`]).
    regression: Option<String>,
    /// The producer failed fatally (see [`Error::ProducerLost`]).
    broken: Option<String>,
    /// Offset of the last acknowledgement per topic and partition.
    last_offsets: HashMap<String, HashMap<i32, i64>>,
    /// When the last delivery report came, or the first message after an idle spell was
    /// sent: how long acknowledgements have been awaited.
    last_progress: Option<Instant>,
}

impl State {
    fn advance(&mut self) -> bool {
        let before = self.confirmed;
        while let Some(front) = self.txs.front() {
            match front.end_lsn {
                Some(end) if front.pending == 0 => {
                    self.confirmed = self.confirmed.max(end);
                    self.txs.pop_front();
                    self.front_seq += 1;
                }
                _ => break,
            }
        }
        self.confirmed != before
    }

    /// Records an acknowledgement at `offset`; an error when it does not follow the
    /// partition's previous one (or has no offset at all).
    fn follow_offset(&mut self, topic: &str, partition: i32, offset: i64) -> Result<(), String> {
        // Looked up by `&str`: no allocation per acknowledgement.
        if !self.last_offsets.contains_key(topic) {
            self.last_offsets.insert(topic.to_owned(), HashMap::new());
        }
        let partitions = self.last_offsets.get_mut(topic);
        let last = partitions.and_then(|p| {
            let last = p.get(&partition).copied();
            if offset >= 0 && last.is_none_or(|last| offset > last) {
                p.insert(partition, offset);
            }
            last
        });
        match last {
            Some(last) if offset <= last => Err(format!(
                "{topic}[{partition}] acknowledged offset {offset} after {last}"
            )),
            None if offset < 0 => Err(format!(
                "{topic}[{partition}] acknowledged without an offset ({offset})"
            )),
            _ => Ok(()),
        }
    }
}

/// Why a message does not count as delivered.
#[derive(Debug)]
enum Fault {
    /// The broker refused it for good.
    Refused(String),
    /// The broker acknowledged it at an offset it had already used.
    Lost(String),
    /// The producer failed fatally, or purged it after such a failure: it was never
    /// delivered, and the producer must be replaced.
    Broken(String),
}

/// Transactions in flight and the position that may be confirmed.
#[derive(Debug)]
pub struct Tracker {
    state: Mutex<State>,
    /// Messages handed to the producer and not yet acknowledged.
    in_flight: AtomicU64,
    /// Woken when the confirmed position moves, a failure is recorded or the in-flight count
    /// falls to the low-water mark.
    progress: Notify,
    low_water: u64,
    metrics: Metrics,
    /// The producer generation whose reports count; bumped by [`Tracker::reset`], so a
    /// replaced producer's late reports are ignored.
    generation: AtomicU64,
}

impl Tracker {
    /// A tracker that wakes the reader when fewer than `max_in_flight / 2` messages remain.
    pub fn new(max_in_flight: u64, metrics: Metrics) -> Self {
        Self {
            state: Mutex::new(State::default()),
            in_flight: AtomicU64::new(0),
            progress: Notify::new(),
            low_water: max_in_flight / 2,
            metrics,
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts tracking a transaction.
    pub fn begin(&self) -> TxSeq {
        let mut state = self.lock();
        state.txs.push_back(TrackedTx {
            end_lsn: None,
            pending: 0,
        });
        state.front_seq + state.txs.len() as u64 - 1
    }

    /// The transaction's commit was seen after `sent` messages: it completes (and may be
    /// confirmed at `end_lsn`) once they are all acknowledged.
    pub fn commit(&self, seq: TxSeq, sent: u64, end_lsn: u64) {
        let mut state = self.lock();
        let index = seq.wrapping_sub(state.front_seq) as usize;
        // A transaction with nothing to send (all its changes on tables not captured) right
        // behind a committed one needs no entry of its own: the earlier one's completion
        // confirms it too. So the queue holds at most one entry per message in flight, however
        // many small transactions pass while the broker is away.
        let merged = sent == 0
            && index + 1 == state.txs.len()
            && index > 0
            && state.txs[index].pending == 0
            && state.txs[index - 1].end_lsn.is_some();
        if merged {
            state.txs.pop_back();
            if let Some(previous) = state.txs.back_mut() {
                previous.end_lsn = Some(end_lsn);
            }
        } else if let Some(tx) = state.txs.get_mut(index) {
            tx.end_lsn = Some(end_lsn);
            tx.pending += sent as i64;
        }
        if state.advance() {
            self.metrics.confirmed_lsn.set(lsn_gauge(state.confirmed));
            drop(state);
            self.progress.notify_one();
        }
    }

    /// Records one more message of `seq` handed to the producer.
    pub fn sent(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.in_flight.set(now as i64);
        if now == 1 {
            self.lock().last_progress = Some(Instant::now());
        }
    }

    /// How long messages have been in flight with no delivery report at all; `None` while
    /// nothing is in flight.
    pub fn stalled_for(&self) -> Option<Duration> {
        if self.in_flight() == 0 {
            return None;
        }
        Some(
            self.lock()
                .last_progress
                .map_or(Duration::ZERO, |at| at.elapsed()),
        )
    }

    /// Forgets every message in flight and every open transaction, for a producer that is
    /// being replaced: its reports no longer count, and a new session sends everything after
    /// the confirmed position again. The confirmed position stays.
    pub fn reset(&self) {
        let mut state = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let len = state.txs.len() as u64;
        state.txs.clear();
        state.front_seq += len;
        state.failure = None;
        state.regression = None;
        state.broken = None;
        state.last_offsets.clear();
        state.last_progress = None;
        self.in_flight.store(0, Ordering::SeqCst);
        self.metrics.in_flight.set(0);
        drop(state);
        self.progress.notify_one();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Records a message the producer never took (it was not counted by the transaction).
    fn unsent(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// A delivery report without an offset check: acknowledged, or refused for good.
    fn delivered(&self, seq: TxSeq, result: Result<(), String>) {
        let state = self.lock();
        self.settle(state, seq, result.map_err(Fault::Refused));
    }

    /// A delivery report of a message the producer could not deliver because it failed.
    fn broken(&self, seq: TxSeq, reason: String) {
        let state = self.lock();
        self.settle(state, seq, Err(Fault::Broken(reason)));
    }

    /// Records the outcome of one message of `seq` (under the lock the caller took).
    fn settle(&self, mut state: MutexGuard<'_, State>, seq: TxSeq, result: Result<(), Fault>) {
        state.last_progress = Some(Instant::now());
        let left = self.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        self.metrics.in_flight.set(left as i64);
        let mut wake = left == self.low_water || left == 0;
        match result {
            Ok(()) => {
                let index = seq.wrapping_sub(state.front_seq) as usize;
                if let Some(tx) = state.txs.get_mut(index) {
                    tx.pending -= 1;
                }
                if state.advance() {
                    self.metrics.confirmed_lsn.set(lsn_gauge(state.confirmed));
                    wake = true;
                }
            }
            Err(Fault::Refused(reason)) => {
                self.metrics.delivery_failures.inc();
                state.failure.get_or_insert(reason);
                wake = true;
            }
            Err(Fault::Broken(reason)) => {
                if state.broken.is_none() {
                    tracing::error!(%reason, "the producer failed; it will be replaced and the changes sent again");
                }
                state.broken.get_or_insert(reason);
                wake = true;
            }
            Err(Fault::Lost(reason)) => {
                tracing::error!(%reason, "the broker lost acknowledged messages; they will be sent again");
                self.metrics.ack_regressions.inc();
                state.regression.get_or_insert(reason);
                wake = true;
            }
        }
        drop(state);
        if wake {
            self.progress.notify_one();
        }
    }

    /// On a keepalive: the server has sent everything up to `wal_end`. If nothing is in flight
    /// and no transaction is open, every change before `wal_end` is acknowledged, so it may
    /// be confirmed (this is how the slot advances on an idle database).
    pub fn idle_position(&self, wal_end: u64) {
        let mut state = self.lock();
        if state.txs.is_empty() && wal_end > state.confirmed {
            state.confirmed = wal_end;
            self.metrics.confirmed_lsn.set(lsn_gauge(wal_end));
        }
    }

    /// Forgets transactions that will never commit on this session (the connection dropped
    /// mid-transaction, or a message of theirs was lost by the broker). Only call when nothing
    /// is in flight. After a regression the partitions' offsets are learnt anew.
    pub fn abandon_open(&self) {
        let mut state = self.lock();
        let len = state.txs.len() as u64;
        state.txs.clear();
        state.front_seq += len;
        if state.regression.take().is_some() {
            state.last_offsets.clear();
        }
    }

    /// The position that may be confirmed.
    pub fn confirmed(&self) -> u64 {
        self.lock().confirmed
    }

    /// Transactions tracked (for tests of the memory bound).
    pub fn tracked(&self) -> usize {
        self.lock().txs.len()
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The first permanent delivery failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// What ends the session: a permanent failure, or an acknowledgement that went backwards
    /// (retryable: the session restarts from the last confirmed position).
    pub fn fault(&self) -> Option<Error> {
        let state = self.lock();
        if let Some(reason) = &state.failure {
            return Some(Error::Delivery(reason.clone()));
        }
        if let Some(reason) = &state.broken {
            return Some(Error::ProducerLost(reason.clone()));
        }
        state.regression.clone().map(Error::AckRegression)
    }

    /// Checks that an acknowledgement of `seq`'s message at `offset` follows the partition's
    /// previous one. Offsets of one idempotent producer's messages grow per partition; one
    /// that does not (or is negative) means the broker lost messages it had acknowledged
    /// before. Such a message does not count as delivered, so its transaction is never
    /// confirmed, and the session ends (see [`Tracker::fault`]).
    fn acknowledged(&self, seq: TxSeq, topic: &str, partition: i32, offset: i64) {
        let mut state = self.lock();
        let checked = state
            .follow_offset(topic, partition, offset)
            .map_err(Fault::Lost);
        self.settle(state, seq, checked);
    }

    /// Completes on the next progress event (see the field doc).
    pub async fn progressed(&self) {
        self.progress.notified().await
    }
}

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
                    opaque.tx,
                    message.topic(),
                    message.partition(),
                    message.offset(),
                );
                return;
            }
            Err((e, _)) if producer_failed(e) => {
                self.tracker.broken(opaque.tx, e.to_string());
                return;
            }
            Err((e, _)) => {
                tracing::error!(error = %e, "the broker did not accept a message");
                Err(e.to_string())
            }
        };
        self.tracker.delivered(opaque.tx, outcome);
    }
}

/// Whether a delivery error means the producer itself cannot go on (its idempotence state
/// is gone on the broker, it was fenced, or it purged its queues after such a failure): the
/// message was not refused for what it is, and a new producer will deliver it.
fn producer_failed(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
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
pub struct Publisher {
    producer: Mutex<Arc<ReaderProducer>>,
    config: rdkafka::ClientConfig,
    tracker: Arc<Tracker>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("in_flight", &self.tracker.in_flight())
            .finish_non_exhaustive()
    }
}

/// The producer settings on top of [`shared::kafka::producer_config`]: messages never expire
/// (a broker outage is waited out, librdkafka retries; dropping one would lose a change), keys
/// are partitioned like the Java client does, and the local queue is sized to hold everything
/// the reader lets fly. Each can be overridden with `--kafka-property`.
pub fn producer_settings(kafka: &KafkaArgs, max_in_flight: u64) -> rdkafka::ClientConfig {
    let mut config = shared::kafka::producer_config(kafka, "cdc-reader");
    let overridden = |key: &str| kafka.properties.iter().any(|(k, _)| k == key);
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
    if !overridden("queue.buffering.max.kbytes") {
        config.set("queue.buffering.max.kbytes", "1048576");
    }
    config
}

impl Publisher {
    /// Creates the producer.
    pub fn new(
        kafka: &KafkaArgs,
        max_in_flight: u64,
        metrics: Metrics,
    ) -> Result<Self, KafkaError> {
        let tracker = Arc::new(Tracker::new(max_in_flight, metrics));
        let config = producer_settings(kafka, max_in_flight);
        let producer = Self::create(&config, &tracker)?;
        Ok(Self {
            producer: Mutex::new(Arc::new(producer)),
            config,
            tracker,
        })
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
    }

    /// Replaces the producer with a new one (a new producer id, empty queues) and forgets
    /// what was in flight: the next session resends everything after the confirmed position.
    /// The old producer is dropped on a thread of its own (dropping purges and flushes).
    pub fn reset(&self) -> Result<(), KafkaError> {
        self.tracker.reset();
        let fresh = Arc::new(Self::create(&self.config, &self.tracker)?);
        let old = std::mem::replace(
            &mut *self.producer.lock().unwrap_or_else(|p| p.into_inner()),
            fresh,
        );
        self.tracker.metrics.producer_resets.inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        Tracker::new(10, Metrics::register(&prometheus::Registry::new()).unwrap())
    }

    #[test]
    fn confirms_only_complete_prefixes() {
        let t = tracker();
        let a = t.begin();
        t.sent();
        t.sent();
        t.commit(a, 2, 100);
        let b = t.begin();
        t.sent();
        t.commit(b, 1, 200);
        // b acked first: nothing confirmable until a is.
        t.delivered(b, Ok(()));
        assert_eq!(t.confirmed(), 0);
        t.delivered(a, Ok(()));
        assert_eq!(t.confirmed(), 0);
        t.delivered(a, Ok(()));
        assert_eq!(t.confirmed(), 200);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn acks_before_commit_and_empty_transactions() {
        let t = tracker();
        let a = t.begin();
        t.sent();
        t.delivered(a, Ok(()));
        assert_eq!(t.confirmed(), 0, "no commit seen yet");
        t.commit(a, 1, 50);
        assert_eq!(t.confirmed(), 50);
        let b = t.begin();
        t.commit(b, 0, 60);
        assert_eq!(t.confirmed(), 60);
    }

    #[test]
    fn failure_blocks_confirmation() {
        let t = tracker();
        let a = t.begin();
        t.sent();
        t.commit(a, 1, 10);
        t.delivered(a, Err("boom".into()));
        assert_eq!(t.confirmed(), 0);
        assert_eq!(t.failure().as_deref(), Some("boom"));
    }

    #[test]
    fn offsets_going_backwards_block_confirmation_until_resent() {
        let t = tracker();
        let a = t.begin();
        t.sent();
        t.sent();
        t.commit(a, 2, 10);
        t.acknowledged(a, "t", 0, 259);
        t.acknowledged(a, "t", 1, 3);
        assert_eq!(t.confirmed(), 10);
        let b = t.begin();
        t.sent();
        t.sent();
        t.commit(b, 2, 20);
        // The broker forgot its log end: a reused offset is not a delivery.
        t.acknowledged(b, "t", 0, 0);
        t.acknowledged(b, "t", 1, 4);
        assert_eq!(t.confirmed(), 10);
        assert_eq!(t.in_flight(), 0);
        assert!(matches!(t.fault(), Some(Error::AckRegression(_))));
        assert!(t.fault().unwrap().is_retryable());
        // The next session starts over from 10 and learns the offsets anew.
        t.abandon_open();
        assert!(t.fault().is_none());
        let c = t.begin();
        t.sent();
        t.commit(c, 1, 20);
        t.acknowledged(c, "t", 0, 1);
        assert_eq!(t.confirmed(), 20);
        // A negative offset on a partition never seen is no acknowledgement either.
        let d = t.begin();
        t.sent();
        t.commit(d, 1, 30);
        t.acknowledged(d, "u", 0, -1);
        assert_eq!(t.confirmed(), 20);
        assert!(t.fault().is_some());
    }

    #[test]
    fn empty_transactions_behind_an_unacknowledged_one_take_no_room() {
        let t = tracker();
        let a = t.begin();
        t.sent();
        t.commit(a, 1, 10);
        // A million small transactions on tables not captured while `a` waits for the broker.
        for i in 0..1_000_000u64 {
            let e = t.begin();
            t.commit(e, 0, 20 + i);
        }
        assert_eq!(t.tracked(), 1, "merged into the waiting transaction");
        assert_eq!(t.confirmed(), 0);
        t.delivered(a, Ok(()));
        assert_eq!(
            t.confirmed(),
            20 + 999_999,
            "confirmed past them once `a` is"
        );
        // A transaction with messages is never merged.
        let b = t.begin();
        t.sent();
        t.commit(b, 1, 2_000_000);
        let c = t.begin();
        t.sent();
        t.commit(c, 1, 2_000_001);
        assert_eq!(t.tracked(), 2);
    }

    #[test]
    fn idle_keepalive_confirms_only_without_open_transactions() {
        let t = tracker();
        t.idle_position(500);
        assert_eq!(t.confirmed(), 500);
        let a = t.begin();
        t.idle_position(900);
        assert_eq!(t.confirmed(), 500);
        t.abandon_open();
        t.idle_position(900);
        assert_eq!(t.confirmed(), 900);
        // Sequence numbers keep working after abandoning.
        let b = t.begin();
        assert!(b > a);
        t.commit(b, 0, 1000);
        assert_eq!(t.confirmed(), 1000);
    }
}
