//! The core's answer to one batch, sent on the batch's own QUIC stream.
//!
//! ```text
//! byte 0      status (see `Status`)
//! bytes 1..   UTF-8 reason, may be empty
//! ```
//! Only `Committed` and `Duplicate` let the edge forget the batch. `Rejected`
//! is permanent (the batch can never be committed as sent: corrupt or
//! invalid); `Retry` is transient (storage unavailable, shutting down, a
//! frame version this core does not read yet). A `Retry` whose reason
//! starts with [`NOT_OWNER`] means "not here": another core serves this
//! edge (or this one has lost its lease), so the edge moves to its next core
//! instead of waiting on this one; an older edge reads it as a plain
//! `Retry`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Committed = 0,
    /// Committed earlier; this send was a re-send.
    Duplicate = 1,
    Rejected = 2,
    Retry = 3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    pub reason: String,
}

/// How a `Retry` for an edge this core does not serve begins.
pub const NOT_OWNER: &str = "not the owner: ";

/// Longest reply accepted, so a broken peer cannot make us buffer much.
pub const MAX_REPLY_LEN: usize = 4096;

impl Reply {
    pub fn new(status: Status, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REPLY_LEN - 1 {
            let mut cut = MAX_REPLY_LEN - 1;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        Reply { status, reason }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.reason.len());
        out.push(self.status as u8);
        out.extend_from_slice(self.reason.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Reply, String> {
        let (&status, reason) = bytes.split_first().ok_or("empty reply")?;
        let status = match status {
            0 => Status::Committed,
            1 => Status::Duplicate,
            2 => Status::Rejected,
            3 => Status::Retry,
            other => return Err(format!("unknown reply status {other}")),
        };
        let reason = String::from_utf8_lossy(reason).into_owned();
        Ok(Reply { status, reason })
    }

    /// `Retry`: another core serves this edge; `reason` says which and why.
    pub fn not_owner(reason: impl std::fmt::Display) -> Reply {
        Reply::new(Status::Retry, format!("{NOT_OWNER}{reason}"))
    }

    /// The edge should try its next core.
    pub fn is_not_owner(&self) -> bool {
        self.status == Status::Retry && self.reason.starts_with(NOT_OWNER)
    }

    /// The edge may drop its copy of the batch.
    pub fn is_done(&self) -> bool {
        matches!(self.status, Status::Committed | Status::Duplicate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let r = Reply::new(Status::Rejected, "x".repeat(10_000));
        let bytes = r.encode();
        assert!(bytes.len() <= MAX_REPLY_LEN);
        assert_eq!(Reply::decode(&bytes).unwrap(), r);
        assert!(Reply::decode(&[]).is_err());
        assert!(Reply::decode(&[9]).is_err());
        assert!(Reply::new(Status::Duplicate, "").is_done());
        assert!(!Reply::new(Status::Retry, "").is_done());
        let moved = Reply::decode(&Reply::not_owner("edge e1 is served by core b").encode()).unwrap();
        assert!(moved.is_not_owner() && moved.status == Status::Retry);
        assert!(!Reply::new(Status::Retry, "ClickHouse is down").is_not_owner());
    }
}
