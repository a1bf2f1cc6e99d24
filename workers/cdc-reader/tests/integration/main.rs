//! Integration tests of the CDC reader against real PostgreSQL (wal2json) and a real
//! Kafka-compatible broker, as provisioned by `scripts/test`. Each test has its own database,
//! slot and topic prefix; the tests that restart PostgreSQL or the broker start private ones.

#![allow(clippy::unwrap_used)]

mod changes;
mod crash;
mod debezium;
mod fencing;
mod idle;
mod incremental;
mod invalidation;
mod keys;
mod large;
mod restarts;
mod secrets;
mod snapshot;
mod standby;
mod support;
mod tls;
mod transactions;
