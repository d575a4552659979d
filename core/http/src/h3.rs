//! HTTP/3 over QUIC (quinn + h3): the same [`Handler`] as on TCP.
//!
//! Each request's body is read here, up to `max_body` bytes plus one (so the
//! handler's own limit answers `413` the same way as on TCP), then handed to
//! the handler as a complete body. UDP socket buffers are raised before the
//! endpoint starts: quinn does not, and the kernel default drops datagrams
//! under load (`tally_*_udp_rcvbuf_errors` exposes the kernel's count).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use quinn::crypto::rustls::QuicServerConfig;
use tokio::sync::watch;

use crate::serve::{Handler, Peer, Transport, DRAIN};
use crate::RequestBody;

pub const ALPN: &[u8] = b"h3";
/// Receive and send buffer asked of the kernel for the QUIC socket.
pub const UDP_BUFFER_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    #[error("binding UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("QUIC TLS configuration: {0}")]
    Tls(String),
}

/// A QUIC endpoint for HTTP/3 with raised socket buffers.
pub fn bind(addr: SocketAddr, tls: Arc<rustls::ServerConfig>, max_streams: u32) -> Result<quinn::Endpoint, H3Error> {
    let bind_err = |source| H3Error::Bind { addr, source };
    let quic = QuicServerConfig::try_from(tls).map_err(|e| H3Error::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(max_streams.into());
    server.transport_config(Arc::new(transport));
    let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
    let state = quinn::udp::UdpSocketState::new((&socket).into()).map_err(bind_err)?;
    // Best effort: the kernel caps them at net.core.{r,w}mem_max.
    let _ = state.set_recv_buffer_size((&socket).into(), UDP_BUFFER_BYTES);
    let _ = state.set_send_buffer_size((&socket).into(), UDP_BUFFER_BYTES);
    let runtime = Arc::new(quinn::TokioRuntime);
    quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, runtime).map_err(bind_err)
}

/// Serves `handler` over HTTP/3 until `shutdown` turns true.
pub async fn serve<H: Handler>(endpoint: quinn::Endpoint, handler: Arc<H>, max_body: usize, mut shutdown: watch::Receiver<bool>) {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
            _ = crate::serve::stopped(&mut shutdown) => break,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => return tracing::debug!(error = %e, "QUIC handshake failed"),
            };
            let addr = conn.remote_address();
            let mut h3 = match h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await {
                Ok(h3) => h3,
                Err(e) => return tracing::debug!(%addr, error = %e, "HTTP/3 setup failed"),
            };
            loop {
                match h3.accept().await {
                    Ok(Some(resolver)) => {
                        let handler = handler.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_request(resolver, handler, addr, max_body).await {
                                // Clients that go away mid-request land here.
                                tracing::debug!(%addr, error = %e, "HTTP/3 request failed");
                            }
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "HTTP/3 connection closed");
                        break;
                    }
                }
            }
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
    let _ = tokio::time::timeout(DRAIN, endpoint.wait_idle()).await;
}

async fn serve_request<H: Handler>(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    handler: Arc<H>,
    addr: SocketAddr,
    max_body: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (req, mut stream) = resolver.resolve_request().await?;
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        // Past the limit the rest is dropped: the handler sees a body one
        // byte too long and answers 413.
        let room = (max_body + 1).saturating_sub(body.len());
        let take = chunk.remaining().min(room);
        body.extend_from_slice(&chunk.copy_to_bytes(take));
        chunk.advance(chunk.remaining());
    }
    let req = req.map(|()| -> RequestBody { Full::new(body.freeze()).map_err(|never| match never {}).boxed() });
    let resp = handler.handle(req, Peer { addr, transport: Transport::H3 }).await;
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
