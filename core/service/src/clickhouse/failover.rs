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
//! logged. Not covered: a server that accepts connections and never answers
//! (the API's [`super::deadline`] bounds that; the committer waits on it).
//!
//! The client's URL stays the first server's: hyper pools connections by it
//! and ClickHouse ignores the `Host` header, so only the connector knows which
//! server a connection reaches.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;

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
    type Response = C::Response;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, C::Error>> + Send>>;

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
                        return Ok(connection);
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
