//! Edges that come and go: a stopped edge holds an hour non-final and both
//! `/v1/edges` and billing name it; retiring it (refused while it is
//! connected) lets the hour become final with exact numbers, while traffic
//! on another edge loses nothing; a retired edge that ships again is kept
//! waiting (`Retry`) until it is reinstated.

use std::time::Duration;

use serde_json::Value;
use tally::pop::EdgeSettings;
use tally::traffic::{now_ms, ClickGen, GenOptions};

use crate::harness::{self, billing, post_until_acked, truth_total, wait_for_billing, Pop, CONVERGE};

const HOUR_MS: u64 = 3_600_000;

fn click(id: &str, ad: u64, ts: u64, cost: u64) -> String {
    format!(r#"{{"click_id":"{id}","ad_id":{ad},"ts":{ts},"cost_micros":{cost}}}"#)
}

async fn edges(pop: &Pop, token: &str) -> Value {
    let r = pop.client.get(&format!("{}/v1/edges", pop.pop.state.core_http), Some(token)).await.unwrap();
    assert!(r.status.is_success(), "GET /v1/edges: {} {}", r.status, r.text());
    r.json().unwrap()
}

fn edge<'a>(all: &'a Value, id: &str) -> &'a Value {
    all["edges"].as_array().unwrap().iter().find(|e| e["edge"] == id).unwrap_or_else(|| panic!("no edge {id} in {all}"))
}

