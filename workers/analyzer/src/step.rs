//! The analyzer's domain step in the shared consumer runtime ([`shared::consume`]): what a
//! `saju_profiles` change asks for, and the batched write-back with its events.
//!
//! - **decide**: inserts, snapshot reads and input edits are analyzed; the worker's own
//!   write-backs, other edits and deletes are skipped; an event whose inputs cannot be read is
//!   rejected — recorded on its row (`analysis_status = 'error'` with the reason) when the row
//!   is known, and dead-lettered. A change the CDC reader could not publish (its `too_large`
//!   dead letter, read from the CDC topic's `.dlq`) is analyzed from the row itself.
//! - **prepare**: reads such a row from the table.
//! - **write**: the newest event of each row wins within a batch; the charts are computed on
//!   rayon and written in one statement ([`writeback`]); every row written — or already holding
//!   this result (a replay) — gets its `saju.analysis.v1` event, errors included, and every
//!   error a dead letter.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use saju::Options;
use serde_json::Value;
use shared::consume::{Decision, Entry, Letter, Message, Output, Prepared, Settled, WriteError};
use shared::db::RowState;
use shared::dlq::Kind;
use sqlx::PgPool;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::profile::{self, Decision as Asks, Fingerprint, MalformedEvent, Profile, SkipReason};
use crate::writeback::{self, Outcome, RowOutcome};

/// What a message asks for.
#[derive(Debug)]
pub enum Work {
    /// Compute and write back.
    Analyze(Profile),
    /// The change was too large for the broker: read the row from the table.
    Fetch {
        /// The row.
        id: Uuid,
        /// `(commit_lsn, lsn)` of the unpublished change.
        position: (u64, u64),
    },
    /// The row's inputs cannot be read: record why on the row.
    Reject {
        /// The row.
        id: Uuid,
        /// Position of the event.
        position: (u64, u64),
        /// The reason, stored in `analysis_error`.
        reason: String,
    },
}

impl Work {
    fn id_and_position(&self) -> (Uuid, (u64, u64)) {
        match self {
            Work::Analyze(p) => (p.id, p.position),
            Work::Fetch { id, position } | Work::Reject { id, position, .. } => (*id, *position),
        }
    }
}

/// The analyzer's step.
pub struct Analyzer {
    /// Where results are written.
    pub pool: PgPool,
    /// Chart conventions.
    pub options: Options,
    /// Fingerprints under those conventions.
    pub fingerprint: Fingerprint,
    /// The worker's own metrics.
    pub metrics: Metrics,
    /// The CDC topic (events from any other subscribed topic are dead letters).
    pub cdc_topic: String,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("cdc_topic", &self.cdc_topic)
            .finish_non_exhaustive()
    }
}

/// Skip reasons of this step (metric labels).
const SKIP_DEAD_LETTER: &str = "other_dead_letter";
const SKIP_REASONS: [&str; 3] = ["unchanged", "deleted", SKIP_DEAD_LETTER];

impl shared::consume::Step for Analyzer {
    type Work = Work;
    type Ready = Work;
    const SKIP_REASONS: &'static [&'static str] = &SKIP_REASONS;

    fn decide(&self, message: &Message) -> Decision<Work> {
        let payload = message.payload.as_deref().unwrap_or_default();
        if *message.topic != *self.cdc_topic {
            return self.decide_dead_letter(message, payload);
        }
        let event = match profile::read_event(payload) {
            Ok(event) => event,
            Err(e) => {
                return Decision::DeadLetter(malformed(&MalformedEvent::NotAnEnvelope(e), None))
            }
        };
        self.metrics
            .events_consumed
            .with_label_values(&[event.op.as_str()])
            .inc();
        match profile::decide(&event, &self.fingerprint) {
            Ok(Asks::Analyze(profile)) => Decision::Work(Work::Analyze(profile)),
            Ok(Asks::Skip(reason)) => Decision::Skip(reason.as_str()),
            Err(e) => {
                tracing::warn!(partition = message.partition, offset = message.offset, error = %e, "unusable event");
                match profile::id_of(&event) {
                    Some(id) => Decision::Work(Work::Reject {
                        id,
                        position: event.position(),
                        reason: e.to_string(),
                    }),
                    None => Decision::DeadLetter(malformed(&e, None)),
                }
            }
        }
    }

    async fn prepare(&self, work: Work) -> Prepared<Work> {
        match work {
            Work::Fetch { id, position } => self.fetch(id, position).await,
            other => Prepared::Ready(other),
        }
    }

    fn write<'a>(
        &'a self,
        batch: &'a [Entry<Work>],
    ) -> impl Future<Output = Result<Vec<Settled>, WriteError>> + Send + 'a {
        self.write_batch(batch)
    }

    async fn check(&self) -> Result<String, String> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| "answers".to_owned())
            .map_err(|e| format!("PostgreSQL does not answer: {e}"))
    }
}

fn malformed(e: &MalformedEvent, id: Option<Uuid>) -> Letter {
    Letter {
        kind: Kind::Decode,
        reason: "malformed".to_owned(),
        message: e.to_string(),
        row: id.map(|id| ("profile_id", id.to_string())),
    }
}

