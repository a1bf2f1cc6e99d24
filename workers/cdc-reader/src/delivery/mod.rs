//! Publishing to Kafka and knowing what may be confirmed.
//!
//! Guarantee: the position returned by [`Tracker::confirmed`] is the end LSN of a transaction
//! all of whose messages *and those of every earlier transaction* the broker acknowledged
//! (`acks=all`, idempotent producer). With a transactional producer, [`Publisher::confirmable`]
//! further holds it back until the Kafka transaction holding those messages committed.
//! Confirming it to PostgreSQL therefore never skips an unacknowledged (or uncommitted)
//! change; a crash resends at most what followed it (at-least-once, consumers deduplicate by
//! `(commit_lsn, lsn)`). A leader's producer is fenced by its successor's
//! ([`Publisher::start_leadership`]): nothing of a deposed leader lands after its successor's
//! first write.
//!
//! Transactions are tracked in arrival order in a queue of `(end_lsn, pending)`; the delivery
//! callback (on librdkafka's polling thread) decrements `pending` and pops completed
//! transactions from the front. Memory is bounded by the number of messages in flight, which
//! the reader caps: it stops reading the replication stream at `max_in_flight`.
//!
//! - [`tracker`]: the transactions in flight and the position that may be confirmed;
//! - [`publisher`]: the producer, its settings and delivery callbacks, and its replacement when
//!   it cannot deliver any more.

mod publisher;
mod tracker;

pub use publisher::{
    producer_settings, send_failed, CommitOutcome, Committing, DeliveryContext, InFlight, Publisher,
};
pub use tracker::{AckedRange, Tracker, TxSeq};
