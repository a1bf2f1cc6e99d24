//! The runtime against a fake source, step and sink: no broker, no database.
//!
//! Messages are `partition 0` offsets with a text payload the fake step reads: `skip`, `bad`
//! (dead-lettered by `decide`), or anything else (written, one result event each). Time is
//! paused, so backoffs and timeouts pass instantly.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use super::*;

fn topic() -> Arc<str> {
    Arc::from("in")
}

fn message(offset: i64, payload: Option<&str>) -> Message {
    Message {
        topic: topic(),
        partition: 0,
        offset,
        timestamp_ms: None,
        key: Some(format!("k{}", offset % 7).into_bytes()),
        payload: payload.map(|p| p.as_bytes().to_vec()),
    }
}

#[derive(Default)]
struct FakeSource {
    rx: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Message>>>,
    book: OffsetBook,
    commits: Mutex<Vec<BTreeMap<TopicPartition, i64>>>,
    paused: AtomicBool,
    pauses: AtomicUsize,
    recv_calls: AtomicUsize,
}

impl FakeSource {
    fn new(messages: Vec<Message>) -> (Arc<Self>, mpsc::UnboundedSender<Message>) {
        let (tx, rx) = mpsc::unbounded_channel();
        for m in messages {
            tx.send(m).unwrap();
        }
        let source = Self {
            rx: tokio::sync::Mutex::new(Some(rx)),
            ..Self::default()
        };
        (Arc::new(source), tx)
    }

    /// The last committed position of partition 0.
    fn committed(&self) -> Option<i64> {
        self.commits
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| c.get(&(topic(), 0)).copied())
            .max()
    }
}

impl Source for FakeSource {
    async fn recv(&self) -> Result<Message, String> {
        self.recv_calls.fetch_add(1, Ordering::Relaxed);
        let mut rx = self.rx.lock().await;
        match rx.as_mut() {
            Some(rx) => match rx.recv().await {
                Some(m) => Ok(m),
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    fn book(&self) -> &OffsetBook {
        &self.book
    }

    fn commit(&self, positions: &BTreeMap<TopicPartition, i64>, _sync: bool) -> Result<(), String> {
        self.commits.lock().unwrap().push(positions.clone());
        Ok(())
    }

    fn pause(&self) -> Result<(), String> {
        self.paused.store(true, Ordering::SeqCst);
        self.pauses.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn resume(&self) -> Result<(), String> {
        self.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    async fn check(&self) -> Result<String, String> {
        Ok("fake".to_owned())
    }
}

/// What the fake step is told to do.
#[derive(Default)]
struct FakeStep {
    /// Offsets of every write call, in call order.
    writes: Mutex<Vec<Vec<i64>>>,
    /// Transient failures to return before writing.
    transient: AtomicU32,
    /// Offsets the database "refuses".
    refused: HashSet<i64>,
    /// Offsets whose rows are "held elsewhere" this many more times.
    held: Mutex<BTreeMap<i64, u32>>,
    /// While set, writes wait for `open`.
    gate: Option<Arc<Notify>>,
    /// A write of this first offset waits this long (to finish after a later batch).
    slow_first: Option<(i64, Duration)>,
}

impl Step for FakeStep {
    type Work = String;
    type Ready = String;
    const SKIP_REASONS: &'static [&'static str] = &["other"];

    fn decide(&self, message: &Message) -> Decision<String> {
        let text = String::from_utf8(message.payload.clone().unwrap_or_default()).unwrap();
        match text.as_str() {
            "skip" => Decision::Skip("other"),
            bad if bad.starts_with("bad") => Decision::DeadLetter(Letter {
                kind: dlq::Kind::Decode,
                reason: "malformed".into(),
                message: "bad payload".into(),
                row: None,
            }),
            _ => Decision::Work(text),
        }
    }

    async fn prepare(&self, work: String) -> Prepared<String> {
        Prepared::Ready(work)
    }

    async fn write(&self, batch: &[Entry<String>]) -> Result<Vec<Settled>, WriteError> {
        {
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
            if let Some((first, delay)) = self.slow_first {
                if batch[0].message.offset == first {
                    tokio::time::sleep(delay).await;
                }
            }
            if self
                .transient
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(WriteError::Transient("connection refused".into()));
            }
            let offsets: Vec<i64> = batch.iter().map(|e| e.message.offset).collect();
            if offsets.iter().any(|o| self.refused.contains(o)) {
                return Err(WriteError::Refused("invalid byte sequence".into()));
            }
            self.writes.lock().unwrap().push(offsets);
            let mut held = self.held.lock().unwrap();
            Ok(batch
                .iter()
                .map(|e| {
                    if let Some(n) = held.get_mut(&e.message.offset).filter(|n| **n > 0) {
                        *n -= 1;
                        return Settled::Deferred;
                    }
                    // `big…` results carry the whole input (an event too large to publish).
                    let payload = if e.item.starts_with("big") {
                        e.item.clone().into_bytes()
                    } else {
                        format!("r{}", e.message.offset).into_bytes()
                    };
                    Settled::Done(vec![Output::Result {
                        key: e.message.key.clone().unwrap_or_default(),
                        payload,
                    }])
                })
                .collect())
        }
    }
}

/// Records acknowledged messages; can fail or stop acknowledging until reset.
#[derive(Default)]
struct FakeSink {
    acked: Mutex<Vec<Record>>,
    /// Sends to fail before succeeding again.
    fail: AtomicU32,
    /// Acknowledgements stop (time out) until the producer is recreated.
    wedged: AtomicBool,
    resets: AtomicU32,
    /// Largest message the "broker" takes (0: any).
    max_bytes: usize,
}

impl FakeSink {
    fn payloads(&self, topic: &str) -> Vec<String> {
        self.acked
            .lock()
            .unwrap()
            .iter()
            .filter(|r| &*r.topic == topic)
            .map(|r| String::from_utf8(r.payload.clone()).unwrap())
            .collect()
    }
}

struct SinkHandle(Arc<FakeSink>);

impl Sink for SinkHandle {
    fn send(
        &self,
        record: &Record,
    ) -> impl Future<Output = Result<(), SendError>> + Send + 'static {
        let sink = Arc::clone(&self.0);
        let record = record.clone();
        async move {
            if sink.wedged.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return Err(SendError::Timeout);
            }
            if sink.max_bytes > 0 && record.payload.len() > sink.max_bytes {
                return Err(SendError::TooLarge);
            }
            if sink
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(SendError::Failed("broker transport failure".into()));
            }
            sink.acked.lock().unwrap().push(record);
            Ok(())
        }
    }

