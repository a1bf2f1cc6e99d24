//! What every worker of the pipeline shares.
//!
//! Each worker binary (`cdc-reader`, `analyzer`, `asset-worker`) is thin: it parses its CLI
//! (flattening the argument groups from [`config`]), initialises [`telemetry`], installs the
//! [`shutdown`] handlers, starts the [`health`] server and hands a [`shutdown::Shutdown`] to its
//! library's `run`. The pieces here are only those two or more workers use:
//!
//! - [`consume`]: the consumer runtime the analyzer and the asset worker run (batching,
//!   ordered offsets, publish-until-acknowledged, dead letters, commit on revoke), with its
//!   delivery guarantee; [`backoff`]: the one retry policy.
//! - [`config`]: the argument groups (PostgreSQL, Kafka, telemetry, HTTP listener), each flag also
//!   read from an environment variable, secrets redacted in `Debug`.
//! - [`telemetry`]: `tracing` initialisation, pretty on a terminal and JSON otherwise.
//! - [`shutdown`]: SIGINT/SIGTERM turned into a cancellation token every loop selects on.
//! - [`health`]: the `/metrics`, `/healthz` and `/readyz` HTTP endpoints.
//! - [`db`]: the PostgreSQL pool and the embedded sqlx migrations.
//! - [`kafka`]: producer and consumer settings with the delivery guarantees the pipeline needs.
//! - [`dlq`]: dead letters, the payload poison input is set aside with.
//! - [`envelope`]: the change event the CDC reader publishes and the consumers read.
//! - [`redact`]: connection strings made safe to log.
//! - [`process`]: telemetry, runtime and exit code around a worker's work.
//! - [`topics`]: the pipeline's topic names and settings.
//! - [`admin`]: the `migrate` and `create-topics` subcommands of every binary.

pub mod admin;
pub mod backoff;
pub mod config;
pub mod consume;
pub mod db;
pub mod dlq;
pub mod envelope;
pub mod health;
pub mod kafka;
pub mod process;
pub mod redact;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod topics;
