//! cdc-reader: PostgreSQL row changes (wal2json over the streaming replication protocol) into
//! one Kafka topic per table, nothing lost.
//!
//! Flow of one session, as leader of the slot:
//! 1. [`leader`]: take the slot's advisory lock, or stand by until it is free.
//!    [`capture`]: every captured table can be keyed (a primary key, or `REPLICA IDENTITY
//!    FULL`), checked at start.
//! 2. [`slot`]: create the slot if missing ([`connection`]'s `CREATE_REPLICATION_SLOT`,
//!    exporting a snapshot) and copy the existing rows ([`snapshot`], `op=r`).
//! 3. [`replication`]: `START_REPLICATION … LOGICAL` with [`wal2json`] format-version 2;
//!    every row change is encoded ([`envelope`]) and produced ([`delivery`]) to its table's
//!    topic ([`topics`]) as it arrives.
//! 4. [`delivery`]: the slot is confirmed ([`protocol`] status updates) only up to the end of
//!    transactions the broker fully acknowledged; on an idle database keepalives and the
//!    [`heartbeat`] keep it moving.
//!
//! Failures of PostgreSQL, the network or the broker are waited out and the session restarts
//! from the slot (at-least-once); a message the broker refuses for good, or a wal2json message
//! that cannot be decoded, stops the process without confirming it.

pub mod capture;
pub mod config;
pub mod connection;
pub mod debezium;
pub mod delivery;
pub mod envelope;
pub mod error;
pub mod heartbeat;
pub mod incremental;
pub mod leader;
pub mod metrics;
pub mod protocol;
pub mod raw_row;
pub mod replication;
pub mod slot;
pub mod snapshot;
pub mod tls;
pub mod topics;
pub mod wal2json;

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::health::Health;
use shared::shutdown::Shutdown;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use config::{Cli, Command, Config, Fencing, OnSlotInvalidated, SnapshotMode, TableName};
pub use error::Error;

use connection::{ConnectParams, ReplicationConnection};
use delivery::Publisher;
use metrics::Metrics;
use replication::{SessionEnd, StreamParams};
use topics::Routes;

/// Runs the reader until `shutdown` (or `--stop-at-lsn`), serving metrics on
/// `config.metrics_addr`. Returns an error only for what a restart of the session cannot cure.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), Error> {
    config.validate().map_err(Error::Config)?;
    let registry = shared::health::new_registry("cdc");
    let metrics =
        Metrics::register(&registry).map_err(|e| Error::Config(format!("metrics: {e}")))?;
    let health = Health::new();
    health.set("postgres", false, "connecting");
    health.set("replication", false, "not streaming");
    let server_stop = Shutdown::new();
    let (_, server) = shared::health::serve(
        config.metrics_addr,
        registry,
        health.clone(),
        server_stop.clone(),
    )
    .await
    .map_err(Error::Metrics)?;
    let linger = config.fatal_linger;
    let result = Reader::start(config, metrics, health, shutdown.clone()).await;
    let result = match result {
        Ok(reader) => reader.run().await,
        Err(e) => Err(e),
    };
    if let Err(e @ Error::SlotInvalidated { .. }) = &result {
        // Exiting at once would take the metric and the reason with it before anything
        // scraped them: they stay up a while (a supervisor does not restart exit code 3).
        tracing::error!(error = %e, ?linger, "stopping: serving /metrics and /readyz with the reason until exiting");
        shutdown.sleep(linger).await;
    }
    server_stop.trigger();
    let _ = server.await;
    match result {
        Err(Error::ShuttingDown) => Ok(()),
        other => other,
    }
}

/// Everything the sessions share.
struct Reader {
    config: Config,
    metrics: Metrics,
    health: Health,
    shutdown: Shutdown,
    /// Replication connection target.
    params: ConnectParams,
    /// Normal connections: slot inspection, snapshot, heartbeat, lag.
    pool: PgPool,
    /// The leadership lock's connection target.
    lock_options: PgConnectOptions,
    publisher: Arc<Publisher>,
    routes: Routes,
    /// The Debezium encoder, with `--envelope debezium`.
    debezium: Option<Arc<debezium::Debezium>>,
    /// Sessions started so far.
    sessions: std::sync::atomic::AtomicU32,
}

