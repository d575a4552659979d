//! Query deadlines for the API's and the committer's ClickHouse clients.
//!
//! A hung ClickHouse (stopped, swapping, a dead host behind a live TCP
//! stack) accepts connections and then says nothing, so without a deadline
//! every dashboard query hangs with it. Two bounds together:
//!
//! * `max_execution_time` is sent with every query, so a slow query is
//!   stopped by the server itself (it answers `TIMEOUT_EXCEEDED`);
//! * the connection gives up when ClickHouse sends (or takes) nothing for the
//!   deadline ([`Quiet`]), and connecting has the same bound: this is what
//!   answers when the server cannot even say it is late.
//!
//! ClickHouse's HTTP interface sends nothing until a query's result is ready,
//! so "silent for the deadline" is "not answered within the deadline". The
//! `clickhouse` crate only takes a hyper-util client, so the bound lives in
//! its connector. [`is_deadline`] tells a deadline from other failures (the
//! API answers `504` for one, `503` for the others).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// ClickHouse's own error code for `max_execution_time` exceeded.
const TIMEOUT_EXCEEDED: &str = "Code: 159";
/// What a connection fails with when ClickHouse stays silent too long.
const SILENT: &str = "ClickHouse sent nothing within the query deadline";

/// A ClickHouse client over `urls` ([`super::failover`]) whose every query
/// is bounded by `deadline`.
pub fn client(deadline: Duration, urls: &[String]) -> Result<clickhouse::Client, super::failover::BadUrl> {
    let bounded = Bounded { http: super::failover::http_connector(deadline), deadline };
    Ok(super::failover::client(bounded, urls)?.with_setting("max_execution_time", max_execution_time(deadline)))
}

/// The `max_execution_time` setting for `deadline` (whole seconds, at least 1).
pub fn max_execution_time(deadline: Duration) -> String {
    deadline.as_secs_f64().ceil().max(1.0).to_string()
}

/// Whether a query failed for want of an answer in time (either bound).
pub fn is_deadline(e: &clickhouse::error::Error) -> bool {
    if matches!(e, clickhouse::error::Error::TimedOut) {
        return true;
    }
    if let clickhouse::error::Error::BadResponse(body) = e {
        return body.contains(TIMEOUT_EXCEEDED);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::TimedOut) || s.to_string().contains(SILENT) {
            return true;
        }
        source = s.source();
    }
    false
}

/// An [`HttpConnector`] whose connections are [`Quiet`].
#[derive(Clone)]
pub struct Bounded {
    http: HttpConnector,
    deadline: Duration,
}

impl tower_service::Service<Uri> for Bounded {
    type Response = Quiet<TokioIo<TcpStream>>;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let deadline = self.deadline;
        Box::pin(async move { Ok(Quiet::new(connecting.await?, deadline)) })
    }
}

/// A connection that fails a read or write that makes no progress for
/// `limit` (each direction timed on its own, from when it first waits).
pub struct Quiet<S> {
    inner: S,
    reading: Stall,
    writing: Stall,
}

impl<S> Quiet<S> {
    fn new(inner: S, limit: Duration) -> Quiet<S> {
        Quiet { inner, reading: Stall::new(limit), writing: Stall::new(limit) }
    }
}

/// How long one direction has waited.
struct Stall {
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: bool,
}

impl Stall {
    fn new(limit: Duration) -> Stall {
        Stall { limit, timer: Box::pin(tokio::time::sleep(limit)), waiting: false }
    }

    /// Passes `progress` on, or an error once waiting has lasted `limit`.
    fn check<T>(&mut self, cx: &mut Context<'_>, progress: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if progress.is_ready() {
            self.waiting = false;
            return progress;
        }
        if !self.waiting {
            self.waiting = true;
            self.timer.as_mut().reset(Instant::now() + self.limit);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, SILENT))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: Read + Unpin> Read for Quiet<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.reading.check(cx, progress)
    }
}

impl<S: Write + Unpin> Write for Quiet<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.writing.check(cx, progress)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_flush(cx);
        this.writing.check(cx, progress)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for Quiet<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_server_fails_the_query_within_the_deadline_as_a_deadline() {
        // Accepts and never answers, like a stopped ClickHouse.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = client(Duration::from_millis(200), &[url]).unwrap();
        let e = client.query("SELECT 1").fetch_one::<u8>().await.unwrap_err();
        assert!(is_deadline(&e), "{e}");
        drop(listener);
    }

    /// What the committer relies on to leave a hung server (`super::super::stalled`).
    #[tokio::test]
    async fn after_a_silent_server_the_next_query_goes_to_the_next_server() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let next = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let urls = [format!("http://{}", silent.local_addr().unwrap()), format!("http://{}", next.local_addr().unwrap())];
        let client = client(Duration::from_millis(200), &urls).unwrap();
        assert!(is_deadline(&client.query("SELECT 1").fetch_one::<u8>().await.unwrap_err()));
        let (second, accepted) = tokio::join!(client.query("SELECT 1").fetch_one::<u8>(), next.accept());
        assert!(accepted.is_ok(), "the second query connects to the next server");
        assert!(is_deadline(&second.unwrap_err()), "which is silent too");
        drop(silent);
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_a_deadline() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = client(Duration::from_secs(5), &[format!("http://127.0.0.1:{port}")]).unwrap();
        let e = client.query("SELECT 1").fetch_one::<u8>().await.unwrap_err();
        assert!(!is_deadline(&e), "{e}");
    }

    #[test]
    fn the_server_side_limit_is_whole_seconds_and_never_zero() {
        assert_eq!(max_execution_time(Duration::from_millis(200)), "1");
        assert_eq!(max_execution_time(Duration::from_millis(10_000)), "10");
        assert_eq!(max_execution_time(Duration::from_millis(10_500)), "11");
        assert!(is_deadline(&clickhouse::error::Error::BadResponse("Code: 159, e.displayText() = DB::Exception: Timeout exceeded".into())));
        assert!(!is_deadline(&clickhouse::error::Error::BadResponse("Code: 60, Table doesn't exist".into())));
    }
}
