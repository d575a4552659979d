//! `tally load`: a closed-loop load generator for an edge, over HTTP/1.1
//! or HTTP/2 (cleartext, prior knowledge, or over TLS to an `https://` URL
//! trusting `--cacert`) or HTTP/3.
//!
//! `connections` x `streams` workers each post batches of freshly numbered
//! clicks (so dedup never hides work) back to back for a fixed time, or
//! paced to `--rate` events/s in total. A progress line (its bar spans
//! `--seconds`) updates every second on a terminal, every twentieth of the
//! run otherwise; the report gives events/s, requests/s, request latency
//! p50/p99/p99.9, errors by kind with the full text of the first distinct
//! ones, and the edge's own counts (accepted, duplicates, rejected events).
//! It exits 1 when more than `--max-error-rate` of the requests failed or
//! of the answered events were rejected (default 0: any); `--report-every` adds a line per
//! interval with its own rates, latencies and longest stall (the longest
//! time without a successful answer; answers are stamped in completion
//! order under one lock, so the gaps are exact, not sampled).
//! `--null-server` starts an in-process
//! server that answers 200 without looking at the body, on the chosen
//! transport: the baseline of what the transport alone costs.
//! `--clickhouse-table` posts the same clicks as `JSONEachRow` straight into
//! a ClickHouse table instead (`--edge` is its HTTP URL): the peer, what a
//! user might do without Tally (`deploy/bench/cpu-per-event.sh`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::{Buf, Bytes};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::watch;

use tally_http::client::Client;
use tally_http::limits::{Gate, ServerLimits, MAX_CONNECTIONS};
use tally_http::serve::{Handler, Peer};
use tally_http::{reply, RequestBody, Response};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    #[value(name = "1")]
    H1,
    #[value(name = "2")]
    H2,
    #[value(name = "3")]
    H3,
}

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Edge base URL: http://HOST:PORT for HTTP/1.1 and 2, https://HOST:UDP-PORT for HTTP/3.
    #[arg(long, required_unless_present = "null_server")]
    edge: Option<String>,
    /// Ingest key.
    #[arg(long, default_value = "null-server-key-000")]
    key: String,
    /// HTTP version.
    #[arg(long, value_enum, default_value = "1")]
    http: Proto,
    /// PEM certificate (or CA) to trust for HTTPS (`--edge https://...`)
    /// and HTTP/3: the edge's own, `<spool_dir>/tls/edge-cert.pem`.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// TLS server name for HTTPS and HTTP/3.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Concurrent requests per connection (HTTP/2 and 3; HTTP/1.1 uses 1).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Target events/s over all workers (0: as fast as answers come back).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Distinct ads the clicks spread over.
    #[arg(long, default_value_t = 1000)]
    ads: u64,
    /// With --rate: send on schedule whether or not answers came back
    /// (latency counted from the scheduled time, so a stall shows), instead
    /// of pacing workers that wait for their answers.
    #[arg(long, requires = "rate")]
    open_loop: bool,
    /// Open loop: requests in flight at most; past it a scheduled request is
    /// counted as an error ("overloaded") instead of sent.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Drive an in-process server that answers 200 at once (the baseline).
    #[arg(long)]
    null_server: bool,
    /// Give each click a browser's User-Agent (one in four a bot's) and an
    /// IP, what tenant filters look at.
    #[arg(long)]
    browser_fields: bool,
    /// Post the clicks as `JSONEachRow` rows into this ClickHouse table
    /// (`--edge` is ClickHouse's HTTP URL) instead of to an edge.
    #[arg(long, conflicts_with = "null_server")]
    clickhouse_table: Option<String>,
    /// Exit 1 when a larger share (0-1) of the requests failed, or of the
    /// answered events were rejected; 0: any failure fails the run.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    max_error_rate: f64,
    /// Every this many seconds, print a line with that interval's events/s,
    /// requests/s, longest stall and latency (0: only the final report).
    #[arg(long, default_value_t = 0)]
    report_every: u64,
}

fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a share between 0 and 1 (e.g. 0.01 for 1 %)")),
    }
}

/// How many distinct error texts the report quotes in full.
const ERROR_SAMPLES: usize = 5;
const OVERLOADED: &str = "overloaded: too many in flight";

/// What `--browser-fields` adds to clicks, picked at random.
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
];