impl Reader {
    async fn start(
        config: Config,
        metrics: Metrics,
        health: Health,
        shutdown: Shutdown,
    ) -> Result<Self, Error> {
        let params = ConnectParams::from_url(&config.postgres.database_url, "cdc-reader")
            .map_err(Error::wire("reading DATABASE_URL"))?;
        let lock_options: PgConnectOptions = config
            .postgres
            .database_url
            .parse::<PgConnectOptions>()
            .map_err(Error::db("reading DATABASE_URL"))?
            .application_name("cdc-reader-lock")
            // The server drops a vanished leader's session (and its lock) within seconds.
            .options([
                ("tcp_keepalives_idle", "5"),
                ("tcp_keepalives_interval", "2"),
                ("tcp_keepalives_count", "3"),
                ("tcp_user_timeout", "10000"),
            ]);
        let pool = retry(&shutdown, "connecting to PostgreSQL", || async {
            shared::db::connect(&config.postgres, "cdc-reader")
                .await
                .map_err(|e| Error::Database {
                    context: "connecting to PostgreSQL",
                    source: match e {
                        shared::db::DbError::Connect { source, .. }
                        | shared::db::DbError::BadUrl(source) => source,
                        shared::db::DbError::Migrate(m) => sqlx::Error::Migrate(Box::new(m)),
                    },
                })
        })
        .await?;
        health.set("postgres", true, "connected");
        capture::check(&pool, &config.tables).await?;

        let mut routes = Routes::new(&config.tables, &config.kafka, &metrics);
        let specs = topic_specs(&config, &routes);
        retry(&shutdown, "creating topics", || async {
            shared::kafka::ensure_topics(&config.kafka, &specs)
                .await
                .map_err(Error::kafka("creating topics"))
        })
        .await?;
        let transactional_id = match config.fencing {
            Fencing::Transactions => Some(
                config
                    .transactional_id
                    .clone()
                    .unwrap_or_else(|| format!("cdc-reader.{}.{}", params.database(), config.slot)),
            ),
            Fencing::None => None,
        };
        let publisher = Arc::new(
            Publisher::new(
                &config.kafka,
                config.max_in_flight,
                metrics.clone(),
                transactional_id.as_deref(),
            )
            .map_err(Error::kafka("creating the producer"))?,
        );
        let debezium = match config.envelope {
            config::Envelope::Debezium => Some(Arc::new(
                debezium::Debezium::load(
                    &pool,
                    &config.tables,
                    &config.kafka.topic_prefix,
                    params.database(),
                    config.debezium_schemas,
                )
                .await?,
            )),
            config::Envelope::Native => None,
        };
        for spec in &specs {
            let partitions = retry(&shutdown, "reading topic metadata", || async {
                publisher
                    .partitions(&spec.name)
                    .await
                    .map_err(Error::kafka("reading topic metadata"))
            })
            .await?;
            routes.set_partitions(&spec.name, partitions);
        }
        Ok(Self {
            config,
            metrics,
            health,
            shutdown,
            params,
            pool,
            lock_options,
            publisher,
            routes,
            debezium,
            sessions: std::sync::atomic::AtomicU32::new(0),
        })
    }

