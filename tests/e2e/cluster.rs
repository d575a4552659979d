//! Tally on the topology, as real processes: ZooKeeper, 2 shards x 2
//! replicas of 18.16 (`tally::cluster`), 2 cores in cluster mode with edge
//! leases in that ZooKeeper, and 2 edges listing both cores, one click
//! generator per edge with exact ground truth. One test, its phases on the
//! same cluster (a cluster takes a while to start):
//! 1. steady traffic;
//! 2. `kill -9` of the replica the lease-holding core inserts to, during
//!    inserts (the core moves to another server), restarted later;
//! 3. a whole shard unreachable for a while (both replicas `kill -9`ed)
//!    while traffic flows (the edges hold their batches), started again;
//! 4. `kill -9` of the core holding the edges' leases while traffic flows:
//!    the edges fail over to the other core (the time from the kill to
//!    commits there is printed, not asserted); the killed core restarts;
//! 5. a short ZooKeeper outage (stopped and started by pid) under traffic;
//! 6. an edge retired while traffic flows on the other one: stopped first
//!    (it ships what it holds), refused through the core that does not hold
//!    its lease, retired through the one that does; billing no longer names
//!    it as holding an hour back.
//! After each phase, through both cores alike: billing and the per-second
//! and per-minute points equal the truth, the hour rollup too; every server,
//! asked directly, gives the same totals and holds no row twice. Last, a
//! core stopped gracefully gives its leases up before it exits. A second
//! test compares the cluster schema's columns with a single-node install.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use tally::cluster::Cluster;
use tally::pop::EdgeSettings;
use tally::traffic::{now_ms, ClickGen, GenOptions, Truth};
use tally_core::clickhouse::cluster::migrate_every_server;
use tally_core::clickhouse::private_server::PrivateServer;
use tally_core::clickhouse::Store;
use tally_http::client::Client;
use tokio::sync::{watch, Mutex};

use crate::harness::{self, post_until_acked, Pop, CONVERGE};

const ADS: u64 = 6;
const EDGES: [&str; 2] = ["local-edge-1", "local-edge-2"];
/// Short, so a killed core's leases expire soon (ZooKeeper's tickTime is 500 ms).
const SESSION_MS: u64 = 3000;

type Generator = Arc<Mutex<ClickGen>>;
/// A generator's truth: (ad, second) -> counts.
type PerSecond = BTreeMap<(u64, u64), Truth>;

/// A temp dir for a cluster, on tmpfs where there is one: removing the tens
/// of thousands of part files four servers write took ~100 s on a disk
/// mounted with `discard` (one discard per file), and `kill -9` keeps the
/// page cache on either, so the crashes tested are the same.
fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    builder.tempdir_in("/dev/shm").or_else(|_| builder.tempdir()).expect("creating a temp dir")
}

