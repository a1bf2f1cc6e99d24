//! The messages of a streaming replication session in CopyBoth mode (PostgreSQL docs,
//! "Streaming Replication Protocol"): XLogData and primary keepalives from the server, standby
//! status updates from the client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A message from the server inside CopyData.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerMessage {
    /// `w`: a chunk of output-plugin data (one wal2json message).
    XLogData {
        /// WAL position the data belongs to: the change's LSN, or for a commit message the
        /// end of the commit record.
        wal_start: u64,
        /// The server's current end of WAL.
        wal_end: u64,
        /// The plugin's output.
        data: Bytes,
    },
    /// `k`: the server is alive; everything up to `wal_end` has been sent.
    Keepalive {
        /// Position up to which the server has sent (decoded) WAL.
        wal_end: u64,
        /// The server wants a status update now (or it will time the client out).
        reply_requested: bool,
    },
}

impl ServerMessage {
    /// Parses a CopyData payload. Unknown or truncated messages are errors, never panics.
    pub fn parse(mut payload: Bytes) -> Result<Self, String> {
        if payload.is_empty() {
            return Err("empty CopyData".into());
        }
        match payload.get_u8() {
            b'w' => {
                if payload.len() < 24 {
                    return Err("short XLogData header".into());
                }
                let wal_start = payload.get_u64();
                let wal_end = payload.get_u64();
                let _send_time = payload.get_i64();
                Ok(ServerMessage::XLogData {
                    wal_start,
                    wal_end,
                    data: payload,
                })
            }
            b'k' => {
                if payload.len() < 17 {
                    return Err("short keepalive".into());
                }
                let wal_end = payload.get_u64();
                let _send_time = payload.get_i64();
                let reply_requested = payload.get_u8() != 0;
                Ok(ServerMessage::Keepalive {
                    wal_end,
                    reply_requested,
                })
            }
            other => Err(format!("unknown replication message `{}`", other as char)),
        }
    }
}

/// Encodes a standby status update (`r`): written, flushed and applied all set to `confirmed`,
/// the only position a logical client has.
pub fn status_update(confirmed: u64, now: SystemTime) -> Bytes {
    let mut buf = BytesMut::with_capacity(34);
    buf.put_u8(b'r');
    buf.put_u64(confirmed);
    buf.put_u64(confirmed);
    buf.put_u64(confirmed);
    buf.put_i64(pg_timestamp(now));
    buf.put_u8(0);
    buf.freeze()
}

fn pg_timestamp(now: SystemTime) -> i64 {
    let unix = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as i64;
    unix - PG_EPOCH_OFFSET_MICROS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xlogdata_and_keepalive() {
        let mut w = BytesMut::new();
        w.put_u8(b'w');
        w.put_u64(10);
        w.put_u64(20);
        w.put_i64(0);
        w.put_slice(b"{}");
        assert_eq!(
            ServerMessage::parse(w.freeze()).unwrap(),
            ServerMessage::XLogData {
                wal_start: 10,
                wal_end: 20,
                data: Bytes::from_static(b"{}")
            }
        );
        let mut k = BytesMut::new();
        k.put_u8(b'k');
        k.put_u64(99);
        k.put_i64(0);
        k.put_u8(1);
        assert_eq!(
            ServerMessage::parse(k.freeze()).unwrap(),
            ServerMessage::Keepalive {
                wal_end: 99,
                reply_requested: true
            }
        );
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(ServerMessage::parse(Bytes::new()).is_err());
        assert!(ServerMessage::parse(Bytes::from_static(b"w\0\0")).is_err());
        assert!(ServerMessage::parse(Bytes::from_static(b"k\0")).is_err());
        assert!(ServerMessage::parse(Bytes::from_static(b"x")).is_err());
    }

    #[test]
    fn status_layout() {
        let at = UNIX_EPOCH + Duration::from_secs(946_684_800 + 1);
        let msg = status_update(0x1_0000_0002, at);
        assert_eq!(msg.len(), 34);
        assert_eq!(msg[0], b'r');
        assert_eq!(&msg[1..9], &0x1_0000_0002u64.to_be_bytes());
        assert_eq!(&msg[25..33], &1_000_000i64.to_be_bytes());
        assert_eq!(msg[33], 0);
    }
}
