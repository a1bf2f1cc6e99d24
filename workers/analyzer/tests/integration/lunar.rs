//! Lunar birthdays through SQL and the pipeline: every lunar day of 1900–2050 (2/30 and leap
//! months included) entered as `lunar_birth`, analyzed by the pipeline, equal to
//! `analyzer chart`; rows in the original form (the date part of `birth_date`) keep working
//! and are given their `lunar_birth` by the migration.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use saju::calendar::days_from_civil;
use saju::LunarDate;
use serde_json::Value;
use shared::shutdown::Shutdown;
use uuid::Uuid;

use crate::pipeline::Stack;

/// Every lunar date of lunar years 1900 to 2050, from the engine's KASI table (itself checked
/// day by day against an independent library in the engine's tests).
fn every_lunar_day() -> Vec<LunarDate> {
    (days_from_civil(1900, 1, 1)..=days_from_civil(2051, 3, 1))
        .filter_map(LunarDate::from_days)
        .filter(|d| (1900..=2050).contains(&d.year))
        .collect()
}

/// `HH:MM` of the n-th row: every minute of the day comes round.
fn clock(n: usize) -> String {
    let minutes = (n * 37) % 1440;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[tokio::test]
async fn every_lunar_day_1900_to_2050_is_stored_and_analyzed_like_the_chart_command() {
    let days = every_lunar_day();
    assert!(days.len() > 54_000, "{} lunar days", days.len());
    assert!(days.iter().any(|d| d.day == 30 && d.month == 2));
    assert!(days.iter().any(|d| d.leap));

    let stack = Stack::start("lunar").await;
    let shutdown = Shutdown::new();
    let analyzer = stack.analyzer_task(&shutdown);
    // Entered as an application would: lunar date and time as text, no birth_date.
    let texts: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(n, d)| format!("{:04}-{:02}-{:02} {}", d.year, d.month, d.day, clock(n)))
        .collect();
    let leaps: Vec<bool> = days.iter().map(|d| d.leap).collect();
    let genders: Vec<&str> = (0..days.len())
        .map(|n| if n % 2 == 0 { "M" } else { "F" })
        .collect();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO saju_profiles (name, gender, is_solar, is_leap_month, lunar_birth)
         SELECT 'l' || ord, g, FALSE, leap, lunar
         FROM UNNEST($1::text[], $2::bool[], $3::text[]) WITH ORDINALITY AS u(lunar, leap, g, ord)
         ORDER BY ord RETURNING id",
    )
    .bind(&texts)
    .bind(&leaps)
    .bind(&genders)
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(ids.len(), days.len());
    // The column refuses what is not a lunar date and time.
    for bad in [
        "1990-02-31 10:00",
        "1990-2-3 10:00",
        "1990-02-03",
        "1990-02-03 24:00",
    ] {
        let refused = sqlx::query(
            "INSERT INTO saju_profiles (name, gender, is_solar, lunar_birth) VALUES ('x', 'M', FALSE, $1)",
        )
        .bind(bad)
        .execute(&stack.db.pool)
        .await;
        assert!(refused.is_err(), "{bad} was stored");
    }
    let solar_lunar = sqlx::query(
        "INSERT INTO saju_profiles (name, gender, birth_date, lunar_birth) VALUES ('x', 'M', now(), '1990-02-03 10:00')",
    )
    .execute(&stack.db.pool)
    .await;
    assert!(
        solar_lunar.is_err(),
        "lunar_birth on a solar row was stored"
    );

    stack.wait_all_analyzed(Duration::from_secs(600)).await;
    let rows: Vec<(Uuid, String, bool, String, String, Value)> = sqlx::query_as(
        "SELECT id, lunar_birth, is_leap_month, gender::text, analysis_status, analysis_result
         FROM saju_profiles ORDER BY id",
    )
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), days.len());
    let input: String = rows
        .iter()
        .map(|(_, lunar, leap, gender, _, _)| {
            let (date, time) = lunar.split_once(' ').unwrap();
            let mut parts = date.split('-').map(|p| p.parse::<i64>().unwrap());
            let (y, m, d) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            format!(
                "{{\"lunar\":{{\"year\":{y},\"month\":{m},\"day\":{d},\"leap\":{leap}}},\"time\":\"{time}\",\"gender\":\"{gender}\"}}\n"
            )
        })
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_analyzer"))
        .args(["chart", "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn analyzer chart");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(lines.len(), rows.len());
    for ((id, lunar, leap, _, status, stored), line) in rows.iter().zip(lines) {
        assert_eq!(status, "done", "{id} ({lunar}, leap {leap})");
        let expected: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            stored, &expected,
            "lunar {lunar} (leap {leap}) differs from `analyzer chart`"
        );
    }
    eprintln!("{} lunar days analyzed like `analyzer chart`", rows.len());

    // The original form: lunar date in birth_date's date part (Seoul), no lunar_birth.
    let legacy: Uuid = sqlx::query_scalar(
        "INSERT INTO saju_profiles (name, gender, birth_date, is_solar)
         VALUES ('legacy', 'F', timestamptz '1990-02-28 14:30+09', FALSE) RETURNING id",
    )
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    stack.wait_all_analyzed(Duration::from_secs(60)).await;
    let twin: Uuid = sqlx::query_scalar(
        "INSERT INTO saju_profiles (name, gender, is_solar, lunar_birth)
         VALUES ('twin', 'F', FALSE, '1990-02-28 14:30') RETURNING id",
    )
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    stack.wait_all_analyzed(Duration::from_secs(60)).await;
    let result = |id: Uuid| {
        let pool = stack.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, Value>(
                "SELECT analysis_result FROM saju_profiles WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        result(legacy).await,
        result(twin).await,
        "both forms of one lunar birth"
    );
    // The migration gives such rows their lunar_birth (it is idempotent: run it again).
    sqlx::query("UPDATE saju_profiles SET lunar_birth = NULL WHERE id = $1")
        .bind(legacy)
        .execute(&stack.db.pool)
        .await
        .unwrap();
    sqlx::raw_sql(include_str!(
        "../../../../migrations/20261202000010_lunar_birth.sql"
    ))
    .execute(&stack.db.pool)
    .await
    .unwrap();
    let migrated: Option<String> =
        sqlx::query_scalar("SELECT lunar_birth FROM saju_profiles WHERE id = $1")
            .bind(legacy)
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(migrated.as_deref(), Some("1990-02-28 14:30"));
    stack.wait_all_analyzed(Duration::from_secs(60)).await;
    assert_eq!(result(legacy).await, result(twin).await);

    shutdown.trigger();
    analyzer.await.unwrap().unwrap();
    stack.stop().await;
}
