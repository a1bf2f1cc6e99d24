//! Background tasks of the leader: the heartbeat write and the slot-lag poll.
//!
//! Heartbeat: on a database where the captured tables are idle, updating `cdc_heartbeat` makes
//! a transaction flow through the slot (wal2json sends its begin/commit even though the table is
//! not captured), the reader confirms its commit, and the slot's confirmed position moves on,
//! so the slot does not pin WAL. Keepalive confirmation (see [`crate::delivery::Tracker`]) does
//! the same when the server sends keepalives; the heartbeat also makes the lag measurable.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Updates `cdc_heartbeat` every `interval` until `stop`; gives up quietly (once, with a
/// warning) if the table does not exist.
pub async fn beat(pool: PgPool, interval: Duration, metrics: Metrics, stop: CancellationToken) {
    every(interval, &stop, || async {
        let result = sqlx::query(
            "UPDATE cdc_heartbeat SET beat_at = now(), lsn = pg_current_wal_lsn() WHERE id = 1",
        )
        .execute(&pool)
        .await;
        match result {
            Ok(_) => metrics.heartbeats.inc(),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
                tracing::warn!("table cdc_heartbeat does not exist (run `cdc-reader migrate`); heartbeats disabled");
                return false;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat update failed"),
        }
        true
    })
    .await;
}

/// Reads the slot's lag and state into the metrics every `interval` until `stop`.
pub async fn watch_slot(
    pool: PgPool,
    slot: String,
    interval: Duration,
    metrics: Metrics,
    stop: CancellationToken,
) {
    every(interval, &stop, || async {
        match crate::slot::lag(&pool, &slot).await {
            Ok(Some((bytes, active, lost))) => {
                metrics.lag_bytes.set(bytes);
                metrics.slot_active.set(i64::from(active));
                metrics.slot_invalidated.set(i64::from(lost));
            }
            Ok(None) => metrics.slot_active.set(0),
            Err(e) => tracing::debug!(error = %e, "cannot read the slot's lag"),
        }
        true
    })
    .await;
}

/// Runs `step` now and then every `interval` (a late tick delays the next), until `stop` or
/// until `step` returns false.
async fn every<F, Fut>(interval: Duration, stop: &CancellationToken, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !step().await {
            return;
        }
    }
}
