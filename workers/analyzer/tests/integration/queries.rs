//! The queries users run on analyzed profiles (the forms README.md documents) use the
//! indexes, at 200,000 rows.

use std::time::Instant;

use rayon::prelude::*;
use saju::{Analysis, Birth, Gender, Options};
use serde_json::Value;
use shared::testkit::TestEnv;

const ROWS: usize = 200_000;
const CHUNK: usize = 10_000;

/// Deterministic pseudo-random instants 1900–2100 (SplitMix64).
fn instant(i: u64) -> i64 {
    let mut z = i
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let start = -2_208_988_800i64 + 86_400; // 1900-01-02
    let span = 4_133_894_400i64 - start; // up to 2100-12-30
    start + (z % span as u64) as i64
}

#[tokio::test]
async fn score_and_group_queries_use_their_indexes() {
    let env = TestEnv::get();
    let db = env.database("queries").await;
    let options = Options::default();
    let loaded = Instant::now();
    for chunk in 0..ROWS / CHUNK {
        let rows: Vec<(i64, bool, String)> = (0..CHUNK)
            .into_par_iter()
            .map(|i| {
                let n = (chunk * CHUNK + i) as u64;
                let seconds = instant(n);
                let gender = if n % 2 == 0 {
                    Gender::Male
                } else {
                    Gender::Female
                };
                let analysis =
                    Analysis::compute(&Birth::Instant(saju::Instant(seconds)), gender, &options)
                        .unwrap();
                let mut doc = Vec::with_capacity(2048);
                saju::json::write_analysis(&analysis, &mut doc);
                (seconds, n % 2 == 0, String::from_utf8(doc).unwrap())
            })
            .collect();
        let births: Vec<f64> = rows.iter().map(|r| r.0 as f64).collect();
        let males: Vec<bool> = rows.iter().map(|r| r.1).collect();
        let docs: Vec<String> = rows.into_iter().map(|r| r.2).collect();
        sqlx::query(
            "INSERT INTO saju_profiles (name, gender, birth_date, analysis_result, analysis_status) \
             SELECT 'p', CASE WHEN m THEN 'M' ELSE 'F' END, to_timestamp(b), d::jsonb, 'done' \
             FROM UNNEST($1::float8[], $2::bool[], $3::text[]) AS u(b, m, d)",
        )
        .bind(&births)
        .bind(&males)
        .bind(&docs)
        .execute(&db.pool)
        .await
        .unwrap();
        eprintln!("loaded {} / {ROWS} analyzed rows", (chunk + 1) * CHUNK);
    }
    eprintln!(
        "loaded {ROWS} rows in {:.1}s",
        loaded.elapsed().as_secs_f64()
    );
    sqlx::query("ANALYZE saju_profiles")
        .execute(&db.pool)
        .await
        .unwrap();

    for (query, index) in [
        (
            "SELECT id, name FROM saju_profiles WHERE (analysis_result->'scores'->>'wood')::numeric >= 30",
            "idx_saju_profiles_score_wood",
        ),
        (
            "SELECT id, name FROM saju_profiles WHERE analysis_facets(analysis_result) @> '{\"groups\":[102]}'",
            "idx_saju_profiles_analysis_facets",
        ),
        // Version 2 members, by containment on the same index.
        (
            "SELECT id, name FROM saju_profiles WHERE analysis_facets(analysis_result) @> '{\"groups\":[704]}'",
            "idx_saju_profiles_analysis_facets",
        ),
        (
            "SELECT id, name FROM saju_profiles \
             WHERE analysis_facets(analysis_result) @> '{\"twelve_stages\":{\"day\":{\"name\":\"건록\"}}}'",
            "idx_saju_profiles_analysis_facets",
        ),
        (
            "SELECT id, name FROM saju_profiles \
             WHERE analysis_facets(analysis_result) @> '{\"sinsal\":[{\"name\":\"역마살\",\"positions\":[\"day\"]}]}'",
            "idx_saju_profiles_analysis_facets",
        ),
        (
            "SELECT id, name FROM saju_profiles \
             WHERE analysis_facets(analysis_result) @> '{\"sinsal\":[{\"name\":\"천을귀인\"}]}'",
            "idx_saju_profiles_analysis_facets",
        ),
        (
            "SELECT id, name FROM saju_profiles \
             WHERE analysis_facets(analysis_result) @> '{\"gongmang\":{\"day_hits\":[\"hour\"]}}'",
            "idx_saju_profiles_analysis_facets",
        ),
        (
            "SELECT id, name FROM saju_profiles \
             WHERE analysis_facets(analysis_result) @> '{\"strength\":{\"verdict\":\"신약\"},\"napeum\":{\"day\":{\"element\":\"metal\"}}}'",
            "idx_saju_profiles_analysis_facets",
        ),
    ] {
        let plan: Value = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {query}"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let text = plan.to_string();
        let rows = plan[0]["Plan"]["Actual Rows"].as_u64().unwrap_or(0);
        let ms = plan[0]["Execution Time"].as_f64().unwrap_or(f64::NAN);
        eprintln!("{query}\n  -> {rows} rows in {ms:.1} ms");
        assert!(text.contains(index), "{query} does not use {index}: {plan:#}");
        assert!(rows > 0, "{query} found nothing: the data set does not exercise it");
        // A pattern written for the document finds the same rows inside the facets.
        if let Some((_, pattern)) = query.split_once("analysis_facets(analysis_result) @> ") {
            let facets: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM saju_profiles WHERE analysis_facets(analysis_result) @> {pattern}"
            ))
            .fetch_one(&db.pool)
            .await
            .unwrap();
            let document: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM saju_profiles WHERE analysis_result @> {pattern}"
            ))
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(facets, document, "{pattern}: facets and document disagree");
        }
    }
    db.drop_database().await;
}
