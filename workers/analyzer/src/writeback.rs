//! Computing a batch of profiles and writing the results back in one statement.
//!
//! The write is conditional, row by row: a result lands only while the row still has the
//! inputs it was computed from (an older event never overwrites the result of a newer edit)
//! and only if the row does not already record this very fingerprint (a redelivered event
//! writes nothing, so it makes no new change event either, but its result event is published
//! again). Rows another transaction holds are skipped, never waited for ([`RowState`]).

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use saju::{Analysis, Options};
use shared::db::RowState;
use sqlx::PgPool;
use uuid::Uuid;

use crate::profile::{birth_of, Fingerprint, InvalidInput, Profile};

/// One profile's result: the document, or why its inputs cannot be analyzed.
#[derive(Debug)]
pub struct Outcome {
    /// The profile and the inputs it was computed from.
    pub profile: Profile,
    /// Fingerprint of those inputs (recorded on the row).
    pub fingerprint: String,
    /// Codes and the `analysis_result` document, or the reason it failed.
    pub result: Result<Computed, InvalidInput>,
}

/// A successful analysis.
#[derive(Debug)]
pub struct Computed {
    /// The eight codes, in column order.
    pub codes: [u8; 8],
    /// The `analysis_result` JSON document.
    pub document: String,
}

/// Computes every profile on the rayon pool (call from a blocking context).
pub fn compute_all(
    profiles: Vec<Profile>,
    options: &Options,
    fingerprint: &Fingerprint,
) -> Vec<Outcome> {
    profiles
        .into_par_iter()
        .map(|profile| compute(profile, options, fingerprint))
        .collect()
}

/// Computes one profile.
pub fn compute(profile: Profile, options: &Options, fingerprint: &Fingerprint) -> Outcome {
    let result = birth_of(&profile.inputs, options).and_then(|(birth, gender)| {
        let analysis = Analysis::compute(&birth, gender, options)?;
        let mut document = Vec::with_capacity(2048);
        saju::json::write_analysis(&analysis, &mut document);
        // The engine writes UTF-8 only, so the lossy path is never taken.
        let document = String::from_utf8(document)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(Computed {
            codes: analysis.codes(),
            document,
        })
    });
    let fingerprint = fingerprint.of(&profile.inputs);
    Outcome {
        profile,
        fingerprint,
        result,
    }
}

/// What the write-back did to one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowOutcome {
    /// The row.
    pub id: Uuid,
    /// Written, already current, stale, missing or held by another transaction.
    pub state: RowState,
    /// `analyzed_at` of the result the row holds (written now, or already there).
    pub analyzed_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    id: Uuid,
    state: String,
    analyzed_at: Option<DateTime<Utc>>,
}

fn outcomes(rows: Vec<StateRow>) -> Result<Vec<RowOutcome>, sqlx::Error> {
    rows.into_iter()
        .map(|row| {
            let state = RowState::parse(&row.state)
                .ok_or_else(|| sqlx::Error::Protocol(format!("unknown row state {}", row.state)))?;
            Ok(RowOutcome {
                id: row.id,
                state,
                analyzed_at: row.analyzed_at,
            })
        })
        .collect()
}

