//! The QUIC endpoint edges ship batches to.
//!
//! One bidirectional stream per batch: the edge writes one frame and
//! finishes its side; the core validates it completely (header, checksum,
//! rkyv bytecheck, canonical encoding, semantic checks) before anything
//! reaches the committer, and answers on the same stream. The payload is
//! read into an aligned buffer and handed on as is: the committer reads the
//! archived batch in place (`frame::BatchArchive`). A corrupt or oversized frame costs its
//! stream a `Rejected` reply and nothing else: the connection, the other
//! streams and the process carry on. What streams and connections may hold
//! (a budget of bytes in flight, a deadline per stream, connection and
//! stream caps) is in [`bounded`].
//!
//! With edge leases (`crate::lease`), a valid batch is queued only once
//! this core holds its edge's lease (taken on the edge's first batch, after
//! fencing older owners); a batch of an edge another live core serves is
//! answered `Retry` with [`Reply::not_owner`], so the edge moves on.
//!
//! Trust boundary: the handshake requires a client certificate pinned in
//! the core's `[[edges]]` (see `tally_http::pinned`), so an unenrolled
//! process never gets a byte read. The key's edge name is the only `edge`
//! its batches may carry, and every tenant in them must be in the core's
//! tenants file (as last reloaded); anything else is `Rejected` before the
//! committer sees it. A retired edge's batches are answered `Retry` with the
//! reason (see `crate::edges`): kept on the edge, never lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use tokio::sync::{mpsc, oneshot, watch};

use tally_model::batch::frame::{self, FrameError};
use tally_model::batch::ArchivedBatch;
use tally_model::reply::{Reply, Status};
use tally_model::tenant::LiveTenants;
use tally_model::timestamp::now_ms;

use crate::commit::committer::Job;
use crate::edges::Roster;
use crate::lease::zk::{Keeper, Refusal};
use crate::metrics::Metrics;
use bounded::{Bounds, Received, Unread};
use tally_http::pinned::{self, PinnedClients};
use tally_http::tls::Identity;

mod bounded;
pub(crate) mod spare;