/// The key of events about a profile: `{"id":"<uuid>"}`, as on the CDC topic.
pub(crate) fn key_of(id: Uuid) -> Vec<u8> {
    format!("{{\"id\":\"{id}\"}}").into_bytes()
}

/// How one entry of a batch is settled once the statements ran.
enum Plan {
    /// Superseded by a newer event of the same row in the batch.
    Superseded,
    /// Index into the analyses.
    Analysis(usize),
    /// Index into the rejections.
    Rejection(usize),
}

impl Analyzer {
    /// A message on the CDC topic's `.dlq`: the reader's `too_large` letters of this table are
    /// analyzed from the row; every other letter (this worker's own) is not input.
    fn decide_dead_letter(&self, message: &Message, payload: &[u8]) -> Decision<Work> {
        let change = shared::dlq::unpublished_change(payload)
            .filter(|c| c.table == "saju_profiles" && c.op.as_deref() != Some("d"));
        let id = message.key.as_deref().and_then(|key| {
            let key: Value = serde_json::from_slice(key).ok()?;
            Uuid::parse_str(shared::envelope::key_object(&key).get("id")?.as_str()?).ok()
        });
        match (change, id) {
            (Some(change), Some(id)) => {
                tracing::info!(%id, lsn = change.lsn, "change too large for the broker; analyzing the row from the table");
                Decision::Work(Work::Fetch {
                    id,
                    position: (change.commit_lsn, change.lsn),
                })
            }
            _ => Decision::Skip(SKIP_DEAD_LETTER),
        }
    }

