//! The analyzer against the real PostgreSQL and broker `scripts/test` provisions: one test
//! binary, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pipeline;
mod queries;
mod worker;
