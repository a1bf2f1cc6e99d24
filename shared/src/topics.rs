//! The pipeline's topics, their partitions and retention, in one place.
//!
//! `<worker> create-topics` (called by `scripts/up`) creates them all; the compose stack's
//! `redpanda/topics.conf` carries the same names and settings.

use crate::kafka::TopicSpec;

/// Tables the CDC reader captures by default.
pub const DEFAULT_TABLES: [&str; 2] = ["public.saju_profiles", "public.image_assets"];

/// Topic of the analyzer's results (one event per written analysis).
pub const ANALYSIS_TOPIC: &str = "saju.analysis.v1";

/// Topic of the asset worker's results (one event per enriched asset).
pub const ENRICHED_TOPIC: &str = "assets.enriched.v1";

/// The dead-letter topic of a consumed topic: poison input goes there with the reason.
pub fn dlq_topic(source_topic: &str) -> String {
    format!("{source_topic}.dlq")
}

const COMPACT_DELETE: &str = "compact,delete";
const SEVEN_DAYS_MS: &str = "604800000";
const THIRTY_DAYS_MS: &str = "2592000000";

/// Every topic of the pipeline for CDC topics named `<prefix>.<schema>.<table>`.
pub fn pipeline_topics(prefix: &str, partitions: i32) -> Vec<TopicSpec> {
    // Change and result topics are keyed by row id: compaction keeps each row's latest event
    // beyond the retention window. Dead letters are kept whole, for longer.
    let retained = |name: String, policy: &str, retention: &str| TopicSpec {
        name,
        partitions,
        configs: vec![
            ("cleanup.policy".to_owned(), policy.to_owned()),
            ("retention.ms".to_owned(), retention.to_owned()),
        ],
    };
    let mut topics = Vec::new();
    for table in DEFAULT_TABLES {
        let cdc = format!("{prefix}.{table}");
        topics.push(retained(dlq_topic(&cdc), "delete", THIRTY_DAYS_MS));
        topics.push(retained(cdc, COMPACT_DELETE, SEVEN_DAYS_MS));
    }
    topics.push(retained(
        ANALYSIS_TOPIC.to_owned(),
        COMPACT_DELETE,
        SEVEN_DAYS_MS,
    ));
    topics.push(retained(
        ENRICHED_TOPIC.to_owned(),
        COMPACT_DELETE,
        SEVEN_DAYS_MS,
    ));
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let names: Vec<String> = pipeline_topics("cdc", 6)
            .into_iter()
            .map(|t| t.name)
            .collect();
        for expected in [
            "cdc.public.saju_profiles",
            "cdc.public.saju_profiles.dlq",
            "cdc.public.image_assets",
            "cdc.public.image_assets.dlq",
            "saju.analysis.v1",
            "assets.enriched.v1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
    }
}