    fn reset(&self) {
        self.0.resets.fetch_add(1, Ordering::SeqCst);
        self.0.wedged.store(false, Ordering::SeqCst);
    }
}

struct Harness {
    source: Arc<FakeSource>,
    sink: Arc<FakeSink>,
    step: Arc<FakeStep>,
    health: Health,
    metrics: Metrics,
    shutdown: Shutdown,
    task: JoinHandle<Result<Report, RuntimeError>>,
    _tx: mpsc::UnboundedSender<Message>,
}

fn settings() -> Settings {
    let mut settings = Settings::new("test", "g", "results", "in.dlq");
    settings.batch_size = 4;
    settings.flush_interval = Duration::from_millis(10);
    settings.write_concurrency = 2;
    settings
}

fn start(step: FakeStep, sink: FakeSink, messages: Vec<Message>, settings: Settings) -> Harness {
    let (source, tx) = FakeSource::new(messages);
    let sink = Arc::new(sink);
    let step = Arc::new(step);
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register("test", FakeStep::SKIP_REASONS, &registry).unwrap();
    let health = Health::new();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(run(
        Arc::clone(&step),
        Arc::clone(&source),
        Arc::new(SinkHandle(Arc::clone(&sink))),
        settings,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    Harness {
        source,
        sink,
        step,
        health,
        metrics,
        shutdown,
        task,
        _tx: tx,
    }
}

impl Harness {
    /// Waits (in paused time) until `done` holds, at most a simulated hour. Checked every
    /// 10 ms: a state held only for a retry's backoff (80 ms at the least) is seen.
    async fn until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..360_000 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never happened: {what}");
    }

    async fn stop(self) -> Report {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap()
    }
}

fn messages(payloads: &[Option<&str>]) -> Vec<Message> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| message(i as i64, *p))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn every_message_is_finished_results_and_letters_published_tombstones_skipped() {
    let input = messages(&[
        Some("a"),
        None,
        Some("skip"),
        Some("b"),
        Some("bad"),
        Some("c"),
        Some("d"),
        Some("e"),
    ]);
    let h = start(FakeStep::default(), FakeSink::default(), input, settings());
    h.until("all committed", |h| h.source.committed() == Some(8))
        .await;
    let mut results = h.sink.payloads("results");
    results.sort();
    assert_eq!(results, ["r0", "r3", "r5", "r6", "r7"]);
    let letters = h.sink.payloads("in.dlq");
    assert_eq!(letters.len(), 1);
    let letter: serde_json::Value = serde_json::from_str(&letters[0]).unwrap();
    assert_eq!(letter["original"]["offset"], 4);
    assert_eq!(letter["error"]["reason"], "malformed");
    assert_eq!(letter["worker"], "test");
    let skipped = |r: &str| h.metrics.skipped.with_label_values(&[r]).get();
    assert_eq!((skipped("tombstone"), skipped("other")), (1, 1));
    assert_eq!(h.metrics.results.get(), 5);
    assert_eq!(
        h.metrics.dead_letters.with_label_values(&["decode"]).get(),
        1
    );
    assert_eq!(h.stop().await, Report::default());
}

