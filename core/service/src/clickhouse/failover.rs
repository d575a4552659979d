//! One ClickHouse client over several servers: every connection goes to a
//! server that accepts it, moving on when one refuses or cannot be reached.
//!
//! In cluster mode any server answers every query (the `Distributed` tables
//! and sequential-consistency reads make them equivalent), so the core's
//! commits, probes, ledger reads and API queries need a server, not a
//! particular one. The choice lives in the connector: a request whose
//! connection cannot be made has sent nothing, so trying the next server is
//! safe for an INSERT too. A request that fails on an open connection (the
//! server died mid-query) fails as before (a group is answered `Retry` and the
//! ledger protocol resumes it, never an in-place retry); its connection is
//! gone, so the next request connects again and meets the failover.
//!
//! Policy ([`Selector`], sans-IO): stay on the server that last accepted (no
//! flapping back when a failed one returns); on failure try the others in
//! ring order, those that failed within [`RETRY_AFTER`] last (still tried,
//! so a cluster that is all down is found up again at once). Each move is
//! logged. A server that accepts connections and then answers nothing is
//! caught by the deadline of a bounded client ([`super::deadline`]: the
//! API's query deadline, the committer's `commit_timeout_ms`): a connection
//! that fails for silence ([`Watched`]) marks its server failed as a refused
//! connection would, and moves the client off it if it was the current one
//! ([`Selector::stalled`]), so the next request goes elsewhere. What an INSERT
//! cut off that way may still do is `super::stalled`'s concern.
//!
//! The client's URL stays the first server's: hyper pools connections by it
//! and ClickHouse ignores the `Host` header, so only the connector knows which
//! server a connection reaches.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};

/// How long a server that failed is tried only after the others.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Bound on one connection attempt, so a dead host (no refusal) costs this,
/// not the system's minutes, before the next server is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which server to connect to next.
#[derive(Debug)]
pub struct Selector {
    current: usize,
    failed_at: Vec<Option<Instant>>,
}

impl Selector {
    pub fn new(servers: usize) -> Selector {
        assert!(servers > 0, "a client needs a server");
        Selector { current: 0, failed_at: vec![None; servers] }
    }

    pub fn current(&self) -> usize {
        self.current
    }

    /// The servers to try, in order, each once: the current one, then the
    /// others in ring order, those that failed within [`RETRY_AFTER`] last.
    pub fn order(&self, now: Instant) -> Vec<usize> {
        let n = self.failed_at.len();
        let recent = |i: usize| self.failed_at[i].is_some_and(|at| now.duration_since(at) < RETRY_AFTER);
        let others: Vec<usize> = (1..n).map(|k| (self.current + k) % n).collect();
        let mut order = vec![self.current];
        order.extend(others.iter().copied().filter(|&i| !recent(i)));
        order.extend(others.iter().copied().filter(|&i| recent(i)));
        order
    }

    /// Server `i` accepted a connection: it is the current one from now on.
    /// Returns the previous one if this is a move.
    pub fn connected(&mut self, i: usize) -> Option<usize> {
        self.failed_at[i] = None;
        let previous = std::mem::replace(&mut self.current, i);
        (previous != i).then_some(previous)
    }

    pub fn failed(&mut self, i: usize, now: Instant) {
        self.failed_at[i] = Some(now);
    }

    /// A connection to server `i` went silent past its deadline: `i` failed,
    /// and if it is the current server the next one in order (any other
    /// server, even one that failed recently) becomes current. Returns the
    /// move, if any.
    pub fn stalled(&mut self, i: usize, now: Instant) -> Option<(usize, usize)> {
        self.failed(i, now);
        if self.current != i {
            return None;
        }
        let next = self.order(now).into_iter().find(|&j| j != i)?;
        self.current = next;
        Some((i, next))
    }
}

