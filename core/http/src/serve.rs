//! Accept loops for every transport a handler is served on:
//! * TCP, cleartext or TLS, HTTP/1.1 and HTTP/2 (hyper's auto builder);
//! * QUIC, HTTP/3 (see [`crate::h3`]).
//!
//! Handlers see one request type whatever the transport, so routes and
//! semantics are the same on all of them. Shutdown is graceful: listeners
//! close, in-flight requests get `DRAIN` to finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::{RequestBody, Response};

/// How long in-flight requests get to finish after shutdown is signalled.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The transport a request came over (for metrics and `Alt-Svc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
    H3,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::H3 => "h3",
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
}

/// Handles requests: implemented by the edge's ingest and the core's API.
pub trait Handler: Send + Sync + 'static {
    fn handle(self: Arc<Self>, req: http::Request<RequestBody>, peer: Peer) -> impl Future<Output = Response> + Send;
}

/// Serves `handler` on `listener` (TLS if `tls` is given) until `shutdown`
/// turns true, then drains.
pub async fn serve<H: Handler>(listener: TcpListener, tls: Option<TlsAcceptor>, handler: Arc<H>, mut shutdown: watch::Receiver<bool>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let transport = if tls.is_some() { Transport::Tls } else { Transport::Tcp };
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer { addr, transport };
        let handler = handler.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let handler = handler.clone();
            let req = req.map(|b| b.map_err(Into::into).boxed());
            async move { Ok::<_, Infallible>(handler.handle(req, peer).await) }
        });
        match &tls {
            None => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%addr, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's task, not the accept loop.
                let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        _ => return tracing::debug!(%addr, "TLS handshake failed"),
                    };
                    let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                    if let Err(e) = conn.await {
                        tracing::debug!(%addr, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}

/// Resolves once `shutdown` is true (or its sender is gone). Holds no lock
/// across the await, so the future stays `Send`.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
