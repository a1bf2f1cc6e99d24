//! The streaming loop: wal2json messages in, Kafka records out, confirmed positions back.
//!
//! Each transaction is tracked from its begin to its commit ([`crate::delivery::Tracker`]);
//! every row becomes one record on its table's topic as soon as it arrives, so a transaction
//! of any size streams through bounded memory. The loop stops reading the socket while
//! `max_in_flight` records await acknowledgement. Status updates report the tracker's confirmed
//! position every `status_interval` and whenever the server asks.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use shared::envelope::{format_lsn, Op};
use shared::health::Health;
use shared::shutdown::Shutdown;
use tokio_util::sync::CancellationToken;

use crate::connection::{PgWireError, ReplicationConnection};
use crate::delivery::{AckedRange, CommitOutcome, Committing, Publisher, TxSeq};
use crate::envelope::{
    encode_key, encode_transaction, encode_value, transaction_id, write_envelope, write_key,
    DataCollection, RawSource, Row, SourceInfo, TxEvent, TxStatus,
};
use crate::error::Error;
use crate::incremental::{Incremental, WATERMARK_PREFIX};
use crate::metrics::{lsn_gauge, Metrics};
use crate::protocol::{status_update, ServerMessage};
use crate::raw_row::RawRow;
use crate::topics::{Route, Routes};
use crate::wal2json::Message;

/// How long the broker must have answered, acknowledgements still stalled, before the
/// producer is declared lost (see `Session::check_stall`).
const STALL_CONFIRMATION: Duration = Duration::from_secs(5);

/// Key of truncate events: they concern no row, but compacted topics refuse null keys.
pub const TRUNCATE_KEY: &[u8] = TRUNCATE_KEY_STR.as_bytes();
/// [`TRUNCATE_KEY`] as text.
pub const TRUNCATE_KEY_STR: &str = "{}";

/// The raw value of column `name` (the table's column `at`) in a wal2json row, if it has it:
/// wal2json lists a full row's columns in table order, so the position is tried first.
fn find_column<'r>(
    row: Option<&[crate::wal2json::Column<'r>]>,
    at: usize,
    name: &str,
) -> Option<&'r str> {
    let row = row?;
    match row.get(at) {
        Some(column) if column.name == name => Some(column.value.get()),
        _ => row.iter().find(|c| c.name == name).map(|c| c.value.get()),
    }
}

/// The same for a row the raw scanner read from `data`: names are compared as the quoted
/// JSON strings wal2json wrote.
fn find_raw_column<'r>(
    data: &'r [u8],
    row: &[crate::raw_row::RawField],
    at: usize,
    quoted: &[u8],
) -> Option<&'r str> {
    let value =
        |field: &crate::raw_row::RawField| std::str::from_utf8(&data[field.value.clone()]).ok();
    match row.get(at) {
        Some(field) if &data[field.name.clone()] == quoted => value(field),
        _ => row
            .iter()
            .find(|f| &data[f.name.clone()] == quoted)
            .and_then(value),
    }
}

/// Settings of a streaming session.
#[derive(Debug, Clone)]
pub struct StreamParams {
    /// Slot to stream.
    pub slot: String,
    /// wal2json options.
    pub plugin_options: Vec<(&'static str, String)>,
    /// Cap on unacknowledged records.
    pub max_in_flight: u64,
    /// Status update period.
    pub status_interval: Duration,
    /// Tombstone after each delete.
    pub tombstones: bool,
    /// Stop once this position is confirmed.
    pub stop_at: Option<u64>,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
    /// In flight with no acknowledgement this long, while the broker answers: the producer
    /// is replaced (see [`Error::ProducerLost`]).
    pub ack_stall_timeout: Duration,
    /// With a transactional producer: how often the Kafka transaction is committed.
    pub transaction_interval: Duration,
    /// Where transaction boundaries go (`--transaction-metadata`), if anywhere.
    pub transaction_topic: Option<String>,
    /// The Debezium encoder (`--envelope debezium`).
    pub debezium: Option<std::sync::Arc<crate::debezium::Debezium>>,
}

/// Why a session ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Shutdown was requested; everything acknowledged was confirmed.
    Shutdown,
    /// `stop_at` was reached and confirmed.
    StopReached,
}

/// The transaction being received.
#[derive(Debug)]
struct OpenTx {
    seq: TxSeq,
    sent: u64,
    commit_lsn: u64,
    end_lsn: Option<u64>,
    xid: Option<u64>,
    ts: DateTime<Utc>,
    /// `ts` as the envelope writes it (a JSON string), for the raw-row path.
    ts_json: String,
    /// With transaction metadata: the BEGIN event was sent.
    announced: bool,
    /// With transaction metadata: change records per route (indexed by [`Route::index`]).
    counts: Vec<u64>,
}

impl OpenTx {
    /// One more change record of `route` (for the END event's counts, when they are kept).
    fn count(&mut self, route: &Route) {
        if let Some(count) = self.counts.get_mut(route.index) {
            *count += 1;
        }
    }
}

