//! The runtime's [`Source`] and [`Sink`] on Kafka (rdkafka).
//!
//! The consumer never auto-commits and never auto-stores offsets: the runtime commits what
//! its [`OffsetBook`] says is finished. Before partitions are revoked, the rebalance callback
//! commits their finished prefix and drops them from the book. The producer is
//! idempotent with `acks=all`; its `message.timeout.ms` is the publish timeout, so an
//! acknowledgement that never comes becomes an error the runtime acts on.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntGaugeVec;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use super::{Message, Metrics, OffsetBook, Record, SendError, Sink, Source, TopicPartition};
use crate::config::{ConsumerArgs, KafkaArgs};
use crate::kafka::{consumer_config, producer_config};

/// Consumer context: lag gauges from librdkafka's statistics, commit-on-revoke, logging.
pub struct RuntimeContext {
    book: OffsetBook,
    lag: IntGaugeVec,
    rebalances: prometheus::IntCounterVec,
}

impl std::fmt::Debug for RuntimeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeContext").finish_non_exhaustive()
    }
}

impl ClientContext for RuntimeContext {
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in statistics.topics {
            for (id, partition) in topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition; -1 lag means unknown.
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

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<TopicPartition> = list
                .elements()
                .iter()
                .map(|e| (Arc::from(e.topic()), e.partition()))
                .collect();
            let positions = self.book.revoke(&partitions);
            let mut commit = TopicPartitionList::new();
            for ((topic, partition), position) in &positions {
                let _ = commit.add_partition_offset(topic, *partition, Offset::Offset(*position));
            }
            // Asynchronous: a synchronous commit would block the poll (and with it the whole
            // runtime) for as long as the coordinator is away, e.g. when the broker restarted.
            if commit.count() > 0 {
                if let Err(e) = base.commit(&commit, CommitMode::Async) {
                    tracing::warn!(error = %e, "commit before revocation failed; messages may be replayed");
                }
            }
            self.lag.reset();
            self.rebalances.with_label_values(&["revoke"]).inc();
            tracing::info!(
                partitions = partitions.len(),
                "partitions revoked; finished prefix committed"
            );
        }
    }

    fn post_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // librdkafka keeps a partition's pause across a revoke and a new assignment of
                // it: start every assigned partition flowing. The runtime pauses them again
                // at the next message if it still holds too much.
                if let Err(e) = base.resume(list) {
                    tracing::warn!(error = %e, "resuming assigned partitions failed");
                }
                // Until the first statistics, an assigned partition shows lag 0, not nothing.
                for e in list.elements() {
                    self.lag
                        .with_label_values(&[e.topic(), &e.partition().to_string()])
                        .set(0);
                }
                self.rebalances.with_label_values(&["assign"]).inc();
                tracing::info!(partitions = list.count(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// A consumer-group member on the given topics.
pub struct KafkaSource {
    consumer: Arc<StreamConsumer<RuntimeContext>>,
    book: OffsetBook,
    /// The subscribed topics, shared by every message read from them.
    topics: Vec<Arc<str>>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Joins `group` on `topics`, with lag statistics every 5 s feeding
    /// `<namespace>_consumer_lag`.
    pub fn subscribe(
        kafka: &KafkaArgs,
        consumer: &ConsumerArgs,
        group: &str,
        client_id: &str,
        topics: &[String],
        metrics: &Metrics,
    ) -> Result<Self, KafkaError> {
        let mut config = consumer_config(kafka, consumer, group, client_id);
        config.set("statistics.interval.ms", "5000");
        let book = OffsetBook::new();
        let context = RuntimeContext {
            book: book.clone(),
            lag: metrics.consumer_lag.clone(),
            rebalances: metrics.rebalances.clone(),
        };
        let consumer: StreamConsumer<RuntimeContext> = config.create_with_context(context)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        Ok(Self {
            consumer: Arc::new(consumer),
            book,
            topics: topics.iter().map(|t| Arc::from(t.as_str())).collect(),
        })
    }

    fn assignment(&self) -> Result<TopicPartitionList, String> {
        self.consumer.assignment().map_err(|e| e.to_string())
    }
}

fn owned(message: &rdkafka::message::BorrowedMessage<'_>, topics: &[Arc<str>]) -> Message {
    let topic = topics
        .iter()
        .find(|t| &***t == message.topic())
        .cloned()
        .unwrap_or_else(|| Arc::from(message.topic()));
    Message {
        topic,
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
    }
}

impl Source for KafkaSource {
    async fn recv(&self) -> Result<Message, String> {
        let message = self.consumer.recv().await.map_err(|e| e.to_string())?;
        Ok(owned(&message, &self.topics))
    }

    fn book(&self) -> &OffsetBook {
        &self.book
    }

    fn commit(&self, positions: &BTreeMap<TopicPartition, i64>, sync: bool) -> Result<(), String> {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), position) in positions {
            list.add_partition_offset(topic, *partition, Offset::Offset(*position))
                .map_err(|e| e.to_string())?;
        }
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        self.consumer.commit(&list, mode).map_err(|e| e.to_string())
    }

    fn pause(&self) -> Result<(), String> {
        let assignment = self.assignment()?;
        self.consumer.pause(&assignment).map_err(|e| e.to_string())
    }

    fn resume(&self) -> Result<(), String> {
        let assignment = self.assignment()?;
        self.consumer.resume(&assignment).map_err(|e| e.to_string())
    }

    fn check(&self) -> impl Future<Output = Result<String, String>> + Send + '_ {
        let topic = self.topics.first().cloned();
        let consumer = Arc::clone(&self.consumer);
        async move {
            // Metadata requests block: keep them off the async threads.
            let answered = tokio::task::spawn_blocking(move || {
                consumer
                    .client()
                    .fetch_metadata(topic.as_deref(), Duration::from_secs(5))
                    .map(|m| m.brokers().len())
            })
            .await;
            match answered {
                Ok(Ok(brokers)) => Ok(format!("{brokers} broker(s) answer")),
                Ok(Err(e)) => Err(format!("broker does not answer: {e}")),
                Err(e) => Err(format!("broker check failed: {e}")),
            }
        }
    }
}