#[derive(Default)]
struct Tally {
    events: u64,
    requests: u64,
    latencies_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
    /// The first distinct error texts in full (a rejected event's reason
    /// too), with how often each came.
    samples: BTreeMap<String, u64>,
    /// The edge's answers summed (none from ClickHouse or the null server).
    accepted: u64,
    duplicates: u64,
    rejected: u64,
}

impl Tally {
    fn sample(&mut self, text: String) {
        if let Some(n) = self.samples.get_mut(&text) {
            *n += 1;
        } else if self.samples.len() < ERROR_SAMPLES {
            self.samples.insert(text, 1);
        }
    }

    fn add(&mut self, t: Tally) {
        self.events += t.events;
        self.requests += t.requests;
        self.latencies_us.extend(t.latencies_us);
        for (k, v) in t.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (text, n) in t.samples {
            for _ in 0..n {
                self.sample(text.clone());
            }
        }
        self.accepted += t.accepted;
        self.duplicates += t.duplicates;
        self.rejected += t.rejected;
    }
}

/// What `--report-every` collects as answers come in.
#[derive(Default)]
struct Interval {
    events: u64,
    requests: u64,
    errors: u64,
    latencies_us: Vec<u64>,
    /// When the last successful answer came (over the whole run).
    last_success: Option<Instant>,
    /// The longest gap between successful answers that ended in this interval.
    stall: Duration,
    /// The longest over the whole run.
    longest_stall: Duration,
}

impl Interval {
    /// Notes an answer; the time is taken under the lock, so successive
    /// answers are stamped in order.
    fn note(shared: &std::sync::Mutex<Interval>, latency: Duration, ok: bool, batch: u64) {
        let mut i = shared.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        i.requests += 1;
        i.latencies_us.push(latency.as_micros() as u64);
        if !ok {
            i.errors += 1;
            return;
        }
        i.events += batch;
        if let Some(gap) = i.last_success.map(|last| now - last) {
            i.stall = i.stall.max(gap);
            i.longest_stall = i.longest_stall.max(gap);
        }
        i.last_success = Some(now);
    }

    /// The interval's line; starts the next interval. A stall still going on
    /// counts up to now.
    fn take_line(&mut self, from: Duration, to: Duration, now: Instant) -> String {
        let ongoing = self.last_success.map_or(Duration::ZERO, |last| now - last);
        let stall = self.stall.max(ongoing);
        self.longest_stall = self.longest_stall.max(ongoing);
        self.latencies_us.sort_unstable();
        let secs = (to - from).as_secs_f64();
        let line = format!(
            "interval {:.0}s-{:.0}s events/s {:.0}  requests/s {:.0}  stall ms {}  latency ms p50 {:.2} p99 {:.2} p99.9 {:.2}  errors {}",
            from.as_secs_f64(),
            to.as_secs_f64(),
            self.events as f64 / secs,
            self.requests as f64 / secs,
            stall.as_millis(),
            percentile(&self.latencies_us, 0.5),
            percentile(&self.latencies_us, 0.99),
            percentile(&self.latencies_us, 0.999),
            self.errors
        );
        *self = Interval { last_success: self.last_success, longest_stall: self.longest_stall, ..Interval::default() };
        line
    }
}

/// Prints an [`Interval`] line every `every`, until aborted.
fn spawn_intervals(shared: Arc<std::sync::Mutex<Interval>>, every: Duration, started: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut from = Duration::ZERO;
        loop {
            tokio::time::sleep_until((started + from + every).into()).await;
            let now = Instant::now();
            let line = shared.lock().unwrap_or_else(|e| e.into_inner()).take_line(from, now - started, now);
            println!("{line}");
            from = now - started;
        }
    })
}

/// The `p` quantile of sorted latencies, in ms.
fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    sorted_us.get(((sorted_us.len().max(1) - 1) as f64 * p).round() as usize).map_or(0.0, |us| *us as f64 / 1000.0)
}

/// One way of sending a request body and getting its answer back.
#[derive(Clone)]
enum Sender {
    Hyper(Client),
    Tls(TlsSender),
    H3(h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>),
}

/// An answer: its status and body.
type Answer = (StatusCode, Bytes);