/// The batch write-back: one statement for successes and errors alike. Rows are locked with
/// `SKIP LOCKED` (never waited for); a row is written only while it still has the inputs the
/// result was computed from and does not already hold that result. Returns one outcome per
/// profile (ids must be distinct).
const ANALYSES: &str = "\
WITH u AS (
    SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::bool[], $4::bool[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[],
                         $10::int2[], $11::int2[], $12::int2[], $13::int2[], $14::int2[], $15::int2[], $16::int2[], $17::int2[],
                         $19::text[])
        AS u(id, birth_date, is_solar, is_leap_month, gender, input, status, error, doc,
             yg, yj, mg, mj, dg, dj, hg, hj, lunar_birth)
), locked AS (
    SELECT p.id, p.birth_date, p.is_solar, p.is_leap_month, p.lunar_birth, p.gender, p.analysis_input, p.analyzed_at
    FROM saju_profiles p WHERE p.id IN (SELECT id FROM u)
    FOR UPDATE SKIP LOCKED
), matched AS (
    SELECT u.*, l.analysis_input IS NOT DISTINCT FROM u.input AS is_current, l.analyzed_at AS previous_at
    FROM u JOIN locked l USING (id)
    WHERE l.birth_date IS NOT DISTINCT FROM u.birth_date AND l.is_solar = u.is_solar
      AND l.is_leap_month = u.is_leap_month AND l.lunar_birth IS NOT DISTINCT FROM u.lunar_birth
      AND l.gender IS NOT DISTINCT FROM u.gender
), written AS (
    UPDATE saju_profiles AS p SET
        year_gan = m.yg, year_ji = m.yj, month_gan = m.mg, month_ji = m.mj,
        day_gan = m.dg, day_ji = m.dj, hour_gan = m.hg, hour_ji = m.hj,
        analysis_result = m.doc::jsonb, analysis_status = m.status, analysis_error = m.error,
        analysis_version = $18, analysis_input = m.input, analyzed_at = now()
    FROM matched m
    WHERE p.id = m.id AND NOT m.is_current
    RETURNING p.id, p.analyzed_at
)
SELECT u.id,
       CASE WHEN l.id IS NULL THEN
                CASE WHEN EXISTS (SELECT 1 FROM saju_profiles e WHERE e.id = u.id) THEN 'locked' ELSE 'missing' END
            WHEN w.id IS NOT NULL THEN 'written'
            WHEN m.is_current THEN 'current'
            ELSE 'stale' END AS state,
       COALESCE(w.analyzed_at, m.previous_at) AS analyzed_at
FROM u LEFT JOIN locked l USING (id) LEFT JOIN matched m USING (id) LEFT JOIN written w USING (id)";

/// Writes a batch of results; see [`ANALYSES`].
pub async fn write(pool: &PgPool, outcomes_in: &[Outcome]) -> Result<Vec<RowOutcome>, sqlx::Error> {
    let n = outcomes_in.len();
    let mut ids = Vec::with_capacity(n);
    let mut births = Vec::with_capacity(n);
    let mut solar = Vec::with_capacity(n);
    let mut leap = Vec::with_capacity(n);
    let mut genders: Vec<Option<String>> = Vec::with_capacity(n);
    let mut lunar: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut inputs = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
    let mut documents: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut codes: [Vec<Option<i16>>; 8] = Default::default();
    for outcome in outcomes_in {
        let p = &outcome.profile;
        ids.push(p.id);
        births.push(p.inputs.birth_date);
        solar.push(p.inputs.is_solar);
        leap.push(p.inputs.is_leap_month);
        genders.push(p.inputs.gender.clone());
        lunar.push(p.inputs.lunar_birth.as_deref());
        inputs.push(outcome.fingerprint.as_str());
        match &outcome.result {
            Ok(computed) => {
                statuses.push("done");
                errors.push(None);
                documents.push(Some(computed.document.as_str()));
                for (column, code) in codes.iter_mut().zip(computed.codes) {
                    column.push(Some(i16::from(code)));
                }
            }
            Err(e) => {
                statuses.push("error");
                errors.push(Some(e.to_string()));
                documents.push(None);
                for column in codes.iter_mut() {
                    column.push(None);
                }
            }
        }
    }
    let [yg, yj, mg, mj, dg, dj, hg, hj] = codes;
    let rows: Vec<StateRow> = sqlx::query_as(ANALYSES)
        .bind(&ids)
        .bind(&births)
        .bind(&solar)
        .bind(&leap)
        .bind(&genders)
        .bind(&inputs)
        .bind(&statuses)
        .bind(&errors)
        .bind(&documents)
        .bind(&yg)
        .bind(&yj)
        .bind(&mg)
        .bind(&mj)
        .bind(&dg)
        .bind(&dj)
        .bind(&hg)
        .bind(&hj)
        .bind(saju::json::VERSION as i32)
        .bind(&lunar)
        .fetch_all(pool)
        .await?;
    outcomes(rows)
}