/// A connector that reaches whichever of `servers` the [`Selector`] picks.
#[derive(Clone)]
pub struct Failover<C> {
    inner: C,
    servers: Arc<[Uri]>,
    /// As configured, for the log.
    urls: Arc<[String]>,
    selector: Arc<Mutex<Selector>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{url} is not a ClickHouse HTTP URL: {source}")]
pub struct BadUrl {
    url: String,
    source: hyper::http::uri::InvalidUri,
}

impl<C> Failover<C> {
    pub fn new(inner: C, urls: &[String]) -> Result<Failover<C>, BadUrl> {
        let servers: Vec<Uri> = urls.iter().map(|url| url.parse::<Uri>().map_err(|source| BadUrl { url: url.clone(), source })).collect::<Result<_, _>>()?;
        Ok(Failover { inner, servers: servers.into(), urls: urls.into(), selector: Arc::new(Mutex::new(Selector::new(urls.len()))) })
    }
}

impl<C> tower_service::Service<Uri> for Failover<C>
where
    C: tower_service::Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Response: Send,
    C::Error: std::fmt::Display + Send,
{
    type Response = Watched<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Watched<C::Response>, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _logical: Uri) -> Self::Future {
        let (mut inner, servers, urls, selector) = (self.inner.clone(), self.servers.clone(), self.urls.clone(), self.selector.clone());
        Box::pin(async move {
            let order = selector.lock().expect("selector lock").order(Instant::now());
            let mut last = None;
            for i in order {
                match inner.call(servers[i].clone()).await {
                    Ok(connection) => {
                        if let Some(from) = selector.lock().expect("selector lock").connected(i) {
                            tracing::warn!(from = %urls[from], to = %urls[i], "ClickHouse server unreachable: the core now uses another server");
                        }
                        return Ok(Watched { inner: connection, server: i, urls, selector });
                    }
                    Err(e) => {
                        if servers.len() > 1 {
                            tracing::warn!(server = %urls[i], error = %e, "cannot connect to a ClickHouse server: trying the next one");
                        }
                        selector.lock().expect("selector lock").failed(i, Instant::now());
                        last = Some(e);
                    }
                }
            }
            Err(last.expect("at least one server was tried"))
        })
    }
}

/// A connection to server `server` that reports the server [`Selector::stalled`]
/// when a read or write fails for silence (`io::ErrorKind::TimedOut`, what
/// [`super::deadline::Quiet`] fails with).
pub struct Watched<S> {
    inner: S,
    server: usize,
    urls: Arc<[String]>,
    selector: Arc<Mutex<Selector>>,
}

impl<S> Watched<S> {
    fn watch<T>(&self, progress: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(e)) = &progress {
            if e.kind() == std::io::ErrorKind::TimedOut {
                let moved = self.selector.lock().expect("selector lock").stalled(self.server, Instant::now());
                match moved {
                    Some((from, to)) => {
                        tracing::warn!(from = %self.urls[from], to = %self.urls[to], "ClickHouse server answers nothing within the deadline: the core now uses another server")
                    }
                    None => tracing::warn!(server = %self.urls[self.server], "ClickHouse server answers nothing within the deadline"),
                }
            }
        }
        progress
    }
}

impl<S: Read + Unpin> Read for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.watch(progress)
    }
}

impl<S: Write + Unpin> Write for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(progress)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(progress)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for Watched<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

/// The plain connector every client starts from (as the `clickhouse`
/// crate's own, plus [`CONNECT_TIMEOUT`]).
pub fn http_connector(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http
}

