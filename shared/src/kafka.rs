//! Kafka client settings with the guarantees the pipeline relies on, and topic creation.
//!
//! Producers are idempotent with `acks=all`, so a retried send never duplicates or reorders
//! within a partition. Consumers neither auto-commit nor auto-store offsets: the consumer
//! runtime ([`crate::consume`]) commits an offset itself, once the work of that message and of
//! every message before it on its partition is finished.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{ConsumerArgs, KafkaArgs};

/// Settings for an idempotent, `acks=all` producer.
pub fn producer_config(kafka: &KafkaArgs, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000");
    apply_overrides(&mut config, kafka);
    config
}

/// Settings for a consumer-group member that commits offsets by hand.
pub fn consumer_config(
    kafka: &KafkaArgs,
    consumer: &ConsumerArgs,
    group_id: &str,
    client_id: &str,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", client_id)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("max.poll.interval.ms", millis(consumer.max_poll_interval))
        .set("session.timeout.ms", millis(consumer.session_timeout))
        .set(
            "heartbeat.interval.ms",
            millis(consumer.session_timeout / 4),
        )
        .set("fetch.wait.max.ms", millis(consumer.fetch_wait_max))
        // The cdc-reader produces in Kafka transactions committed every
        // --transaction-interval; the workers take a change as soon as it is in the topic
        // instead of waiting for the commit. A transaction that is aborted (its session failed,
        // or a deposed leader was fenced) is sent again by the next session, and processing a
        // change twice changes nothing.
        .set("isolation.level", "read_uncommitted")
        // librdkafka prefetches up to 64 MiB and 100,000 messages a partition by default and
        // holds each fetched batch decompressed: on a backlog that, not the worker, was most
        // of the analyzer's memory. A few thousand events ahead keep the workers busy (the
        // bench's drain rate did not change; README, "Memory on a backlog").
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES)
        .set("queued.min.messages", PREFETCH_MESSAGES_PER_PARTITION)
        .set("max.partition.fetch.bytes", FETCH_BYTES_PER_PARTITION)
        // With bounds this small the queue is often full when a fetch is due; librdkafka then
        // waits a whole second before it asks again (the default), which capped a consumer at
        // a few MiB a second and let a steady 1,000 profiles/s fall a minute behind.
        .set("fetch.queue.backoff.ms", PREFETCH_BACKOFF_MS);
    apply_overrides(&mut config, kafka);
    config
}

/// The consumers' prefetch bounds (each can be changed with `KAFKA_PROPERTIES`).
pub const PREFETCH_KBYTES: &str = "1024";
/// Messages librdkafka tries to keep queued for each assigned partition.
pub const PREFETCH_MESSAGES_PER_PARTITION: &str = "1000";
/// Bytes a fetch asks for from each partition.
pub const FETCH_BYTES_PER_PARTITION: &str = "262144";
/// How long a partition's next fetch waits when the prefetch queue was full.
pub const PREFETCH_BACKOFF_MS: &str = "10";

fn apply_overrides(config: &mut ClientConfig, kafka: &KafkaArgs) {
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// A topic the pipeline needs.
#[derive(Clone, Debug)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count (the ceiling on consumer-group parallelism).
    pub partitions: i32,
    /// Topic-level configs, e.g. `cleanup.policy=compact`.
    pub configs: Vec<(String, String)>,
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(kafka: &KafkaArgs, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    apply_overrides(&mut config, kafka);
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.configs.iter().fold(
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(-1)),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(new.iter(), &options).await;
    // Destroying the client joins its polling thread, which wakes every 100 ms: not on the
    // caller's time.
    std::thread::spawn(move || drop(admin));
    for result in results? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(topic = %name, error = %code, "cannot create topic");
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_settings_carry_the_flags() {
        let kafka = KafkaArgs {
            brokers: "b:9092".into(),
            topic_prefix: "cdc".into(),
            properties: vec![("session.timeout.ms".into(), "9000".into())],
        };
        let consumer = ConsumerArgs {
            max_poll_interval: Duration::from_secs(30),
            session_timeout: Duration::from_secs(10),
            fetch_wait_max: Duration::from_millis(20),
            publish_timeout: Duration::from_secs(30),
            max_in_flight: None,
            shutdown_timeout: Duration::from_secs(30),
        };
        let config = consumer_config(&kafka, &consumer, "g", "c");
        assert_eq!(config.get("fetch.wait.max.ms"), Some("20"));
        assert_eq!(config.get("max.poll.interval.ms"), Some("30000"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        // --kafka-property wins over the flags.
        assert_eq!(config.get("session.timeout.ms"), Some("9000"));
    }
}