/// Records unusable inputs on their rows: status `error` with the reason, the previous result
/// cleared (it described other inputs). Rows that already record this very error are left as
/// they are (`current`). Same locking as [`write`].
const REJECTIONS: &str = "\
WITH u AS (
    SELECT * FROM UNNEST($1::uuid[], $2::text[]) AS u(id, error)
), locked AS (
    SELECT p.id, p.analysis_status, p.analysis_error, p.analyzed_at
    FROM saju_profiles p WHERE p.id IN (SELECT id FROM u)
    FOR UPDATE SKIP LOCKED
), written AS (
    UPDATE saju_profiles AS p SET
        year_gan = NULL, year_ji = NULL, month_gan = NULL, month_ji = NULL,
        day_gan = NULL, day_ji = NULL, hour_gan = NULL, hour_ji = NULL,
        analysis_result = NULL, analysis_status = 'error', analysis_error = u.error,
        analysis_version = $3, analysis_input = NULL, analyzed_at = now()
    FROM u JOIN locked l USING (id)
    WHERE p.id = u.id
      AND (l.analysis_status::text, l.analysis_error) IS DISTINCT FROM ('error', u.error)
    RETURNING p.id, p.analyzed_at
)
SELECT u.id,
       CASE WHEN l.id IS NULL THEN
                CASE WHEN EXISTS (SELECT 1 FROM saju_profiles e WHERE e.id = u.id) THEN 'locked' ELSE 'missing' END
            WHEN w.id IS NOT NULL THEN 'written'
            ELSE 'current' END AS state,
       COALESCE(w.analyzed_at, l.analyzed_at) AS analyzed_at
FROM u LEFT JOIN locked l USING (id) LEFT JOIN written w USING (id)";

/// Records each `(id, reason)` on its row; see [`REJECTIONS`].
pub async fn reject(
    pool: &PgPool,
    rows: &[(Uuid, String)],
) -> Result<Vec<RowOutcome>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let errors: Vec<&str> = rows.iter().map(|(_, e)| e.as_str()).collect();
    let rows: Vec<StateRow> = sqlx::query_as(REJECTIONS)
        .bind(&ids)
        .bind(&errors)
        .bind(saju::json::VERSION as i32)
        .fetch_all(pool)
        .await?;
    outcomes(rows)
}

/// The search index of the analysis document (a GIN index with a pending list).
pub const SEARCH_INDEX: &str = "idx_saju_profiles_analysis_facets";

/// Merges the search index's pending entries every `interval` until `shutdown`.
///
/// GIN collects new entries in a pending list and merges it into the index when it outgrows
/// `gin_pending_list_limit` — in whichever statement overflowed it, which then takes seconds
/// (a write-back's rows wait that long). Merging it here, often and on a connection of its
/// own, keeps the list short and the merge off the write-backs. A failure (a missing index,
/// no permission) is logged once and the task ends: the write-backs still merge it themselves.
pub async fn merge_index_pending(
    pool: PgPool,
    interval: std::time::Duration,
    shutdown: shared::shutdown::Shutdown,
) {
    while shutdown.sleep(interval).await {
        let merged: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT gin_clean_pending_list($1::regclass)")
                .bind(SEARCH_INDEX)
                .fetch_one(&pool)
                .await;
        match merged {
            Ok(pages) => {
                if pages > 0 {
                    tracing::debug!(pages, "search index pending list merged");
                }
            }
            Err(e) if e.as_database_error().is_some() => {
                tracing::warn!(error = %e, index = SEARCH_INDEX, "cannot merge the search index's pending list; the write-backs will");
                return;
            }
            // The database is away: try again at the next interval.
            Err(e) => tracing::debug!(error = %e, "merging the search index's pending list failed"),
        }
    }
}
