//! How much of the core one batch stream, one edge connection and all of
//! them together may hold. Before, a stream was read to its end into memory
//! (up to `max_batch_bytes` each, 1024 streams a connection), so four
//! unfinished 200 MiB streams took the core from 22 MB to 866 MB.
//!
//! Now a stream's 20-byte frame header is read first; the payload length it
//! declares is checked against `max_batch_bytes` and reserved in a budget
//! of bytes shared by all streams ([`IN_FLIGHT_BYTES`]) before a byte of it
//! is read, then exactly that many bytes are read, all within
//! [`STREAM_TIMEOUT`]. A stream waiting for room in the budget holds only
//! QUIC's per-stream window; one that waits too long is answered `Retry`.
//! Edges connect a handful of times, so connection caps are small.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};

use tally_http::limits::{Gate, ServerLimits};
use tally_model::batch::frame::{self, AlignedVec};

/// Bytes of batches being received or validated at once, all streams together.
pub const IN_FLIGHT_BYTES: usize = 512 << 20;
/// A batch stream's time from its first byte to its last, and the longest a
/// stream waits for room in the budget. 256 MiB at 50 Mbit/s fits.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent batch streams per edge connection (edges ship a few at once).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 32;
pub const MAX_CONNECTIONS: usize = 256;
pub const MAX_CONNECTIONS_PER_IP: usize = 16;
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The batch port's share of the process: connection slots and the budget.
pub struct Bounds {
    pub gate: Arc<Gate>,
    budget: Arc<Semaphore>,
    max_batch_bytes: usize,
}

/// A received frame and its reservation in the budget, held until answered.
/// The payload is read into an aligned buffer, so the archive in it is read
/// in place (`frame::open`), never copied.
pub struct Received {
    pub header: [u8; frame::HEADER_LEN],
    pub payload: AlignedVec<16>,
    pub reserved: OwnedSemaphorePermit,
}

/// Why a stream gave no frame.
pub enum Unread {
    /// Its header declares more than `max_batch_bytes`.
    TooLong(usize),
    /// The budget had no room in time: the edge should send it again later.
    Busy,
    /// The stream ended, broke or stalled: there is no one to answer.
    Broken(String),
    /// Not a frame: a bad magic, bytes past the declared end.
    Invalid(String),
    /// It ended inside its header or payload: what arrived goes to the
    /// decoder, which says what is wrong with it.
    Short(Vec<u8>),
}

impl Bounds {
    pub fn new(max_batch_bytes: usize) -> Bounds {
        let limits = ServerLimits {
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            tls_handshake_timeout: HANDSHAKE_TIMEOUT,
            ..ServerLimits::default()
        };
        // A batch as large as allowed must fit the budget, or it would wait forever.
        let budget = Arc::new(Semaphore::new(IN_FLIGHT_BYTES.max(max_batch_bytes).min(Semaphore::MAX_PERMITS)));
        Bounds { gate: Gate::new(limits), budget, max_batch_bytes }
    }

    /// Reads one frame from `recv` within the budget and [`STREAM_TIMEOUT`].
    pub async fn read_frame(&self, recv: &mut quinn::RecvStream, peer: SocketAddr) -> Result<Received, Unread> {
        let mut header = [0u8; frame::HEADER_LEN];
        let deadline = Instant::now() + STREAM_TIMEOUT;
        match timeout_at(deadline, recv.read_exact(&mut header)).await {
            Err(_) => return Err(Unread::Broken(format!("no frame header within {STREAM_TIMEOUT:?}"))),
            Ok(Err(quinn::ReadExactError::FinishedEarly(n))) => return Err(Unread::Short(header[..n].to_vec())),
            Ok(Err(quinn::ReadExactError::ReadError(e))) => return Err(Unread::Broken(e.to_string())),
            Ok(Ok(())) => {}
        }
        let total = frame::HEADER_LEN + frame::declared_len(&header).map_err(|e| Unread::Invalid(e.to_string()))?;
        if total > self.max_batch_bytes {
            return Err(Unread::TooLong(self.max_batch_bytes));
        }
        let permits = u32::try_from(total).expect("max_batch_bytes fits the budget's u32 permits");
        let reserved = match timeout(STREAM_TIMEOUT, self.budget.clone().acquire_many_owned(permits)).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => unreachable!("the budget is never closed"),
            Err(_) => {
                tracing::warn!(%peer, bytes = total, "batch waited {STREAM_TIMEOUT:?} for room among the batches in flight; asking the edge to retry");
                return Err(Unread::Busy);
            }
        };
        let deadline = Instant::now() + STREAM_TIMEOUT;
        let want = total - frame::HEADER_LEN;
        let mut payload = super::spare::buffer(want);
        // Chunks are appended as they arrive: a buffer zeroed first only to be
        // overwritten cost a pass over every batch's pages.
        let read = async {
            while payload.len() < want {
                match recv.read_chunk(want - payload.len(), true).await {
                    Ok(Some(chunk)) => payload.extend_from_slice(&chunk.bytes),
                    Ok(None) => return Err(None),
                    Err(e) => return Err(Some(e.to_string())),
                }
            }
            Ok(())
        };
        let read = timeout_at(deadline, read).await;
        match read {
            Err(_) => return Err(Unread::Broken(format!("batch of {total} bytes not received within {STREAM_TIMEOUT:?}"))),
            Ok(Err(None)) => return Err(Unread::Short([&header[..], &payload[..]].concat())),
            Ok(Err(Some(e))) => return Err(Unread::Broken(e)),
            Ok(Ok(())) => {}
        }
        // The frame must end where its header says.
        match timeout_at(deadline, recv.read_to_end(0)).await {
            Ok(Ok(_)) => Ok(Received { header, payload, reserved }),
            Ok(Err(quinn::ReadToEndError::TooLong)) => Err(Unread::Invalid(format!("the stream goes on past the {total} bytes its frame header declares"))),
            Ok(Err(e)) => Err(Unread::Broken(e.to_string())),
            Err(_) => Err(Unread::Broken(format!("batch stream not finished within {STREAM_TIMEOUT:?}"))),
        }
    }
}

/// The handshake of an incoming connection, within [`HANDSHAKE_TIMEOUT`].
pub async fn handshake(incoming: quinn::Incoming) -> Result<quinn::Connection, quinn::ConnectionError> {
    timeout(HANDSHAKE_TIMEOUT, incoming).await.unwrap_or(Err(quinn::ConnectionError::TimedOut))
}
