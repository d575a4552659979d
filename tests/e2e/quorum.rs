//! `[clickhouse] insert_quorum` below all replicas: on one shard of three
//! replicas with a quorum of two, commits go on while one replica is
//! killed (`kill -9`), and every click counts once. (With the default,
//! every replica, the shard takes no writes until it is back: see
//! `cluster.rs`.)

use std::time::Duration;

use tally::cluster::Cluster;
use tally::pop::EdgeSettings;
use tally::traffic::{now_ms, ClickGen, GenOptions};
use tally_core::clickhouse::cluster::InsertQuorum;
use tally_core::config::CoreConfig;

use crate::harness::{self, post_until_acked, truth_total, wait_for_billing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_of_two_of_three_replicas_keeps_writing_with_one_down() {
    let dir = tempfile::Builder::new().prefix("tally-e2e-quorum-").tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 1, 3).await.expect("starting ZooKeeper and 1 x 3 ClickHouse servers");
    let urls = cluster.urls();
    let mut p = harness::start_on(&["acme"], EdgeSettings::default(), Some(urls[0].clone()), Some((cluster.name().into(), urls[1..].to_vec()))).await;
    let config_path = p.pop.state.dir.join("core.toml");
    let mut config = CoreConfig::load(&config_path).unwrap();
    config.clickhouse.insert_quorum = InsertQuorum::Replicas(2);
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    p.pop.restart_core().await.unwrap();
    let log = std::fs::read_to_string(p.pop.state.dir.join("core.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("quorum inserts through Distributed tables") && l.contains("quorum=2")), "core log:\n{log}");

    let start = now_ms() - 60_000;
    let mut gen = ClickGen::new(GenOptions { seed: 131, ads: 8, duplicate_share: 0.05, jitter_ms: 20_000, ..GenOptions::default() });
    let (edge, key, read) = (p.pop.state.edge_http.clone(), p.ingest_key(0), p.read_key(0));
    for _ in 0..5 {
        post_until_acked(&p.client, &edge, &key, &gen.events(100, now_ms())).await;
    }
    // One replica (not the one the core uses) gone for the rest of the
    // traffic: a quorum of two still confirms every INSERT.
    cluster.server(0, 2).kill().await;
    for _ in 0..10 {
        post_until_acked(&p.client, &edge, &key, &gen.events(100, now_ms())).await;
    }
    let end = now_ms() + 60_000;
    wait_for_billing(&p, &read, start, end, truth_total(&gen)).await;
    p.wait_for_totals(&read, &gen, &(1..=8).collect::<Vec<u64>>(), start, end).await;
    // The killed replica is still down: all of it was committed without it.
    let sql = "SELECT (SELECT count() - uniqExact(edge, batch_seq, row_idx) FROM tally.clicks_by_second), \
               (SELECT count() - uniqExact(edge, batch_seq, row_idx) FROM tally.click_records), \
               (SELECT sum(clicks) FROM tally.clicks_by_second) FORMAT TSV";
    let mut answers = Vec::new();
    for url in &urls[..2] {
        let reply = p.client.send(http::Method::POST, &format!("{url}/?select_sequential_consistency=1"), None, None, sql).await.expect("asking a replica");
        assert!(reply.status.is_success(), "{url}: {}", reply.text());
        answers.push(reply.text());
    }
    let clicks = truth_total(&gen).0.to_string();
    assert_eq!(answers[0].split_whitespace().collect::<Vec<_>>(), ["0", "0", clicks.as_str()], "rows stored twice (landing, click records), clicks");
    assert_eq!(answers[0], answers[1], "the two live replicas disagree");
    p.pop.stop_within(Duration::from_secs(5), |_| {}).await;
    cluster.stop().await;
}