/// A ClickHouse client over `urls` (the first is its URL) through `inner`.
pub fn client<C>(inner: C, urls: &[String]) -> Result<clickhouse::Client, BadUrl>
where
    C: tower_service::Service<Uri> + Clone + Send + Sync + 'static,
    Failover<C>: hyper_util::client::legacy::connect::Connect,
{
    let connector = Failover::new(inner, urls)?;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        // Below ClickHouse's own keep-alive timeout (3 s), as the crate's default client.
        .pool_idle_timeout(Duration::from_secs(2))
        .build(connector);
    Ok(clickhouse::Client::with_http_client(http).with_url(&urls[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_on_the_server_that_answers_and_tries_every_other_once() {
        let t = Instant::now();
        let s = Selector::new(4);
        assert_eq!(s.order(t), [0, 1, 2, 3]);
        let mut s = s;
        s.failed(0, t);
        assert_eq!(s.order(t), [0, 1, 2, 3], "the current server is tried first until another accepts");
        assert_eq!(s.connected(1), Some(0));
        assert_eq!(s.order(t), [1, 2, 3, 0], "a server that just failed comes last");
        assert_eq!(s.order(t + RETRY_AFTER), [1, 2, 3, 0]);
        assert_eq!(s.connected(1), None, "no move, nothing to log");
    }

    #[test]
    fn recently_failed_servers_are_tried_after_the_others_until_retry_after() {
        let t = Instant::now();
        let mut s = Selector::new(4);
        s.connected(2);
        s.failed(3, t);
        s.failed(0, t + Duration::from_secs(1));
        assert_eq!(s.order(t + Duration::from_secs(2)), [2, 1, 3, 0]);
        assert_eq!(s.order(t + RETRY_AFTER), [2, 3, 1, 0], "server 3's failure is old enough");
        assert_eq!(s.order(t + RETRY_AFTER * 2), [2, 3, 0, 1]);
        s.connected(0);
        assert_eq!(s.order(t + Duration::from_secs(2)), [0, 1, 2, 3], "a server that accepts is no longer failed");
    }

    #[test]
    fn a_silent_server_is_left_for_the_next_and_only_the_current_one_moves_the_client() {
        let t = Instant::now();
        let mut s = Selector::new(3);
        assert_eq!(s.stalled(0, t), Some((0, 1)));
        assert_eq!(s.order(t), [1, 2, 0], "the silent server is tried last");
        assert_eq!(s.stalled(0, t), None, "a late stall of a pooled connection to it moves nothing");
        assert_eq!(s.current(), 1, "nor does it demote the server now in use");
        s.failed(2, t);
        assert_eq!(s.stalled(1, t), Some((1, 2)), "a recently failed server is still better than a silent one");
        let mut one = Selector::new(1);
        assert_eq!(one.stalled(0, t), None, "one server: nowhere to go");
        assert_eq!(one.order(t), [0]);
    }

    #[test]
    fn one_server_is_always_tried() {
        let t = Instant::now();
        let mut s = Selector::new(1);
        s.failed(0, t);
        assert_eq!(s.order(t), [0]);
    }

    /// Property: every order is a permutation starting at the current server.
    #[test]
    fn every_order_tries_each_server_once() {
        let t = Instant::now();
        for n in 1..6 {
            for current in 0..n {
                for failed in 0..(1u32 << n) {
                    let mut s = Selector::new(n);
                    s.connected(current);
                    (0..n).filter(|i| failed & (1 << i) != 0).for_each(|i| s.failed(i, t));
                    let mut order = s.order(t);
                    assert_eq!(order[0], current);
                    order.sort();
                    assert_eq!(order, (0..n).collect::<Vec<_>>());
                }
            }
        }
    }

    #[tokio::test]
    async fn a_refused_server_is_skipped_and_the_move_sticks() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let urls = [format!("http://127.0.0.1:{dead}"), format!("http://{}", live.local_addr().unwrap())];
        let mut connector = Failover::new(http_connector(CONNECT_TIMEOUT), &urls).unwrap();
        use tower_service::Service;
        for _ in 0..2 {
            let connecting = connector.call(urls[0].parse().unwrap());
            let (connected, accepted) = tokio::join!(connecting, live.accept());
            assert!(connected.is_ok() && accepted.is_ok());
            assert_eq!(connector.selector.lock().unwrap().current(), 1);
        }
        let all_dead = Failover::new(http_connector(CONNECT_TIMEOUT), &urls[..1]).unwrap();
        assert!(all_dead.clone().call(urls[0].parse().unwrap()).await.is_err(), "no server: the connection fails");
    }
}
