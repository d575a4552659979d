//! Accept loops for every transport a handler is served on:
//! * TCP, cleartext or TLS, HTTP/1.1 and HTTP/2 (hyper's auto builder);
//! * QUIC, HTTP/3 (see [`crate::h3`]).
//!
//! Handlers see one request type whatever the transport, so routes and
//! semantics are the same on all of them. Every connection is served under
//! the process's [`Gate`] (see [`crate::limits`] for what each bound is
//! for): it needs a connection slot before any work is spawned, heads must
//! arrive within `header_read_timeout`, bodies keep moving and end by
//! `request_timeout`, and a connection with no request in flight for
//! `keep_alive_timeout` is closed. Shutdown is graceful: listeners close,
//! in-flight requests get `DRAIN` to finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::limits::{Gate, ServerLimits};
use crate::pinned::Fingerprint;
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
    /// The client certificate a TLS client presented and the server's
    /// verifier accepted (edges present their pinned key, see `pinned`).
    pub client_cert: Option<Fingerprint>,
}

/// Handles requests: implemented by the edge's ingest and the core's API.
pub trait Handler: Send + Sync + 'static {
    fn handle(self: Arc<Self>, req: http::Request<RequestBody>, peer: Peer) -> impl Future<Output = Response> + Send;

    /// An answer from the request's head alone (e.g. `401` for a missing
    /// key), given before its body is read. HTTP/3 asks first, so an
    /// unauthenticated client's body is never received; on TCP handlers
    /// check the same things before they read.
    fn authorize(&self, _head: &http::request::Parts, _peer: Peer) -> Option<Response> {
        None
    }
}

/// The body stalled or ran past its request's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    #[error("the request body sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the request was not complete within {0:?}")]
    Deadline(Duration),
}

/// Serves `handler` on `listener` (TLS if `tls` is given) under `gate`
/// until `shutdown` turns true, then drains.
pub async fn serve<H: Handler>(listener: TcpListener, tls: Option<TlsAcceptor>, handler: Arc<H>, gate: Arc<Gate>, mut shutdown: watch::Receiver<bool>) {
    let builder = Arc::new(builder(&gate.limits));
    let transport = if tls.is_some() { Transport::Tls } else { Transport::Tcp };
    let mut conns = JoinSet::new();
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
        while conns.try_join_next().is_some() {}
        // Over a cap, the connection is closed here: no task, no buffers.
        let Some(slot) = gate.admit(addr.ip(), transport.as_str()) else { continue };
        let _ = stream.set_nodelay(true);
        let peer = Peer { addr, transport, client_cert: None };
        let (handler, builder, gate, tls, shutdown) = (handler.clone(), builder.clone(), gate.clone(), tls.clone(), shutdown.clone());
        conns.spawn(async move {
            let _slot = slot;
            let limits = &gate.limits;
            match tls {
                None => serve_connection(&builder, stream, handler, peer, gate.clone(), shutdown).await,
                Some(acceptor) => match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let client_cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(Fingerprint::of);
                        serve_connection(&builder, stream, handler, Peer { client_cert, ..peer }, gate.clone(), shutdown).await
                    }
                    Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%addr, "TLS handshake did not finish in time"),
                },
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}

fn builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection)
        // Dead peers are found by pings; idle live ones by the watchdog below.
        .keep_alive_interval(limits.keep_alive_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    builder
}