struct Session<'a> {
    conn: &'a mut ReplicationConnection,
    routes: &'a Routes,
    publisher: &'a Publisher,
    params: &'a StreamParams,
    metrics: &'a Metrics,
    open: Option<OpenTx>,
    key: Vec<u8>,
    /// The old key of an update, to tell whether the key changed.
    old_key: Vec<u8>,
    /// The second envelope of an update that changed the key (the create).
    second_value: Vec<u8>,
    value: Vec<u8>,
    reply_requested: bool,
    /// Reused scan of row messages (the hot path).
    raw: RawRow,
    health: &'a Health,
    /// When the broker was last asked whether it answers, while acknowledgements stall.
    last_probe: Option<std::time::Instant>,
    /// Since when the broker has answered every probe while acknowledgements stall (an
    /// outage that just ended is not a stall: acknowledgements resume shortly after).
    answering_since: Option<std::time::Instant>,
    /// The position reported to the server: confirmed by the tracker, then checked against
    /// the partitions' log ends ([`Tracker::acked_offsets`]). Starts at the slot's
    /// confirmed position.
    ///
    /// [`Tracker::acked_offsets`]: crate::delivery::Tracker::acked_offsets
    verified: u64,
    /// The highest offset of each partition the last successful check covered (unchanged
    /// partitions are not asked again).
    checked: HashMap<(String, i32), i64>,
    /// A check under way: the candidate position and the offsets it covers.
    verifying: Option<Verifying>,
    /// A Kafka transaction's commit under way (transactional producer only).
    committing: Option<Committing>,
    /// Log-end checks that failed in a row.
    verify_failures: u32,
    /// The broker cannot list offsets (it closes the connection instead, as Tansu's
    /// PostgreSQL engine on PostgreSQL 15 does) while it acknowledges messages: positions are
    /// then confirmed without the check, as acknowledged.
    unverifiable: bool,
    /// Incremental snapshots (when the signal table exists).
    incremental: Option<&'a mut Incremental>,
    /// End of the commit record of the last transaction with captured changes this session
    /// (Debezium's `sequence`).
    last_commit: Option<u64>,
}

/// A log-end check in flight (see [`Session::verified`]).
type Verifying = tokio::task::JoinHandle<(
    u64,
    Vec<AckedRange>,
    Result<Result<(), String>, rdkafka::error::KafkaError>,
)>;

/// Starts replication on `conn` and streams until shutdown, `stop_at`, or an error.
#[allow(clippy::too_many_arguments)]
pub async fn stream(
    conn: &mut ReplicationConnection,
    routes: &Routes,
    publisher: &Publisher,
    params: &StreamParams,
    metrics: &Metrics,
    health: &Health,
    shutdown: &Shutdown,
    lost: &CancellationToken,
    incremental: Option<&mut Incremental>,
) -> Result<SessionEnd, Error> {
    conn.start_replication(&params.slot, 0, &params.plugin_options)
        .await
        .map_err(Error::wire("starting replication"))?;
    tracing::info!(slot = %params.slot, pid = conn.pid(), "streaming");
    let mut session = Session {
        conn,
        routes,
        publisher,
        params,
        metrics,
        open: None,
        key: Vec::with_capacity(128),
        old_key: Vec::with_capacity(128),
        second_value: Vec::new(),
        value: Vec::with_capacity(4096),
        reply_requested: false,
        raw: RawRow::default(),
        health,
        last_probe: None,
        answering_since: None,
        verified: publisher.tracker().confirmed(),
        checked: HashMap::new(),
        verifying: None,
        committing: None,
        verify_failures: 0,
        unverifiable: false,
        incremental,
        last_commit: None,
    };
    session.run(shutdown, lost).await
}

