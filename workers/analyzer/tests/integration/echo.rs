//! The write-backs' echo: with the analyzer marking its sessions (`--mark-write-backs`) and
//! the reader excluding those origins (`--exclude-origins pipeline_writeback_`), the results
//! never come back through the CDC topic, while the application's changes still do and every
//! result is still published.

use std::time::Duration;

use shared::testkit::{read_events_by_id, unique_name, TestEnv};
use uuid::Uuid;

use crate::delivery::assert_every_row_has_its_event;
use crate::pipeline::{births, free_port, metric, Stack};

#[tokio::test]
async fn a_reader_excluding_the_write_back_origins_publishes_no_echo() {
    let stack = Stack::start_full(
        TestEnv::get(),
        "echo",
        &["--exclude-origins", shared::db::WRITEBACK_ORIGIN_PREFIX],
    )
    .await;
    let port = free_port();
    let mut analyzer = stack.analyzer_process_with(
        &unique_name("analyzers"),
        port,
        &["--mark-write-backs", "true"],
        &[],
    );
    let ids = stack.insert(&births(31, 500)).await;
    stack.wait_all_analyzed(Duration::from_secs(120)).await;

    // The application edits the inputs of one profile in ten: analyzed again.
    let edited: Vec<Uuid> = ids.iter().step_by(10).copied().collect();
    stack.edit_birth_dates(&edited, "3 days").await;
    assert_every_row_has_its_event(&stack, &ids).await;

    // Last inserts, committed after every write-back, and enough of them to land in each of
    // the topic's partitions: once they are all read, any echo would have been read before.
    let sentinels: Vec<String> = stack
        .insert(&births(32, 30))
        .await
        .iter()
        .map(Uuid::to_string)
        .collect();
    let topic = format!("{}.public.saju_profiles", stack.prefix);
    let events = read_events_by_id(
        &stack.env.kafka_brokers,
        &[&topic],
        Duration::from_secs(60),
        |seen| sentinels.iter().all(|s| seen.contains_key(s)),
    )
    .await;
    assert!(
        sentinels.iter().all(|s| events.contains_key(s)),
        "the last inserts were published"
    );
    for id in &ids {
        let ops: Vec<&str> = events
            .get(&id.to_string())
            .map(|e| e.iter().filter_map(|v| v["op"].as_str()).collect())
            .unwrap_or_default();
        let want: &[&str] = if edited.contains(id) {
            &["c", "u"]
        } else {
            &["c"]
        };
        assert_eq!(
            ops, want,
            "{id}: the application's changes only, not the analyzer's write-backs"
        );
    }
    let skipped = metric(port, "analyzer_skipped_total{reason=\"unchanged\"}")
        .await
        .expect("the analyzer's metrics answer");
    assert_eq!(skipped, 0.0, "the analyzer received no echo to skip");
    analyzer.kill().unwrap();
    analyzer.wait().unwrap();
    stack.stop().await;
}
