//! cdc-reader