impl<'a> Session<'a> {
    async fn run(
        &mut self,
        shutdown: &Shutdown,
        lost: &CancellationToken,
    ) -> Result<SessionEnd, Error> {
        let mut status_tick = tokio::time::interval(self.params.status_interval);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stall_tick = tokio::time::interval(Duration::from_secs(1));
        stall_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let transactional = self.publisher.is_transactional();
        let mut commit_tick = tokio::time::interval(self.params.transaction_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let tracker = self.publisher.tracker().clone();
        loop {
            // Handle what is already buffered, as long as there is room in flight.
            while tracker.in_flight() < self.params.max_in_flight {
                match self
                    .conn
                    .next_frame()
                    .map_err(Error::wire("reading the replication stream"))?
                {
                    Some(frame) if frame.tag == b'd' => self.handle(frame.body).await?,
                    Some(frame) if matches!(frame.tag, b'c' | b'C' | b'Z') => {
                        // The server ended the stream (it is shutting down): reconnect.
                        return Err(Error::wire("streaming")(PgWireError::Io(
                            std::io::Error::new(
                                std::io::ErrorKind::ConnectionAborted,
                                "the server ended the replication stream",
                            ),
                        )));
                    }
                    Some(frame) => {
                        return Err(Error::wire("streaming")(PgWireError::Protocol(format!(
                            "unexpected message `{}` while streaming",
                            frame.tag as char
                        ))))
                    }
                    None => break,
                }
            }
            if self.reply_requested {
                self.send_status().await?;
            }
            if let Some(incremental) = self.incremental.as_deref_mut() {
                incremental.drive(self.routes, self.verified).await?;
                self.metrics
                    .incremental_pending
                    .set(incremental.pending() as i64);
            }
            if let Some(fault) = tracker.fault() {
                return Err(fault);
            }
            if let Some(stop) = self.params.stop_at {
                if self.verified >= stop {
                    self.finish().await?;
                    return Ok(SessionEnd::StopReached);
                }
                if self.publisher.confirmable() >= stop {
                    self.start_verification();
                } else if tracker.confirmed() >= stop && self.committing.is_none() {
                    // Everything up to the stop is acknowledged: commit it now.
                    self.committing = self.publisher.begin_commit();
                }
            }
            let room = tracker.in_flight() < self.params.max_in_flight;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.finish().await?;
                    return Ok(SessionEnd::Shutdown);
                }
                _ = lost.cancelled() => return Err(Error::LeadershipLost),
                _ = tracker.progressed() => {}
                checked = async { self.verifying.as_mut().expect("guarded").await },
                    if self.verifying.is_some() =>
                {
                    self.verifying = None;
                    let (candidate, offsets, outcome) = checked
                        .map_err(|e| Error::Delivery(format!("checking the broker's offsets: {e}")))?;
                    if self.verification_done(candidate, offsets, outcome)? {
                        self.send_status().await?;
                    }
                }
                committed = async { self.committing.as_mut().expect("guarded").await },
                    if self.committing.is_some() =>
                {
                    self.committing = None;
                    let outcome = committed
                        .map_err(|e| Error::ProducerLost(format!("committing the transaction: {e}")))?;
                    if let CommitOutcome::Retry = self.publisher.finish_commit(outcome).await? {
                        self.committing = Some(self.publisher.retry_commit());
                    }
                }
                _ = commit_tick.tick(), if transactional && self.committing.is_none() => {
                    self.committing = self.publisher.begin_commit();
                }
                _ = status_tick.tick() => {
                    self.start_verification();
                    self.send_status().await?;
                }
                _ = stall_tick.tick() => self.check_stall().await?,
                read = self.conn.fill(), if room => {
                    read.map_err(Error::wire("reading the replication stream"))?;
                }
            }
        }
    }

    /// Messages in flight and no acknowledgement for `ack_stall_timeout`: if the broker has
    /// answered for `ack_stall_timeout` too, its acknowledgements will not come (it lost the
    /// producer's state, a topic was recreated): end the session so that the producer is
    /// replaced. If it does not answer, or only just started to again, it is an outage: keep
    /// waiting, the replication connection stays up.
    async fn check_stall(&mut self) -> Result<(), Error> {
        let tracker = self.publisher.tracker();
        let Some(waited) = tracker
            .stalled_for()
            .filter(|w| *w >= self.params.ack_stall_timeout)
        else {
            self.answering_since = None;
            if self.metrics.producer_stalled.get() != 0 {
                self.metrics.producer_stalled.set(0);
                self.health.set(
                    "replication",
                    true,
                    format!("streaming slot {}", self.params.slot),
                );
            }
            return Ok(());
        };
        self.metrics.producer_stalled.set(1);
        self.health.set(
            "replication",
            false,
            format!(
                "{} messages unacknowledged for {}s",
                tracker.in_flight(),
                waited.as_secs()
            ),
        );
        if self
            .last_probe
            .is_some_and(|at| at.elapsed() < Duration::from_secs(5))
        {
            return Ok(());
        }
        self.last_probe = Some(std::time::Instant::now());
        if !self.publisher.broker_answers().await {
            self.answering_since = None;
            tracing::warn!(
                in_flight = tracker.in_flight(),
                ?waited,
                "the broker does not answer; waiting for it"
            );
            return Ok(());
        }
        let answering = *self
            .answering_since
            .get_or_insert_with(std::time::Instant::now);
        // Answering for a few seconds (an outage that just ended gets its acknowledgements
        // flowing again within them): so the producer is replaced within
        // `--ack-stall-timeout` plus about ten seconds of a stall.
        if answering.elapsed() < STALL_CONFIRMATION.min(self.params.ack_stall_timeout) {
            tracing::info!(
                in_flight = tracker.in_flight(),
                ?waited,
                "the broker answers again; waiting for its acknowledgements"
            );
            return Ok(());
        }
        tracing::error!(
            in_flight = tracker.in_flight(),
            ?waited,
            "no acknowledgement although the broker answers; replacing the producer"
        );
        Err(Error::ProducerLost(format!(
            "no acknowledgement for {}s although the broker has answered for {}s",
            waited.as_secs(),
            answering.elapsed().as_secs()
        )))
    }

    async fn handle(&mut self, body: bytes::Bytes) -> Result<(), Error> {
        let message = ServerMessage::parse(body)
            .map_err(|e| Error::wire("streaming")(PgWireError::Protocol(e)))?;
        match message {
            ServerMessage::XLogData {
                wal_start, data, ..
            } => {
                self.metrics.wal_bytes.inc_by(data.len() as u64);
                self.metrics.received_lsn.set(lsn_gauge(wal_start));
                self.change(wal_start, &data).await
            }
            ServerMessage::Keepalive {
                wal_end,
                reply_requested,
            } => {
                self.metrics.received_lsn.set(lsn_gauge(wal_end));
                if self.open.is_none() {
                    self.publisher.tracker().idle_position(wal_end);
                    if self.publisher.tracker().in_flight() == 0 {
                        self.metrics.lag_seconds.set(0.0);
                    }
                }
                self.reply_requested |= reply_requested;
                Ok(())
            }
        }
    }

    async fn change(&mut self, wal_start: u64, data: &[u8]) -> Result<(), Error> {
        if self.raw.scan(data) {
            if let Some(debezium) = self.params.debezium.clone() {
                return self.raw_row_debezium(wal_start, data, &debezium).await;
            }
            return self.raw_row(wal_start, data).await;
        }
        let decode_error = |reason: String| Error::Decode {
            lsn: format_lsn(wal_start),
            reason,
        };
        let message = Message::parse(data).map_err(decode_error)?;
        match message.action.as_ref() {
            "B" => {
                let seq = self.publisher.tracker().begin();
                let ts = message.commit_time().unwrap_or_else(Utc::now);
                let ts_json = serde_json::to_string(&ts).unwrap_or_default();
                self.open = Some(OpenTx {
                    seq,
                    sent: 0,
                    commit_lsn: message.lsn().unwrap_or(wal_start),
                    end_lsn: message.end_lsn(),
                    xid: message.xid,
                    ts,
                    ts_json,
                    announced: false,
                    counts: Vec::new(),
                });
                Ok(())
            }
            "C" => {
                let tx = self
                    .open
                    .take()
                    .ok_or_else(|| decode_error("commit without begin".into()))?;
                // XLogData of a commit starts at the end of the commit record: the position to
                // confirm. wal2json's `nextlsn` says the same.
                let end = tx.end_lsn.unwrap_or(wal_start).max(wal_start);
                let mut tx = tx;
                if tx.announced {
                    self.transaction_event(&mut tx, TxStatus::End).await?;
                }
                self.publisher.tracker().commit(tx.seq, tx.sent, end);
                if tx.sent > 0 {
                    // Debezium's `sequence` names the end of the last commit it received.
                    self.last_commit = Some(end);
                }
                if let Some(incremental) = self.incremental.as_deref_mut() {
                    incremental.committed(end);
                }
                self.metrics.transactions.inc();
                let lag = (Utc::now() - tx.ts).num_milliseconds().max(0) as f64 / 1000.0;
                self.metrics.lag_seconds.set(lag);
                Ok(())
            }
            "I" | "U" | "D" | "T" => self.row(wal_start, &message).await,
            "M" => self.message(wal_start, &message).await,
            _ => Ok(()),
        }
    }

    async fn row(&mut self, wal_start: u64, message: &Message<'_>) -> Result<(), Error> {
        let decode_error = |reason: String| Error::Decode {
            lsn: format_lsn(wal_start),
            reason,
        };
        if self.open.is_none() {
            return Err(decode_error("change outside a transaction".into()));
        }
        let (Some(schema), Some(table)) = (message.schema.as_deref(), message.table.as_deref())
        else {
            return Err(decode_error("change without schema or table".into()));
        };
        let Some(route) = self.route_of(schema, table) else {
            return Ok(());
        };
        if let Some(debezium) = self.params.debezium.clone() {
            return self
                .row_debezium(wal_start, message, route, &debezium)
                .await;
        }
        let tx = self.open.as_mut().expect("checked above");
        let op = match message.action.as_ref() {
            "I" => Op::Create,
            "U" => Op::Update,
            "D" => Op::Delete,
            _ => Op::Truncate,
        };
        let source = SourceInfo {
            lsn: wal_start,
            commit_lsn: tx.commit_lsn,
            xid: tx.xid,
            ts: &tx.ts,
            schema,
            table,
            snapshot: false,
        };
        let seq = tx.seq;
        let after = message.columns.as_deref().map(Row);
        let before = message.identity.as_deref().map(Row);
        let pk = message.pk.as_deref().unwrap_or(&[]);
        if op == Op::Update {
            if let Some(identity) = message.identity.as_deref() {
                let mut old = std::mem::take(&mut self.old_key);
                let has_new =
                    encode_key(&mut self.key, pk, message.columns.as_deref().unwrap_or(&[]));
                if encode_key(&mut old, pk, identity) && old != self.key {
                    // The key changed: a delete (and tombstone) of the old key, then a create.
                    let mut create = std::mem::take(&mut self.second_value);
                    encode_value(
                        &mut self.value,
                        Op::Delete,
                        before,
                        None::<Row<'_>>,
                        &source,
                    );
                    encode_value(&mut create, Op::Create, None::<Row<'_>>, after, &source);
                    let sent = self.publish(route, Op::Delete, Some(&old)).await;
                    self.old_key = old;
                    std::mem::swap(&mut self.value, &mut create);
                    self.second_value = create;
                    sent?;
                    return self.publish_own_key(route, Op::Create, has_new).await;
                }
                self.old_key = old;
            }
        }
        encode_value(
            &mut self.value,
            op,
            before.filter(|_| op != Op::Create),
            after.filter(|_| op != Op::Delete),
            &source,
        );
        let send_error = crate::delivery::send_failed;

        if op == Op::Truncate {
            if let Some(incremental) = self.incremental.as_deref_mut() {
                incremental.observe_truncate(route.index);
            }
            self.announce().await?;
            let tx = self.open.as_mut().expect("checked above");
            // Sent to every partition, so each consumer sees it in order with the row events
            // of its partition. Keyed `{}` (no row): compacted topics refuse null keys.
            for partition in 0..route.partitions {
                self.publisher
                    .wait_for_room(self.params.max_in_flight)
                    .await?;
                self.publisher
                    .send(
                        &route.topic,
                        Some(partition),
                        Some(TRUNCATE_KEY),
                        Some(&self.value),
                        seq,
                    )
                    .await
                    .map_err(send_error)?;
                tx.sent += 1;
                tx.count(route);
            }
            route.events(op).inc();
            route
                .bytes
                .inc_by(self.value.len() as u64 * route.partitions as u64);
            return Ok(());
        }

        let key_row = if op == Op::Delete {
            message.identity.as_deref()
        } else {
            message.columns.as_deref()
        };
        let has_key = encode_key(&mut self.key, pk, key_row.unwrap_or(&[]));
        self.publish_own_key(route, op, has_key).await
    }

    /// A row message scanned by [`RawRow`]: the envelope is written from the message's own
    /// JSON tokens (same document as the `serde` path writes).
    async fn raw_row(&mut self, wal_start: u64, data: &[u8]) -> Result<(), Error> {
        let decode_error = |reason: &str| Error::Decode {
            lsn: format_lsn(wal_start),
            reason: reason.to_owned(),
        };
        let (Ok(schema), Ok(table)) = (
            std::str::from_utf8(&data[self.raw.schema.clone()]),
            std::str::from_utf8(&data[self.raw.table.clone()]),
        ) else {
            return Err(decode_error("schema or table is not UTF-8"));
        };
        let Some(route) = self.route_of(schema, table) else {
            return Ok(());
        };
        let raw = &self.raw;
        let tx = self
            .open
            .as_ref()
            .ok_or_else(|| decode_error("change outside a transaction"))?;
        let op = raw.op.unwrap_or(Op::Create);
        let source = RawSource {
            lsn: wal_start,
            commit_lsn: tx.commit_lsn,
            xid: tx.xid,
            ts_json: &tx.ts_json,
            schema,
            table,
        };
        let key_row = if op == Op::Delete {
            &raw.identity
        } else {
            &raw.columns
        };
        let has_key = write_key(&mut self.key, data, &raw.pk, key_row);
        let identity = raw.has_identity.then_some(raw.identity.as_slice());
        let columns = raw.has_columns.then_some(raw.columns.as_slice());
        if op == Op::Update && raw.has_identity {
            let mut old = std::mem::take(&mut self.old_key);
            let moved = write_key(&mut old, data, &raw.pk, &raw.identity) && old != self.key;
            if moved {
                // The key changed: as Debezium does, a delete (and its tombstone) of the old
                // key, then a create of the new one.
                let mut create = std::mem::take(&mut self.second_value);
                write_envelope(&mut self.value, data, Op::Delete, identity, None, &source);
                write_envelope(&mut create, data, Op::Create, None, columns, &source);
                let sent = self.publish(route, Op::Delete, Some(&old)).await;
                self.old_key = old;
                std::mem::swap(&mut self.value, &mut create);
                self.second_value = create;
                sent?;
                return self.publish_own_key(route, Op::Create, has_key).await;
            }
            self.old_key = old;
        }
        write_envelope(
            &mut self.value,
            data,
            op,
            identity.filter(|_| op != Op::Create),
            columns.filter(|_| op != Op::Delete),
            &source,
        );
        self.publish_own_key(route, op, has_key).await
    }

    /// [`Session::publish`] keyed by the key just written into `self.key` (none when
    /// `has_key` is false).
    async fn publish_own_key(&mut self, route: &Route, op: Op, has_key: bool) -> Result<(), Error> {
        let key = std::mem::take(&mut self.key);
        let sent = self.publish(route, op, has_key.then_some(&key[..])).await;
        self.key = key;
        sent
    }

    /// Sends the encoded value (keyed by `key`) and, after a delete, its tombstone.
    async fn publish(&mut self, route: &Route, op: Op, key: Option<&[u8]>) -> Result<(), Error> {
        let send_error = crate::delivery::send_failed;
        self.announce().await?;
        if let (Some(incremental), Some(key)) = (self.incremental.as_deref_mut(), key) {
            incremental.observe(route.index, key);
        }
        let Some(tx) = self.open.as_mut() else {
            return Err(Error::Decode {
                lsn: "?".into(),
                reason: "change outside a transaction".into(),
            });
        };
        self.publisher
            .send(&route.topic, None, key, Some(&self.value), tx.seq)
            .await
            .map_err(send_error)?;
        tx.sent += 1;
        tx.count(route);
        route.events(op).inc();
        route
            .bytes
            .inc_by((self.value.len() + key.map_or(0, <[u8]>::len)) as u64);
        if let (Op::Delete, true, Some(key)) = (op, self.params.tombstones, key) {
            self.publisher
                .send(&route.topic, None, Some(key), None, tx.seq)
                .await
                .map_err(send_error)?;
            tx.sent += 1;
            route.bytes.inc_by(key.len() as u64);
        }
        Ok(())
    }

    /// The route of a changed table; `None` for the signal table (its inserts are snapshot
    /// requests) and for tables that are not captured (skipped with a warning).
    fn route_of(&mut self, schema: &str, table: &str) -> Option<&'a Route> {
        if Incremental::is_signal(schema, table) {
            if let Some(incremental) = self.incremental.as_deref_mut() {
                incremental.signalled();
            }
            return None;
        }
        let route = self.routes.get(schema, table);
        if route.is_none() {
            tracing::warn!(
                schema,
                table,
                "change of a table that is not captured; skipped"
            );
        }
        route
    }

    /// A row change in Debezium's format. Truncates are skipped, as Debezium's connector
    /// does by default.
    async fn row_debezium(
        &mut self,
        wal_start: u64,
        message: &Message<'_>,
        route: &Route,
        debezium: &crate::debezium::Debezium,
    ) -> Result<(), Error> {
        if debezium.table(route.index).is_none() {
            return Ok(());
        }
        let op = match message.action.as_ref() {
            "I" => Op::Create,
            "U" => Op::Update,
            "D" => Op::Delete,
            _ => {
                tracing::debug!(table = %route.table, "truncate skipped (--envelope debezium)");
                return Ok(());
            }
        };
        let columns = message.columns.as_deref();
        let identity = message.identity.as_deref();
        let after = |i: usize, name: &str| find_column(columns, i, name);
        let before = |i: usize, name: &str| find_column(identity, i, name);
        self.publish_debezium(
            wal_start,
            route,
            debezium,
            op,
            &after,
            &before,
            identity.is_some(),
        )
        .await
    }

    /// A row message the raw scanner read, in Debezium's format.
    async fn raw_row_debezium(
        &mut self,
        wal_start: u64,
        data: &[u8],
        debezium: &crate::debezium::Debezium,
    ) -> Result<(), Error> {
        let (Ok(schema), Ok(table)) = (
            std::str::from_utf8(&data[self.raw.schema.clone()]),
            std::str::from_utf8(&data[self.raw.table.clone()]),
        ) else {
            return Err(Error::Decode {
                lsn: format_lsn(wal_start),
                reason: "schema or table is not UTF-8".into(),
            });
        };
        let Some(route) = self.route_of(schema, table) else {
            return Ok(());
        };
        let Some(quoted) = debezium.table(route.index).map(|t| t.quoted_names()) else {
            return Ok(());
        };
        let op = self.raw.op.unwrap_or(Op::Create);
        // Moved out while the row is published (the scanner's vectors keep their capacity).
        let columns = std::mem::take(&mut self.raw.columns);
        let identity = std::mem::take(&mut self.raw.identity);
        let has_columns = self.raw.has_columns;
        let has_identity = self.raw.has_identity;
        let after = |i: usize, _: &str| {
            has_columns
                .then(|| find_raw_column(data, &columns, i, quoted.get(i)?.as_bytes()))
                .flatten()
        };
        let before = |i: usize, _: &str| {
            has_identity
                .then(|| find_raw_column(data, &identity, i, quoted.get(i)?.as_bytes()))
                .flatten()
        };
        let sent = self
            .publish_debezium(
                wal_start,
                route,
                debezium,
                op,
                &after,
                &before,
                has_identity,
            )
            .await;
        self.raw.columns = columns;
        self.raw.identity = identity;
        sent
    }

    /// Publishes one row change in Debezium's format: its value (and tombstone after a
    /// delete); an update that changed the key as a delete of the old key and a create.
    #[allow(clippy::too_many_arguments)]
    async fn publish_debezium<'r>(
        &mut self,
        wal_start: u64,
        route: &Route,
        debezium: &crate::debezium::Debezium,
        op: Op,
        after: crate::debezium::Columns<'_, 'r>,
        before: crate::debezium::Columns<'_, 'r>,
        has_identity: bool,
    ) -> Result<(), Error> {
        use crate::debezium::Origin;
        let Some(table) = debezium.table(route.index) else {
            return Ok(());
        };
        let Some(tx) = self.open.as_ref() else {
            return Err(Error::Decode {
                lsn: format_lsn(wal_start),
                reason: "change outside a transaction".into(),
            });
        };
        let ts = tx.ts;
        let origin = Origin {
            lsn: wal_start,
            last_commit: self.last_commit,
            xid: tx.xid,
            ts: &ts,
            snapshot: "false",
        };
        let now = Utc::now();
        if op == Op::Update && has_identity {
            let has_new = debezium.write_key(&mut self.key, table, after);
            let mut old = std::mem::take(&mut self.old_key);
            if debezium.write_key(&mut old, table, before) && old != self.key {
                // The key changed: a delete (and tombstone) of the old key, then a create.
                debezium.write_value(
                    &mut self.value,
                    table,
                    Op::Delete,
                    Some(before),
                    None,
                    &origin,
                    now,
                );
                let sent = self.publish(route, Op::Delete, Some(&old)).await;
                self.old_key = old;
                sent?;
                debezium.write_value(
                    &mut self.value,
                    table,
                    Op::Create,
                    None,
                    Some(after),
                    &origin,
                    now,
                );
                return self.publish_own_key(route, Op::Create, has_new).await;
            }
            self.old_key = old;
        }
        let has_key = if op == Op::Delete {
            debezium.write_key(&mut self.key, table, before)
        } else {
            debezium.write_key(&mut self.key, table, after)
        };
        debezium.write_value(
            &mut self.value,
            table,
            op,
            Some(before),
            Some(after),
            &origin,
            now,
        );
        self.publish_own_key(route, op, has_key).await
    }

    /// A logical message: a watermark of an incremental snapshot releases its chunk's rows,
    /// published as `op = r` inside the watermark's transaction (so the slot is confirmed
    /// past it only once the broker has them). Other messages are not table changes.
    async fn message(&mut self, wal_start: u64, message: &Message<'_>) -> Result<(), Error> {
        if message.prefix.as_deref() != Some(WATERMARK_PREFIX) {
            return Ok(());
        }
        let Some(incremental) = self.incremental.as_deref_mut() else {
            return Ok(());
        };
        let debezium = self.params.debezium.clone();
        let key_of = |route: usize, key: &str, row: &str| -> Option<Vec<u8>> {
            let Some(debezium) = debezium.as_deref() else {
                return Some(key.as_bytes().to_vec());
            };
            let table = debezium.table(route)?;
            let raw: &serde_json::value::RawValue = serde_json::from_str(row).ok()?;
            let object = crate::debezium::object_row(raw)?;
            let mut out = Vec::new();
            debezium
                .write_key(&mut out, table, |_, name: &str| object.get(name).copied())
                .then_some(out)
        };
        let Some(released) = incremental
            .watermark(message.content.as_deref().unwrap_or_default(), &key_of)
            .await?
        else {
            return Ok(());
        };
        let Some(route) = self.routes.iter().nth(released.route) else {
            return Ok(());
        };
        let decode_error = |reason: String| Error::Decode {
            lsn: format_lsn(wal_start),
            reason,
        };
        let Some(tx) = self.open.as_mut() else {
            return Err(decode_error("watermark outside a transaction".into()));
        };
        let ts = tx.ts;
        let source = SourceInfo {
            lsn: wal_start,
            commit_lsn: tx.commit_lsn,
            xid: None,
            ts: &ts,
            schema: &route.table.schema,
            table: &route.table.table,
            snapshot: true,
        };
        for (key, row) in &released.rows {
            let after: &serde_json::value::RawValue = serde_json::from_str(row)
                .map_err(|e| decode_error(format!("snapshot row of {}: {e}", route.table)))?;
            match debezium
                .as_deref()
                .and_then(|d| Some((d, d.table(released.route)?)))
            {
                Some((debezium, table)) => {
                    let origin = crate::debezium::Origin {
                        lsn: wal_start,
                        last_commit: self.last_commit,
                        xid: None,
                        ts: &ts,
                        snapshot: "incremental",
                    };
                    debezium.write_read(&mut self.value, None, table, after, &origin);
                }
                None => encode_value(
                    &mut self.value,
                    Op::Read,
                    None::<&serde_json::value::RawValue>,
                    Some(after),
                    &source,
                ),
            }
            self.publisher
                .wait_for_room(self.params.max_in_flight)
                .await?;
            self.publisher
                .send(&route.topic, None, Some(key), Some(&self.value), tx.seq)
                .await
                .map_err(crate::delivery::send_failed)?;
            tx.sent += 1;
            route.bytes.inc_by((self.value.len() + key.len()) as u64);
        }
        route.events(Op::Read).inc_by(released.rows.len() as u64);
        self.metrics
            .incremental_rows
            .inc_by(released.rows.len() as u64);
        Ok(())
    }

    /// With transaction metadata, sends the open transaction's BEGIN event unless it was sent:
    /// called before each change record, so transactions without one have no events.
    async fn announce(&mut self) -> Result<(), Error> {
        if self.params.transaction_topic.is_none() {
            return Ok(());
        }
        let Some(mut tx) = self.open.take() else {
            return Ok(());
        };
        let sent = if tx.announced {
            Ok(())
        } else {
            tx.announced = true;
            tx.counts = vec![0; self.routes.len()];
            self.transaction_event(&mut tx, TxStatus::Begin).await
        };
        self.open = Some(tx);
        sent
    }

    /// Sends a BEGIN or END event of `tx` to the transaction topic (its only partition, so
    /// that transactions stay in commit order), counted in the transaction like its records:
    /// the slot is confirmed past it only once the broker has it.
    async fn transaction_event(&mut self, tx: &mut OpenTx, status: TxStatus) -> Result<(), Error> {
        let Some(topic) = self.params.transaction_topic.as_deref() else {
            return Ok(());
        };
        let id = transaction_id(tx.xid, tx.commit_lsn);
        let (event_count, data_collections) = match status {
            TxStatus::Begin => (None, None),
            TxStatus::End => (
                Some(tx.counts.iter().sum()),
                Some(
                    self.routes
                        .iter()
                        .zip(&tx.counts)
                        .filter(|(_, count)| **count > 0)
                        .map(|(route, count)| DataCollection {
                            data_collection: &route.label,
                            event_count: *count,
                        })
                        .collect(),
                ),
            ),
        };
        let event = TxEvent {
            status,
            id: &id,
            xid: tx.xid,
            commit_lsn: tx.commit_lsn,
            ts: &tx.ts,
            event_count,
            data_collections,
        };
        let (mut key, mut value) = (Vec::new(), Vec::new());
        encode_transaction(&mut key, &mut value, &event);
        self.publisher
            .wait_for_room(self.params.max_in_flight)
            .await?;
        self.publisher
            .send(topic, Some(0), Some(&key), Some(&value), tx.seq)
            .await
            .map_err(crate::delivery::send_failed)?;
        tx.sent += 1;
        self.metrics
            .transaction_events
            .with_label_values(&[match status {
                TxStatus::Begin => "BEGIN",
                TxStatus::End => "END",
            }])
            .inc();
        Ok(())
    }

    /// Starts checking the broker's log ends for the tracker's confirmed position, if it
    /// moved and no check is under way. Partitions whose acknowledged offset did not change
    /// since the last successful check are not asked again.
    fn start_verification(&mut self) {
        if self.verifying.is_some() {
            return;
        }
        // With transactions, only what a committed transaction holds (the offsets read after
        // it cover every message before it).
        let candidate = self.publisher.confirmable();
        let (_, offsets) = self.publisher.tracker().acked_offsets();
        if candidate <= self.verified {
            return;
        }
        let mut floors = Vec::new();
        let offsets: Vec<_> = offsets
            .into_iter()
            .filter(|range| {
                let before = self.checked.get(&(range.topic.clone(), range.partition));
                if before == Some(&range.last) {
                    return false;
                }
                let floor = before.map_or(range.first - 1, |last| *last);
                floors.push((range.topic.clone(), range.partition, floor));
                true
            })
            .collect();
        // With transactions the commit is the check: the broker acknowledged that every
        // partition of the transaction holds its messages (and a broker that lost the
        // producer's state fails the transaction). Listing offsets is for the idempotent
        // producer, which has no such step (and some brokers list a transactional topic's
        // offsets wrongly).
        let check =
            self.publisher
                .verify(if self.unverifiable || self.publisher.is_transactional() {
                    Vec::new()
                } else {
                    floors
                });
        self.verifying = Some(tokio::spawn(async move {
            let outcome = check.await;
            (candidate, offsets, outcome)
        }));
    }

    /// Takes the outcome of a log-end check: the candidate becomes the reported
    /// position (returns whether it moved), a loss ends the session (it restarts from the
    /// last reported position and sends everything after it again), and a broker that could
    /// not be asked is asked again at the next status tick.
    fn verification_done(
        &mut self,
        candidate: u64,
        offsets: Vec<AckedRange>,
        outcome: Result<Result<(), String>, rdkafka::error::KafkaError>,
    ) -> Result<bool, Error> {
        match outcome {
            Ok(Ok(())) => {
                self.verify_failures = 0;
                for range in offsets {
                    self.checked
                        .insert((range.topic, range.partition), range.last);
                }
                let moved = candidate > self.verified;
                self.verified = self.verified.max(candidate);
                Ok(moved)
            }
            Ok(Err(loss)) => {
                tracing::error!(reason = %loss, "the broker lost acknowledged messages; they will be sent again");
                self.metrics.ack_regressions.inc();
                Err(Error::AckRegression(loss))
            }
            Err(e) => {
                self.verify_failures += 1;
                let acknowledging = self
                    .publisher
                    .tracker()
                    .stalled_for()
                    .is_none_or(|waited| waited < Duration::from_secs(5));
                if self.verify_failures >= 3 && acknowledging {
                    // It acknowledges messages but cannot list offsets.
                    tracing::warn!(error = %e, "the broker acknowledges messages but cannot list offsets; confirming what it acknowledged without checking its log ends");
                    self.unverifiable = true;
                } else {
                    tracing::warn!(error = %e, "could not check the broker's offsets; the confirmed position waits");
                }
                Ok(false)
            }
        }
    }

    async fn send_status(&mut self) -> Result<(), Error> {
        let confirmed = self.verified;
        self.conn
            .queue_copy_data(&status_update(confirmed, SystemTime::now()))
            .map_err(Error::wire("sending a status update"))?;
        self.conn
            .flush()
            .await
            .map_err(Error::wire("sending a status update"))?;
        self.metrics.status_updates.inc();
        self.reply_requested = false;
        tracing::debug!(confirmed = %format_lsn(confirmed), "status update sent");
        Ok(())
    }

    /// Graceful end: wait for the broker (up to the deadline), confirm what it acknowledged,
    /// and end the stream so the server has processed the last status update.
    async fn finish(&mut self) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + self.params.shutdown_timeout;
        if let Some(commit) = self.committing.take() {
            // The commit under way, then whatever it held back.
            if let Ok(Ok(outcome)) = tokio::time::timeout_at(deadline, commit).await {
                self.publisher.finish_commit(outcome).await?;
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !self.publisher.settle_committed(left).await? {
            tracing::warn!(
                in_flight = self.publisher.tracker().in_flight(),
                "not everything was acknowledged before the shutdown deadline; confirming what was"
            );
        }
        if let Some(pending) = self.verifying.take() {
            pending.abort();
        }
        self.start_verification();
        if let Some(pending) = self.verifying.take() {
            match tokio::time::timeout(Duration::from_secs(10), pending).await {
                Ok(Ok((candidate, offsets, outcome))) => {
                    if let Err(e) = self.verification_done(candidate, offsets, outcome) {
                        tracing::warn!(error = %e, "not confirming what the broker lost");
                    }
                }
                _ => tracing::warn!(
                    "the broker's offsets could not be checked; confirming only what was checked before"
                ),
            }
        }
        self.send_status().await?;
        self.conn.queue_copy_done();
        self.conn
            .flush()
            .await
            .map_err(Error::wire("ending the stream"))?;
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match self.conn.recv().await {
                    Ok(frame) if frame.tag == b'Z' => return,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let _ = ended.await;
        let events: u64 = self
            .routes
            .iter()
            .flat_map(|r| {
                [Op::Create, Op::Update, Op::Delete, Op::Read, Op::Truncate]
                    .map(|op| r.events(op).get())
            })
            .sum();
        tracing::info!(
            confirmed = %format_lsn(self.verified),
            events,
            transactions = self.metrics.transactions.get(),
            "stream ended; position confirmed"
        );
        Ok(())
    }
}