impl Sender {
    async fn post(&mut self, url: &str, authority: &str, key: Option<&str>, body: String) -> Result<Answer, String> {
        match self {
            Sender::Hyper(client) => {
                let r = client.post_json(url, key, body).await.map_err(|e| e.to_string())?;
                Ok((r.status, r.body))
            }
            Sender::Tls(tls) => tls.post(authority, key, body).await,
            Sender::H3(send) => {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(format!("https://{authority}/v1/clicks"))
                    .header("authorization", format!("Bearer {}", key.unwrap_or_default()))
                    .header("content-type", "application/json")
                    .body(())
                    .map_err(|e| e.to_string())?;
                let mut stream = send.send_request(req).await.map_err(|e| e.to_string())?;
                stream.send_data(Bytes::from(body)).await.map_err(|e| e.to_string())?;
                stream.finish().await.map_err(|e| e.to_string())?;
                let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
                let mut answer = Vec::new();
                while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
                    while chunk.has_remaining() {
                        let part = chunk.chunk();
                        answer.extend_from_slice(part);
                        let n = part.len();
                        chunk.advance(n);
                    }
                }
                Ok((resp.status(), Bytes::from(answer)))
            }
        }
    }
}

/// HTTP/1.1 or HTTP/2 over TLS on one kept connection, trusting
/// `--cacert` only. HTTP/2 clones share their connection (its streams);
/// an HTTP/1.1 clone opens its own, as each worker has one connection.
struct TlsSender {
    tls: tokio_rustls::TlsConnector,
    server_name: rustls_pki_types::ServerName<'static>,
    http2: bool,
    h1: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    h2: Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>>,
}

impl Clone for TlsSender {
    fn clone(&self) -> Self {
        TlsSender { tls: self.tls.clone(), server_name: self.server_name.clone(), http2: self.http2, h1: None, h2: self.h2.clone() }
    }
}

impl TlsSender {
    fn new(cacert: &std::path::Path, server_name: &str, http2: bool) -> Result<TlsSender> {
        let alpn: &[&[u8]] = if http2 { &[b"h2"] } else { &[b"http/1.1"] };
        let config = tally_http::tls::client_config(cacert, alpn, None).with_context(|| format!("--cacert {}", cacert.display()))?;
        let server_name = rustls_pki_types::ServerName::try_from(server_name.to_string()).with_context(|| format!("--server-name {server_name}"))?;
        Ok(TlsSender { tls: tokio_rustls::TlsConnector::from(Arc::new(config)), server_name, http2, h1: None, h2: None })
    }

