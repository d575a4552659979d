//! Tenant WebAssembly filters in a running edge: a bot filter drops bot
//! clicks (recorded with their reason code, never silently), a hostile
//! filter is contained by its tenant's fail-closed policy and quarantined,
//! fail-open counts and tags the clicks of a failing filter, and other
//! tenants carry on.

use http::StatusCode;
use tally::pop::EdgeSettings;
use tally::traffic::now_ms;
use tally_edge::config::FailurePolicy::{Closed, Open};

use crate::harness::{self, plugin, post_until_acked};

fn click(id: &str, ad: u64, ts: u64, ua: &str, ip: &str) -> String {
    let ip = if ip.is_empty() { String::new() } else { format!(r#","ip":"{ip}""#) };
    format!(r#"{{"click_id":"{id}","ad_id":{ad},"ts":{ts},"user_agent":"{ua}"{ip}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_drop_bots_and_contain_hostile_plugins() {
    let filters = vec![("acme".into(), plugin("bot_filter"), Open), ("rogue".into(), plugin("hostile"), Closed), ("lenient".into(), plugin("hostile"), Open)];
    let settings = EdgeSettings { filters, ..EdgeSettings::default() };
    let pop = harness::start_with(&["acme", "rogue", "plain", "lenient"], settings).await;
    let edge = pop.pop.state.edge_http.clone();
    let now = now_ms();
    let events = [
        click("h1", 31, now, "Mozilla/5.0", "8.8.8.8"),
        click("b1", 31, now, "Googlebot/2.1", "8.8.8.8"),
        click("n1", 31, now, "Mozilla/5.0", "192.0.2.10"),
        click("h2", 31, now, "Safari", "1.1.1.1"),
    ];
    let r = post_until_acked(&pop.client, &edge, &pop.ingest_key(0), &events).await;
    assert_eq!(r["accepted"], 2, "{r}");
    let reasons: Vec<&str> = r["rejected"].as_array().unwrap().iter().map(|x| x["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, vec!["dropped by the tenant's filter (reason code 1)", "dropped by the tenant's filter (reason code 2)"], "{r}");

    // The hostile tenant's filter loops (ad 1), blows its memory (2), traps
    // (3) and answers too much (5); its policy is fail-closed: 503, retry later.
    let hostile = |ad: u64| {
        let (client, url, key) = (pop.client.clone(), format!("{edge}/v1/clicks"), pop.ingest_key(1));
        async move { client.post_json(&url, Some(&key), format!("[{}]", click(&format!("x{ad}"), ad, now, "", ""))).await.unwrap() }
    };
    let looping = tokio::spawn(hostile(1));
    // Other tenants carry on meanwhile, with or without a filter.
    post_until_acked(&pop.client, &edge, &pop.ingest_key(2), &[click("p1", 32, now, "Googlebot", "")]).await;
    post_until_acked(&pop.client, &edge, &pop.ingest_key(0), &[click("h3", 31, now, "Mozilla/5.0", "")]).await;
    for bad in [looping.await.unwrap(), hostile(2).await, hostile(3).await] {
        assert_eq!(bad.status, StatusCode::SERVICE_UNAVAILABLE, "{}", bad.text());
        assert!(bad.headers.get("retry-after").is_some());
    }
    // Three failures in a row quarantine that version: refused without a call.
    let bad = hostile(5).await;
    assert!(bad.status == StatusCode::SERVICE_UNAVAILABLE && bad.text().contains("quarantined"), "{}", bad.text());
    // Fail-open: a trapping filter's clicks are counted, tagged `filter` = `failed_open`.
    let r = post_until_acked(&pop.client, &edge, &pop.ingest_key(3), &[click("l1", 3, now, "", "")]).await;
    assert_eq!(r["accepted"], 1, "{r}");

    // A signed click link: the filter sees the visitor's User-Agent and IP
    // from the connection; the bot still lands, but is not counted.
    let secret = pop.pop.state.tenants[0].redirect_secret.clone().unwrap();
    let url = "https://shop.example/";
    let sig = tally_edge::ingest::redirect::sign(&secret, &tally_edge::ingest::redirect::signed_text("acme", 33, None, None, url));
    for (ua, id) in [("Googlebot/2.1", "r-bot"), ("Mozilla/5.0", "r-human")] {
        let req = http::Request::builder()
            .uri(format!("{edge}/c/acme/33?url=https%3A%2F%2Fshop.example%2F&sig={sig}&click_id={id}"))
            .header("user-agent", ua)
            .body(bytes::Bytes::new())
            .unwrap();
        assert_eq!(pop.client.request(req).await.unwrap().status, StatusCode::FOUND);
    }
    // Concurrent one-click requests share filter calls (those that queue
    // while one runs); each still gets exactly its own verdict.
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (client, edge, key) = (pop.client.clone(), edge.clone(), pop.ingest_key(0));
        let ua = if i % 3 == 0 { "Googlebot/2.1" } else { "Mozilla/5.0" };
        let event = click(&format!("c{i}"), 34, now, ua, "8.8.8.8");
        posts.spawn(async move { (i, post_until_acked(&client, &edge, &key, &[event]).await) });
    }
    while let Some(posted) = posts.join_next().await {
        let (i, r) = posted.unwrap();
        let want = if i % 3 == 0 { (0, 1) } else { (1, 0) };
        assert_eq!((r["accepted"].as_u64().unwrap(), r["rejected"].as_array().unwrap().len()), want, "request {i}: {r}");
    }
    pop.wait_for_series(&pop.read_key(0), 34, now - 60_000, now + 60_000, "1m", 42).await;

    // Redirect clicks carry the edge's clock, not `now`.
    pop.wait_for_series(&pop.read_key(0), 33, now - 60_000, now_ms() + 60_000, "1m", 1).await;

    pop.wait_for_series(&pop.read_key(0), 31, now - 60_000, now + 60_000, "1m", 3).await;
    pop.wait_for_series(&pop.read_key(2), 32, now - 60_000, now + 60_000, "1m", 1).await;
    pop.wait_for_series(&pop.read_key(3), 3, now - 60_000, now + 60_000, "1m", 1).await;
    let range = format!("from={}&to={}&step=1m", now - 60_000, now_ms() + 60_000);
    let failed_open = serde_json::json!([{"value": "failed_open", "clicks": 1, "spend_micros": 0}]);
    pop.wait_for(&pop.read_key(3), &format!("/v1/dimensions/filter?{range}"), |v| v["values"] == failed_open).await;
    // Refused clicks per reason code: a bot and a bad IP posted, the
    // redirect bot and the 22 concurrent bots.
    let reasons = serde_json::json!([{"reason": "filtered:1", "clicks": 24}, {"reason": "filtered:2", "clicks": 1}]);
    pop.wait_for(&pop.read_key(0), &format!("/v1/refused?{range}"), |v| v["reasons"] == reasons).await;
    let metrics = pop.client.get(&format!("{edge}/metrics"), None).await.unwrap().text();
    assert!(metrics.contains(r#"tally_edge_events_refused_total{tenant="acme",reason="filtered"} 25"#), "{metrics}");
    assert!(metrics.contains(r#"tally_edge_filter_failures_total{tenant="rogue"} 4"#), "{metrics}");
    assert!(metrics.contains(r#"tally_edge_filter_quarantined{tenant="rogue"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"tally_edge_filter_failures_total{tenant="lenient"} 1"#), "{metrics}");
    pop.pop.stop().await;
}
