//! The searches of enriched metadata the README documents (XMP and IPTC keywords, format,
//! colour space) are served by the metadata GIN index, at 100,000 rows.

use serde_json::{json, Value};
use shared::testkit::TestEnv;

const ROWS: usize = 100_000;

#[tokio::test]
async fn keyword_and_descriptive_searches_use_the_metadata_index() {
    let env = TestEnv::get();
    let db = env.database("asset_queries").await;
    for chunk in 0..ROWS / 10_000 {
        let docs: Vec<String> = (0..10_000)
            .map(|i| {
                let n = chunk * 10_000 + i;
                let mut worker = json!({
                    "status": "done",
                    "format": if n % 3 == 0 { "PNG" } else { "JPEG" },
                    "cmyk": n % 500 == 0,
                });
                if n % 4 == 0 {
                    worker["xmp"] = json!({
                        // A vocabulary of about a thousand words, as real keywords are.
                        "keywords": if n % 1000 == 0 {
                            json!(["노을", format!("kw{}", n % 1009)])
                        } else {
                            json!([format!("kw{}", n % 1009), format!("kw{}", (n / 7) % 1013)])
                        },
                        "creator": [format!("photographer {}", n % 300)],
                    });
                }
                if n % 5 == 0 {
                    worker["iptc"] = json!({"keywords": [format!("tag{}", n % 997)]});
                }
                worker["icc"] = json!({"color_space": if n % 500 == 0 { "CMYK" } else { "RGB" }});
                json!({"owner": "team", "asset_worker": worker}).to_string()
            })
            .collect();
        sqlx::query(
            "INSERT INTO image_assets (file_name, file_path, metadata, enrichment_status) \
             SELECT 'f' || ordinality || '.jpg', '/assets/', d::jsonb, 'done' \
             FROM unnest($1::text[]) WITH ORDINALITY AS u(d, ordinality)",
        )
        .bind(&docs)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    sqlx::query("ANALYZE image_assets")
        .execute(&db.pool)
        .await
        .unwrap();
    for pattern in [
        r#"{"asset_worker": {"xmp": {"keywords": ["노을"]}}}"#,
        r#"{"asset_worker": {"xmp": {"keywords": ["kw42"]}}}"#,
        r#"{"asset_worker": {"iptc": {"keywords": ["tag17"]}}}"#,
        r#"{"asset_worker": {"xmp": {"creator": ["photographer 8"]}}}"#,
        r#"{"asset_worker": {"icc": {"color_space": "CMYK"}}}"#,
    ] {
        let query = format!(
            "SELECT id, file_name FROM image_assets WHERE metadata @> '{pattern}' AND deleted_at IS NULL"
        );
        let plan: Value = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {query}"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let rows = plan[0]["Plan"]["Actual Rows"].as_u64().unwrap_or(0);
        eprintln!(
            "{query}\n  -> {rows} rows in {} ms",
            plan[0]["Execution Time"]
        );
        assert!(
            plan.to_string().contains("idx_image_assets_metadata"),
            "{query} does not use the metadata index: {plan:#}"
        );
        assert!(rows > 0, "{query} found nothing");
    }
    db.drop_database().await;
}