    /// (Re)connects when there is no open connection.
    async fn connect(&mut self, authority: &str) -> Result<(), String> {
        let open = if self.http2 { self.h2.as_ref().is_some_and(|s| !s.is_closed()) } else { self.h1.as_ref().is_some_and(|s| !s.is_closed()) };
        if open {
            return Ok(());
        }
        let tcp = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("connecting to {authority}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let tls = self.tls.connect(self.server_name.clone(), tcp).await.map_err(|e| format!("TLS handshake with {authority}: {e}"))?;
        let io = hyper_util::rt::TokioIo::new(tls);
        if self.http2 {
            let (send, connection) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(connection);
            self.h2 = Some(send);
        } else {
            let (send, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
            tokio::spawn(connection);
            self.h1 = Some(send);
        }
        Ok(())
    }

    async fn post(&mut self, authority: &str, key: Option<&str>, body: String) -> Result<Answer, String> {
        self.connect(authority).await?;
        let mut req = Request::builder().method(Method::POST).header("content-type", "application/json");
        req = if self.http2 { req.uri(format!("https://{authority}/v1/clicks")) } else { req.uri("/v1/clicks").header("host", authority) };
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
        let resp = match (&mut self.h1, &self.h2) {
            (_, Some(h2)) if self.http2 => h2.clone().send_request(req).await,
            (Some(h1), _) => {
                h1.ready().await.map_err(|e| e.to_string())?;
                h1.send_request(req).await
            }
            _ => unreachable!("connect leaves a sender"),
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status();
        let answer = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, answer))
    }
}

/// A request body of `args.batch` freshly numbered clicks: a JSON array for
/// an edge, one object per line for ClickHouse's `JSONEachRow`.
fn body(rng: &mut fastrand::Rng, run_id: u64, worker: usize, n: &mut u64, args: &LoadArgs) -> String {
    let now = tally::traffic::now_ms();
    let each_row = args.clickhouse_table.is_some();
    let mut body = String::with_capacity(args.batch * 120);
    if !each_row {
        body.push('[');
    }
    for i in 0..args.batch {
        if i > 0 {
            body.push(if each_row { '\n' } else { ',' });
        }
        *n += 1;
        let ad = rng.u64(1..=args.ads);
        body.push_str(&format!(
            r#"{{"click_id":"l{run_id}-{worker}-{n}","ad_id":{ad},"ts":{},"cost_micros":{},"user_id":"u{}""#,
            now - rng.u64(0..2000),
            rng.u64(100..5000),
            rng.u64(0..100_000)
        ));
        if args.browser_fields {
            let ua = AGENTS[rng.usize(..AGENTS.len())];
            body.push_str(&format!(r#","user_agent":"{ua}","ip":"10.{}.{}.{}""#, rng.u8(1..7), rng.u8(..), rng.u8(1..255)));
        }
        body.push('}');
    }
    if !each_row {
        body.push(']');
    }
    body
}

pub async fn run(args: LoadArgs) -> Result<()> {
    anyhow::ensure!(args.clickhouse_table.is_none() || args.http != Proto::H3, "--clickhouse-table posts over HTTP/1.1 or HTTP/2");
    let (_stop_null, edge, cacert) = if args.null_server { start_null(args.http).await? } else { (None, args.edge.clone().unwrap(), args.cacert.clone()) };
    let edge = edge.trim_end_matches('/').to_string();
    let url = match &args.clickhouse_table {
        Some(table) => format!("{edge}/?query=INSERT%20INTO%20{table}%20FORMAT%20JSONEachRow"),
        None => format!("{edge}/v1/clicks"),
    };
    let authority = edge.split("://").nth(1).unwrap_or(&edge).to_string();
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        senders.push(match args.http {
            Proto::H1 | Proto::H2 if edge.starts_with("https://") => Sender::Tls(TlsSender::new(
                cacert.as_deref().context("--cacert: the certificate to trust for an https:// edge (<spool_dir>/tls/edge-cert.pem)")?,
                &args.server_name,
                args.http == Proto::H2,
            )?),
            Proto::H1 => Sender::Hyper(Client::new()),
            Proto::H2 => Sender::Hyper(Client::http2_prior_knowledge()),
            Proto::H3 => Sender::H3(h3_connect(&authority, &args.server_name, cacert.as_deref().context("--cacert is needed for HTTP/3")?).await?),
        });
    }
    let workers = args.connections * if args.http == Proto::H1 { 1 } else { args.streams.max(1) };
    let run_id = tally::traffic::now_ms();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let sent = Arc::new(AtomicU64::new(0));
    let args = Arc::new(args);
    let started = Instant::now();
    let progress = spawn_progress(sent.clone(), started, Duration::from_secs(args.seconds));
    let intervals = (args.report_every > 0).then(|| Arc::new(std::sync::Mutex::new(Interval::default())));
    let interval_lines = intervals.clone().map(|shared| spawn_intervals(shared, Duration::from_secs(args.report_every), started));
    if args.open_loop {
        let total = open_loop(&args, senders, &url, &authority, run_id, deadline, sent, intervals.clone()).await;
        progress.abort();
        interval_lines.inspect(|l| l.abort());
        return report(total, started, intervals.as_deref(), args.max_error_rate);
    }
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (args, url, authority, sent, intervals) = (args.clone(), url.clone(), authority.clone(), sent.clone(), intervals.clone());
        let mut sender = senders[w % senders.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut rng = fastrand::Rng::with_seed(w as u64);
            let mut n = 0u64;
            // Pacing: each worker's share of the rate, as request slots.
            let interval = (args.rate > 0).then(|| Duration::from_secs_f64(args.batch as f64 * workers as f64 / args.rate as f64));
            let mut next = Instant::now();
            while Instant::now() < deadline {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let body = body(&mut rng, run_id, w, &mut n, &args);
                let t = Instant::now();
                let outcome = sender.post(&url, &authority, bearer(&args), body).await;
                let ok = matches!(&outcome, Ok((s, _)) if s.is_success());
                if ok {
                    sent.fetch_add(args.batch as u64, Ordering::Relaxed);
                }
                if let Some(shared) = &intervals {
                    Interval::note(shared, t.elapsed(), ok, args.batch as u64);
                }
                record(&mut tally, (t.elapsed(), outcome, args.batch as u64));
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for t in tasks {
        total.add(t.await?);
    }
    progress.abort();
    interval_lines.inspect(|l| l.abort());
    report(total, started, intervals.as_deref(), args.max_error_rate)
}

const BAR: usize = 40;

/// The progress line at `elapsed` of a run of `run`: a bar that fills
/// over the run, the time and the events/s since the last line.
fn progress_line(elapsed: Duration, run: Duration, events_per_sec: f64) -> String {
    let done = (elapsed.as_secs_f64() / run.as_secs_f64().max(1e-9)).min(1.0);
    let filled = (done * BAR as f64).round() as usize;
    format!("[{}{}] {:>4}s/{}s {events_per_sec:>10.0} events/s", "#".repeat(filled), " ".repeat(BAR - filled), elapsed.as_secs(), run.as_secs())
}

/// The progress line on stderr: redrawn once a second on a terminal, else
/// a line every twentieth of the run (at least a second apart).
fn spawn_progress(sent: Arc<AtomicU64>, started: Instant, run: Duration) -> tokio::task::JoinHandle<()> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let every = if terminal { Duration::from_secs(1) } else { (run / 20).max(Duration::from_secs(1)) };
    tokio::spawn(async move {
        let (mut last, mut last_at) = (0, started);
        loop {
            tokio::time::sleep(every).await;
            let total = sent.load(Ordering::Relaxed);
            let rate = (total - last) as f64 / last_at.elapsed().as_secs_f64();
            let line = progress_line(started.elapsed().min(run), run, rate);
            if terminal {
                eprint!("\r{line} ");
            } else {
                eprintln!("{line}");
            }
            (last, last_at) = (total, Instant::now());
        }
    })
}

/// Sends on a fixed schedule for the whole run; each request is its own task.
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    args: &Arc<LoadArgs>,
    senders: Vec<Sender>,
    url: &str,
    authority: &str,
    run_id: u64,
    deadline: Instant,
    sent: Arc<AtomicU64>,
    intervals: Option<Arc<std::sync::Mutex<Interval>>>,
) -> Tally {
    let interval = Duration::from_secs_f64(args.batch as f64 / args.rate as f64);
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut total = Tally::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut rng = fastrand::Rng::with_seed(run_id);
    let (mut n, mut next, mut i) = (0u64, Instant::now(), 0usize);
    while next < deadline {
        tokio::time::sleep_until(next.into()).await;
        let scheduled = next;
        next += interval;
        if in_flight.load(Ordering::Relaxed) as usize >= args.max_in_flight {
            *total.errors.entry(OVERLOADED.into()).or_default() += 1;
            continue;
        }
        let body = body(&mut rng, run_id, 0, &mut n, args);
        let mut sender = senders[i % senders.len()].clone();
        i += 1;
        let (url, authority, key, batch) = (url.to_string(), authority.to_string(), bearer(args).map(str::to_string), args.batch as u64);
        let (in_flight, sent, intervals) = (in_flight.clone(), sent.clone(), intervals.clone());
        in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let outcome = sender.post(&url, &authority, key.as_deref(), body).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let ok = matches!(&outcome, Ok((s, _)) if s.is_success());
            if ok {
                sent.fetch_add(batch, Ordering::Relaxed);
            }
            if let Some(shared) = &intervals {
                Interval::note(shared, scheduled.elapsed(), ok, batch);
            }
            (scheduled.elapsed(), outcome, batch)
        });
        while let Some(Ok(done)) = tasks.try_join_next() {
            record(&mut total, done);
        }
    }
    while let Some(Ok(done)) = tasks.join_next().await {
        record(&mut total, done);
    }
    total
}