#[tokio::test(start_paused = true)]
async fn nothing_is_committed_past_an_unacknowledged_event_and_a_wedged_producer_is_recreated() {
    let sink = FakeSink::default();
    sink.wedged.store(true, Ordering::SeqCst);
    let h = start(
        FakeStep::default(),
        sink,
        messages(&[Some("a"), Some("b")]),
        settings(),
    );
    // Written but not acknowledged: not committed, not ready.
    h.until("a write", |h| !h.step.writes.lock().unwrap().is_empty())
        .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.source.committed(), None);
    h.until("publish reported unready", |h| !h.health.is_ready())
        .await;
    h.until("committed after the reset", |h| {
        h.source.committed() == Some(2)
    })
    .await;
    assert!(h.sink.resets.load(Ordering::SeqCst) >= 1);
    assert_eq!(h.metrics.producer_resets.get(), 1);
    assert_eq!(h.sink.payloads("results").len(), 2);
    h.until("ready again", |h| h.health.is_ready()).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failed_publishes_are_retried_until_acknowledged() {
    let sink = FakeSink::default();
    sink.fail.store(5, Ordering::SeqCst);
    let h = start(
        FakeStep::default(),
        sink,
        messages(&[Some("a"), Some("b"), Some("bad")]),
        settings(),
    );
    h.until("committed", |h| h.source.committed() == Some(3))
        .await;
    assert_eq!(h.sink.payloads("results").len(), 2);
    assert_eq!(h.sink.payloads("in.dlq").len(), 1);
    assert!(h.metrics.retries.with_label_values(&["publish"]).get() >= 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn database_outages_are_retried_and_pause_consumption_without_stopping_the_poll() {
    let step = FakeStep {
        transient: AtomicU32::new(40),
        ..FakeStep::default()
    };
    let mut settings = settings();
    settings.max_in_flight = 6;
    let input: Vec<Message> = (0..20).map(|i| message(i, Some("x"))).collect();
    let h = start(step, FakeSink::default(), input, settings);
    h.until("paused", |h| h.source.paused.load(Ordering::SeqCst))
        .await;
    assert!(!h.health.is_ready(), "readiness reports the failing writes");
    let polls = h.source.recv_calls.load(Ordering::SeqCst);
    assert_eq!(h.source.committed(), None);
    h.until("everything committed", |h| h.source.committed() == Some(20))
        .await;
    assert!(!h.source.paused.load(Ordering::SeqCst), "resumed");
    assert!(h.source.recv_calls.load(Ordering::SeqCst) >= polls);
    assert_eq!(h.metrics.retries.with_label_values(&["database"]).get(), 40);
    assert_eq!(h.sink.payloads("results").len(), 20);
    h.until("ready again", |h| h.health.is_ready()).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rows_held_elsewhere_are_deferred_and_block_the_commit_until_written() {
    let step = FakeStep {
        held: Mutex::new(BTreeMap::from([(1, 3)])),
        ..FakeStep::default()
    };
    let h = start(
        step,
        FakeSink::default(),
        messages(&[Some("a"), Some("b"), Some("c")]),
        settings(),
    );
    h.until("committed", |h| h.source.committed() == Some(3))
        .await;
    // Offsets 0 and 2 finished first, but the commit waited for 1.
    let commits = h.source.commits.lock().unwrap().clone();
    assert!(commits
        .iter()
        .all(|c| c.get(&(topic(), 0)).is_none_or(|p| *p == 1 || *p == 3)));
    assert_eq!(h.metrics.deferred.get(), 3);
    let writes = h.step.writes.lock().unwrap().clone();
    assert_eq!(writes.iter().filter(|w| w.contains(&1)).count(), 4);
    let mut results = h.sink.payloads("results");
    results.sort();
    assert_eq!(results, ["r0", "r1", "r2"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_message_is_isolated_and_dead_lettered_alone() {
    let step = FakeStep {
        refused: HashSet::from([2]),
        ..FakeStep::default()
    };
    let h = start(
        step,
        FakeSink::default(),
        messages(&[Some("a"), Some("b"), Some("c"), Some("d")]),
        settings(),
    );
    h.until("committed", |h| h.source.committed() == Some(4))
        .await;
    let mut results = h.sink.payloads("results");
    results.sort();
    assert_eq!(results, ["r0", "r1", "r3"]);
    let letters = h.sink.payloads("in.dlq");
    assert_eq!(letters.len(), 1);
    let letter: serde_json::Value = serde_json::from_str(&letters[0]).unwrap();
    assert_eq!(letter["original"]["offset"], 2);
    assert_eq!(letter["error"]["reason"], "refused_by_database");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn batches_publish_in_close_order_even_when_a_later_write_finishes_first() {
    let step = FakeStep {
        slow_first: Some((0, Duration::from_secs(3))),
        ..FakeStep::default()
    };
    // Same key for offsets 0 and 7 (key = offset % 7): the older must be published first.
    let input: Vec<Message> = (0..8).map(|i| message(i, Some("x"))).collect();
    let h = start(step, FakeSink::default(), input, settings());
    h.until("committed", |h| h.source.committed() == Some(8))
        .await;
    let writes = h.step.writes.lock().unwrap().clone();
    assert_eq!(writes[0][0], 4, "the second batch was written first");
    let results = h.sink.payloads("results");
    let at = |p: &str| results.iter().position(|r| r == p).unwrap();
    assert!(at("r0") < at("r4") && at("r3") < at("r7"));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_within_its_timeout_whatever_is_stuck() {
    let gate = Arc::new(Notify::new());
    let step = FakeStep {
        gate: Some(Arc::clone(&gate)),
        ..FakeStep::default()
    };
    let mut settings = settings();
    settings.shutdown_timeout = Duration::from_secs(5);
    let h = start(
        step,
        FakeSink::default(),
        messages(&[Some("skip"), Some("a"), Some("b")]),
        settings,
    );
    h.until("received", |h| h.metrics.in_flight.get() == 2)
        .await;
    let started = tokio::time::Instant::now();
    let report = h.stop_in_place().await;
    assert!(started.elapsed() <= Duration::from_secs(6));
    assert_eq!(report.abandoned, 2);
    drop(gate);
}

impl Harness {
    async fn stop_in_place(self) -> Report {
        let source = Arc::clone(&self.source);
        let report = self.stop().await;
        // Only the skipped message before the stuck ones was committed.
        assert_eq!(source.committed(), Some(1));
        report
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_what_it_holds_and_commits_it() {
    let h = start(
        FakeStep::default(),
        FakeSink::default(),
        messages(&[Some("a"), Some("b"), Some("c")]),
        settings(),
    );
    h.until("received", |h| {
        h.source.book.in_flight() > 0 || h.source.committed() == Some(3)
    })
    .await;
    let source = Arc::clone(&h.source);
    let sink = Arc::clone(&h.sink);
    assert_eq!(h.stop().await.abandoned, 0);
    assert_eq!(source.committed(), Some(3));
    assert_eq!(sink.payloads("results").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn outputs_too_large_for_the_broker_never_stall_a_partition() {
    let huge_bad = format!("bad{}", "x".repeat(20_000));
    let huge_result = format!("big{}", "y".repeat(20_000));
    let input = vec![
        message(0, Some(&huge_bad)),
        message(1, Some(&huge_result)),
        message(2, Some("a")),
    ];
    let mut settings = settings();
    settings.max_message_bytes = 4_000;
    let sink = FakeSink {
        max_bytes: 4_000,
        ..FakeSink::default()
    };
    let h = start(FakeStep::default(), sink, input, settings);
    h.until("all committed", |h| h.source.committed() == Some(3))
        .await;
    assert_eq!(h.sink.payloads("results"), ["r2"]);
    let letters: Vec<serde_json::Value> = h
        .sink
        .payloads("in.dlq")
        .iter()
        .map(|l| {
            assert!(l.len() <= 4_000, "a dead letter of {} bytes", l.len());
            serde_json::from_str(l).unwrap()
        })
        .collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    // The poison message's letter: its value cut to fit, with its size and hash.
    let cut = letters
        .iter()
        .find(|l| l["original"]["offset"] == 0)
        .expect("the dead letter of the oversized input");
    assert_eq!(cut["original"]["value_truncated"], true);
    assert_eq!(cut["original"]["value_bytes"], huge_bad.len());
    assert_eq!(cut["original"]["value_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(h.metrics.truncated.get(), 1);
    // The result the broker refused: a note of it in its place.
    let note = letters
        .iter()
        .find(|l| l["error"]["kind"] == "too_large")
        .expect("a note of the refused result");
    assert_eq!(note["error"]["reason"], "event_too_large");
    assert_eq!(h.stop().await, Report::default());
}
