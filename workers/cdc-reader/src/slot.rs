//! The replication slot: what state it is in, and whether its initial snapshot completed.
//!
//! A slot is created together with an exported snapshot; the rows of that snapshot must reach
//! the broker before the slot's changes do. If the reader dies during the snapshot, the slot
//! exists but the snapshot is incomplete, and streaming from it would silently miss the rows
//! not yet copied. So completion is recorded durably, next to the slot, as a replication
//! origin named [`snapshot_marker`] (a cluster-wide named object that needs no table), created
//! only after every snapshot row was acknowledged. A slot without its marker is dropped and
//! created again, snapshot included.

use sqlx::PgPool;

use crate::error::Error;

/// State of the slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Output plugin (must be wal2json).
    pub plugin: Option<String>,
    /// Database the slot decodes.
    pub database: Option<String>,
    /// Whether a walsender is streaming it.
    pub active: bool,
    /// Its confirmed flush position.
    pub confirmed_flush_lsn: Option<u64>,
    /// `wal_status` (PostgreSQL 13+): `lost` once the server removed WAL the slot still
    /// needed (`max_slot_wal_keep_size`): the slot can never stream again.
    pub wal_status: Option<String>,
}

impl SlotInfo {
    /// Whether the server invalidated the slot.
    pub fn is_invalidated(&self) -> bool {
        self.wal_status.as_deref() == Some("lost")
    }
}

/// Whether a replication error says the slot was invalidated (`55000`, "can no longer get
/// changes from replication slot" / "has been invalidated").
pub fn is_invalidation(e: &crate::connection::PgWireError) -> bool {
    match e {
        crate::connection::PgWireError::Server { code, message } => {
            code == "55000"
                && (message.contains("invalidated")
                    || message.contains("can no longer get changes"))
        }
        _ => false,
    }
}

/// Name of the replication origin that marks the slot's snapshot as complete.
pub fn snapshot_marker(slot: &str) -> String {
    format!("cdc_reader_snapshot_done.{slot}")
}

/// The ids of the replication origins whose names start with `prefix`, for wal2json's
/// `filter-origins` (`--exclude-origins`).
pub async fn origin_ids(pool: &PgPool, prefix: &str) -> Result<Vec<u32>, Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT roident::int8 FROM pg_replication_origin WHERE starts_with(roname, $1) ORDER BY 1",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await
    .map_err(Error::db("reading pg_replication_origin"))?;
    Ok(ids
        .into_iter()
        .filter_map(|id| u32::try_from(id).ok())
        .collect())
}

/// Reads the slot's state, `None` when it does not exist.
pub async fn inspect(pool: &PgPool, slot: &str) -> Result<Option<SlotInfo>, Error> {
    type SlotRow = (
        Option<String>,
        Option<String>,
        bool,
        Option<String>,
        Option<String>,
    );
    let row: Option<SlotRow> = sqlx::query_as(
        "SELECT plugin::text, database::text, active, confirmed_flush_lsn::text, \
                to_jsonb(s) ->> 'wal_status' \
         FROM pg_replication_slots s WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await
    .map_err(Error::db("reading pg_replication_slots"))?;
    Ok(
        row.map(|(plugin, database, active, lsn, wal_status)| SlotInfo {
            plugin,
            database,
            active,
            confirmed_flush_lsn: lsn.as_deref().and_then(shared::envelope::parse_lsn),
            wal_status,
        }),
    )
}

/// Whether the slot's snapshot was recorded as complete.
pub async fn snapshot_done(pool: &PgPool, slot: &str) -> Result<bool, Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)")
        .bind(snapshot_marker(slot))
        .fetch_one(pool)
        .await
        .map_err(Error::db("reading the snapshot marker"))
}

/// Records the slot's snapshot as complete (idempotent).
///
/// Only while the leadership lock is held by session `leader_pid`, checked in the same
/// statement: a reader deposed during its snapshot (another one now streams the slot, or will)
/// cannot mark a snapshot complete.
pub async fn mark_snapshot_done(pool: &PgPool, slot: &str, leader_pid: i32) -> Result<(), Error> {
    let outcome: String = sqlx::query_scalar(
        "SELECT CASE \
            WHEN NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = $2 AND granted) \
                THEN 'deposed' \
            WHEN EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1) THEN 'done' \
            ELSE (SELECT 'created' FROM pg_replication_origin_create($1) AS created) \
         END",
    )
    .bind(snapshot_marker(slot))
    .bind(leader_pid)
    .fetch_one(pool)
    .await
    .map_err(Error::db("recording the snapshot marker"))?;
    if outcome == "deposed" {
        tracing::warn!(
            slot,
            "lost the leadership during the snapshot; not marking it complete"
        );
        return Err(Error::LeadershipLost);
    }
    Ok(())
}

/// Removes the marker (before creating a new slot of the same name).
pub async fn clear_snapshot_marker(pool: &PgPool, slot: &str) -> Result<(), Error> {
    sqlx::query(
        "SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1",
    )
    .bind(snapshot_marker(slot))
    .execute(pool)
    .await
    .map_err(Error::db("dropping the snapshot marker"))?;
    Ok(())
}

/// Drops the slot if it exists and is not active.
pub async fn drop_slot(pool: &PgPool, slot: &str) -> Result<(), Error> {
    sqlx::query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active")
        .bind(slot)
        .execute(pool)
        .await
        .map_err(Error::db("dropping the replication slot"))?;
    Ok(())
}

/// Lag of the slot in bytes (`pg_current_wal_lsn() - confirmed_flush_lsn`) and whether it is
/// active, for the metrics.
pub async fn lag(pool: &PgPool, slot: &str) -> Result<Option<(i64, bool, bool)>, Error> {
    sqlx::query_as(
        "SELECT COALESCE((pg_current_wal_lsn() - confirmed_flush_lsn)::int8, 0), active, \
                COALESCE(to_jsonb(s) ->> 'wal_status' = 'lost', false) \
         FROM pg_replication_slots s WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await
    .map_err(Error::db("reading the slot's lag"))
}

/// Checks that an existing slot can serve this reader.
pub fn check_compatible(info: &SlotInfo, slot: &str, database: &str) -> Result<(), Error> {
    if info.plugin.as_deref() != Some("wal2json") {
        return Err(Error::Config(format!(
            "slot `{slot}` uses plugin {:?}, not wal2json; choose another --slot",
            info.plugin
        )));
    }
    if info.database.as_deref() != Some(database) {
        return Err(Error::Config(format!(
            "slot `{slot}` decodes database {:?}, not `{database}`; choose another --slot",
            info.database
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility() {
        let ok = SlotInfo {
            plugin: Some("wal2json".into()),
            database: Some("db".into()),
            active: false,
            confirmed_flush_lsn: None,
            wal_status: Some("reserved".into()),
        };
        assert!(check_compatible(&ok, "s", "db").is_ok());
        assert!(!ok.is_invalidated());
        let lost = SlotInfo {
            wal_status: Some("lost".into()),
            ..ok.clone()
        };
        assert!(lost.is_invalidated());
        assert!(is_invalidation(&crate::connection::PgWireError::Server {
            code: "55000".into(),
            message: "can no longer get changes from replication slot \"s\"".into(),
        }));
        assert!(check_compatible(&ok, "s", "other").is_err());
        let pgoutput = SlotInfo {
            plugin: Some("pgoutput".into()),
            ..ok
        };
        assert!(check_compatible(&pgoutput, "s", "db").is_err());
        assert_eq!(snapshot_marker("s"), "cdc_reader_snapshot_done.s");
    }
}