/// The ingest key, for an edge (ClickHouse's default user takes none).
fn bearer(args: &LoadArgs) -> Option<&str> {
    args.clickhouse_table.is_none().then_some(args.key.as_str())
}

fn record(total: &mut Tally, (latency, outcome, batch): (Duration, Result<Answer, String>, u64)) {
    total.latencies_us.push(latency.as_micros() as u64);
    total.requests += 1;
    match outcome {
        Ok((s, body)) if s.is_success() => {
            total.events += batch;
            let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&body) else { return };
            total.accepted += answer["accepted"].as_u64().unwrap_or(0);
            total.duplicates += answer["duplicates"].as_u64().unwrap_or(0);
            for rejected in answer["rejected"].as_array().into_iter().flatten() {
                total.rejected += 1;
                total.sample(format!("event rejected: {}", rejected["reason"].as_str().unwrap_or("(no reason given)")));
            }
        }
        Ok((s, body)) => {
            *total.errors.entry(format!("HTTP {}", s.as_u16())).or_default() += 1;
            let text = String::from_utf8_lossy(&body);
            total.sample(format!("HTTP {s}: {}", text.trim().chars().take(500).collect::<String>()));
        }
        Err(e) => {
            *total.errors.entry(e.chars().take(60).collect()).or_default() += 1;
            total.sample(e);
        }
    }
}

