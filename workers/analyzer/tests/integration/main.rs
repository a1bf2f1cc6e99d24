//! The analyzer against the real PostgreSQL and broker `scripts/test` provisions: one test
//! binary, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod delivery;
mod echo;
mod lunar;
mod pipeline;
mod queries;
mod reanalyze;
mod secrets;
mod worker;

use shared::testkit::TestEnv;

/// The result topic of a test's analyzers: one per topic prefix, so that reading it back does
/// not mean reading every other test's results.
pub fn results_topic(prefix: &str) -> String {
    format!("{prefix}.{}", shared::topics::ANALYSIS_TOPIC)
}

/// The pipeline's topics for `prefix`, the test's result topic among them.
pub fn test_topics(prefix: &str) -> Vec<shared::kafka::TopicSpec> {
    let mut topics = shared::topics::pipeline_topics(prefix, 3);
    if let Some(results) = topics
        .iter()
        .find(|t| t.name == shared::topics::ANALYSIS_TOPIC)
        .cloned()
    {
        topics.push(shared::kafka::TopicSpec {
            name: results_topic(prefix),
            ..results
        });
    }
    topics
}

/// Flags of an analyzer on `database_url` and this environment's broker, in consumer group
/// `group`, with the test environment's quick group timings and a 20 ms flush.
pub fn analyzer_args(env: &TestEnv, database_url: &str, prefix: &str, group: &str) -> Vec<String> {
    let consumer = env.consumer();
    [
        "--database-url",
        database_url,
        "--kafka-brokers",
        &env.kafka_brokers,
        "--topic-prefix",
        prefix,
        "--group-id",
        group,
        "--max-poll-interval",
        &format!("{}ms", consumer.max_poll_interval.as_millis()),
        "--session-timeout",
        &format!("{}ms", consumer.session_timeout.as_millis()),
        "--flush-interval",
        "20ms",
        "--results-topic",
        &results_topic(prefix),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}