/// An idempotent producer that can be recreated when its acknowledgements stop.
pub struct KafkaSink {
    config: ClientConfig,
    producer: Mutex<FutureProducer>,
    /// Guard above librdkafka's own `message.timeout.ms`.
    timeout: Duration,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A producer whose messages fail after `publish_timeout` without acknowledgement.
    pub fn new(
        kafka: &KafkaArgs,
        client_id: &str,
        publish_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let mut config = producer_config(kafka, client_id);
        let millis = publish_timeout.as_millis().max(1).to_string();
        config.set("message.timeout.ms", &millis);
        // A user's --kafka-property wins, as everywhere.
        for (key, value) in &kafka.properties {
            config.set(key, value);
        }
        let producer = config.create()?;
        Ok(Self {
            config,
            producer: Mutex::new(producer),
            timeout: publish_timeout + Duration::from_secs(5),
        })
    }

    fn current(&self) -> FutureProducer {
        self.producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits up to `timeout` for queued messages (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.current().flush(timeout) {
            tracing::warn!(error = %e, "producer flush failed");
        }
    }
}

fn classify(e: &KafkaError) -> SendError {
    match crate::kafka::error_code(e) {
        Some(RDKafkaErrorCode::MessageTimedOut) => SendError::Timeout,
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            SendError::TooLarge
        }
        Some(
            RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerIdMapping,
        ) => SendError::Fatal(e.to_string()),
        _ => SendError::Failed(e.to_string()),
    }
}

impl Sink for KafkaSink {
    fn send(
        &self,
        record: &Record,
    ) -> impl Future<Output = Result<(), SendError>> + Send + 'static {
        let producer = self.current();
        let mut future_record =
            FutureRecord::<[u8], [u8]>::to(&record.topic).payload(&record.payload);
        if let Some(key) = &record.key {
            future_record = future_record.key(key);
        }
        let enqueued = producer
            .send_result(future_record)
            .map_err(|(e, _)| classify(&e));
        let timeout = self.timeout;
        async move {
            let delivery = enqueued?;
            match tokio::time::timeout(timeout, delivery).await {
                Err(_) => Err(SendError::Timeout),
                Ok(Err(_)) => Err(SendError::Failed("delivery report lost".to_owned())),
                Ok(Ok(Ok(_))) => Ok(()),
                Ok(Ok(Err((e, _)))) => Err(classify(&e)),
            }
        }
    }

    fn reset(&self) {
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                let old = std::mem::replace(
                    &mut *self.producer.lock().unwrap_or_else(|p| p.into_inner()),
                    fresh,
                );
                // Dropping purges and briefly flushes: not on the async threads.
                std::thread::spawn(move || drop(old));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot recreate the producer; keeping the old one")
            }
        }
    }
}

/// Joins the group on `topics`, runs the runtime with `step` until `shutdown` and the drain
/// are done, then flushes the producer. The consumer leaves the group when this returns.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: super::Step>(
    step: Arc<S>,
    settings: super::Settings,
    kafka: &KafkaArgs,
    consumer: &ConsumerArgs,
    topics: &[String],
    metrics: Metrics,
    health: crate::health::Health,
    shutdown: crate::shutdown::Shutdown,
) -> anyhow::Result<super::Report> {
    use anyhow::Context as _;
    let source = KafkaSource::subscribe(
        kafka,
        consumer,
        &settings.group,
        settings.worker,
        topics,
        &metrics,
    )
    .context("cannot create the Kafka consumer")?;
    let sink = KafkaSink::new(kafka, settings.worker, consumer.publish_timeout)
        .context("cannot create the Kafka producer")?;
    let (source, sink) = (Arc::new(source), Arc::new(sink));
    tracing::info!(?topics, group = %settings.group, "consuming");
    let report = super::run(
        step,
        Arc::clone(&source),
        Arc::clone(&sink),
        settings,
        metrics,
        health,
        shutdown,
    )
    .await?;
    sink.flush(Duration::from_secs(5));
    Ok(report)
}
