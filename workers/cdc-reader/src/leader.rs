//! Active/standby: one reader per slot streams, the others wait to take over.
//!
//! Leadership is a session-level advisory lock (`pg_try_advisory_lock`) keyed by the slot name,
//! held on a dedicated connection. When the leader dies, PostgreSQL ends its session and frees
//! the lock (and the walsender frees the slot); a standby polling every
//! `--standby-poll-interval` takes it within that interval. The leader pings its lock
//! connection at the same interval and stops streaming when it is gone, since the lock went
//! with it. (A replication slot can be streamed by one walsender at a time anyway; the lock
//! keeps standbys from racing for it and makes the roles visible.)

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::metrics::Metrics;

/// Key of the advisory lock of a slot.
fn lock_sql(slot: &str) -> (String, &'static str) {
    (
        format!("cdc-reader:{slot}"),
        "SELECT pg_try_advisory_lock(hashtext($1)), pg_backend_pid()",
    )
}

/// Holds the lock while alive; `lost` is cancelled when the lock's connection fails.
#[derive(Debug)]
pub struct Leadership {
    /// Cancelled when the lock can no longer be vouched for.
    pub lost: CancellationToken,
    /// Backend pid of the session holding the lock: a write that only the leader may make
    /// (the snapshot marker) checks in the same statement that this session still holds it.
    pub pid: i32,
    /// The pinging task; aborted (closing the session, releasing the lock) on drop.
    task: tokio::task::JoinHandle<()>,
    metrics: Metrics,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
        self.metrics.leader.set(0);
    }
}

/// Waits until this process holds the slot's lock. Returns `None` on shutdown.
pub async fn acquire(
    options: &PgConnectOptions,
    slot: &str,
    poll: Duration,
    metrics: &Metrics,
    shutdown: &shared::shutdown::Shutdown,
) -> Result<Option<Leadership>, Error> {
    let (key, sql) = lock_sql(slot);
    let mut announced = false;
    loop {
        if shutdown.is_triggered() {
            return Ok(None);
        }
        match try_lock(options, &key, sql).await {
            Ok(Some((conn, pid))) => {
                tracing::info!(slot, "holding the slot's leadership lock; streaming");
                metrics.leader.set(1);
                let lost = CancellationToken::new();
                let task = tokio::spawn(keep(conn, poll, lost.clone()));
                return Ok(Some(Leadership {
                    lost,
                    pid,
                    task,
                    metrics: metrics.clone(),
                }));
            }
            Ok(None) => {
                if !announced {
                    tracing::info!(slot, "another reader holds the slot; standing by");
                    announced = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the leadership lock; retrying"),
        }
        if !shutdown.sleep(poll).await {
            return Ok(None);
        }
    }
}

async fn try_lock(
    options: &PgConnectOptions,
    key: &str,
    sql: &str,
) -> Result<Option<(PgConnection, i32)>, sqlx::Error> {
    let mut conn = options.connect().await?;
    let (locked, pid): (bool, i32) = sqlx::query_as(sql).bind(key).fetch_one(&mut conn).await?;
    if locked {
        Ok(Some((conn, pid)))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

async fn keep(mut conn: PgConnection, poll: Duration, lost: CancellationToken) {
    let mut tick = tokio::time::interval(poll);
    loop {
        tick.tick().await;
        let ping = tokio::time::timeout(poll.max(Duration::from_secs(5)), conn.ping()).await;
        if !matches!(ping, Ok(Ok(()))) {
            tracing::warn!("the leadership lock's connection is gone; stepping down");
            lost.cancel();
            return;
        }
    }
}