/// Polls `/v1/edges` until `done` holds for edge `id`.
async fn wait_for_edge(pop: &Pop, token: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let all = edges(pop, token).await;
        if done(edge(&all, id)) {
            return all;
        }
        assert!(tokio::time::Instant::now() < deadline, "edge {id} never became {what}: {all}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_metric(pop: &Pop, url: &str, line: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let metrics = pop.client.get(url, None).await.unwrap().text();
        if metrics.lines().any(|l| l.starts_with(line)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url} never showed {line}:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `url` until the unlabelled counter `name` is above zero.
async fn wait_for_count(pop: &Pop, url: &str, name: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let metrics = pop.client.get(url, None).await.unwrap().text();
        let value = metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok());
        if value.is_some_and(|v| v > 0.0) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url}: {name} never rose above 0:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn tally(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tally")).args(args).output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_edge_holds_an_hour_back_until_it_is_retired() {
    // A backfill three hours old is inside the edges' window (idle lag of a
    // week, so an idle edge's watermark stays where its clicks left it).
    let settings = EdgeSettings { allowed_lateness_secs: 60, idle_lag_secs: 7 * 24 * 3600, ..EdgeSettings::default() };
    let mut pop = harness::start_with(&["acme"], settings).await;
    let (key, read, admin) = (pop.ingest_key(0), pop.read_key(0), pop.pop.state.admin_key.clone());
    let ops = pop.pop.ops_token().to_string();
    let core = pop.pop.state.core_http.clone();
    let hour = (now_ms() / HOUR_MS - 3) * HOUR_MS;
    let edge_a = pop.pop.state.edge_http.clone();
    let (b, edge_b) = pop.pop.add_edge("edge-b").await.unwrap();

    // Clicks of one hour through both edges (distinct ids).
    let mut generator = ClickGen::new(GenOptions { seed: 31, ads: 4, duplicate_share: 0.0, jitter_ms: 20 * 60_000, ..GenOptions::default() });
    let events_a = generator.events(300, hour + 30 * 60_000);
    let events_b = generator.events(300, hour + 30 * 60_000);
    post_until_acked(&pop.client, &edge_a, &key, &events_a).await;
    post_until_acked(&pop.client, &edge_b, &key, &events_b).await;
    let truth = truth_total(&generator);
    wait_for_billing(&pop, &read, hour, hour + HOUR_MS, truth).await;

    // Edge B is running: it cannot be retired without --force.
    let r = pop.client.post_json(&format!("{core}/v1/edges/edge-b/retire"), Some(&ops), "").await.unwrap();
    assert_eq!(r.status.as_u16(), 409, "{}", r.text());
    assert!(r.text().contains("is connected to this core"), "{}", r.text());
    // Only the ops token retires; a tenant's admin key reads, its read key does not.
    let r = pop.client.post_json(&format!("{core}/v1/edges/edge-b/retire"), Some(&admin), "").await.unwrap();
    assert_eq!(r.status.as_u16(), 401, "{}", r.text());
    let r = pop.client.get(&format!("{core}/v1/edges"), Some(&read)).await.unwrap();
    assert_eq!(r.status.as_u16(), 401, "{}", r.text());
    edges(&pop, &admin).await;

    // Edge B stops (shipping what it holds); edge A moves past the hour.
    pop.pop.stop_edge(b).await;
    post_until_acked(&pop.client, &edge_a, &key, &[click("tick-a", 99, hour + HOUR_MS + 2 * 60_000, 0)]).await;
    wait_for_edge(&pop, &ops, "edge-b", "disconnected", |e| e["connected"] == false).await;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let held = loop {
        let (_, _, is_final, v) = billing(&pop, &read, hour, hour + HOUR_MS).await;
        assert!(!is_final, "the hour became final while edge B may still add to it: {v}");
        if v["hours"][0]["held_back_by"] == serde_json::json!(["edge-b"]) {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "billing never named edge B as holding the hour back: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((held["total"]["clicks"].as_i64().unwrap(), held["total"]["spend_micros"].as_i64().unwrap()), truth);
    let all = edges(&pop, &ops).await;
    let (a, eb) = (edge(&all, "local-edge-1"), edge(&all, "edge-b"));
    assert!(eb["watermark_ms"].as_u64().unwrap() < hour + HOUR_MS, "{all}");
    assert!(eb["lag_seconds"].as_u64().unwrap() >= 3600, "{all}");
    assert_eq!((eb["holds_finality"].as_bool(), eb["retired"].as_bool(), eb["uncommitted_batches"].as_u64()), (Some(true), Some(false), Some(0)), "{all}");
    assert!(eb["last_batch"]["seq"].as_u64().unwrap() >= 1 && eb["owning_core"].is_null(), "{all}");
    assert!(a["watermark_ms"].as_u64().unwrap() >= hour + HOUR_MS && a["connected"] == true, "{all}");
    assert!(all["final_before_ms"].as_u64().unwrap() <= hour, "{all}");
    wait_for_metric(&pop, &format!("{core}/metrics"), r#"tally_core_edge_watermark_lag_seconds{edge="edge-b"}"#).await;
    let (from, to) = (hour.to_string(), (hour + HOUR_MS).to_string());
    let out = tally(&["billing", "reconcile", "--clickhouse-url", &pop.pop.state.clickhouse_http, "--from", &from, "--to", &to]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "reconcile failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("not final: held back by edge(s) edge-b"), "{stdout}");

    // Traffic flows on edge A while edge B is retired.
    let traffic_start = now_ms();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let (client, traffic_edge, traffic_key) = (pop.client.clone(), edge_a.clone(), key.clone());
    let traffic = tokio::spawn(async move {
        let mut live = ClickGen::new(GenOptions { seed: 32, ads: 5, duplicate_share: 0.02, jitter_ms: 1000, ..GenOptions::default() });
        while !*stop_rx.borrow_and_update() {
            post_until_acked(&client, &traffic_edge, &traffic_key, &live.events(50, now_ms())).await;
        }
        live
    });
    let out = tally(&["edge", "retire", "edge-b", "--core", &core, "--token", &ops]).await;
    assert!(out.status.success(), "tally edge retire: {} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("edge edge-b is retired"));

    // The hour becomes final with the same, exact numbers.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let (clicks, spend, is_final, v) = billing(&pop, &read, hour, hour + HOUR_MS).await;
        if is_final {
            assert_eq!((clicks, spend), truth, "final billing differs from the truth: {v}");
            assert!(v["hours"][0].get("held_back_by").is_none(), "{v}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the hour never became final after edge B was retired: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = wait_for_edge(&pop, &ops, "edge-b", "retired", |e| e["retired"] == true).await;
    assert_eq!(edge(&all, "edge-b")["holds_finality"], false, "{all}");
    wait_for_metric(&pop, &format!("{core}/metrics"), r#"tally_core_edge_retired{edge="edge-b"} 1"#).await;

    // Nothing of the traffic on edge A was lost or doubled.
    stop_tx.send(true).unwrap();
    let live = traffic.await.unwrap();
    let from = traffic_start / HOUR_MS * HOUR_MS;
    wait_for_billing(&pop, &read, from, from + 2 * HOUR_MS, truth_total(&live)).await;

    // Edge B ships again: refused (kept on its disk) until reinstated.
    let seq_before = edge(&all, "edge-b")["last_batch"]["seq"].as_u64().unwrap();
    pop.pop.restart_edge(b).await.unwrap();
    wait_for_count(&pop, &format!("{core}/metrics"), "tally_core_batches_refused_retired_total").await;
    let all = edges(&pop, &ops).await;
    assert_eq!(edge(&all, "edge-b")["last_batch"]["seq"], seq_before, "a retired edge's batch was committed: {all}");
    let listed = tally(&["edge", "list", "--core", &core, "--token", &ops]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.lines().any(|l| l.starts_with("edge-b") && l.ends_with("retired")), "{listed}");
    let out = tally(&["edge", "reinstate", "edge-b", "--core", &core, "--token", &ops]).await;
    assert!(out.status.success(), "tally edge reinstate: {}", String::from_utf8_lossy(&out.stderr));
    wait_for_edge(&pop, &ops, "edge-b", "reinstated and committing", |e| {
        e["retired"] == false && e["holds_finality"] == true && e["last_batch"]["seq"].as_u64().unwrap() > seq_before
    })
    .await;
    let (clicks, spend, is_final, _) = billing(&pop, &read, hour, hour + HOUR_MS).await;
    assert!(is_final && (clicks, spend) == truth, "a final hour stays final and exact");
    pop.pop.stop().await;
}
