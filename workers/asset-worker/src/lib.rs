//! asset-worker
