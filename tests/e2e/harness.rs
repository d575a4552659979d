//! Shared helpers: a POP per test on free ports in a temp dir, posting,
//! querying, and waiting on conditions (readiness polls, never sleeps as
//! synchronisation; deadlines only bound a hang, they assert no speed).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tally::pop::{EdgeSettings, LocalPop, PopOptions};
use tally::traffic::{ClickGen, Truth};
use tally_http::client::{Client, Reply};

/// Upper bound on waiting for counts to converge: only there to turn a hang
/// into a failure with a message.
pub const CONVERGE: Duration = Duration::from_secs(120);

pub struct Pop {
    pub pop: LocalPop,
    pub client: Client,
    _dir: tempfile::TempDir,
}

pub async fn start(tenants: &[&str]) -> Pop {
    start_with(tenants, EdgeSettings::default()).await
}

/// Edges seal every 200 ms and send heartbeats every second; the core
/// finalizes billing every 500 ms. Filter calls get 2 s, so a good filter
/// never misses its deadline on a loaded machine (a looping one still does).
pub async fn start_with(tenants: &[&str], edge: EdgeSettings) -> Pop {
    start_on(tenants, edge, None, None).await
}

/// [`start_with`] on a given ClickHouse (`None`: a private one) and, if it
/// is a cluster's server, that cluster's name and other servers.
pub async fn start_on(tenants: &[&str], edge: EdgeSettings, clickhouse_url: Option<String>, clickhouse_cluster: Option<(String, Vec<String>)>) -> Pop {
    let dir = tempfile::Builder::new().prefix("tally-e2e-").tempdir().unwrap();
    let pop = LocalPop::start(PopOptions {
        tally_bin: env!("CARGO_BIN_EXE_tally").into(),
        dir: dir.path().to_path_buf(),
        clickhouse_url,
        clickhouse_cluster,
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        edge: EdgeSettings { ship_interval_ms: 200, heartbeat_ms: 1000, filter_timeout_ms: 2000, ..edge },
        finalize_interval_ms: 500,
        log: "info".into(),
    })
    .await
    .expect("starting a local POP");
    Pop { pop, client: Client::new(), _dir: dir }
}

impl Pop {
    pub fn ingest_key(&self, tenant: usize) -> String {
        self.pop.state.tenants[tenant].ingest_key.clone()
    }

    pub fn read_key(&self, tenant: usize) -> String {
        self.pop.state.tenants[tenant].read_key.clone()
    }

    pub async fn post(&self, key: &str, content_type: &str, body: impl Into<bytes::Bytes>) -> Reply {
        self.client
            .send(http::Method::POST, &format!("{}/v1/clicks", self.pop.state.edge_http), Some(key), Some(content_type), body)
            .await
            .expect("posting to the edge")
    }

    pub async fn query(&self, key: &str, path_and_query: &str) -> Reply {
        self.client.get(&format!("{}{path_and_query}", self.pop.state.core_http), Some(key)).await.expect("querying the core")
    }

    pub async fn series(&self, key: &str, ad: u64, from_ms: u64, to_ms: u64, step: &str) -> Value {
        let reply = self.query(key, &format!("/v1/ads/{ad}/clicks?from={from_ms}&to={to_ms}&step={step}")).await;
        assert!(reply.status.is_success(), "query failed: {} {}", reply.status, reply.text());
        reply.json().unwrap()
    }

