//! Which transactions are in flight, and the position that may be confirmed (see the
//! guarantee in [`super`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// Another reader's producer fenced this one: it is no longer the leader.
    fenced: bool,
    /// Acknowledged offsets per topic and partition.
    last_offsets: HashMap<String, HashMap<i32, PartitionAcks>>,
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
    /// partition's previous one, or has no offset at all. A batch some brokers (Tansu) report
    /// as a duplicate of one they already appended comes back without offsets (-1, 0, 1, …:
    /// librdkafka adds each message's index to the base), and such a broker may say so of a
    /// batch it lost in a restart: it counts as a loss too, and is sent again.
    fn follow_offset(&mut self, topic: &str, partition: i32, offset: i64) -> Result<(), String> {
        // Looked up by `&str`: no allocation per acknowledgement.
        if !self.last_offsets.contains_key(topic) {
            self.last_offsets.insert(topic.to_owned(), HashMap::new());
        }
        let acks = self
            .last_offsets
            .get_mut(topic)
            .expect("inserted above")
            .entry(partition)
            .or_default();
        match acks.last {
            Some(last) if offset <= last => Err(format!(
                "{topic}[{partition}] acknowledged offset {offset} after {last}"
            )),
            _ if offset < 0 => Err(format!(
                "{topic}[{partition}] acknowledged without an offset ({offset})"
            )),
            _ => {
                acks.last = Some(offset);
                acks.first.get_or_insert(offset);
                Ok(())
            }
        }
    }
}

/// The offsets acknowledged on one partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AckedRange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The first offset acknowledged.
    pub first: i64,
    /// The highest offset acknowledged.
    pub last: i64,
}

/// What the acknowledgements of one partition said.
#[derive(Debug, Default, Clone, Copy)]
struct PartitionAcks {
    /// The first offset acknowledged.
    first: Option<i64>,
    /// The highest offset acknowledged.
    last: Option<i64>,
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
    pub(super) metrics: Metrics,
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
        state.fenced = false;
        state.last_offsets.clear();
        state.last_progress = None;
        self.in_flight.store(0, Ordering::SeqCst);
        self.metrics.in_flight.set(0);
        drop(state);
        self.progress.notify_one();
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Records a message the producer never took (it was not counted by the transaction).
    pub(super) fn unsent(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The state, if reports of the producer of `generation` still count (checked under the
    /// lock [`Tracker::reset`] takes, so a report racing a reset is never counted).
    fn current(&self, generation: u64) -> Option<MutexGuard<'_, State>> {
        let state = self.lock();
        (self.generation() == generation).then_some(state)
    }

    /// A delivery report without an offset check: acknowledged, or refused for good.
    pub(super) fn delivered(&self, generation: u64, seq: TxSeq, result: Result<(), String>) {
        if let Some(state) = self.current(generation) {
            self.settle(state, seq, result.map_err(Fault::Refused));
        }
    }

    /// A delivery report of a message refused because a newer producer of the transactional
    /// id (another reader, now the leader) fenced this one.
    pub(super) fn fenced(&self, generation: u64, seq: TxSeq, reason: String) {
        let Some(mut state) = self.current(generation) else {
            return;
        };
        if !state.fenced {
            tracing::error!(%reason, "fenced by another reader's producer; stepping down");
        }
        state.fenced = true;
        self.settle(state, seq, Err(Fault::Broken(reason)));
    }

    /// A delivery report of a message the producer could not deliver because it failed.
    pub(super) fn broken(&self, generation: u64, seq: TxSeq, reason: String) {
        if let Some(state) = self.current(generation) {
            self.settle(state, seq, Err(Fault::Broken(reason)));
        }
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

    /// The position that may be confirmed once the broker still holds what was acknowledged
    /// ([`Tracker::acked_offsets`]).
    pub fn confirmed(&self) -> u64 {
        self.lock().confirmed
    }

    /// The confirmed position, with the first and the highest offset acknowledged on every
    /// partition when it was read. Before the position is reported to PostgreSQL, the broker
    /// is asked whether each partition still holds what was acknowledged on it (a loss on a
    /// partition that gets no further message is seen only this way).
    pub fn acked_offsets(&self) -> (u64, Vec<AckedRange>) {
        let state = self.lock();
        let offsets = state
            .last_offsets
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions.iter().filter_map(move |(p, acks)| {
                    Some(AckedRange {
                        topic: topic.clone(),
                        partition: *p,
                        first: acks.first?,
                        last: acks.last?,
                    })
                })
            })
            .collect();
        (state.confirmed, offsets)
    }