    async fn run(self) -> Result<(), Error> {
        let mut failures = 0u32;
        loop {
            self.health.set(
                "replication",
                false,
                "standby: waiting for the slot's leadership lock",
            );
            let Some(leadership) = leader::acquire(
                &self.lock_options,
                &self.config.slot,
                self.config.standby_poll_interval,
                &self.metrics,
                &self.shutdown,
            )
            .await?
            else {
                return Ok(());
            };
            let stop = CancellationToken::new();
            if !self.config.heartbeat_interval.is_zero() {
                tokio::spawn(heartbeat::beat(
                    self.pool.clone(),
                    self.config.heartbeat_interval,
                    self.metrics.clone(),
                    stop.clone(),
                ));
            }
            tokio::spawn(heartbeat::watch_slot(
                self.pool.clone(),
                self.config.slot.clone(),
                self.config.slot_poll_interval,
                self.metrics.clone(),
                stop.clone(),
            ));
            let started = Instant::now();
            let outcome = match self.publisher.start_leadership(&self.shutdown).await {
                Ok(()) => self.lead(&leadership).await,
                Err(e) => Err(e),
            };
            stop.cancel();
            match &outcome {
                Ok(_) => self.health.set("replication", false, "not streaming"),
                Err(e) => self.health.set(
                    "replication",
                    false,
                    format!("not streaming: {}", error_chain(e)),
                ),
            }
            if self.publisher.is_transactional()
                && (outcome.is_err() || self.publisher.transaction_open())
            {
                // Nothing more from this producer: what it left uncommitted (a failed session,
                // or one stopped at its shutdown deadline) is aborted, by itself if it can,
                // else by the next leader's producer; the next session resends it. A producer
                // whose acknowledgements stopped could not abort: it is only replaced, and
                // counted as a reset.
                let replaced = if matches!(outcome, Err(Error::ProducerLost(_))) {
                    self.publisher.reset()
                } else {
                    self.publisher.retire().await
                };
                replaced.map_err(Error::kafka("recreating the producer"))?;
            }
            drop(leadership);
            match outcome {
                Ok(end) => {
                    tracing::info!(?end, "reader stopped");
                    return Ok(());
                }
                Err(Error::SlotInvalidated { .. })
                    if self.config.on_slot_invalidated == OnSlotInvalidated::Resnapshot
                        && !self.shutdown.is_triggered() =>
                {
                    // The next session finds the slot lost, replaces it and snapshots again.
                    self.settle().await?;
                }
                Err(e) if e.is_retryable() && !self.shutdown.is_triggered() => {
                    self.metrics.reconnects.inc();
                    failures = if started.elapsed() > Duration::from_secs(30) {
                        1
                    } else {
                        failures + 1
                    };
                    let backoff = backoff(failures, self.config.reconnect_backoff_max);
                    tracing::warn!(error = %error_chain(&e), retry_in = ?backoff, "replication session failed; restarting from the slot");
                    if matches!(e, Error::ProducerLost(_)) {
                        // Its acknowledgements will not come: start over with a new producer
                        // (a transactional one was replaced above, when it was retired).
                        if !self.publisher.is_transactional() {
                            self.publisher
                                .reset()
                                .map_err(Error::kafka("recreating the producer"))?;
                        }
                        self.metrics.producer_stalled.set(0);
                    } else {
                        self.settle().await?;
                    }
                    if !self.shutdown.sleep(backoff).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// After a failed session: wait until everything sent is acknowledged (the new session
    /// resends whatever was not confirmed), then forget the transaction that was cut off.
    /// Acknowledgements that stop for `--ack-stall-timeout` (the broker lost the producer's
    /// state, or the producer failed) will not come: the producer is replaced instead. With
    /// transactions there is nothing to wait for: the producer was already replaced.
    async fn settle(&self) -> Result<(), Error> {
        if self.publisher.is_transactional() {
            return Ok(());
        }
        let tracker = self.publisher.tracker();
        loop {
            if self.publisher.drain(Duration::from_secs(1)).await {
                tracker.abandon_open();
                return Ok(());
            }
            if let Some(reason) = tracker.failure() {
                return Err(Error::Delivery(reason));
            }
            if self.shutdown.is_triggered() {
                return Err(Error::ShuttingDown);
            }
            let stalled = tracker
                .stalled_for()
                .is_some_and(|waited| waited >= self.config.ack_stall_timeout);
            if stalled || matches!(tracker.fault(), Some(Error::ProducerLost(_))) {
                tracing::warn!(
                    in_flight = tracker.in_flight(),
                    "acknowledgements stopped after the session failed; replacing the producer"
                );
                self.publisher
                    .reset()
                    .map_err(Error::kafka("recreating the producer"))?;
                self.metrics.producer_stalled.set(0);
                return Ok(());
            }
        }
    }

    /// Waits until everything handed to the producer is acknowledged (and, with
    /// transactions, committed), however long the broker takes.
    async fn acknowledged(&self) -> Result<(), Error> {
        if !self.publisher.is_transactional() {
            loop {
                if self.publisher.drain(Duration::from_secs(1)).await {
                    return Ok(());
                }
                if let Some(fault) = self.publisher.tracker().fault() {
                    return Err(fault);
                }
                if self.shutdown.is_triggered() {
                    return Err(Error::ShuttingDown);
                }
            }
        }
        loop {
            if self
                .publisher
                .settle_committed(Duration::from_secs(5))
                .await?
            {
                return Ok(());
            }
            if self.shutdown.is_triggered() {
                return Err(Error::ShuttingDown);
            }
        }
    }

    /// One session as leader: prepare the slot (and snapshot), then stream.
    async fn lead(&self, leadership: &leader::Leadership) -> Result<SessionEnd, Error> {
        let lost = &leadership.lost;
        let slot = &self.config.slot;
        // A broker that came back empty has lost the topics too: after a failed session,
        // create what is missing (the first session's topics were created at start).
        if self
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            shared::kafka::ensure_topics(
                &self.config.kafka,
                &topic_specs(&self.config, &self.routes),
            )
            .await
            .map_err(Error::kafka("creating topics"))?;
        }
        let mut conn =
            ReplicationConnection::connect(&self.params, self.config.postgres.connect_timeout)
                .await
                .map_err(Error::wire("connecting"))?;
        let snapshot = self.config.snapshot == SnapshotMode::Initial;
        let mut created = true;
        match slot::inspect(&self.pool, slot).await? {
            Some(info) if info.is_invalidated() => {
                self.metrics.slot_invalidated.set(1);
                if self.config.on_slot_invalidated != OnSlotInvalidated::Resnapshot {
                    self.health.set(
                        "replication",
                        false,
                        format!("slot {slot} was invalidated by PostgreSQL (wal_status = lost)"),
                    );
                    return Err(Error::SlotInvalidated { slot: slot.clone() });
                }
                tracing::warn!(slot, "the slot was invalidated by PostgreSQL; dropping it, creating a new one and snapshotting the tables again");
                slot::drop_slot(&self.pool, slot).await?;
                self.create_slot(&mut conn, true, leadership.pid).await?;
                self.metrics.slot_invalidated.set(0);
            }
            Some(info) => {
                slot::check_compatible(&info, slot, self.params.database())?;
                if snapshot && !slot::snapshot_done(&self.pool, slot).await? {
                    tracing::warn!(slot, "the slot's initial snapshot never completed; dropping the slot to start over");
                    slot::drop_slot(&self.pool, slot).await?;
                    self.create_slot(&mut conn, snapshot, leadership.pid)
                        .await?;
                } else {
                    created = false;
                }
            }
            None => {
                self.create_slot(&mut conn, snapshot, leadership.pid)
                    .await?
            }
        }
        // Tables new to an existing slot get their existing rows by an incremental snapshot.
        incremental::register_tables(&self.pool, slot, &self.config.tables, created, snapshot)
            .await?;
        let mut incremental = incremental::Incremental::load(
            self.pool.clone(),
            slot,
            self.config.incremental_chunk_rows,
            &self.routes,
        )
        .await?;
        // This session confirms nothing beyond the slot's own position until its messages are
        // acknowledged (what an earlier session had acknowledged may be what the broker lost).
        if let Some(position) = slot::inspect(&self.pool, slot)
            .await?
            .and_then(|info| info.confirmed_flush_lsn)
        {
            self.publisher.tracker().rewind(position);
        }
        let excluded = self.excluded_origins().await?;
        self.health
            .set("replication", true, format!("streaming slot {slot}"));
        let params = StreamParams {
            transaction_interval: self.config.transaction_interval,
            slot: slot.clone(),
            plugin_options: wal2json::plugin_options_excluding(self.config.add_tables(), &excluded),
            max_in_flight: self.config.max_in_flight,
            status_interval: self.config.status_interval,
            tombstones: self.config.tombstones,
            stop_at: self.config.stop_at_lsn,
            shutdown_timeout: self.config.shutdown_timeout,
            ack_stall_timeout: self.config.ack_stall_timeout,
            transaction_topic: self.config.transaction_topic(),
            debezium: self.debezium.clone(),
        };
        let streamed = replication::stream(
            &mut conn,
            &self.routes,
            &self.publisher,
            &params,
            &self.metrics,
            &self.health,
            &self.shutdown,
            lost,
            Some(&mut incremental),
        )
        .await;
        match streamed {
            Err(Error::Replication { source, .. }) if slot::is_invalidation(&source) => {
                tracing::error!(slot, error = %source, "PostgreSQL invalidated the slot");
                self.metrics.slot_invalidated.set(1);
                self.health.set(
                    "replication",
                    false,
                    format!("slot {slot} was invalidated by PostgreSQL: {source}"),
                );
                Err(Error::SlotInvalidated { slot: slot.clone() })
            }
            other => other,
        }
    }

    /// The replication origins `--exclude-origins` names, looked up for this session.
    async fn excluded_origins(&self) -> Result<Vec<u32>, Error> {
        let prefix = &self.config.exclude_origins;
        if prefix.is_empty() {
            return Ok(Vec::new());
        }
        let ids = slot::origin_ids(&self.pool, prefix).await?;
        if ids.is_empty() {
            tracing::warn!(
                prefix = %prefix,
                "--exclude-origins names no replication origin: every change is captured \
                 (the workers' origins are created by the migrations, which need a superuser)"
            );
        } else {
            tracing::info!(prefix = %prefix, origins = ids.len(), "changes of these replication origins are not captured");
        }
        Ok(ids)
    }

    /// Creates the slot and, if asked, copies the existing rows; records completion only once
    /// every row was acknowledged.
    async fn create_slot(
        &self,
        conn: &mut ReplicationConnection,
        snapshot: bool,
        leader_pid: i32,
    ) -> Result<(), Error> {
        let slot = &self.config.slot;
        slot::clear_snapshot_marker(&self.pool, slot).await?;
        let created = conn
            .create_slot(slot, snapshot)
            .await
            .map_err(Error::wire("creating the slot"))?;
        tracing::info!(slot, consistent_point = %shared::envelope::format_lsn(created.consistent_point), "replication slot created");
        if let (true, Some(name)) = (snapshot, created.snapshot_name.as_deref()) {
            self.health.set("replication", false, "initial snapshot");
            // A connection of its own: it holds the snapshot transaction and is closed after.
            let options = self
                .lock_options
                .clone()
                .application_name("cdc-reader-snapshot");
            let db = sqlx::ConnectOptions::connect(&options)
                .await
                .map_err(Error::db("connecting for the snapshot"))?;
            let params = snapshot::SnapshotParams {
                chunk_rows: self.config.snapshot_chunk_rows,
                max_in_flight: self.config.max_in_flight,
                consistent_point: created.consistent_point,
                tombstones: self.config.tombstones,
            };
            let rows = snapshot::run(
                db,
                name,
                &self.routes,
                &self.publisher,
                params,
                &snapshot::TopicKeys::new(&self.config.kafka),
                &self.shutdown,
                self.debezium.as_deref(),
            )
            .await?;
            self.acknowledged().await?;
            tracing::info!(rows, "initial snapshot acknowledged by the broker");
        }
        slot::mark_snapshot_done(&self.pool, slot, leader_pid).await
    }
}

fn topic_specs(config: &Config, routes: &Routes) -> Vec<shared::kafka::TopicSpec> {
    // Same settings as the pipeline's topic list (compacted by key, retained; dead letters
    // kept whole for longer), for any table. Each table topic has its dead-letter topic, where
    // change events too large for the broker go.
    let known =
        shared::topics::pipeline_topics(&config.kafka.topic_prefix, config.topic_partitions);
    let template = |dlq: bool| {
        known
            .iter()
            .find(|t| {
                t.name.starts_with(&config.kafka.topic_prefix) && t.name.ends_with(".dlq") == dlq
            })
            .cloned()
    };
    let (table_template, dlq_template) = (template(false), template(true));
    // Transaction boundaries: one partition, so that they keep the commit order.
    let transactions = config
        .transaction_topic()
        .map(|name| shared::kafka::TopicSpec {
            name,
            partitions: 1,
            configs: vec![
                ("cleanup.policy".into(), "delete".into()),
                ("retention.ms".into(), "604800000".into()),
            ],
        });
    routes
        .topic_specs(config.topic_partitions)
        .into_iter()
        .flat_map(|spec| {
            let dlq = shared::kafka::TopicSpec {
                name: shared::topics::dlq_topic(&spec.name),
                ..spec.clone()
            };
            [(spec, &table_template), (dlq, &dlq_template)]
        })
        .map(|(mut spec, template)| {
            if let Some(t) = known
                .iter()
                .find(|t| t.name == spec.name)
                .or(template.as_ref())
            {
                spec.configs = t.configs.clone();
            }
            spec
        })
        .chain(transactions)
        .collect()
}

fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(200).saturating_mul(1 << failures.min(10).saturating_sub(1));
    base.min(max)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Retries a start-up step with backoff while it fails retryably.
async fn retry<T, F, Fut>(shutdown: &Shutdown, what: &str, mut step: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut failures = 0;
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() => {
                failures += 1;
                let wait = backoff(failures, Duration::from_secs(5));
                tracing::warn!(error = %error_chain(&e), step = what, retry_in = ?wait, "start-up step failed; retrying");
                if !shutdown.sleep(wait).await {
                    return Err(Error::ShuttingDown);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap() {
        let max = Duration::from_secs(5);
        assert_eq!(backoff(1, max), Duration::from_millis(200));
        assert_eq!(backoff(2, max), Duration::from_millis(400));
        assert_eq!(backoff(20, max), max);
    }
}
