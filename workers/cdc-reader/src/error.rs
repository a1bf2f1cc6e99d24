//! The reader's error type, split into what a reconnect can cure and what it cannot.

use crate::connection::PgWireError;

/// Why the reader stopped or a session ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (bad flag combination, slot of another plugin…).
    #[error("configuration: {0}")]
    Config(String),

    /// The replication connection failed (network, server restart, slot in use).
    #[error("replication connection: {context}")]
    Replication {
        /// What the reader was doing.
        context: &'static str,
        #[source]
        source: PgWireError,
    },

    /// A query on the normal (non-replication) connection failed.
    #[error("database: {context}")]
    Database {
        /// What the reader was doing.
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// Kafka client set-up or topic creation failed.
    #[error("kafka: {context}")]
    Kafka {
        /// What the reader was doing.
        context: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// The broker refused a message for good. The slot is not confirmed past it; a restart
    /// resumes from the last confirmed transaction.
    #[error("the broker did not accept a message: {0}")]
    Delivery(String),

    /// The broker acknowledged a message at an offset that does not follow the partition's
    /// previous acknowledgement: it lost messages it had acknowledged. The slot was not
    /// confirmed past the message; a new session sends everything unconfirmed again.
    #[error("the broker's acknowledgements went backwards: {0}")]
    AckRegression(String),

    /// The producer cannot deliver any more: its acknowledgements stopped for
    /// `--ack-stall-timeout` while the broker answered, or it failed fatally (the broker lost
    /// its idempotence state: unknown producer id, sequence out of order). The producer is
    /// recreated and a new session sends everything unconfirmed again.
    #[error("the producer must be replaced: {0}")]
    ProducerLost(String),

    /// PostgreSQL invalidated the slot: it removed WAL the slot still needed
    /// (`max_slot_wal_keep_size`), so the changes in that WAL are gone and the slot can never
    /// stream again. Recovery needs a new slot and a new snapshot
    /// (`--on-slot-invalidated resnapshot`, or drop the slot by hand).
    #[error("replication slot `{slot}` was invalidated by PostgreSQL (wal_status = lost): changes were lost; restart with --on-slot-invalidated resnapshot to create a new slot and re-snapshot, or drop the slot")]
    SlotInvalidated {
        /// The slot.
        slot: String,
    },

    /// wal2json sent something the reader does not understand. Skipping it would lose a
    /// change, so the reader stops without confirming it.
    #[error("undecodable wal2json message at {lsn}: {reason}")]
    Decode {
        /// LSN of the message, `X/Y`.
        lsn: String,
        /// What was wrong.
        reason: String,
    },

    /// Another reader took the leadership lock, or the lock's connection was lost.
    #[error("lost the leadership lock")]
    LeadershipLost,

    /// Shutdown was requested while a step could not be finished (e.g. mid-snapshot).
    #[error("interrupted by shutdown")]
    ShuttingDown,

    /// The metrics listener could not bind.
    #[error("cannot serve metrics: {0}")]
    Metrics(#[source] std::io::Error),
}

impl Error {
    /// Whether reconnecting may cure it. Non-retryable errors end the process with a non-zero
    /// exit code, without confirming anything more.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Replication { source, .. } => source.is_retryable(),
            Error::Database { source, .. } => !matches!(source, sqlx::Error::Configuration(_)),
            Error::Kafka { .. }
            | Error::LeadershipLost
            | Error::AckRegression(_)
            | Error::ProducerLost(_) => true,
            Error::Config(_)
            | Error::Delivery(_)
            | Error::Decode { .. }
            | Error::SlotInvalidated { .. }
            | Error::Metrics(_)
            | Error::ShuttingDown => false,
        }
    }

    /// The process exit code for this error: 3 for an invalidated slot (a supervisor should
    /// not simply restart the reader), 2 for configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::SlotInvalidated { .. } => 3,
            Error::Config(_) => 2,
            _ => 1,
        }
    }

    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Database { context, source }
    }

    pub(crate) fn wire(context: &'static str) -> impl FnOnce(PgWireError) -> Error {
        move |source| Error::Replication { context, source }
    }

    pub(crate) fn kafka(context: &'static str) -> impl FnOnce(rdkafka::error::KafkaError) -> Error {
        move |source| Error::Kafka { context, source }
    }
}
