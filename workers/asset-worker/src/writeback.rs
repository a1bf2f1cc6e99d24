//! The batched write-back: one `UPDATE … FROM UNNEST(…)` per batch.
//!
//! Per row it merges the enrichment document under `metadata.asset_worker`
//! (`COALESCE(metadata, '{}') || {"asset_worker": …}`: a NULL document becomes an object, user
//! keys are kept as they are), fills `width`/`height` only where the row has none (a user's
//! values are never overwritten; a disagreement is flagged in the document), and sets the
//! status, error and time. A row is written only if
//!
//! - it still names the same file (`file_path`, `file_name`; a rejection of a row whose event
//!   named none writes whatever the row names) and is not soft-deleted: a result
//!   for a file the row has moved away from is dropped (`stale`);
//! - the input position stored in its namespace is not newer than this result's: an older
//!   event, redelivered after a crash, never overwrites a newer result. Equal positions are
//!   rewritten (idempotent replay).
//!
//! The statement is its own transaction. Rows another transaction holds are skipped, never
//! waited for, and reported as `locked` (the runtime retries them shortly after); a row that is
//! gone is `missing`.

use chrono::{DateTime, Utc};
use shared::db::RowState;
use sqlx::PgPool;
use uuid::Uuid;

/// One row's write.
#[derive(Clone, Debug)]
pub struct RowWrite {
    /// `image_assets.id`.
    pub id: Uuid,
    /// The file the result describes (the row must still name it); `None` for a row whose
    /// event named no readable file (a rejection).
    pub file_path: Option<String>,
    /// See `file_path`.
    pub file_name: Option<String>,
    /// The JSON document for `metadata.asset_worker`.
    pub document: String,
    /// `done` or `error`.
    pub status: &'static str,
    /// The reason, for `error`.
    pub error: Option<String>,
    /// Width found in the file (filled in where the row has none).
    pub width: Option<i32>,
    /// Height found in the file.
    pub height: Option<i32>,
    /// Input position, compared with the stored one.
    pub commit_lsn: i64,
    /// See `commit_lsn`.
    pub lsn: i64,
}

/// What the statement did to one requested row.
#[derive(Clone, Debug)]
pub struct Written {
    /// `image_assets.id`.
    pub id: Uuid,
    /// Written, stale, missing, or held by another transaction (see [`RowState`]).
    pub state: RowState,
    /// The time stored in `enriched_at` (written rows).
    pub enriched_at: Option<DateTime<Utc>>,
    /// `width` after the write.
    pub width: Option<i32>,
    /// `height` after the write.
    pub height: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    id: Uuid,
    state: String,
    enriched_at: Option<DateTime<Utc>>,
    width: Option<i32>,
    height: Option<i32>,
}

const UPDATE: &str = r#"
WITH u AS (
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::int4[], $8::int4[], $9::int8[], $10::int8[])
        AS u(id, file_path, file_name, document, status, error, width, height, commit_lsn, lsn)
), locked AS (
    SELECT a.id FROM image_assets a WHERE a.id IN (SELECT id FROM u)
    FOR UPDATE SKIP LOCKED
), written AS (
    UPDATE image_assets AS a SET
        metadata = COALESCE(a.metadata, '{}'::jsonb) || jsonb_build_object('asset_worker', u.document::jsonb),
        width = COALESCE(a.width, u.width),
        height = COALESCE(a.height, u.height),
        enrichment_status = u.status,
        enrichment_error = u.error,
        enriched_at = now()
    FROM u JOIN locked l USING (id)
    WHERE a.id = u.id
      AND (u.file_path IS NULL OR (a.file_path = u.file_path AND a.file_name = u.file_name))
      AND a.deleted_at IS NULL
      AND CASE
            WHEN jsonb_typeof(a.metadata #> '{asset_worker,input,commit_lsn}') = 'number'
             AND jsonb_typeof(a.metadata #> '{asset_worker,input,lsn}') = 'number'
            THEN ((a.metadata #>> '{asset_worker,input,commit_lsn}')::numeric,
                  (a.metadata #>> '{asset_worker,input,lsn}')::numeric)
                 <= (u.commit_lsn::numeric, u.lsn::numeric)
            ELSE true
          END
    RETURNING a.id, a.enriched_at, a.width, a.height
)
SELECT u.id,
       CASE WHEN l.id IS NULL THEN
                CASE WHEN EXISTS (SELECT 1 FROM image_assets e WHERE e.id = u.id) THEN 'locked' ELSE 'missing' END
            WHEN w.id IS NOT NULL THEN 'written'
            ELSE 'stale' END AS state,
       w.enriched_at, w.width, w.height
FROM u LEFT JOIN locked l USING (id) LEFT JOIN written w USING (id)
"#;

/// Writes `rows` (ids must be distinct) in one statement; one [`Written`] per row.
pub async fn write(pool: &PgPool, rows: &[RowWrite]) -> Result<Vec<Written>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let states: Vec<StateRow> = sqlx::query_as(UPDATE)
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.file_path.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.file_name.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.document.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.width).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.height).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.commit_lsn).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.lsn).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    states
        .into_iter()
        .map(|row| {
            let state = RowState::parse(&row.state)
                .ok_or_else(|| sqlx::Error::Protocol(format!("unknown row state {}", row.state)))?;
            Ok(Written {
                id: row.id,
                state,
                enriched_at: row.enriched_at,
                width: row.width,
                height: row.height,
            })
        })
        .collect()
}
