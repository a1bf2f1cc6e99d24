//! Kafka client settings with the guarantees the pipeline relies on, and topic creation.
//!
//! Producers are idempotent with `acks=all`, so a retried send never duplicates or reorders
//! within a partition. Consumers never auto-commit: a worker stores an offset only after the
//! side effects of the message (the database write) committed, then commits stored offsets.

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
        .set("fetch.wait.max.ms", millis(consumer.fetch_wait_max));
    apply_overrides(&mut config, kafka);
    config
}

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
    for result in admin.create_topics(new.iter(), &options).await? {
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

/// Consumer context that turns librdkafka's statistics into a consumer-lag gauge (labels
/// `topic`, `partition`: a handful of values) and logs rebalances. Statistics are emitted
/// every `statistics.interval.ms`, which [`with_lag_statistics`] sets.
#[derive(Clone, Debug)]
pub struct LagContext {
    lag: prometheus::IntGaugeVec,
}

impl LagContext {
    /// Registers `<namespace>_consumer_lag` in `registry`.
    pub fn new(namespace: &str, registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let lag = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                format!("{namespace}_consumer_lag"),
                "Messages between the group's committed offset and the partition's end, per assigned partition.",
            ),
            &["topic", "partition"],
        )?;
        registry.register(Box::new(lag.clone()))?;
        Ok(Self { lag })
    }
}

impl rdkafka::client::ClientContext for LagContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (name, topic) in statistics.topics {
            for (id, partition) in topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition and partitions we do not own.
                if id < 0 || partition.consumer_lag < 0 {
                    continue;
                }
                self.lag
                    .with_label_values(&[name.as_str(), &id.to_string()])
                    .set(partition.consumer_lag);
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for LagContext {
    fn post_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        match rebalance {
            rdkafka::consumer::Rebalance::Assign(list) => {
                tracing::info!(partitions = list.count(), "partitions assigned")
            }
            rdkafka::consumer::Rebalance::Revoke(list) => {
                // Gauges of partitions we no longer own would go stale.
                self.lag.reset();
                tracing::info!(partitions = list.count(), "partitions revoked")
            }
            rdkafka::consumer::Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// Asks librdkafka for statistics every 5 s (feeds [`LagContext`]).
pub fn with_lag_statistics(mut config: ClientConfig) -> ClientConfig {
    config.set("statistics.interval.ms", "5000");
    config
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
        };
        let config = consumer_config(&kafka, &consumer, "g", "c");
        assert_eq!(config.get("fetch.wait.max.ms"), Some("20"));
        assert_eq!(config.get("max.poll.interval.ms"), Some("30000"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        // --kafka-property wins over the flags.
        assert_eq!(config.get("session.timeout.ms"), Some("9000"));
    }
}