    /// Starts a session at `position`, the slot's confirmed position: nothing beyond it counts
    /// as confirmed until this session's own messages are acknowledged again (what an earlier
    /// session had acknowledged may be what the broker lost).
    pub fn rewind(&self, position: u64) {
        let mut state = self.lock();
        state.confirmed = position;
        self.metrics.confirmed_lsn.set(lsn_gauge(position));
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
        if state.fenced {
            return Some(Error::LeadershipLost);
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
    pub(super) fn acknowledged(
        &self,
        generation: u64,
        seq: TxSeq,
        topic: &str,
        partition: i32,
        offset: i64,
    ) {
        let Some(mut state) = self.current(generation) else {
            return;
        };
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
        t.delivered(t.generation(), b, Ok(()));
        assert_eq!(t.confirmed(), 0);
        t.delivered(t.generation(), a, Ok(()));
        assert_eq!(t.confirmed(), 0);
        t.delivered(t.generation(), a, Ok(()));
        assert_eq!(t.confirmed(), 200);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn acks_before_commit_and_empty_transactions() {
        let t = tracker();
        let a = t.begin();
        t.sent();
        t.delivered(t.generation(), a, Ok(()));
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
        t.delivered(t.generation(), a, Err("boom".into()));
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
        t.acknowledged(t.generation(), a, "t", 0, 259);
        t.acknowledged(t.generation(), a, "t", 1, 3);
        assert_eq!(t.confirmed(), 10);
        let b = t.begin();
        t.sent();
        t.sent();
        t.commit(b, 2, 20);
        // The broker forgot its log end: a reused offset is not a delivery.
        t.acknowledged(t.generation(), b, "t", 0, 0);
        t.acknowledged(t.generation(), b, "t", 1, 4);
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
        t.acknowledged(t.generation(), c, "t", 0, 1);
        assert_eq!(t.confirmed(), 20);
        // A negative offset on a partition never seen is no acknowledgement either.
        let d = t.begin();
        t.sent();
        t.commit(d, 1, 30);
        t.acknowledged(t.generation(), d, "u", 0, -1);
        assert_eq!(t.confirmed(), 20);
        assert!(t.fault().is_some());
    }

    #[test]
    fn acknowledged_ranges_per_partition() {
        let t = tracker();
        let a = t.begin();
        for _ in 0..4 {
            t.sent();
        }
        t.commit(a, 4, 10);
        t.acknowledged(t.generation(), a, "t", 0, 279);
        t.acknowledged(t.generation(), a, "t", 0, 280);
        t.acknowledged(t.generation(), a, "t", 1, 5);
        // A batch acknowledged without offsets (a claimed duplicate) is no delivery.
        t.acknowledged(t.generation(), a, "t", 0, -1);
        assert!(matches!(t.fault(), Some(Error::AckRegression(_))));
        assert_eq!(t.confirmed(), 0);
        let (confirmed, mut offsets) = t.acked_offsets();
        offsets.sort();
        let range = |partition, first, last| AckedRange {
            topic: "t".to_owned(),
            partition,
            first,
            last,
        };
        assert_eq!(confirmed, 0);
        assert_eq!(offsets, vec![range(0, 279, 280), range(1, 5, 5)]);
    }

    #[test]
    fn a_session_starts_from_the_slot_not_from_what_an_earlier_one_acknowledged() {
        let t = tracker();
        let a = t.begin();
        t.sent();
        t.commit(a, 1, 500);
        t.acknowledged(t.generation(), a, "t", 0, 7);
        assert_eq!(t.confirmed(), 500);
        t.abandon_open();
        t.rewind(300);
        assert_eq!(t.confirmed(), 300);
        assert_eq!(t.acked_offsets().0, 300);
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
        t.delivered(t.generation(), a, Ok(()));
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