/// Why the run failed, if more than `max_error_rate` of its requests
/// failed (or were never sent, overloaded) or of its answered events were
/// rejected.
fn verdict(total: &Tally, max_error_rate: f64) -> Result<()> {
    let failed: u64 = total.errors.values().sum();
    let attempts = total.requests + total.errors.get(OVERLOADED).copied().unwrap_or(0);
    anyhow::ensure!(attempts > 0, "no request completed within the run; is the edge reachable?");
    let failed_share = failed as f64 / attempts as f64;
    anyhow::ensure!(
        failed_share <= max_error_rate,
        "{failed} of {attempts} requests failed ({:.2} %, above --max-error-rate {max_error_rate}); the first errors are above",
        failed_share * 100.0
    );
    let answered = total.accepted + total.duplicates + total.rejected;
    let rejected_share = if answered == 0 { 0.0 } else { total.rejected as f64 / answered as f64 };
    anyhow::ensure!(
        rejected_share <= max_error_rate,
        "the edge rejected {} of {answered} events ({:.2} %, above --max-error-rate {max_error_rate}); the first reasons are above",
        total.rejected,
        rejected_share * 100.0
    );
    Ok(())
}

fn report(mut total: Tally, started: Instant, intervals: Option<&std::sync::Mutex<Interval>>, max_error_rate: f64) -> Result<()> {
    eprintln!();
    let secs = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| percentile(&total.latencies_us, p);
    let stall = intervals.map_or(String::new(), |i| format!("  longest stall ms {}", i.lock().unwrap_or_else(|e| e.into_inner()).longest_stall.as_millis()));
    if !total.samples.is_empty() {
        println!("first errors (distinct, in full):");
        for (text, n) in &total.samples {
            println!("  {n} x {text}");
        }
    }
    // The last line, read by deploy/bench/ scripts as "key value" pairs.
    println!(
        "events/s {:.0}  requests/s {:.0}  latency ms p50 {:.2} p99 {:.2} p99.9 {:.2}  errors {:?}  accepted events {} requests {} seconds {secs:.2}{stall}  edge: accepted {} duplicates {} rejected {}",
        total.events as f64 / secs,
        total.requests as f64 / secs,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        total.errors,
        total.events,
        total.requests,
        total.accepted,
        total.duplicates,
        total.rejected,
    );
    verdict(&total, max_error_rate)
}

async fn h3_connect(authority: &str, server_name: &str, cacert: &std::path::Path) -> Result<h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>> {
    let addr: std::net::SocketAddr = authority.parse().context("HTTP/3 needs https://IP:PORT")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_file_iter(cacert)? {
        roots.add(cert?)?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))?;
    let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = tokio::time::timeout(Duration::from_secs(5), endpoint.connect(addr, server_name)?).await.context("QUIC handshake timed out")??;
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(send)
}

/// Answers 200 without reading more than the body.
struct Null;

impl Handler for Null {
    async fn handle(self: Arc<Self>, req: http::Request<RequestBody>, _peer: Peer) -> Response {
        let _ = reply::read_body(req, 64 << 20).await;
        reply::with_type(StatusCode::OK, Bytes::from_static(b"{\"accepted\":0,\"duplicates\":0,\"rejected\":[]}"), "application/json")
    }
}

/// Keeps the null server running (and its certificate's directory) while alive.
struct NullServer {
    _stop: watch::Sender<bool>,
    _dir: Option<tempfile::TempDir>,
}