/// Posts `rounds` requests of 100 generated clicks to `edge`, each until acknowledged.
async fn load(edge: String, key: String, generator: Generator, rounds: usize, done: Arc<AtomicUsize>) {
    let client = Client::new();
    for _ in 0..rounds {
        let events = generator.lock().await.events(100, now_ms());
        post_until_acked(&client, &edge, &key, &events).await;
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Posts to `edge` until `stop` turns true.
async fn load_until(edge: String, key: String, generator: Generator, mut stop: watch::Receiver<bool>) {
    let client = Client::new();
    while !*stop.borrow_and_update() {
        let events = generator.lock().await.events(100, now_ms());
        post_until_acked(&client, &edge, &key, &events).await;
    }
}

async fn wait_rounds(done: &AtomicUsize, at_least: usize) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while done.load(Ordering::Relaxed) < at_least {
        assert!(tokio::time::Instant::now() < deadline, "the load stalled at {} rounds", done.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gauge or unlabelled counter of a `/metrics` page (`None`: not there).
async fn metric(client: &Client, base: &str, name: &str) -> Option<f64> {
    let text = client.get(&format!("{base}/metrics"), None).await.ok()?.text();
    text.lines().find(|l| l.split_whitespace().next() == Some(name)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// What a correct pipeline reports: per (ad, bucket start in seconds) over
/// every generator (their click ids are distinct), at `bucket_secs`.
fn truth_by(generators: &[PerSecond], bucket_secs: u64) -> BTreeMap<(u64, u64), Truth> {
    let mut all: BTreeMap<(u64, u64), Truth> = BTreeMap::new();
    for truth in generators {
        for ((ad, second), t) in truth {
            let sum = all.entry((*ad, second / bucket_secs * bucket_secs)).or_default();
            sum.clicks += t.clicks;
            sum.spend_micros += t.spend_micros;
        }
    }
    all
}

/// (clicks, spend) over every ad and second.
fn totals(truth: &PerSecond) -> (i64, i64) {
    truth.values().fold((0, 0), |(c, s), t| (c + t.clicks as i64, s + t.spend_micros as i64))
}

/// The non-empty points of a series answer, by (ad, bucket start in seconds).
fn points(ad: u64, series: &Value) -> BTreeMap<(u64, u64), Truth> {
    series["points"]
        .as_array()
        .map(|points| {
            points
                .iter()
                .filter(|p| p["clicks"].as_u64().unwrap_or(0) > 0)
                .map(|p| {
                    ((ad, p["t"].as_u64().unwrap() / 1000), Truth { clicks: p["clicks"].as_u64().unwrap(), spend_micros: p["spend_micros"].as_u64().unwrap() })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The running topology and the truth so far.
struct Run {
    pop: Pop,
    cluster: Cluster,
    zk: zookeeper_client::Client,
    edges: Vec<String>,
    key: String,
    read: String,
    ops: String,
    generators: Vec<Generator>,
    from: u64,
}

impl Run {
    fn core(&self, i: usize) -> String {
        format!("http://{}", self.pop.pop.core_http_at(i))
    }

    fn core_log(&self, i: usize) -> PathBuf {
        let name = if i == 0 { "core.log".to_string() } else { format!("{}.log", self.pop.pop.core_name_at(i)) };
        self.pop.pop.state.dir.join(name)
    }

    /// How many group commits core `i`'s log says failed so far (each
    /// answered `Retry`): proof that a fault was met, not avoided.
    fn failed_groups(&self, i: usize) -> usize {
        std::fs::read_to_string(self.core_log(i)).unwrap_or_default().lines().filter(|l| l.contains("group commit failed")).count()
    }

    async fn wait_failed_groups(&self, i: usize, than: usize) {
        wait_until("a group commit failed while a server was down", || async { self.failed_groups(i) > than }).await;
    }

    /// Core `i`'s log lines saying it moved off the server at `url`.
    fn moves_from(&self, i: usize, url: &str) -> Vec<String> {
        let from = format!("from={url} ");
        let log = std::fs::read_to_string(self.core_log(i)).unwrap_or_default();
        log.lines().filter(|l| l.contains("the core now uses another server") && l.contains(&from)).map(String::from).collect()
    }

    /// Which core (by index) holds each edge's lease (`None`: nobody).
    async fn lease_owners(&self) -> Vec<Option<usize>> {
        let mut owners = Vec::new();
        for edge in EDGES {
            owners.push(match self.zk.get_data(&format!("/tally/leases/{edge}")).await {
                Ok((data, _)) => {
                    let name = String::from_utf8(data).unwrap();
                    Some((0..2).find(|&i| self.pop.pop.core_name_at(i) == name).unwrap_or_else(|| panic!("unknown core {name}")))
                }
                Err(zookeeper_client::Error::NoNode) => None,
                Err(e) => panic!("reading the lease of {edge}: {e}"),
            });
        }
        owners
    }

    /// The one core holding both edges' leases.
    async fn owner(&self) -> usize {
        let owners = self.lease_owners().await;
        assert!(owners[0].is_some() && owners[0] == owners[1], "one core serves both edges: {owners:?}");
        owners[0].unwrap()
    }

    /// Both edges under load at once, `rounds` each.
    fn load_both(&self, rounds: usize, done: &Arc<AtomicUsize>) -> Vec<tokio::task::JoinHandle<()>> {
        self.edges.iter().zip(&self.generators).map(|(e, g)| tokio::spawn(load(e.clone(), self.key.clone(), g.clone(), rounds, done.clone()))).collect()
    }

    async fn pending_batches(&self, edge: usize) -> f64 {
        metric(&self.pop.client, &self.edges[edge], "tally_edge_spool_pending_batches").await.expect("an edge's pending batches")
    }

    async fn get(&self, core: usize, token: &str, path: &str) -> (StatusCode, Value) {
        let reply = self.pop.client.get(&format!("{}{path}", self.core(core)), Some(token)).await.expect("asking a core");
        (reply.status, reply.json().unwrap_or_else(|_| Value::String(reply.text())))
    }

    /// Core `core`'s answers over `[from, to)`: billing, then per ad its
    /// series at 1s, 1m and 1h.
    async fn answers(&self, core: usize, to: u64) -> Option<Vec<Value>> {
        let mut all = vec![self.get(core, &self.read, &format!("/v1/billing?from={}&to={to}", self.from)).await];
        for ad in 1..=ADS {
            for step in ["1s", "1m", "1h"] {
                all.push(self.get(core, &self.read, &format!("/v1/ads/{ad}/clicks?from={}&to={to}&step={step}", self.from)).await);
            }
        }
        all.iter().all(|(s, _)| s.is_success()).then(|| all.into_iter().map(|(_, v)| v).collect())
    }

    /// Where `answers` differ from the truth (empty: they equal it).
    fn differences(answers: &[Value], truth: &[PerSecond]) -> Vec<String> {
        let (seconds, minutes) = (truth_by(truth, 1), truth_by(truth, 60));
        let (clicks, spend) = totals(&seconds);
        let mut diff = Vec::new();
        let billed = (answers[0]["total"]["clicks"].as_i64(), answers[0]["total"]["spend_micros"].as_i64());
        if billed != (Some(clicks), Some(spend)) {
            diff.push(format!("billing {billed:?}, truth ({clicks}, {spend})"));
        }
        for ad in 1..=ADS {
            let at = |i: usize| &answers[1 + 3 * (ad as usize - 1) + i];
            let want = |t: &BTreeMap<(u64, u64), Truth>| t.range((ad, 0)..(ad + 1, 0)).map(|(k, v)| (*k, *v)).collect::<BTreeMap<_, _>>();
            for (i, step, truth) in [(0, "1s", &seconds), (1, "1m", &minutes)] {
                let (got, want) = (points(ad, at(i)), want(truth));
                if got != want {
                    let wrong = want.iter().filter(|(k, v)| got.get(k) != Some(v)).count() + got.keys().filter(|k| !want.contains_key(k)).count();
                    diff.push(format!("ad {ad} at {step}: {wrong} of {} points differ", want.len()));
                }
            }
            let total = want(&seconds).values().map(|t| t.clicks).sum::<u64>();
            if at(2)["total"]["clicks"].as_u64() != Some(total) {
                diff.push(format!("ad {ad} at 1h: {} clicks, truth {total}", at(2)["total"]["clicks"]));
            }
        }
        diff
    }

    /// Both cores answer billing and every series with the truth, and the
    /// same bytes; then every server, asked directly, holds the same totals
    /// and no row twice, each shard a share, both its replicas alike.
    async fn converge(&self) {
        let mut truth = Vec::new();
        for g in &self.generators {
            truth.push(g.lock().await.truth.clone());
        }
        let to = now_ms() + 60_000;
        let deadline = tokio::time::Instant::now() + CONVERGE;
        let mut first = None;
        for core in 0..2 {
            loop {
                let diff = match self.answers(core, to).await {
                    Some(answers) => {
                        let diff = Self::differences(&answers, &truth);
                        if diff.is_empty() {
                            first.get_or_insert(answers.clone());
                            assert_eq!(first.as_ref(), Some(&answers), "core-1 and core-2 answer differently");
                            break;
                        }
                        diff
                    }
                    None => vec!["a query failed".into()],
                };
                assert!(tokio::time::Instant::now() < deadline, "core-{} did not converge to the truth: {diff:?}", core + 1);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let (clicks, spend) = totals(&truth_by(&truth, 1));
        let sql = "SELECT sum(clicks), sum(spend_micros), \
                   (SELECT count() - uniqExact(edge, batch_seq, row_idx) FROM tally.clicks_by_second), \
                   (SELECT count() FROM tally.click_records), \
                   (SELECT count() - uniqExact(edge, batch_seq, row_idx) FROM tally.click_records) \
                   FROM tally.clicks_by_second FORMAT TSV";
        let client = &self.pop.client;
        let mut answers = Vec::new();
        for url in self.cluster.urls() {
            let reply = client.send(http::Method::POST, &format!("{url}/?select_sequential_consistency=1"), None, None, sql).await.expect("asking a server");
            assert!(reply.status.is_success(), "{url}: {}", reply.text());
            answers.push(reply.text());
        }
        let fields: Vec<i64> = answers[0].split_whitespace().map(|f| f.parse().unwrap()).collect();
        assert_eq!(fields[..3], [clicks, spend, 0], "landing totals (clicks, spend, rows stored twice) through the cluster");
        assert_eq!(fields[4], 0, "click records stored twice");
        assert!(fields[3] >= clicks, "every counted click has its record");
        assert!(answers.iter().all(|a| a == &answers[0]), "servers disagree: {answers:?}");
        let mut local = Vec::new();
        for url in self.cluster.urls() {
            let reply = client
                .send(http::Method::POST, &format!("{url}/"), None, None, "SELECT count() FROM tally_shard.click_records FORMAT TSV")
                .await
                .expect("asking a server");
            local.push(reply.text().trim().parse::<i64>().unwrap());
        }
        let replicas = self.cluster.replicas();
        let shards: Vec<i64> = local.chunks(replicas).map(|r| r[0]).collect();
        assert!(local.chunks(replicas).all(|r| r.iter().all(|n| *n == r[0])), "replicas differ: {local:?}");
        assert!(shards.iter().all(|n| *n > 0) && shards.iter().sum::<i64>() == fields[3], "click records per shard {shards:?}, {} in all", fields[3]);
    }

    /// Edge `id` as core `core`'s `GET /v1/edges` shows it, and its answer.
    async fn edge_on(&self, core: usize, id: &str) -> (Value, Value) {
        let (status, all) = self.get(core, &self.ops, "/v1/edges").await;
        assert_eq!(status, StatusCode::OK, "core-{}: {all}", core + 1);
        let edge = all["edges"].as_array().and_then(|e| e.iter().find(|e| e["edge"] == id)).cloned().unwrap_or(Value::Null);
        (edge, all)
    }

    /// Polls both cores until `done` holds for edge `id` on each.
    async fn wait_edge(&self, id: &str, what: &str, done: impl Fn(usize, &Value) -> bool) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let (one, two) = (self.edge_on(0, id).await.0, self.edge_on(1, id).await.0);
            if done(0, &one) && done(1, &two) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "never: {what} (core-1 {one}, core-2 {two})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn retire(&self, core: usize, id: &str) -> (StatusCode, String) {
        let r = self.pop.client.post_json(&format!("{}/v1/edges/{id}/retire", self.core(core)), Some(&self.ops), "").await.unwrap();
        (r.status, r.text())
    }

    /// The edges each core's billing names as holding back each hour of the
    /// run that is not final.
    async fn held_back_by(&self, core: usize) -> Vec<Value> {
        let (status, v) = self.get(core, &self.read, &format!("/v1/billing?from={}&to={}", self.from, now_ms())).await;
        assert!(status.is_success(), "{v}");
        v["hours"].as_array().unwrap().iter().filter(|h| h["final"] == false).map(|h| h["held_back_by"].clone()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_on_the_cluster_through_crashes_outages_a_failover_and_a_retirement() {
    let started = Instant::now();
    let dir = scratch_dir("tally-cluster-");
    let cluster = Cluster::start(dir.path(), 2, 2).await.expect("starting ZooKeeper and 2 x 2 ClickHouse servers");
    let urls = cluster.urls();
    let settings = EdgeSettings { ship_interval_ms: 200, heartbeat_ms: 1000, ..EdgeSettings::default() };
    let mut pop = harness::start_on(&["acme"], settings, Some(urls[0].clone()), Some((cluster.name().into(), urls[1..].to_vec()))).await;
    let (_, second_edge) = pop.pop.add_edge(EDGES[1]).await.expect("starting a second edge");
    let zookeeper = cluster.zookeeper.connect_string();
    pop.pop.add_cores(&zookeeper, SESSION_MS, 2).await.expect("starting a second core with leases");
    let zk = zookeeper_client::Client::connect(&zookeeper).await.expect("a ZooKeeper client for the test");
    let generators = [10, 11]
        .into_iter()
        .map(|seed| {
            Arc::new(Mutex::new(ClickGen::new(GenOptions {
                seed,
                ads: ADS,
                hot_share: 0.5,
                duplicate_share: 0.05,
                jitter_ms: 20_000,
                ..GenOptions::default()
            })))
        })
        .collect();
    let (key, read, ops) = (pop.ingest_key(0), pop.read_key(0), pop.pop.ops_token().to_string());
    let edges = vec![pop.pop.state.edge_http.clone(), second_edge];
    let mut run = Run { pop, cluster, zk, edges, key, read, ops, generators, from: now_ms() - 120_000 };
    let client = run.pop.client.clone();
    let mut phase = Instant::now();
    let mut lap = |what: &str| println!("cluster: {what} in {} ms", std::mem::replace(&mut phase, Instant::now()).elapsed().as_millis());
    lap(&format!("topology up (started {} ms ago)", started.elapsed().as_millis()));

    // 1. Steady traffic: both edges ship to the first core in their list,
    // which takes their leases.
    let done = Arc::new(AtomicUsize::new(0));
    for h in run.load_both(8, &done) {
        h.await.unwrap();
    }
    run.converge().await;
    lap("steady");

    // 2. The server the lease holder inserts to (a replica of shard 1) dies
    // during inserts: the core moves to another server; the replica comes
    // back after a commit has met its absence (a quorum insert failed).
    let owner = run.owner().await;
    let failed = run.failed_groups(owner);
    let done = Arc::new(AtomicUsize::new(0));
    let loaders = run.load_both(15, &done);
    wait_rounds(&done, 6).await;
    assert_eq!(run.moves_from(owner, &urls[0]), Vec::<String>::new(), "core-{} started on {}", owner + 1, urls[0]);
    run.cluster.server(0, 0).kill().await;
    run.wait_failed_groups(owner, failed).await;
    wait_until("the core moves off the killed server", || async { !run.moves_from(owner, &urls[0]).is_empty() }).await;
    run.cluster.server(0, 0).restart().await.expect("restarting the killed replica");
    for h in loaders {
        h.await.unwrap();
    }
    run.converge().await;
    println!("cluster: {}", run.moves_from(owner, &urls[0]).join("\ncluster: "));
    lap("replica kill -9");

    // 3. Shard 2 is unreachable for a while (both its replicas `kill -9`ed):
    // the edges keep acknowledging clicks (durable on their disks) and hold
    // their batches until it is back.
    let failed = run.failed_groups(owner);
    run.cluster.server(1, 0).kill().await;
    run.cluster.server(1, 1).kill().await;
    let done = Arc::new(AtomicUsize::new(0));
    for h in run.load_both(5, &done) {
        h.await.unwrap();
    }
    for edge in 0..2 {
        wait_until("an edge holds its batches while a shard is down", || async { run.pending_batches(edge).await > 0.0 }).await;
    }
    run.wait_failed_groups(owner, failed).await;
    run.cluster.start_shard(1).await.expect("starting shard 2 again");
    run.converge().await;
    lap("shard outage");

    // 4. kill -9 of the core holding the edges' leases while traffic flows:
    // the edges move to the other core; the killed one restarts (on no lease).
    let owner = run.owner().await;
    let survivor = 1 - owner;
    let survivor_api = run.core(survivor);
    let committed = || {
        let (client, base) = (client.clone(), survivor_api.clone());
        async move { metric(&client, &base, "tally_core_batches_committed_total").await.unwrap_or(0.0) }
    };
    let before = committed().await;
    let done = Arc::new(AtomicUsize::new(0));
    let loaders = run.load_both(15, &done);
    wait_rounds(&done, 6).await;
    run.pop.pop.kill_core_at(owner).await;
    let killed = Instant::now();
    wait_until("both edges commit on the surviving core", || async { run.lease_owners().await == [Some(survivor); 2] && committed().await >= before + 2.0 })
        .await;
    println!(
        "cluster: failover: {} ms from kill -9 of core-{} to both edges' leases on core-{} and its first commits (ZooKeeper session timeout {SESSION_MS} ms)",
        killed.elapsed().as_millis(),
        owner + 1,
        survivor + 1
    );
    for h in loaders {
        h.await.unwrap();
    }
    run.pop.pop.restart_core_at(owner).await.expect("restarting the killed core");
    run.converge().await;
    assert!(metric(&client, &run.core(survivor), "tally_core_lease_takeovers_total").await.unwrap_or(0.0) >= 2.0);
    lap("core kill -9");

    // 5. A short ZooKeeper outage under traffic: the core stops committing as
    // soon as its session is disconnected (no lease can be confirmed, and the
    // replicas take no quorum writes); edges hold their batches; once it is
    // back everything is committed once.
    let owner = run.owner().await;
    run.cluster.zookeeper.stop().await;
    wait_until("the core drops its leases when ZooKeeper is gone", || async { metric(&client, &run.core(owner), "tally_core_leases_held").await == Some(0.0) })
        .await;
    let done = Arc::new(AtomicUsize::new(0));
    for h in run.load_both(4, &done) {
        h.await.unwrap();
    }
    for edge in 0..2 {
        wait_until("an edge holds its batches while ZooKeeper is away", || async { run.pending_batches(edge).await > 0.0 }).await;
    }
    run.cluster.zookeeper.start_again().await.expect("starting ZooKeeper again");
    run.zk = zookeeper_client::Client::connect(&zookeeper).await.expect("a ZooKeeper client for the test, again");
    run.converge().await;
    lap("ZooKeeper outage");

    // 6. Edge 2 is retired while traffic flows on edge 1. It ships its last
    // clicks; retiring it while it is connected is refused; it stops
    // (shipping what it holds); through the core that does not hold its
    // lease the retirement is refused, through the owner it goes ahead.
    let (stop, stopped) = watch::channel(false);
    let traffic = tokio::spawn(load_until(run.edges[0].clone(), run.key.clone(), run.generators[0].clone(), stopped));
    load(run.edges[1].clone(), run.key.clone(), run.generators[1].clone(), 3, Arc::new(AtomicUsize::new(0))).await;
    let owner = run.lease_owners().await[1].expect("a core holds edge 2's lease");
    let (other, owner_name) = (1 - owner, run.pop.pop.core_name_at(owner).to_string());
    let (status, text) = run.retire(owner, EDGES[1]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("is connected to this core"), "{text}");
    run.pop.pop.stop_edge(1).await;
    lap("edge 2 stopped");
    run.wait_edge(EDGES[1], "the stopped edge is drained and still leased", |_, e| {
        e["connected"] == false && e["owning_core"] == owner_name.as_str() && e["uncommitted_batches"] == 0
    })
    .await;
    for core in 0..2 {
        let held = run.held_back_by(core).await;
        assert!(!held.is_empty() && held.iter().all(|h| h.as_array().is_some_and(|e| e.contains(&EDGES[1].into()))), "core-{}: {held:?}", core + 1);
    }
    let (status, text) = run.retire(other, EDGES[1]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains(&format!("served by core {owner_name}")), "{text}");
    let (status, text) = run.retire(owner, EDGES[1]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    run.wait_edge(EDGES[1], "both cores see it retired", |_, e| e["retired"] == true && e["holds_finality"] == false).await;
    for core in 0..2 {
        let only_edge_1 = Value::from(vec![EDGES[0]]);
        wait_until("billing no longer names the retired edge", || async { run.held_back_by(core).await.iter().all(|h| *h == only_edge_1) }).await;
    }
    lap("edge 2 retired");
    stop.send(true).unwrap();
    traffic.await.unwrap();
    run.converge().await;
    lap("converged after the retirement");

    // A core that stops gracefully gives its leases up before it exits (its
    // edges need not wait for the session timeout).
    run.pop.pop.stop_edge(0).await;
    let owner = run.lease_owners().await[0].expect("a core holds edge 1's lease");
    run.pop.pop.stop_core_at(owner).await;
    let left = run.lease_owners().await;
    assert!(left.iter().all(|o| *o != Some(owner)), "core-{} exited holding leases: {left:?}", owner + 1);
    println!("cluster: all phases in {} ms", started.elapsed().as_millis());

    let Run { pop, mut cluster, zk, .. } = run;
    drop(zk);
    // Everything is checked: no need to wait for graceful exits (an 18.16
    // replica can take its whole grace to stop).
    pop.pop.stop().await;
    for (shard, replica) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        cluster.server(shard, replica).kill().await;
    }
    cluster.zookeeper.kill().await;
}

/// The cluster schema is the single-node schema's end state: every table of
/// a single-node install has a shard-local table and a Distributed table
/// with the same columns (names, types, order), every view its counterpart,
/// and nothing more. A migration added without its cluster counterpart
/// fails here. Then the SQL check runs every query file through the
/// cluster's Distributed tables on 18.16 (`check_modern.py --cluster`; its
/// chdb run in the test command covers the modern engine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_schema_matches_the_single_node_schema_and_passes_the_sql_check() {
    let dir = scratch_dir("tally-cluster-schema-");
    let mut cluster = Cluster::start(&dir.path().join("cluster"), 2, 1).await.expect("starting ZooKeeper and two ClickHouse servers");
    let mut single = PrivateServer::start(&dir.path().join("single")).await.expect("starting a single ClickHouse");
    Store::connect(&single.http_url(), None, None).await.unwrap().migrate().await.expect("single-node migrations");
    let url = cluster.urls()[0].clone();
    // A server down when the schema is applied does not stop it: it gets the
    // schema once it is back (the core's start does the same).
    cluster.server(1, 0).stop().await;
    migrate_every_server(&cluster.urls(), None, None, cluster.name()).await.expect("cluster schema on the server that is up");
    cluster.server(1, 0).restart().await.expect("restarting the second server");
    let client = Client::new();
    let ask = |url: String, sql: String| {
        let client = client.clone();
        async move {
            let reply = client.send(http::Method::POST, &format!("{url}/"), None, None, sql).await.expect("asking a server");
            assert!(reply.status.is_success(), "{}", reply.text());
            reply.text()
        }
    };
    let columns = |db: &str| {
        // 18.16's system.columns has no position: it lists a table's columns in order, which groupArray keeps.
        format!("SELECT table, groupArray(concat(name, ' ', type)) FROM system.columns WHERE database = '{db}' AND table != 'schema_migrations' AND table NOT LIKE '%\\_mv' GROUP BY table ORDER BY table FORMAT TSV")
    };
    let views = |db: &str| format!("SELECT name FROM system.tables WHERE database = '{db}' AND engine = 'MaterializedView' ORDER BY name FORMAT TSV");
    let want = ask(single.http_url(), columns("tally")).await;
    assert!(want.lines().count() > 20, "the single-node schema has its tables: {want}");
    // The Distributed tables come last: once they are all there, so is the rest.
    let late = cluster.urls()[1].clone();
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while ask(late.clone(), columns("tally")).await != want {
        assert!(tokio::time::Instant::now() < deadline, "the schema never reached the server that was down when it was applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ask(late.clone(), columns("tally_shard")).await, want, "shard-local tables of the server that was down");
    assert_eq!(ask(url.clone(), columns("tally_shard")).await, want, "shard-local tables differ from the single-node tables");
    assert_eq!(ask(url.clone(), columns("tally")).await, want, "Distributed tables differ from the single-node tables");
    assert_eq!(ask(url.clone(), views("tally_shard")).await, ask(single.http_url(), views("tally")).await, "materialized views differ");
    let engines =
        ask(url.clone(), "SELECT DISTINCT engine FROM system.tables WHERE database = 'tally' AND name != 'schema_migrations' FORMAT TSV".into()).await;
    assert_eq!(engines.trim(), "Distributed");
    single.stop().await;

    let port = |url: &str| url.rsplit(':').next().unwrap().to_string();
    let urls = cluster.urls();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/clickhouse/check_modern.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--cluster", cluster.name(), "--reset", "--http-port", &port(&urls[0]), "--member-http-ports"])
        .arg(urls[1..].iter().map(|u| port(u)).collect::<Vec<_>>().join(","))
        .output()
        .await
        .unwrap();
    cluster.stop().await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("statements ok"), "{text}");
}
