//! Computing a batch of profiles and writing the results back in one statement.
//!
//! The write is conditional, row by row: a result lands only while the row still has the
//! inputs it was computed from (an older event never overwrites the result of a newer edit)
//! and only if the row does not already record this very fingerprint (a redelivered event
//! writes nothing, so it makes no new change event either).

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use saju::{Analysis, Options};
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

/// The batch write-back: one `UPDATE … FROM UNNEST(…)` for successes and errors alike.
/// Returns the ids of the rows it changed, with the time recorded in `analyzed_at`.
pub async fn write(
    pool: &PgPool,
    outcomes: &[Outcome],
) -> Result<Vec<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    let n = outcomes.len();
    let mut ids = Vec::with_capacity(n);
    let mut births = Vec::with_capacity(n);
    let mut solar = Vec::with_capacity(n);
    let mut leap = Vec::with_capacity(n);
    let mut genders: Vec<Option<String>> = Vec::with_capacity(n);
    let mut inputs = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
    let mut documents: Vec<Option<String>> = Vec::with_capacity(n);
    let mut codes: [Vec<Option<i16>>; 8] = Default::default();
    for outcome in outcomes {
        let p = &outcome.profile;
        ids.push(p.id);
        births.push(p.inputs.birth_date);
        solar.push(p.inputs.is_solar);
        leap.push(p.inputs.is_leap_month);
        genders.push(p.inputs.gender.clone());
        inputs.push(outcome.fingerprint.clone());
        match &outcome.result {
            Ok(computed) => {
                statuses.push("done");
                errors.push(None);
                documents.push(Some(computed.document.clone()));
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
    sqlx::query_as(
        "UPDATE saju_profiles AS p SET \
            year_gan = u.yg, year_ji = u.yj, month_gan = u.mg, month_ji = u.mj, \
            day_gan = u.dg, day_ji = u.dj, hour_gan = u.hg, hour_ji = u.hj, \
            analysis_result = u.doc::jsonb, analysis_status = u.status, analysis_error = u.error, \
            analysis_version = $18, analysis_input = u.input, analyzed_at = now() \
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::bool[], $4::bool[], $5::text[], $6::text[], \
                     $7::text[], $8::text[], $9::text[], \
                     $10::int2[], $11::int2[], $12::int2[], $13::int2[], $14::int2[], $15::int2[], $16::int2[], $17::int2[]) \
              AS u(id, birth_date, is_solar, is_leap_month, gender, input, status, error, doc, \
                   yg, yj, mg, mj, dg, dj, hg, hj) \
         WHERE p.id = u.id \
           AND p.birth_date = u.birth_date AND p.is_solar = u.is_solar AND p.is_leap_month = u.is_leap_month \
           AND p.gender IS NOT DISTINCT FROM u.gender \
           AND p.analysis_input IS DISTINCT FROM u.input \
         RETURNING p.id, p.analyzed_at",
    )
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
    .fetch_all(pool)
    .await
}
