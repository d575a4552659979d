//! Tally on a real ClickHouse cluster: ZooKeeper, 2 shards x 2 replicas of
//! 18.16 (`tally::cluster`), a core in cluster mode and an edge, against the
//! generator's exact truth. One test, three phases on the same cluster (a
//! cluster takes a while to start): steady traffic; the replica the core
//! uses `kill -9`ed while the core inserts (the core moves to another
//! server), restarted later; a whole shard stopped while
//! traffic flows (the edge holds its batches), started again. After each
//! phase billing and the per-second counts equal the truth, the minute
//! rollups too (healed where a failed quorum insert left its views unfired),
//! and every server answers the same with no row stored twice. A second
//! test compares the cluster schema's columns with a single-node install.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tally::cluster::Cluster;
use tally::pop::EdgeSettings;
use tally::traffic::{now_ms, ClickGen, GenOptions};
use tally_core::clickhouse::cluster::migrate_every_server;
use tally_core::clickhouse::private_server::PrivateServer;
use tally_core::clickhouse::Store;
use tally_http::client::Client;
use tokio::sync::Mutex;

use crate::harness::{self, post_until_acked, truth_total, wait_for_billing, Pop, CONVERGE};

const ADS: u64 = 6;

/// Posts `rounds` requests of 100 generated clicks, each until acknowledged.
async fn load(edge: String, key: String, generator: Arc<Mutex<ClickGen>>, rounds: usize, done: Arc<AtomicUsize>) {
    let client = Client::new();
    for _ in 0..rounds {
        let events = generator.lock().await.events(100, now_ms());
        post_until_acked(&client, &edge, &key, &events).await;
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many group commits the core's log says failed so far (each answered
/// `Retry`): proof that a fault was met, not avoided.
fn failed_groups(pop: &Pop) -> usize {
    let log = std::fs::read_to_string(pop.pop.state.dir.join("core.log")).unwrap_or_default();
    log.lines().filter(|l| l.contains("group commit failed")).count()
}

/// Waits until more than `than` group commits have failed.
async fn wait_failed_groups(pop: &Pop, than: usize) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while failed_groups(pop) <= than {
        assert!(tokio::time::Instant::now() < deadline, "no group commit failed while a server was down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The core log's lines saying it moved off the server at `url`.
fn moves_from(pop: &Pop, url: &str) -> Vec<String> {
    let log = std::fs::read_to_string(pop.pop.state.dir.join("core.log")).unwrap_or_default();
    let from = format!("from={url} ");
    log.lines().filter(|l| l.contains("the core now uses another server") && l.contains(&from)).map(String::from).collect()
}

/// Waits until the core's clients have left the server at `url`.
async fn wait_move_from(pop: &Pop, url: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while moves_from(pop, url).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the core did not move off the killed server {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_rounds(done: &AtomicUsize, at_least: usize) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while done.load(Ordering::Relaxed) < at_least {
        assert!(tokio::time::Instant::now() < deadline, "the load stalled at {} rounds", done.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until every ad's total at `step` equals the truth.
async fn wait_for_step(pop: &Pop, key: &str, truth: &ClickGen, from: u64, to: u64, step: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let mut diff = Vec::new();
        for ad in 1..=ADS {
            let got = pop.series(key, ad, from, to, step).await["total"]["clicks"].as_u64().unwrap();
            if got != truth.ad_total(ad).clicks {
                diff.push((ad, got, truth.ad_total(ad).clicks));
            }
        }
        if diff.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{step} counts did not converge; (ad, got, want): {diff:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Billing, per-second counts and minute rollups equal the truth through
/// the core; then every server, asked directly, gives the same totals and
/// holds no row twice.
async fn converge(pop: &Pop, cluster: &Cluster, generator: &ClickGen, from: u64, to: u64) {
    let key = pop.read_key(0);
    wait_for_billing(pop, &key, from, to, truth_total(generator)).await;
    wait_for_step(pop, &key, generator, from, to, "1s").await;
    wait_for_step(pop, &key, generator, from, to, "1m").await;
    let (clicks, spend) = truth_total(generator);
    let sql = "SELECT sum(clicks), sum(spend_micros), \
               (SELECT count() - uniqExact(edge, batch_seq, row_idx) FROM tally.clicks_by_second), \
               (SELECT count() FROM tally.click_records), \
               (SELECT count() - uniqExact(edge, batch_seq, row_idx) FROM tally.click_records) \
               FROM tally.clicks_by_second FORMAT TSV";
    let client = Client::new();
    let mut answers = Vec::new();
    for url in cluster.urls() {
        let reply = client.send(http::Method::POST, &format!("{url}/?select_sequential_consistency=1"), None, None, sql).await.expect("asking a server");
        assert!(reply.status.is_success(), "{url}: {}", reply.text());
        answers.push(reply.text());
    }
    let fields: Vec<i64> = answers[0].split_whitespace().map(|f| f.parse().unwrap()).collect();
    assert_eq!(fields[..3], [clicks, spend, 0], "landing totals (clicks, spend, rows stored twice) through the cluster");
    assert_eq!(fields[4], 0, "click records stored twice");
    assert!(fields[3] >= clicks, "every counted click has its record");
    assert!(answers.iter().all(|a| a == &answers[0]), "servers disagree: {answers:?}");
    // Each shard holds a share, the same on both its replicas.
    let mut local = Vec::new();
    for url in cluster.urls() {
        let reply = client
            .send(http::Method::POST, &format!("{url}/"), None, None, "SELECT count() FROM tally_shard.click_records FORMAT TSV")
            .await
            .expect("asking a server");
        local.push(reply.text().trim().parse::<i64>().unwrap());
    }
    let shards: Vec<i64> = local.chunks(cluster.replicas()).map(|replicas| replicas[0]).collect();
    assert!(local.chunks(cluster.replicas()).all(|r| r.iter().all(|n| *n == r[0])), "replicas differ: {local:?}");
    assert!(shards.iter().all(|n| *n > 0) && shards.iter().sum::<i64>() == fields[3], "click records per shard {shards:?}, {} in all", fields[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_a_replica_crash_and_a_shard_outage() {
    let dir = tempfile::Builder::new().prefix("tally-cluster-").tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 2, 2).await.expect("starting ZooKeeper and 2 x 2 ClickHouse servers");
    let urls = cluster.urls();
    let pop = harness::start_on(
        &["acme"],
        EdgeSettings { ship_interval_ms: 200, heartbeat_ms: 1000, ..EdgeSettings::default() },
        Some(urls[0].clone()),
        Some((cluster.name().into(), urls[1..].to_vec())),
    )
    .await;
    let (edge, key) = (pop.pop.state.edge_http.clone(), pop.ingest_key(0));
    let generator = Arc::new(Mutex::new(ClickGen::new(GenOptions {
        seed: 10,
        ads: ADS,
        hot_share: 0.5,
        duplicate_share: 0.05,
        jitter_ms: 20_000,
        ..GenOptions::default()
    })));
    let from = now_ms() - 120_000;
    let until = || now_ms() + 60_000;

    // Steady traffic.
    let done = Arc::new(AtomicUsize::new(0));
    load(edge.clone(), key.clone(), generator.clone(), 10, done.clone()).await;
    converge(&pop, &cluster, &*generator.lock().await, from, until()).await;

    // The server the core uses (a replica of shard 1) dies while the core
    // inserts: the core moves to another server, and the replica comes back.
    let done = Arc::new(AtomicUsize::new(0));
    let loader = tokio::spawn(load(edge.clone(), key.clone(), generator.clone(), 20, done.clone()));
    wait_rounds(&done, 5).await;
    assert_eq!(moves_from(&pop, &urls[0]), Vec::<String>::new(), "the core started on {}", urls[0]);
    cluster.server(0, 0).kill().await;
    // Down until a commit has met it (a quorum insert times out), so the
    // phase tests the failure, not a replica that was back in time.
    wait_failed_groups(&pop, 0).await;
    wait_move_from(&pop, &urls[0]).await;
    cluster.server(0, 0).restart().await.expect("restarting the killed replica");
    loader.await.unwrap();
    converge(&pop, &cluster, &*generator.lock().await, from, until()).await;
    let failed = failed_groups(&pop);
    println!("cluster: {}", moves_from(&pop, &urls[0]).join("\ncluster: "));

    // Shard 2 is unreachable for a while: the edge keeps acknowledging clicks
    // (durable on its disk) and holds its batches until the shard is back.
    let done = Arc::new(AtomicUsize::new(0));
    cluster.stop_shard(1).await;
    load(edge.clone(), key.clone(), generator.clone(), 10, done.clone()).await;
    let metrics = pop.client.get(&format!("{edge}/metrics"), None).await.unwrap().text();
    let pending = metrics.lines().find(|l| l.starts_with("tally_edge_spool_pending_batches ")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    assert!(pending.is_some_and(|n| n > 0.0), "the edge should hold batches while a shard is down: {pending:?}");
    wait_failed_groups(&pop, failed).await;
    cluster.start_shard(1).await.expect("starting shard 2 again");
    converge(&pop, &cluster, &*generator.lock().await, from, until()).await;
    println!("cluster: {failed} group commits failed while a replica was down, {} while a shard was", failed_groups(&pop) - failed);

    drop(pop);
    cluster.stop().await;
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
    let dir = tempfile::Builder::new().prefix("tally-cluster-schema-").tempdir().unwrap();
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