pub const ALPN: &[u8] = b"tally-batch/1";
/// Silence after which an edge's connection is dead. QUIC uses the smaller
/// of both sides' idle timeouts, and edges ask for the same (with
/// keep-alives a few times as often), so a killed peer is noticed within
/// about a second, not after QUIC's default 30 s.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// How far ahead of the core's clock a batch's low watermark may be: the
/// edges' default `max_future` (a click may be that far ahead, so may the
/// watermark), beyond which the batch is refused.
pub const WATERMARK_MAX_AHEAD_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("binding QUIC endpoint on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// What the receiver checks batches against beyond the edge's key.
pub struct Known {
    pub tenants: Arc<LiveTenants>,
    pub edges: Arc<Roster>,
}

pub struct Receiver {
    endpoint: quinn::Endpoint,
    /// The enrolled edges: a connection is served only with a pinned key,
    /// and ships batches only under the edge id its key is pinned for.
    edges: Arc<PinnedClients>,
    known: Known,
    /// Connection slots and the budget of batch bytes in flight.
    bounds: Bounds,
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    leases: Option<Arc<Keeper>>,
}

impl Receiver {
    pub fn bind(
        addr: SocketAddr,
        identity: &Identity,
        edges: Arc<PinnedClients>,
        known: Known,
        max_batch_bytes: usize,
        jobs: mpsc::Sender<Job>,
        metrics: Arc<Metrics>,
    ) -> Result<Receiver, ReceiverError> {
        let tls = pinned::server_config(identity, &[ALPN], edges.clone(), true).map_err(|e| ReceiverError::Tls(e.to_string()))?;
        let quic = QuicServerConfig::try_from(tls).map_err(|e| ReceiverError::Tls(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_bidi_streams(bounded::MAX_STREAMS_PER_CONNECTION.into());
        transport.max_idle_timeout(Some(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("a second fits a QUIC varint")));
        server.transport_config(Arc::new(transport));
        let endpoint = quinn::Endpoint::server(server, addr).map_err(|source| ReceiverError::Bind { addr, source })?;
        Ok(Receiver { endpoint, edges, known, bounds: Bounds::new(max_batch_bytes), jobs, metrics, leases: None })
    }

    /// Commits only edges whose lease this core holds.
    pub fn with_leases(mut self, keeper: Arc<Keeper>) -> Receiver {
        self.leases = Some(keeper);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        loop {
            let incoming = tokio::select! {
                incoming = this.endpoint.accept() => match incoming {
                    Some(incoming) => incoming,
                    None => break,
                },
                _ = tally_http::serve::stopped(&mut shutdown) => break,
            };
            // Refused before the handshake: a peer over a cap costs one packet.
            let Some(slot) = this.bounds.gate.admit(incoming.remote_address().ip(), "batch") else {
                incoming.refuse();
                continue;
            };
            let this = this.clone();
            tokio::spawn(async move {
                let _slot = slot;
                match bounded::handshake(incoming).await {
                    Ok(conn) => this.serve_connection(conn).await,
                    // Mostly a client without an enrolled key (the verifier logs its fingerprint).
                    Err(e) => {
                        this.metrics.connections_unauthenticated.inc();
                        tracing::warn!(error = %e, "batch connection refused in the handshake");
                    }
                }
            });
        }
        this.endpoint.close(0u32.into(), b"core shutting down");
        this.endpoint.wait_idle().await;
    }

    async fn serve_connection(self: Arc<Self>, conn: quinn::Connection) {
        let peer = conn.remote_address();
        // The handshake only succeeds with a pinned key, so this is that key's edge.
        let Some(edge) = self.edges.name_of_quic_peer(&conn).map(str::to_owned) else {
            self.metrics.connections_unauthenticated.inc();
            tracing::warn!(%peer, "a connection without an enrolled edge key; closed");
            return conn.close(1u32.into(), b"not an enrolled edge");
        };
        let edge: Arc<str> = edge.into();
        let _connected = self.known.edges.connect(&edge);
        tracing::info!(%peer, %edge, "edge connected");
        loop {
            match conn.accept_bi().await {
                Ok((send, recv)) => {
                    let (this, edge) = (self.clone(), edge.clone());
                    tokio::spawn(async move { this.serve_stream(send, recv, peer, &edge).await });
                }
                Err(e) => {
                    tracing::info!(%peer, reason = %e, "edge connection closed");
                    return;
                }
            }
        }
    }

    async fn serve_stream(&self, mut send: quinn::SendStream, mut recv: quinn::RecvStream, peer: SocketAddr, edge: &str) {
        self.metrics.batches_received.inc();
        let reply = match self.bounds.read_frame(&mut recv, peer).await {
            Err(Unread::TooLong(max)) => self.reject(peer, format!("batch larger than {max} bytes")),
            Err(Unread::Invalid(reason)) => self.reject(peer, reason),
            Err(Unread::Short(bytes)) => self.reject(peer, frame::decode(&bytes).err().map_or_else(|| "batch stream ended early".into(), |e| e.to_string())),
            Err(Unread::Busy) => Reply::new(Status::Retry, "the core is receiving as many batches as it can hold; send this one again later"),
            Err(Unread::Broken(reason)) => {
                tracing::debug!(%peer, %reason, "batch stream broke before its end");
                return;
            }
            Ok(Received { header, payload, reserved: _reserved }) => match frame::open(&header, payload) {
                // Another Tally version's batch is not damaged: the edge keeps
                // it (and backs off) until a core that reads it is up.
                Err(e @ FrameError::Version(_)) => {
                    self.metrics.batches_unreadable_version.inc();
                    tracing::warn!(%peer, reason = %e, "a batch in another frame version; asking the edge to keep it");
                    Reply::new(Status::Retry, format!("{e}; this core reads version {}", frame::VERSION))
                }
                Err(e) => self.reject(peer, e.to_string()),
                // A watermark ahead of the clock would make hours final that edges still fill.
                Ok(archive) if archive.batch().low_watermark_ms.to_native() > now_ms().saturating_add(WATERMARK_MAX_AHEAD_MS) => self.reject(
                    peer,
                    format!(
                        "low watermark {} ms is more than {} s ahead of the core's clock ({} ms); it would make hours final too early",
                        archive.batch().low_watermark_ms,
                        WATERMARK_MAX_AHEAD_MS / 1000,
                        now_ms()
                    ),
                ),
                Ok(archive) if archive.batch().edge.as_str() != edge || archive.batch().tenants.iter().any(|t| !self.knows_tenant(t.tenant.as_str())) => {
                    self.refuse_identity(peer, edge, archive.batch())
                }
                Ok(archive) if self.known.edges.is_retired(edge) => {
                    self.metrics.batches_refused_retired.inc();
                    let seq = archive.batch().seq.to_native();
                    tracing::warn!(%peer, %edge, seq, "a batch from a retired edge; asking it to keep it (`tally edge reinstate` lets it commit)");
                    Reply::new(
                        Status::Retry,
                        format!("edge {edge:?} is retired: this core commits nothing of it; stop it, or reinstate it (`tally edge reinstate {edge}`) so its batches commit"),
                    )
                }
                Ok(archive) => match self.lease(edge).await {
                    Err(reply) => reply,
                    Ok(epoch) => {
                        let (tx, rx) = oneshot::channel();
                        let checksum = frame::checksum(&header).unwrap_or(0);
                        let job = Job { batch: archive, checksum, reply: tx, epoch };
                        match self.jobs.send(job).await {
                            Ok(()) => rx.await.unwrap_or_else(|_| Reply::new(Status::Retry, "core is shutting down")),
                            Err(_) => Reply::new(Status::Retry, "core is shutting down"),
                        }
                    }
                },
            },
        };
        if send.write_all(&reply.encode()).await.is_ok() {
            let _ = send.finish();
            // Let the reply reach the peer before the stream is dropped.
            let _ = send.stopped().await;
        }
    }

    /// The epoch of `edge`'s lease, taken if it is free; without leases,
    /// `None`. A refusal is the reply.
    async fn lease(&self, edge: &str) -> Result<Option<i64>, Reply> {
        let Some(keeper) = &self.leases else { return Ok(None) };
        match keeper.ensure(edge).await {
            Ok(epoch) => Ok(Some(epoch)),
            Err(refusal @ (Refusal::Owner { .. } | Refusal::NoSession)) => {
                tracing::debug!(%edge, reason = %refusal, "batch of an edge this core does not serve; the edge is sent on");
                Err(Reply::not_owner(refusal))
            }
            Err(refusal) => {
                tracing::warn!(%edge, reason = %refusal, "cannot take the edge's lease; batch answered Retry");
                Err(Reply::new(Status::Retry, refusal.to_string()))
            }
        }
    }

    /// A batch its connection may not submit: another edge's id, or a tenant
    /// the core does not know. Refused before any byte is committed.
    fn refuse_identity(&self, peer: SocketAddr, edge: &str, batch: &ArchivedBatch) -> Reply {
        self.metrics.batches_refused_identity.inc();
        let reason = match batch.tenants.iter().find(|t| !self.knows_tenant(t.tenant.as_str())) {
            _ if batch.edge.as_str() != edge => format!("batch claims edge {:?}, but this connection is authenticated as edge {edge:?}", batch.edge),
            Some(t) => format!("batch carries tenant {:?}, which is not in this core's tenants file", t.tenant),
            None => unreachable!("called only for a batch that fails one of the two checks"),
        };
        tracing::error!(%peer, %edge, seq = batch.seq.to_native(), %reason, "refused a batch its connection may not submit");
        Reply::new(Status::Rejected, reason)
    }

    fn knows_tenant(&self, tenant: &str) -> bool {
        self.known.tenants.current().get(tenant).is_some()
    }

    fn reject(&self, peer: SocketAddr, reason: String) -> Reply {
        self.metrics.batches_rejected.inc();
        tracing::warn!(%peer, %reason, "rejected a batch");
        Reply::new(Status::Rejected, reason)
    }
}
