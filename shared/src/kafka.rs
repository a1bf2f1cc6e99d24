//! Kafka client settings with the guarantees the pipeline relies on, and topic creation.
//!
//! Producers are idempotent with `acks=all`, so a retried send never duplicates or reorders
//! within a partition. Consumers neither auto-commit nor auto-store offsets: the consumer
//! runtime ([`crate::consume`]) commits an offset itself, once the work of that message and of
//! every message before it on its partition is finished.

use std::collections::HashMap;
use std::sync::OnceLock;
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

/// The librdkafka error code `e` carries, or `None` when it carries none or a code this build of
/// librdkafka has no name for.
///
/// Use this, never [`KafkaError::rdkafka_error_code`] (clippy refuses it): for a transaction
/// error that method passes the code through rdkafka-sys's Rust enum, and a code the enum lacks
/// is undefined behaviour there, in practice an illegal instruction that kills the process
/// (rust-rdkafka issue #127). Brokers answer with codes newer than librdkafka: an in-memory broker
/// that restarted empty refuses a running transaction's AddPartitionsToTxn with
/// TRANSACTIONAL_ID_NOT_FOUND (105), which librdkafka 2.12 passes up as the transaction's error.
/// A transaction error's code is looked up here by the name librdkafka gives it instead.
///
/// Codes that rdkafka converts itself before handing over an error (a delivery report's, a
/// consumed message's) cannot be guarded here.
pub fn error_code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    match e {
        KafkaError::Transaction(error) => code_named(&error.name()),
        #[expect(clippy::disallowed_methods, reason = "no transaction error reaches it")]
        other => other.rdkafka_error_code(),
    }
}

/// The code librdkafka names `name` (`PRODUCER_FENCED`, `_FATAL`), from its own table: it has
/// no safe wrapper, so this is one of the workspace's two places with `unsafe`.
#[allow(unsafe_code)]
fn code_named(name: &str) -> Option<RDKafkaErrorCode> {
    static CODES: OnceLock<HashMap<String, RDKafkaErrorCode>> = OnceLock::new();
    CODES
        .get_or_init(|| {
            use rdkafka::bindings::{rd_kafka_err_desc, rd_kafka_get_err_descs};
            use rdkafka::types::RDKafkaRespErr;
            let mut descs: *const rd_kafka_err_desc = std::ptr::null();
            let mut count = 0usize;
            // SAFETY: librdkafka points `descs` at its static table of `count` entries.
            unsafe { rd_kafka_get_err_descs(&mut descs, &mut count) };
            (0..count)
                .filter_map(|i| {
                    // SAFETY: `i < count`; the code is read as the C int it is, and a slot the
                    // table leaves empty has a null name.
                    let (raw, name) = unsafe {
                        let desc = descs.add(i);
                        (
                            std::ptr::addr_of!((*desc).code).cast::<i32>().read(),
                            (*desc).name,
                        )
                    };
                    if name.is_null() {
                        return None;
                    }
                    let code = RDKafkaRespErr::try_from(raw).ok()?;
                    // SAFETY: a non-null name is a static, NUL-terminated C string.
                    let name = unsafe { std::ffi::CStr::from_ptr(name) };
                    Some((name.to_string_lossy().into_owned(), code.into()))
                })
                .collect()
        })
        .get(name)
        .copied()
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

    /// A transaction refused with a code librdkafka 2.12 has no name for (105,
    /// TRANSACTIONAL_ID_NOT_FOUND, as an in-memory broker answered after restarting empty):
    /// reading its code must not go through rdkafka-sys's enum, where it is an illegal
    /// instruction. librdkafka's own mock cluster gives the answer on demand.
    #[test]
    #[allow(unsafe_code)]
    fn a_transaction_error_with_a_code_librdkafka_does_not_know_is_read_safely() {
        use rdkafka::bindings::{rd_kafka_handle_mock_cluster, rd_kafka_mock_push_request_errors};
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        use rdkafka::types::RDKafkaApiKey;

        let producer: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .set("transactional.id", "unknown-code")
            .create()
            .unwrap();
        let timeout = Duration::from_secs(30);
        producer.init_transactions(timeout).unwrap();
        // SAFETY: the producer owns the mock cluster for as long as it lives; the error codes
        // are passed as the C ints the variadic function reads.
        let cluster = unsafe { rd_kafka_handle_mock_cluster(producer.client().native_ptr()) };
        assert!(!cluster.is_null());
        let refused = |code: i32| {
            unsafe {
                rd_kafka_mock_push_request_errors(
                    cluster,
                    RDKafkaApiKey::AddPartitionsToTxn as i16,
                    1,
                    code,
                )
            };
            producer.begin_transaction().unwrap();
            producer
                .send(BaseRecord::<[u8], [u8]>::to("t").payload(b"x".as_slice()))
                .map_err(|(e, _)| e)
                .unwrap();
            let e = producer.commit_transaction(timeout).unwrap_err();
            assert!(matches!(e, KafkaError::Transaction(_)), "{e:?}");
            producer.abort_transaction(timeout).unwrap();
            e
        };

        let unknown = refused(105);
        assert_eq!(error_code(&unknown), None, "{unknown}");
        let KafkaError::Transaction(inner) = &unknown else {
            unreachable!()
        };
        assert_eq!(inner.name(), "ERR_105?");
        assert!(inner.txn_requires_abort(), "an abortable error: {unknown}");

        let known = refused(29);
        assert_eq!(
            error_code(&known),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed),
            "{known}"
        );
        assert_eq!(
            error_code(&KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            )),
            Some(RDKafkaErrorCode::MessageTimedOut)
        );
    }
}
