//! HTTP/3 over QUIC (quinn + h3): the same [`Handler`] as on TCP.
//!
//! Each request's body is read here, up to `max_body` bytes plus one (so the
//! handler's own limit answers `413` the same way as on TCP), then handed to
//! the handler as a complete body. Before that, the handler sees the head
//! ([`Handler::authorize`]): a request without a valid key is answered
//! without its body ever being received. The bounds of [`crate::limits`]
//! apply as on TCP: connection slots (global and per address) before the
//! handshake, a handshake timeout, the QUIC idle timeout and a stream cap,
//! a connection with no request for `keep_alive_timeout` is closed, a head
//! within `header_read_timeout`, a body that keeps moving and a request
//! complete within `request_timeout`, and bodies charged to the process's
//! budget while they arrive. UDP socket buffers are raised before the
//! endpoint starts: quinn does not, and the kernel default drops datagrams
//! under load (`tally_*_udp_rcvbuf_errors` exposes the kernel's count).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use quinn::crypto::rustls::QuicServerConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};

use crate::limits::{BodyCharge, Gate, ServerLimits};
use crate::reply::{BodyBytes, BodyError};
use crate::serve::{BodyTimeout, Handler, Peer, Transport, DRAIN};

pub const ALPN: &[u8] = b"h3";
/// Receive and send buffer asked of the kernel for the QUIC socket.
pub const UDP_BUFFER_BYTES: usize = 8 << 20;
/// Bytes a client may have in flight to us on one connection, all streams
/// together: what quinn buffers for a connection whose streams we have not
/// read yet.
const CONNECTION_RECEIVE_WINDOW: u32 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    #[error("binding UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("QUIC TLS configuration: {0}")]
    Tls(String),
}

/// A QUIC endpoint for HTTP/3 with raised socket buffers.
pub fn bind(addr: SocketAddr, tls: Arc<rustls::ServerConfig>, limits: &ServerLimits) -> Result<quinn::Endpoint, H3Error> {
    let bind_err = |source| H3Error::Bind { addr, source };
    let quic = QuicServerConfig::try_from(tls).map_err(|e| H3Error::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(limits.max_streams_per_connection.into());
    transport.receive_window(CONNECTION_RECEIVE_WINDOW.into());
    // Silent peers go after this; live but idle ones after keep_alive_timeout (see `serve`).
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(limits.keep_alive_timeout).ok());
    server.transport_config(Arc::new(transport));
    let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
    let state = quinn::udp::UdpSocketState::new((&socket).into()).map_err(bind_err)?;
    // Best effort: the kernel caps them at net.core.{r,w}mem_max.
    let _ = state.set_recv_buffer_size((&socket).into(), UDP_BUFFER_BYTES);
    let _ = state.set_send_buffer_size((&socket).into(), UDP_BUFFER_BYTES);
    let runtime = Arc::new(quinn::TokioRuntime);
    quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, runtime).map_err(bind_err)
}

/// Serves `handler` over HTTP/3 under `gate` until `shutdown` turns true.
pub async fn serve<H: Handler>(endpoint: quinn::Endpoint, handler: Arc<H>, max_body: usize, gate: Arc<Gate>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
            _ = crate::serve::stopped(&mut shutdown) => break,
        };
        // Refused before the handshake: a client over a cap costs one packet.
        let Some(slot) = gate.admit(incoming.remote_address().ip(), Transport::H3.as_str()) else {
            incoming.refuse();
            continue;
        };
        let (handler, gate) = (handler.clone(), gate.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let conn = match timeout(gate.limits.tls_handshake_timeout, incoming).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return tracing::debug!(error = %e, "QUIC handshake failed"),
                Err(_) => return tracing::debug!("QUIC handshake did not finish in time"),
            };
            serve_connection(conn, handler, max_body, gate).await;
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
    let _ = timeout(DRAIN, endpoint.wait_idle()).await;
}