/// Starts the null server on the transport; returns its stop switch, base
/// URL and (for HTTP/3) the certificate to trust.
async fn start_null(proto: Proto) -> Result<(Option<NullServer>, String, Option<PathBuf>)> {
    let (stop, stopped) = watch::channel(false);
    // The load generator is one address opening as many connections and streams as it is told.
    let limits = ServerLimits { max_connections_per_ip: MAX_CONNECTIONS, max_streams_per_connection: 1024, ..ServerLimits::default() };
    let gate = Gate::new(limits);
    match proto {
        Proto::H1 | Proto::H2 => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            tokio::spawn(tally_http::serve::serve(listener, None, Arc::new(Null), gate, stopped));
            Ok((Some(NullServer { _stop: stop, _dir: None }), format!("http://{addr}"), None))
        }
        Proto::H3 => {
            let dir = tempfile::Builder::new().prefix("tally-load-").tempdir()?;
            let identity = tally_http::tls::load_or_create(dir.path(), "null", &["localhost".into()])?;
            let config = tally_http::tls::server_config(&identity, &[tally_http::h3::ALPN], true)?;
            let endpoint = tally_http::h3::bind("127.0.0.1:0".parse()?, config, &gate.limits)?;
            let addr = endpoint.local_addr()?;
            tokio::spawn(tally_http::h3::serve(endpoint, Arc::new(Null), 64 << 20, gate, stopped));
            Ok((Some(NullServer { _stop: stop, _dir: Some(dir) }), format!("https://{addr}"), Some(identity.cert_path)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(accepted: u64, rejected: u64, errors: u64) -> Tally {
        let mut t = Tally::default();
        for _ in 0..errors {
            record(&mut t, (Duration::ZERO, Err("connection refused (os error 111) and more text past sixty characters".into()), 10));
        }
        let body = serde_json::json!({"accepted": accepted, "duplicates": 0, "rejected": (0..rejected).map(|i| serde_json::json!({"index": i, "reason": "too late"})).collect::<Vec<_>>()});
        record(&mut t, (Duration::ZERO, Ok((StatusCode::OK, Bytes::from(body.to_string()))), accepted + rejected));
        t
    }

    #[test]
    fn failures_fail_the_run_past_the_threshold() {
        assert!(verdict(&answered(10, 0, 0), 0.0).is_ok());
        assert!(verdict(&answered(10, 0, 1), 0.0).is_err());
        assert!(verdict(&answered(10, 0, 1), 0.5).is_ok());
        assert!(verdict(&answered(9, 1, 0), 0.0).is_err());
        assert!(verdict(&answered(9, 1, 0), 0.1).is_ok());
        assert!(verdict(&Tally::default(), 1.0).is_err(), "no request at all is a failure");
    }

    #[test]
    fn errors_are_kept_in_full_distinct_and_few() {
        let mut t = answered(1, 2, 3);
        record(&mut t, (Duration::ZERO, Ok((StatusCode::UNAUTHORIZED, Bytes::from_static(b"{\"error\":\"missing or unknown ingest key\"}"))), 1));
        for i in 0..10 {
            record(&mut t, (Duration::ZERO, Err(format!("error {i}")), 1));
        }
        assert_eq!(t.samples.len(), ERROR_SAMPLES);
        assert_eq!(t.samples["connection refused (os error 111) and more text past sixty characters"], 3);
        assert_eq!(t.samples["event rejected: too late"], 2);
        assert!(t.samples.contains_key("HTTP 401 Unauthorized: {\"error\":\"missing or unknown ingest key\"}"), "{:?}", t.samples);
        assert_eq!((t.accepted, t.rejected, t.errors["HTTP 401"]), (1, 2, 1));
    }

    #[test]
    fn the_progress_bar_spans_the_run() {
        let run = Duration::from_secs(10);
        assert!(progress_line(Duration::from_secs(5), run, 1.0).starts_with(&format!("[{}{}]", "#".repeat(20), " ".repeat(20))));
        assert!(progress_line(Duration::from_secs(10), run, 1.0).starts_with(&format!("[{}]", "#".repeat(40))));
        assert!(progress_line(Duration::from_secs(10), Duration::from_secs(600), 1.0).contains("10s/600s"));
    }

    #[test]
    fn shares_are_checked() {
        assert_eq!(share("0.01"), Ok(0.01));
        assert!(share("5").is_err() && share("x").is_err());
    }
}
