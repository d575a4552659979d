//! Dedup across tenants and restarts: one tenant's flood of unique ids
//! never makes another tenant's retries count twice, and a restarted edge
//! still knows the clicks it acknowledged, from its dedup snapshots, after
//! the WAL holding them is gone.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use tally::pop::EdgeSettings;
use tally::traffic::{json_array, now_ms};

use crate::harness::{self, Pop, CONVERGE};

fn clicks(prefix: &str, ad: u64, n: usize, ts: u64) -> Vec<String> {
    (0..n).map(|i| format!(r#"{{"click_id":"{prefix}-{i}","ad_id":{ad},"ts":{ts}}}"#)).collect()
}

/// Posts and returns (accepted, duplicates); the request must succeed.
async fn post(pop: &Pop, tenant: usize, events: &[String]) -> (u64, u64) {
    let reply = pop.post(&pop.ingest_key(tenant), "application/json", json_array(events)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let v: Value = reply.json().unwrap();
    (v["accepted"].as_u64().unwrap(), v["duplicates"].as_u64().unwrap())
}

/// The value of the edge's metric line `name{tenant="..."}`, once it is
/// published (the dedup metrics are refreshed off the request path).
async fn tenant_metric(pop: &Pop, name: &str, tenant: &str, done: impl Fn(f64) -> bool) -> f64 {
    let series = format!("{name}{{tenant=\"{tenant}\"}} ");
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let text = pop.client.get(&format!("{}/metrics", pop.pop.state.edge_http), None).await.unwrap().text();
        let value = text.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse::<f64>().ok());
        if let Some(v) = value.filter(|v| done(*v)) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{series}never satisfied the test; last {value:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_flooding_unique_ids_never_evicts_another_tenants_keys() {
    let share = 100;
    let pop = harness::start_with(&["acme", "globex"], EdgeSettings { dedup_max_entries_per_tenant: Some(share), ..EdgeSettings::default() }).await;
    let now = now_ms();
    let acme = clicks("acme", 11, 50, now);
    assert_eq!(post(&pop, 0, &acme).await, (50, 0));

    // globex sends ten times its share of unique ids.
    let flood = clicks("flood", 12, 10 * share, now);
    for part in flood.chunks(250) {
        assert_eq!(post(&pop, 1, part).await, (250, 0));
    }

    // acme's retry is still recognised, click for click.
    assert_eq!(post(&pop, 0, &acme).await, (0, 50));
    // The flood evicted only globex's own oldest keys: its retry of them counts again.
    assert_eq!(post(&pop, 1, &flood[..250]).await, (250, 0));

    let from = now - 60_000;
    let to = now + 60_000;
    pop.wait_for_series(&pop.read_key(0), 11, from, to, "1s", 50).await;
    let evicted = tenant_metric(&pop, "tally_edge_dedup_tenant_evicted_early_total", "globex", |v| v > 0.0).await;
    assert!(evicted >= (9 * share) as f64, "globex evicted {evicted}");
    tenant_metric(&pop, "tally_edge_dedup_horizon_seconds", "globex", |v| v < 3600.0).await;
    tenant_metric(&pop, "tally_edge_dedup_tenant_evicted_early_total", "acme", |v| v == 0.0).await;
    tenant_metric(&pop, "tally_edge_dedup_horizon_seconds", "acme", |v| v == 3600.0).await;
    tenant_metric(&pop, "tally_edge_dedup_tenant_entries", "globex", |v| v <= share as f64).await;
    let log = pop.pop.state.dir.join("local-edge-1.log");
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !std::fs::read_to_string(&log).unwrap().lines().any(|l| l.contains("dedup covers less than its horizon") && l.contains("globex")) {
        assert!(tokio::time::Instant::now() < deadline, "no log line about globex's short horizon in {}", log.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pop.pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edge_remembers_acknowledged_clicks_without_their_wal() {
    let mut pop = harness::start(&["acme", "globex"]).await;
    let now = now_ms();
    let sent = clicks("before-restart", 21, 40, now);
    assert_eq!(post(&pop, 0, &sent).await, (40, 0));
    let (from, to) = (now - 60_000, now + 60_000);
    let read = pop.read_key(0);
    pop.wait_for_series(&read, 21, from, to, "1s", 40).await;

    // Stopped, the edge seals and writes its last dedup snapshot. Its WAL
    // is then only dedup memory: every record is sealed and committed. An
    // edge deletes a segment once it is sealed and covered by a snapshot,
    // but never the one it appends to, so the test deletes that one too.
    pop.pop.stop_edge(0).await;
    let spool = pop.pop.edge_spool(0);
    let snapshots = std::fs::read_dir(spool.join("dedup")).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "keys")).count();
    assert!(snapshots > 0, "no dedup snapshot written");
    for segment in std::fs::read_dir(spool.join("wal")).unwrap() {
        std::fs::remove_file(segment.unwrap().path()).unwrap();
    }
    pop.pop.restart_edge(0).await.unwrap();

    // The client's retry of the acknowledged request: all duplicates.
    assert_eq!(post(&pop, 0, &sent).await, (0, 40));
    tenant_metric(&pop, "tally_edge_dedup_horizon_seconds", "acme", |v| v == 3600.0).await;
    let metrics = pop.client.get(&format!("{}/metrics", pop.pop.state.edge_http), None).await.unwrap().text();
    let restored: u64 = metrics.lines().find_map(|l| l.strip_prefix("tally_edge_dedup_snapshot_restored_total ")).and_then(|v| v.trim().parse().ok()).unwrap();
    assert!(restored >= 40, "restored {restored}");
    let damaged = metrics.lines().find_map(|l| l.strip_prefix("tally_edge_dedup_snapshot_damaged_total ")).map(str::trim);
    assert_eq!(damaged, Some("0"));

    // One new click after the retry: once it is counted, anything the retry
    // had added would be too, so the total is exact.
    assert_eq!(post(&pop, 0, &clicks("after-restart", 21, 1, now)).await, (1, 0));
    let series = pop.wait_for_series(&read, 21, from, to, "1s", 41).await;
    assert_eq!(series["total"]["clicks"].as_u64(), Some(41));
    pop.pop.stop().await;
}
