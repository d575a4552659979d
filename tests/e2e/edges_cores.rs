//! Edges and several cores (issue 10 items 3 and 4): two cores on one
//! ClickHouse with edge leases in ZooKeeper. `GET /v1/edges` names the core
//! holding each edge's lease on every core; a retirement through a core that
//! does not hold the lease is refused (another core serves the edge, and
//! only it knows whether the edge is still connected), through the owner it
//! waits for the edge to stop, as on one core.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use tally::pop::EdgeSettings;
use tally::traffic::now_ms;
use tally::zookeeper::ZooKeeper;

use crate::harness::{self, post_until_acked, Pop, CONVERGE};

const EDGE: &str = "local-edge-1";

async fn edge_on(pop: &Pop, core: usize, ops: &str) -> Value {
    let r = pop.client.get(&format!("http://{}/v1/edges", pop.pop.core_http_at(core)), Some(ops)).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "core-{}: {}", core + 1, r.text());
    let all = r.json().unwrap();
    all["edges"].as_array().and_then(|e| e.iter().find(|e| e["edge"] == EDGE)).cloned().unwrap_or(Value::Null)
}

/// Polls both cores until `done` holds for the edge on each.
async fn wait_both(pop: &Pop, ops: &str, what: &str, done: impl Fn(usize, &Value) -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let (one, two) = (edge_on(pop, 0, ops).await, edge_on(pop, 1, ops).await);
        if done(0, &one) && done(1, &two) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what} (core-1 {one}, core-2 {two})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn retire(pop: &Pop, core: usize, ops: &str) -> (StatusCode, String) {
    let r = pop.client.post_json(&format!("http://{}/v1/edges/{EDGE}/retire", pop.pop.core_http_at(core)), Some(ops), "").await.unwrap();
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_name_their_owning_core_and_retire_goes_through_it() {
    let dir = tempfile::Builder::new().prefix("tally-edges-cores-").tempdir().unwrap();
    let mut zookeeper = ZooKeeper::start(&dir.path().join("zookeeper")).await.expect("starting ZooKeeper");
    let mut pop = harness::start_with(&["acme"], EdgeSettings { ship_interval_ms: 200, ..EdgeSettings::default() }).await;
    pop.pop.add_cores(&zookeeper.connect_string(), 3000, 2).await.expect("starting a second core with leases");
    let ops = pop.pop.ops_token().to_string();

    // The edge ships to the first core in its list, which takes its lease.
    let events = [format!(r#"{{"click_id":"c-1","ad_id":3,"ts":{}}}"#, now_ms())];
    post_until_acked(&pop.client, &pop.pop.state.edge_http, &pop.ingest_key(0), &events).await;
    wait_both(&pop, &ops, "both cores name core-1 as the edge's owner", |core, e| e["owning_core"] == "core-1" && e["connected"] == (core == 0)).await;

    // Through core 2: another core serves the edge.
    let (status, text) = retire(&pop, 1, &ops).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("served by core core-1"), "{text}");
    // Through core 1: it is still connected there.
    let (status, text) = retire(&pop, 0, &ops).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("is connected to this core"), "{text}");

    // Stopped, the edge is drained; core 1 keeps its lease while it runs,
    // so core 2 still sends the operator to core 1, which retires it.
    pop.pop.stop_edge(0).await;
    wait_both(&pop, &ops, "the stopped edge is no longer connected", |_, e| e["connected"] == false && e["owning_core"] == "core-1").await;
    let (status, text) = retire(&pop, 1, &ops).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    let (status, text) = retire(&pop, 0, &ops).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    wait_both(&pop, &ops, "both cores see it retired", |_, e| e["retired"] == true).await;

    pop.pop.stop().await;
    zookeeper.stop().await;
}