    /// Reads a row whose change event could not be published ([`shared::db::read_row`]: a
    /// row not found yet is read again before it counts as deleted).
    async fn fetch(&self, id: Uuid, position: (u64, u64)) -> Prepared<Work> {
        let row = shared::db::read_row("a profile", || {
            sqlx::query_scalar(
                "SELECT jsonb_build_object('id', id, 'birth_date', birth_date::text, 'is_solar', is_solar, \
                        'is_leap_month', is_leap_month, 'lunar_birth', lunar_birth, 'gender', gender, \
                        'analysis_input', analysis_input) \
                 FROM saju_profiles WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
        })
        .await;
        let Some(Value::Object(row)) = row else {
            return Prepared::Skip(SkipReason::Deleted.as_str());
        };
        match profile::inputs_of(&row) {
            Ok(inputs) => {
                let recorded = row.get("analysis_input").and_then(Value::as_str);
                if recorded == Some(self.fingerprint.of(&inputs).as_str()) {
                    return Prepared::Skip(SkipReason::Unchanged.as_str());
                }
                Prepared::Ready(Work::Analyze(Profile {
                    id,
                    position,
                    inputs,
                }))
            }
            Err(e) => Prepared::Ready(Work::Reject {
                id,
                position,
                reason: e.to_string(),
            }),
        }
    }

    async fn write_batch(&self, batch: &[Entry<Work>]) -> Result<Vec<Settled>, WriteError> {
        // The newest event of each row wins; older ones in the batch are superseded.
        let mut newest: HashMap<Uuid, usize> = HashMap::with_capacity(batch.len());
        for (i, entry) in batch.iter().enumerate() {
            let (id, position) = entry.item.id_and_position();
            newest
                .entry(id)
                .and_modify(|j| {
                    if batch[*j].item.id_and_position().1 <= position {
                        *j = i;
                    }
                })
                .or_insert(i);
        }
        let mut plans = Vec::with_capacity(batch.len());
        let mut profiles = Vec::new();
        let mut rejections = Vec::new();
        let mut rejected_at = Vec::new();
        for (i, entry) in batch.iter().enumerate() {
            let (id, _) = entry.item.id_and_position();
            if newest.get(&id) != Some(&i) {
                plans.push(Plan::Superseded);
                continue;
            }
            match &entry.item {
                Work::Analyze(profile) => {
                    plans.push(Plan::Analysis(profiles.len()));
                    profiles.push(profile.clone());
                }
                Work::Reject {
                    reason, position, ..
                } => {
                    plans.push(Plan::Rejection(rejections.len()));
                    rejections.push((id, reason.clone()));
                    rejected_at.push(*position);
                }
                Work::Fetch { .. } => unreachable!("prepare turns every fetch into work"),
            }
        }
        let computed = if profiles.is_empty() {
            Vec::new()
        } else {
            let options = self.options;
            let fingerprint = self.fingerprint.clone();
            tokio::task::spawn_blocking(move || {
                writeback::compute_all(profiles, &options, &fingerprint)
            })
            .await
            .map_err(|e| WriteError::Transient(format!("computing the charts failed: {e}")))?
        };
        let analyzed = if computed.is_empty() {
            Vec::new()
        } else {
            writeback::write(&self.pool, &computed)
                .await
                .map_err(|e| WriteError::from_sqlx(&e))?
        };
        let rejected = if rejections.is_empty() {
            Vec::new()
        } else {
            writeback::reject(&self.pool, &rejections)
                .await
                .map_err(|e| WriteError::from_sqlx(&e))?
        };
        let analyzed = by_id(analyzed);
        let rejected = by_id(rejected);

        let mut written = 0u64;
        let mut stale = 0u64;
        let settled = plans
            .into_iter()
            .zip(batch)
            .map(|(plan, entry)| match plan {
                Plan::Superseded => Settled::Done(Vec::new()),
                Plan::Analysis(i) => {
                    let outcome = &computed[i];
                    match analyzed.get(&outcome.profile.id) {
                        Some(row) if row.state.retry(entry.deferrals) => Settled::Deferred,
                        Some(row) if matches!(row.state, RowState::Written | RowState::Current) => {
                            written += u64::from(row.state == RowState::Written);
                            Settled::Done(self.outputs_of_analysis(outcome, row))
                        }
                        _ => {
                            stale += 1;
                            Settled::Done(Vec::new())
                        }
                    }
                }
                Plan::Rejection(i) => {
                    let (id, reason) = &rejections[i];
                    match rejected.get(id) {
                        Some(row) if row.state.retry(entry.deferrals) => Settled::Deferred,
                        Some(row) if matches!(row.state, RowState::Written | RowState::Current) => {
                            self.metrics.errors.with_label_values(&["malformed"]).inc();
                            Settled::Done(outputs_of_rejection(
                                *id,
                                rejected_at[i],
                                reason,
                                row.analyzed_at,
                            ))
                        }
                        _ => Settled::Done(Vec::new()),
                    }
                }
            })
            .collect();
        self.metrics.analyses_written.inc_by(written);
        self.metrics.stale.inc_by(stale);
        Ok(settled)
    }

    fn outputs_of_analysis(&self, outcome: &Outcome, row: &RowOutcome) -> Vec<Output> {
        let analyzed_at = row.analyzed_at.unwrap_or_else(Utc::now);
        let mut outputs = vec![Output::Result {
            key: key_of(outcome.profile.id),
            payload: result_event(outcome, analyzed_at),
        }];
        if let Err(e) = &outcome.result {
            if row.state == RowState::Written {
                self.metrics.errors.with_label_values(&[e.kind()]).inc();
            }
            outputs.push(Output::DeadLetter(Letter {
                kind: Kind::InvalidInput,
                reason: e.kind().to_owned(),
                message: e.to_string(),
                row: Some(("profile_id", outcome.profile.id.to_string())),
            }));
        }
        outputs
    }
}

fn by_id(rows: Vec<RowOutcome>) -> HashMap<Uuid, RowOutcome> {
    rows.into_iter().map(|row| (row.id, row)).collect()
}

/// The events of a rejected row: an error result (its input is only the event's position: the
/// inputs could not be read) and a dead letter.
fn outputs_of_rejection(
    id: Uuid,
    position: (u64, u64),
    reason: &str,
    analyzed_at: Option<DateTime<Utc>>,
) -> Vec<Output> {
    let event = serde_json::json!({
        "profile_id": id,
        "status": "error",
        "analysis_version": saju::json::VERSION,
        "analyzed_at": analyzed_at.unwrap_or_else(Utc::now),
        "input": {"commit_lsn": position.0, "lsn": position.1},
        "error": reason,
    });
    vec![
        Output::Result {
            key: key_of(id),
            payload: event.to_string().into_bytes(),
        },
        Output::DeadLetter(Letter {
            kind: Kind::Decode,
            reason: "malformed".to_owned(),
            message: reason.to_owned(),
            row: Some(("profile_id", id.to_string())),
        }),
    ]
}

/// The `saju.analysis.v1` payload (`redpanda/schemas/saju.analysis.v1.schema.json`): the row,
/// the inputs and event position it was computed from, and the document or the error.
pub(crate) fn result_event(outcome: &Outcome, analyzed_at: DateTime<Utc>) -> Vec<u8> {
    let profile = &outcome.profile;
    let inputs = &profile.inputs;
    let mut header = serde_json::json!({
        "profile_id": profile.id,
        "status": if outcome.result.is_ok() { "done" } else { "error" },
        "analysis_version": saju::json::VERSION,
        "analyzed_at": analyzed_at,
        "input": {
            "commit_lsn": profile.position.0,
            "lsn": profile.position.1,
            "birth_date": inputs.birth_date,
            "is_solar": inputs.is_solar,
            "is_leap_month": inputs.is_leap_month,
            "lunar_birth": inputs.lunar_birth,
            "gender": inputs.gender,
            "fingerprint": outcome.fingerprint,
        },
    });
    match &outcome.result {
        Err(e) => {
            header["error"] = serde_json::json!(e.to_string());
            header.to_string().into_bytes()
        }
        Ok(computed) => {
            // Splice the already-serialized document in rather than parsing it again.
            let header = header.to_string();
            let mut out = Vec::with_capacity(header.len() + computed.document.len() + 16);
            out.extend_from_slice(&header.as_bytes()[..header.len() - 1]);
            out.extend_from_slice(b",\"result\":");
            out.extend_from_slice(computed.document.as_bytes());
            out.push(b'}');
            out
        }
    }
}
