//! `tally load`: a closed-loop HTTP load generator for an edge.
//!
//! N connections each post batches of freshly numbered clicks (so dedup
//! never hides work) back to back for a fixed time, then the report gives
//! events/s, requests/s, request latency percentiles and errors by kind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tally_http::client::Client;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Edge base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    edge: String,
    /// Ingest key.
    #[arg(long)]
    key: String,
    /// Concurrent connections (each with one request in flight).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Distinct ads the clicks spread over.
    #[arg(long, default_value_t = 1000)]
    ads: u64,
}

#[derive(Default)]
struct Tally {
    events: u64,
    requests: u64,
    latencies_us: Vec<u64>,
    errors: std::collections::BTreeMap<String, u64>,
}

pub async fn run(args: LoadArgs) -> Result<()> {
    let url = format!("{}/v1/clicks", args.edge.trim_end_matches('/'));
    let run_id = tally::traffic::now_ms();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let args = Arc::new(args);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for conn in 0..args.connections {
        let (args, url) = (args.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = Client::new();
            let mut tally = Tally::default();
            let mut rng = fastrand::Rng::with_seed(conn as u64);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let now = tally::traffic::now_ms();
                let mut body = String::with_capacity(args.batch * 120);
                body.push('[');
                for i in 0..args.batch {
                    if i > 0 {
                        body.push(',');
                    }
                    n += 1;
                    let ad = rng.u64(1..=args.ads);
                    body.push_str(&format!(
                        r#"{{"click_id":"l{run_id}-{conn}-{n}","ad_id":{ad},"ts":{},"cost_micros":{},"user_id":"u{}"}}"#,
                        now - rng.u64(0..2000),
                        rng.u64(100..5000),
                        rng.u64(0..100_000)
                    ));
                }
                body.push(']');
                let sent = Instant::now();
                let outcome = client.post_json(&url, Some(&args.key), body).await;
                tally.latencies_us.push(sent.elapsed().as_micros() as u64);
                tally.requests += 1;
                match outcome {
                    Ok(r) if r.status.is_success() => {
                        tally.events += r.json().ok().and_then(|v| v["accepted"].as_u64()).unwrap_or(0);
                    }
                    Ok(r) => *tally.errors.entry(format!("HTTP {}", r.status.as_u16())).or_default() += 1,
                    Err(e) => *tally.errors.entry(format!("transport: {}", short(&e.to_string()))).or_default() += 1,
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for t in tasks {
        let t = t.await?;
        total.events += t.events;
        total.requests += t.requests;
        total.latencies_us.extend(t.latencies_us);
        for (k, v) in t.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let l = &total.latencies_us;
        if l.is_empty() {
            0.0
        } else {
            l[((l.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
        }
    };
    println!(
        "events/s {:.0}  requests/s {:.0}  latency ms p50 {:.2} p99 {:.2} p99.9 {:.2}  errors {:?}",
        total.events as f64 / secs,
        total.requests as f64 / secs,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        total.errors
    );
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}