async fn serve_connection<H: Handler>(conn: quinn::Connection, handler: Arc<H>, max_body: usize, gate: Arc<Gate>) {
    let addr = conn.remote_address();
    let mut h3 = match h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await {
        Ok(h3) => h3,
        Err(e) => return tracing::debug!(%addr, error = %e, "HTTP/3 setup failed"),
    };
    let mut requests = JoinSet::new();
    loop {
        // QUIC keep-alives hold a connection open forever; requests must too.
        let accepted = match timeout(gate.limits.keep_alive_timeout, h3.accept()).await {
            Ok(accepted) => accepted,
            Err(_) if requests.is_empty() => {
                tracing::debug!(%addr, "HTTP/3 connection idle; closed");
                break;
            }
            Err(_) => continue,
        };
        while requests.try_join_next().is_some() {}
        match accepted {
            Ok(Some(resolver)) => {
                let (handler, gate) = (handler.clone(), gate.clone());
                // Boxed: the request's future (handler included) is several
                // KB; unboxed, the task moves it on spawn and again on finish.
                let request = Box::pin(async move {
                    if let Err(e) = serve_request(resolver, handler, addr, max_body, &gate).await {
                        // Clients that go away mid-request land here.
                        tracing::debug!(%addr, error = %e, "HTTP/3 request failed");
                    }
                });
                requests.spawn(request);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "HTTP/3 connection closed");
                break;
            }
        }
    }
}

type Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn serve_request<H: Handler>(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    handler: Arc<H>,
    addr: SocketAddr,
    max_body: usize,
    gate: &Gate,
) -> Result<(), BoxError> {
    let limits = &gate.limits;
    let deadline = Instant::now() + limits.request_timeout;
    let (req, mut stream) = timeout(limits.header_read_timeout, resolver.resolve_request()).await.map_err(|_| "no request head in time")??;
    let (mut head, ()) = req.into_parts();
    let peer = Peer { addr, transport: Transport::H3, client_cert: None };
    if let Some(resp) = handler.authorize(&head, peer) {
        // The body is refused unread: the client stops sending at once.
        stream.stop_sending(h3::error::Code::H3_NO_ERROR);
        return respond(stream, resp).await;
    }
    let mut charge = BodyCharge::default();
    let declared = head.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let body = match read_body(&mut stream, max_body, declared, gate, &mut charge, deadline).await {
        Ok(body) => body,
        Err(e) => {
            stream.stop_sending(h3::error::Code::H3_REQUEST_REJECTED);
            return respond(stream, e.into_response()).await;
        }
    };
    // The handler reads (and charges) its own copy; this one is no longer held for the client.
    drop(charge);
    head.extensions.insert(gate.body_budget());
    let req = http::Request::from_parts(head, Full::new(body).map_err(|never| match never {}).boxed());
    let resp = handler.handle(req, peer).await;
    respond(stream, resp).await
}

/// The request body, up to `max_body` bytes plus one (past the limit the
/// rest is dropped: the handler sees a body one byte too long and answers
/// 413), charged to the process's budget. `declared`: its Content-Length.
async fn read_body(
    stream: &mut Stream,
    max_body: usize,
    declared: Option<usize>,
    gate: &Gate,
    charge: &mut BodyCharge,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    let limits = &gate.limits;
    let budget = gate.body_budget();
    let mut body = BodyBytes::expecting(declared.map(|n| n.min(max_body + 1)));
    loop {
        let chunk = match timeout_at(deadline, timeout(limits.body_timeout, stream.recv_data())).await {
            Err(_) => return Err(BodyError::Timeout(BodyTimeout::Deadline(limits.request_timeout))),
            Ok(Err(_)) => return Err(BodyError::Timeout(BodyTimeout::Idle(limits.body_timeout))),
            Ok(Ok(chunk)) => chunk.map_err(|e| BodyError::Read(e.to_string()))?,
        };
        let Some(mut chunk) = chunk else { return Ok(body.freeze()) };
        let room = (max_body + 1).saturating_sub(body.len());
        let take = chunk.remaining().min(room);
        budget.charge(charge, take)?;
        body.push(chunk.copy_to_bytes(take));
        chunk.advance(chunk.remaining());
    }
}

async fn respond(mut stream: Stream, resp: crate::Response) -> Result<(), BoxError> {
    let (parts, body) = resp.into_parts();
    stream.send_response(http::Response::from_parts(parts, ())).await?;
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    if !bytes.is_empty() {
        stream.send_data(bytes).await?;
    }
    stream.finish().await?;
    Ok(())
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer
/// (all sockets of the host: `/proc/net/snmp`, `Udp: ... RcvbufErrors`).
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}
