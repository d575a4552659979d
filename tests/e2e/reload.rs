//! Reload without restart: SIGHUP makes the edge and the core read the
//! tenants file and their config files again. A key rotation keeps both keys
//! valid until the previous one is dropped, a new CORS origin applies at
//! once, a tenant's rate and the edge's `max_events_per_request` change at
//! once, the log names the `max_connections` in force (capped by the
//! descriptor limit) and every changed key that waits for a restart (and
//! none when nothing changed), a bad file is refused with the old tenants
//! and limits kept, and no click is lost or doubled.

use std::time::Duration;

use http::Method;
use tally::traffic::{now_ms, ClickGen, GenOptions};
use tally_model::tenant::TenantSpec;

use crate::harness::{self, post_until_acked, truth_total, wait_for_billing, Pop, CONVERGE};

const HOUR_MS: u64 = 3_600_000;

async fn wait_for_metric(pop: &Pop, url: &str, line: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let metrics = pop.client.get(url, None).await.unwrap().text();
        if metrics.lines().any(|l| l == line) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url} never showed {line}:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Both processes reloaded `n` times with `result`.
async fn wait_for_reloads(pop: &Pop, result: &str, n: u32) {
    let (edge, core) = (&pop.pop.state.edge_http, &pop.pop.state.core_http);
    wait_for_metric(pop, &format!("{edge}/metrics"), &format!(r#"tally_edge_config_reloads_total{{result="{result}"}} {n}"#)).await;
    wait_for_metric(pop, &format!("{core}/metrics"), &format!(r#"tally_core_config_reloads_total{{result="{result}"}} {n}"#)).await;
}

async fn post_status(pop: &Pop, key: &str, events: &[String]) -> u16 {
    let url = format!("{}/v1/clicks", pop.pop.state.edge_http);
    pop.client.post_json(&url, Some(key), tally::traffic::json_array(events)).await.unwrap().status.as_u16()
}

async fn preflight_allows(pop: &Pop, origin: &str) -> bool {
    let req = http::Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("{}/v1/clicks", pop.pop.state.edge_http))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .body(bytes::Bytes::new())
        .unwrap();
    let r = pop.client.request(req).await.unwrap();
    r.headers.get("access-control-allow-origin").is_some_and(|v| v == origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_keys_and_origins_without_a_restart() {
    let mut pop = harness::start(&["acme"]).await;
    let old = pop.pop.state.tenants[0].clone();
    let pids = pop.pop.pids();
    let start = now_ms();
    let mut generator = ClickGen::new(GenOptions { seed: 41, ads: 3, duplicate_share: 0.0, jitter_ms: 1000, ..GenOptions::default() });
    let edge = pop.pop.state.edge_http.clone();
    post_until_acked(&pop.client, &edge, &old.ingest_key, &generator.events(40, now_ms())).await;
    assert!(!preflight_allows(&pop, "https://shop.example").await);

    // Rotation: new ingest and read keys, the previous ones still valid, a new origin.
    let rotating = TenantSpec {
        ingest_key: "ing_rotated_0123456789abcdef".into(),
        read_key: "read_rotated_0123456789abcdef".into(),
        previous_ingest_key: Some(old.ingest_key.clone()),
        previous_read_key: Some(old.read_key.clone()),
        allowed_origins: vec!["https://shop.example".into()],
        ..old.clone()
    };
    pop.pop.reload_tenants(vec![rotating.clone()]).unwrap();
    wait_for_reloads(&pop, "ok", 1).await;
    for name in ["local-edge-1.log", "core.log"] {
        let log = std::fs::read_to_string(pop.pop.state.dir.join(name)).unwrap();
        assert!(log.contains("SIGHUP: tenants file reloaded (1 tenants from "), "{name}: {log}");
        assert!(!log.contains("applied only after a restart"), "{name}: an unchanged config file has nothing waiting for a restart: {log}");
    }
    post_until_acked(&pop.client, &edge, &old.ingest_key, &generator.events(40, now_ms())).await;
    post_until_acked(&pop.client, &edge, &rotating.ingest_key, &generator.events(40, now_ms())).await;
    assert!(preflight_allows(&pop, "https://shop.example").await, "the new origin applies without a restart");
    let from = start / HOUR_MS * HOUR_MS;
    let range = format!("/v1/billing?from={from}&to={}", from + 2 * HOUR_MS);
    for read in [&old.read_key, &rotating.read_key] {
        assert!(pop.query(read, &range).await.status.is_success(), "both read keys read during the rotation");
    }

    // A file that does not validate is refused; the rotation stays in force.
    let broken = TenantSpec { ingest_key: "short".into(), ..rotating.clone() };
    pop.pop.reload_tenants(vec![broken]).unwrap();
    wait_for_reloads(&pop, "refused", 1).await;
    post_until_acked(&pop.client, &edge, &old.ingest_key, &generator.events(40, now_ms())).await;
    post_until_acked(&pop.client, &edge, &rotating.ingest_key, &generator.events(40, now_ms())).await;
    let log = std::fs::read_to_string(pop.pop.state.dir.join("local-edge-1.log")).unwrap();
    assert!(log.contains("SIGHUP: tenants file refused; the previous tenants and limits stay in force"), "{log}");
    assert!(log.contains("Ingest key must be at least 16"), "the log says what is wrong: {log}");

    // Rotation done: the previous keys are dropped.
    let rotated = TenantSpec { previous_ingest_key: None, previous_read_key: None, ..rotating.clone() };
    pop.pop.reload_tenants(vec![rotated.clone()]).unwrap();
    wait_for_reloads(&pop, "ok", 2).await;
    let mut refused = ClickGen::new(GenOptions { seed: 43, ads: 3, duplicate_share: 0.0, jitter_ms: 1000, ..GenOptions::default() });
    assert_eq!(post_status(&pop, &old.ingest_key, &refused.events(1, now_ms())).await, 401, "the old ingest key is refused after the rotation");
    post_until_acked(&pop.client, &edge, &rotated.ingest_key, &generator.events(40, now_ms())).await;
    assert_eq!(pop.query(&old.read_key, &range).await.status.as_u16(), 401, "the old read key is refused after the rotation");

    // Exact counts through every key accepted, no process restarted.
    wait_for_billing(&pop, &rotated.read_key, from, from + 2 * HOUR_MS, truth_total(&generator)).await;
    assert_eq!(pop.pop.pids(), pids, "nothing was restarted");
    pop.pop.stop().await;
}

/// Rewrites a process's config file (`name` in the POP's directory) with `change` applied.
fn rewrite_config<C: serde::Serialize>(pop: &Pop, name: &str, load: impl Fn(&std::path::Path) -> C, change: impl FnOnce(&mut C)) {
    let path = pop.pop.state.dir.join(name);
    let mut config = load(&path);
    change(&mut config);
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
}

async fn post_refused(pop: &Pop, key: &str, events: &[String]) -> (u16, String) {
    let url = format!("{}/v1/clicks", pop.pop.state.edge_http);
    let r = pop.client.post_json(&url, Some(key), tally::traffic::json_array(events)).await.unwrap();
    (r.status.as_u16(), r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_rate_and_request_limits_without_a_restart() {
    let edge_config = |p: &std::path::Path| tally_edge::config::EdgeConfig::load(p).unwrap();
    let core_config = |p: &std::path::Path| tally_core::config::CoreConfig::load(p).unwrap();
    let mut pop = harness::start(&["acme"]).await;
    let tenant = pop.pop.state.tenants[0].clone();
    let pids = pop.pop.pids();
    let start = now_ms();
    let mut generator = ClickGen::new(GenOptions { seed: 51, ads: 3, duplicate_share: 0.0, jitter_ms: 1000, ..GenOptions::default() });
    let mut refused = ClickGen::new(GenOptions { seed: 53, ads: 3, duplicate_share: 0.0, jitter_ms: 1000, ..GenOptions::default() });
    let edge = pop.pop.state.edge_http.clone();
    post_until_acked(&pop.client, &edge, &tenant.ingest_key, &generator.events(40, now_ms())).await;

    // A rate of 30/s for the tenant; on the edge at most 35 events a request
    // (applied), a connection cap above any descriptor limit (applied as far
    // as the limit allows) and two restart-only keys; on the core a
    // per-address cap (applied) beside a timeout and two more keys (restart only).
    rewrite_config(&pop, "local-edge-1.toml", edge_config, |c| {
        c.max_events_per_request = 35;
        c.limits.max_connections = 1 << 40;
        c.heartbeat_ms += 1000;
        c.dedup.horizon_secs += 60;
    });
    rewrite_config(&pop, "core.toml", core_config, |c| {
        c.limits.max_connections_per_ip = 200;
        c.limits.header_read_timeout = Duration::from_millis(9000);
        c.max_batch_bytes /= 2;
        c.clickhouse.query_timeout_ms += 1000;
    });
    let limited = TenantSpec { max_events_per_sec: Some(30), ..tenant.clone() };
    pop.pop.reload_tenants(vec![limited.clone()]).unwrap();
    wait_for_reloads(&pop, "ok", 1).await;
    let (status, text) = post_refused(&pop, &tenant.ingest_key, &refused.events(40, now_ms())).await;
    assert_eq!((status, text.contains("40 events in one request; at most 35 are accepted")), (413, true), "the edge's new max_events_per_request: {text}");
    let (status, text) = post_refused(&pop, &tenant.ingest_key, &refused.events(32, now_ms())).await;
    assert_eq!(status, 413, "32 events never fit the tenant's new rate of 30/s: {text}");
    // The bucket starts full at 30: 10 now leave 20 for the 12 below, whatever the clock.
    post_until_acked(&pop.client, &edge, &tenant.ingest_key, &generator.events(10, now_ms())).await;
    let core_log = std::fs::read_to_string(pop.pop.state.dir.join("core.log")).unwrap();
    assert!(core_log.contains("max_connections_per_ip 200"), "the core says which caps it applied: {core_log}");
    let restart = "; changed but applied only after a restart: limits.header_read_timeout_ms, clickhouse.query_timeout_ms, max_batch_bytes\n";
    assert!(core_log.contains(restart), "{core_log}");
    // The edge was started by this process, so it has its descriptor limit.
    let nofile = tally_http::limits::raise_nofile_limit();
    let edge_log = std::fs::read_to_string(pop.pop.state.dir.join("local-edge-1.log")).unwrap();
    let applied = format!(
        "max_events_per_request 35, max_connections {} (the file says 1099511627776; capped by the open-files limit {nofile}, less 256 descriptors",
        nofile - 256
    );
    assert!(edge_log.contains(&applied), "the edge says the cap in force, not the file's: {edge_log}");
    assert!(edge_log.contains("; changed but applied only after a restart: dedup.horizon_secs, heartbeat_ms\n"), "{edge_log}");

    // A config file that does not validate refuses the whole reload: the
    // tenants file's rate of 10/s beside it is not applied either (12 events
    // would never fit it).
    rewrite_config(&pop, "local-edge-1.toml", edge_config, |c| c.ship_interval_ms = 5);
    pop.pop.reload_tenants(vec![TenantSpec { max_events_per_sec: Some(10), ..tenant.clone() }]).unwrap();
    wait_for_metric(&pop, &format!("{edge}/metrics"), r#"tally_edge_config_reloads_total{result="refused"} 1"#).await;
    let log = std::fs::read_to_string(pop.pop.state.dir.join("local-edge-1.log")).unwrap();
    assert!(log.contains("SIGHUP: config file refused; the previous tenants and limits stay in force"), "{log}");
    assert!(log.contains("ship_interval_ms must be 10..=60000"), "the log says what is wrong: {log}");
    post_until_acked(&pop.client, &edge, &tenant.ingest_key, &generator.events(12, now_ms())).await;

    // Exact counts, no process restarted.
    let from = start / HOUR_MS * HOUR_MS;
    wait_for_billing(&pop, &tenant.read_key, from, from + 2 * HOUR_MS, truth_total(&generator)).await;
    assert_eq!(pop.pop.pids(), pids, "nothing was restarted");
    pop.pop.stop().await;
}