async fn serve_connection<H, I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    handler: Arc<H>,
    peer: Peer,
    gate: Arc<Gate>,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Handler,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let (activity, gate) = (activity.clone(), gate.clone());
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (handler, busy) = (handler.clone(), activity.start());
            let (parts, body) = req.into_parts();
            let body = Timed::new(body, gate.limits.body_timeout, gate.limits.request_timeout);
            let mut req = http::Request::from_parts(parts, body.boxed());
            req.extensions_mut().insert(gate.body_budget());
            // Boxed: hyper moves the service future around (HTTP/2 spawns
            // it as a task); a pointer is cheaper to move than the handler's
            // several-KB state.
            Box::pin(async move {
                let resp = handler.handle(req, peer).await;
                drop(busy);
                Ok::<_, Infallible>(resp)
            })
        })
    };
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let limits = &gate.limits;
    let grace = tokio::select! {
        ended = conn.as_mut() => return log_end(peer, ended),
        _ = activity.idle_for(limits.keep_alive_timeout) => limits.request_timeout,
        _ = stopped(&mut shutdown) => DRAIN,
    };
    // HTTP/1.1 closes at once when idle; HTTP/2 says GOAWAY and finishes
    // its streams. Whatever is still open after `grace` is dropped.
    conn.as_mut().graceful_shutdown();
    match tokio::time::timeout(grace, conn).await {
        Ok(ended) => log_end(peer, ended),
        Err(_) => tracing::debug!(addr = %peer.addr, "connection did not close in time; dropped"),
    }
}

fn log_end(peer: Peer, ended: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = ended {
        tracing::debug!(addr = %peer.addr, error = %e, "connection ended with an error");
    }
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity { in_flight: AtomicUsize::new(0), idle_since: Mutex::new(Instant::now()) }
    }

    fn start(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let since = *self.idle_since.lock().expect("activity lock poisoned");
            if self.in_flight.load(Ordering::SeqCst) == 0 && since.elapsed() >= idle {
                return;
            }
            tokio::time::sleep_until((since + idle).max(Instant::now() + idle / 4)).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The timestamp first, so a watchdog that sees zero sees it too.
        *self.0.idle_since.lock().expect("activity lock poisoned") = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request body that fails with [`BodyTimeout`] when no frame arrives
/// within `idle`, or when it is not finished by `total` after the head.
struct Timed<B> {
    inner: B,
    idle: Duration,
    total: Duration,
    idle_timer: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
}

impl<B> Timed<B> {
    fn new(inner: B, idle: Duration, total: Duration) -> Timed<B> {
        let now = Instant::now();
        Timed { inner, idle, total, idle_timer: Box::pin(tokio::time::sleep_until(now + idle)), deadline: Box::pin(tokio::time::sleep_until(now + total)) }
    }
}

impl<B> Body for Timed<B>
where
    B: Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            let next = Instant::now() + this.idle;
            this.idle_timer.as_mut().reset(next);
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout::Deadline(this.total).into())));
        }
        if this.idle_timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout::Idle(this.idle).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves once `shutdown` is true (or its sender is gone). Holds no lock
/// across the await, so the future stays `Send`.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that stops sending after `frames` frames, one every `every`.
    struct Trickle {
        frames: usize,
        every: tokio::time::Interval,
    }

    impl Body for Trickle {
        type Data = bytes::Bytes;
        type Error = Infallible;

        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            if self.frames == 0 {
                return Poll::Pending;
            }
            std::task::ready!(self.every.poll_tick(cx));
            self.frames -= 1;
            Poll::Ready(Some(Ok(Frame::data(bytes::Bytes::from_static(b"x")))))
        }
    }

    async fn outcome(frames: usize, every_ms: u64, idle_ms: u64, total_ms: u64) -> BodyTimeout {
        let trickle = Trickle { frames, every: tokio::time::interval(Duration::from_millis(every_ms)) };
        let mut body = Timed::new(trickle, Duration::from_millis(idle_ms), Duration::from_millis(total_ms));
        loop {
            match body.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return *e.downcast::<BodyTimeout>().expect("a timeout"),
                None => panic!("the body never ends"),
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_stops_fails_after_the_idle_timeout() {
        assert_eq!(outcome(3, 10, 200, 60_000).await, BodyTimeout::Idle(Duration::from_millis(200)));
    }

    #[tokio::test]
    async fn a_body_that_trickles_fails_at_the_deadline() {
        assert_eq!(outcome(usize::MAX, 10, 5_000, 300).await, BodyTimeout::Deadline(Duration::from_millis(300)));
    }
}
