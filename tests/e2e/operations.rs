//! Operations: `/readyz` on core and edge, query deadlines against a hung
//! ClickHouse (stopped with SIGSTOP by pid, resumed with SIGCONT), log
//! formats, and the Prometheus alert rules (`deploy/prometheus/`: promtool
//! checks and unit tests, every `tally_*` name they use exposed by the
//! running processes).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::harness::{self, CONVERGE};

/// Polls `url` until `done` holds for its status and body; returns the body.
async fn wait_until(client: &tally_http::client::Client, url: &str, what: &str, done: impl Fn(u16, &str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        if let Ok(r) = client.get(url, None).await {
            let text = r.text();
            if done(r.status.as_u16(), &text) {
                return text;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {url} never did");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: a plain kill(2) on a pid this test's POP started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0, "signalling pid {pid}");
}

#[tokio::test]
async fn readiness_and_query_deadlines_follow_clickhouse_and_the_core() {
    let mut p = harness::start(&["acme"]).await;
    let (core, edge) = (p.pop.state.core_http.clone(), p.pop.state.edge_http.clone());
    let client = tally_http::client::Client::new();
    wait_until(&client, &format!("{core}/readyz"), "core ready", |s, t| s == 200 && t == "ready\n").await;
    wait_until(&client, &format!("{edge}/readyz"), "edge ready", |s, t| s == 200 && t == "ready\n").await;
    let healthz = client.get(&format!("{core}/healthz"), None).await.unwrap();
    assert_eq!(healthz.status, 200);

    // A hung ClickHouse: the API answers 504 with the reason (no waiting on
    // it), readiness says why, liveness stays.
    let ch = p.pop.clickhouse_pid().expect("the POP runs a private ClickHouse");
    signal(ch, libc::SIGSTOP);
    let now = tally_model::timestamp::now_ms();
    let read = p.read_key(0);
    let path = format!("/v1/ads?from={}&to={}", now - 3_600_000, now);
    let answer = tokio::time::timeout(CONVERGE, p.query(&read, &path)).await.expect("the API answers while ClickHouse hangs");
    let body = answer.text();
    // A fresh client: the pooled connection sat idle through the deadline
    // above, and the core may close an idle keep-alive connection just as
    // a request reuses it (seen once as IncompleteMessage).
    let fresh = tally_http::client::Client::new();
    let stuck_ready = tokio::time::timeout(CONVERGE, fresh.get(&format!("{core}/readyz"), None)).await.expect("readyz answers").unwrap();
    let stuck_health = client.get(&format!("{core}/healthz"), None).await.unwrap();
    signal(ch, libc::SIGCONT);
    assert_eq!(answer.status, 504, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(error["error"].as_str().unwrap().contains("did not answer within the query deadline"), "{body}");
    assert_eq!(stuck_ready.status, 503);
    assert!(stuck_ready.text().contains("clickhouse: no answer within the query deadline"), "{}", stuck_ready.text());
    assert_eq!(stuck_health.status, 200, "liveness does not depend on ClickHouse");
    wait_until(&client, &format!("{core}/readyz"), "core ready again", |s, _| s == 200).await;
    let again = p.query(&read, &path).await;
    assert_eq!(again.status, 200, "{}", again.text());

    // The core's log names the route that answered without data.
    let log = std::fs::read_to_string(p.pop.state.dir.join("core.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("answered without data") && l.contains("top_ads") && l.contains("504")), "core log:\n{log}");

    // An edge whose core is gone says so once its grace has passed, and is
    // ready again when the core is back.
    p.pop.kill_core().await;
    let text = wait_until(&client, &format!("{edge}/readyz"), "edge not ready", |s, _| s == 503).await;
    assert!(text.contains("core: unreachable for"), "{text}");
    p.pop.restart_core().await.unwrap();
    wait_until(&client, &format!("{edge}/readyz"), "edge ready again", |s, _| s == 200).await;
    p.pop.stop().await;
}

#[tokio::test]
async fn logs_are_plain_text_off_a_terminal_and_json_lines_on_request() {
    let mut p = harness::start(&["acme"]).await;
    let log_path = p.pop.state.dir.join("core.log");
    let plain = std::fs::read_to_string(&log_path).unwrap();
    assert!(plain.contains("serving the query API"), "{plain}");
    assert!(!plain.contains('\x1b'), "no colour codes in a log file:\n{plain}");
    let before = plain.len();
    p.pop.restart_core_with(&[("TALLY_LOG_FORMAT", "json")]).await.unwrap();
    let all = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = all[before..].lines().filter(|l| !l.is_empty()).collect();
    // The old process's last lines (shutting down) are plain; every line of the new one is JSON.
    let first_json = lines.iter().position(|l| l.starts_with('{')).expect("JSON lines after the restart");
    assert!(lines.len() > first_json + 1, "{lines:?}");
    for line in &lines[first_json..] {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(lines[first_json..].iter().any(|l| l.contains("serving the query API")));
    p.pop.stop().await;
}

/// The metric names a Prometheus exposition declares, with the sample
/// names each type adds (`_total`, `_bucket`, `_sum`, `_count`).
fn exposed(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) = (words.next(), words.next(), words.next(), words.next()) {
            out.insert(name.to_string());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[],
            };
            out.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        }
    }
    out
}

/// Every `tally_*` name in the rules' expressions.
fn used_by_rules(rules: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = rules.as_bytes();
    let mut i = 0;
    while let Some(at) = rules[i..].find("tally_") {
        let start = i + at;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = start + rules[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rules.len() - start);
        if boundary {
            out.insert(rules[start..end].to_string());
        }
        i = end;
    }
    out
}

#[tokio::test]
async fn alert_rules_pass_promtool_and_use_only_exposed_metrics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus");
    for args in [&["check", "rules", "alerts.yml"][..], &["test", "rules", "alerts_test.yml"][..]] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool (Debian package prometheus; deploy/dev/setup.sh installs it)");
        assert!(out.status.success(), "promtool {args:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let rules: String = std::fs::read_to_string(dir.join("alerts.yml"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.contains("summary:") && !l.contains("description:"))
        .collect::<Vec<_>>()
        .join("\n");
    let used = used_by_rules(&rules);
    assert!(used.len() > 10, "{used:?}");

    // Some series exist once there is something to report (an edge that
    // committed, a tenant with clicks): a click goes through first.
    let p = harness::start(&["acme"]).await;
    let now = tally_model::timestamp::now_ms();
    let click = format!(r#"{{"click_id":"ops-1","ad_id":1,"ts":{now}}}"#);
    harness::post_until_acked(&p.client, &p.pop.state.edge_http, &p.ingest_key(0), &[click]).await;
    let edge_metrics = p.pop.state.edge_metrics.clone().unwrap_or_else(|| p.pop.state.edge_http.clone());
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let mut names = BTreeSet::new();
        for url in [format!("{}/metrics", p.pop.state.core_http), format!("{edge_metrics}/metrics")] {
            let reply = p.client.get(&url, None).await.unwrap();
            assert_eq!(reply.status, 200, "{url}");
            names.extend(exposed(&reply.text()));
        }
        let missing: Vec<&String> = used.iter().filter(|n| !names.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "alert rules use metrics no process exposes: {missing:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    p.pop.stop().await;
}