    /// Polls a JSON query until `done` holds; returns its answer.
    pub async fn wait_for(&self, key: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let reply = self.query(key, path).await;
            let v: Value = reply.json().unwrap_or(Value::Null);
            if reply.status.is_success() && done(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "{path} never converged: {} {}", reply.status, reply.text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a series until its total clicks equal `clicks`; returns it.
    pub async fn wait_for_series(&self, key: &str, ad: u64, from_ms: u64, to_ms: u64, step: &str, clicks: u64) -> Value {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let s = self.series(key, ad, from_ms, to_ms, step).await;
            if s["total"]["clicks"].as_u64() == Some(clicks) {
                return s;
            }
            assert!(tokio::time::Instant::now() < deadline, "ad {ad} step {step} never reached {clicks}: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until every ad's total equals the truth, or fails after CONVERGE
    /// with the last difference.
    pub async fn wait_for_totals(&self, key: &str, truth: &ClickGen, ads: &[u64], from_ms: u64, to_ms: u64) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let mut diff = Vec::new();
            for &ad in ads {
                let got = self.series(key, ad, from_ms, to_ms, "1s").await["total"]["clicks"].as_u64().unwrap();
                let want = truth.ad_total(ad).clicks;
                if got != want {
                    diff.push((ad, got, want));
                }
            }
            if diff.is_empty() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "counts did not converge; (ad, got, want): {diff:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The truth per (second) for one ad.
pub fn per_second(truth: &ClickGen, ad: u64) -> BTreeMap<u64, Truth> {
    truth.truth.range((ad, 0)..(ad + 1, 0)).map(|((_, s), t)| (*s, *t)).collect()
}

/// Asserts the API's per-second points equal the truth, second for second.
pub fn assert_points_equal(series: &Value, truth: &BTreeMap<u64, Truth>) {
    let got: BTreeMap<u64, Truth> = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["clicks"].as_u64().unwrap() > 0)
        .map(|p| {
            let t = p["t"].as_u64().unwrap() / 1000;
            (t, Truth { clicks: p["clicks"].as_u64().unwrap(), spend_micros: p["spend_micros"].as_u64().unwrap() })
        })
        .collect();
    assert_eq!(&got, truth);
}

/// Posts `events` to `edge` until it answers 200, as a client that retries
/// would (through edge restarts; a retry of something already durable is
/// answered as duplicates). Gives up after CONVERGE.
pub async fn post_until_acked(client: &Client, edge: &str, key: &str, events: &[String]) -> Value {
    let body = tally::traffic::json_array(events);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let mut pause = Duration::from_millis(20);
    loop {
        match client.post_json(&format!("{edge}/v1/clicks"), Some(key), body.clone()).await {
            Ok(r) if r.status.is_success() => return r.json().unwrap(),
            Ok(r) => assert!(r.status.is_server_error(), "edge refused the request: {} {}", r.status, r.text()),
            Err(_) => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "edge never acknowledged");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Sum of `/v1/billing` over a range: (clicks, spend, every hour final).
pub async fn billing(pop: &Pop, key: &str, from_ms: u64, to_ms: u64) -> (i64, i64, bool, Value) {
    let r = pop.query(key, &format!("/v1/billing?from={from_ms}&to={to_ms}")).await;
    assert!(r.status.is_success(), "billing query failed: {} {}", r.status, r.text());
    let v = r.json().unwrap();
    let all_final = v["hours"].as_array().unwrap().iter().all(|h| h["final"] == true);
    (v["total"]["clicks"].as_i64().unwrap(), v["total"]["spend_micros"].as_i64().unwrap(), all_final, v)
}

/// Polls until billing over the range equals `want` (clicks, spend).
pub async fn wait_for_billing(pop: &Pop, key: &str, from_ms: u64, to_ms: u64, want: (i64, i64)) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let (clicks, spend, _, _) = billing(pop, key, from_ms, to_ms).await;
        if (clicks, spend) == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "billing did not converge: got {:?}, want {want:?}", (clicks, spend));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Truth over every ad of a generator: (clicks, spend).
pub fn truth_total(generator: &ClickGen) -> (i64, i64) {
    generator.truth.values().fold((0, 0), |(c, s), t| (c + t.clicks as i64, s + t.spend_micros as i64))
}

/// A filter component built by `deploy/dev/test.sh` (plugins/).
pub fn plugin(name: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../plugins/target/wasm32-wasip2/release/tally_plugin_{name}.wasm"));
    assert!(path.exists(), "{} missing: deploy/dev/test.sh builds the plugins first", path.display());
    path
}

/// Waits until the (first) edge runs `version` of `tenant`'s filter in `role` (`active`, `candidate`).
pub async fn wait_for_filter_version(pop: &Pop, tenant: &str, role: &str, version: u64) {
    let want = format!(r#"tally_edge_filter_version{{tenant="{tenant}",role="{role}"}} {version}"#);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let metrics = pop.client.get(&format!("{}/metrics", pop.pop.state.edge_http), None).await.unwrap().text();
        if metrics.contains(&want) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "edge never ran {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
