//! Clicks in over HTTP, exact counts out of the query API.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::json;
use tally::traffic::{json_array, now_ms, ClickGen, GenOptions};

use crate::harness::{self, assert_points_equal, per_second};

/// Known clicks with duplicates (within and across requests) and
/// out-of-order timestamps, in all three body formats, mixed with malformed
/// events: every step's counts equal the truth, click for click.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_exactly_across_formats_duplicates_and_disorder() {
    let pop = harness::start(&["acme", "globex"]).await;
    let key = pop.ingest_key(0);
    let mut generator = ClickGen::new(GenOptions { seed: 7, ads: 5, duplicate_share: 0.1, jitter_ms: 90_000, ..GenOptions::default() });
    let now = now_ms();
    let (mut accepted, mut duplicates) = (0, 0);
    for round in 0..12 {
        let events = generator.events(250, now);
        let reply = match round % 3 {
            0 => pop.post(&key, "application/json", json_array(&events)).await,
            1 => pop.post(&key, "application/x-ndjson", events.join("\n")).await,
            _ => {
                // One object per request for a few, the rest as an array.
                for e in &events[..5] {
                    let r = pop.post(&key, "application/json", e.clone()).await;
                    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
                    accepted += r.json().unwrap()["accepted"].as_u64().unwrap();
                    duplicates += r.json().unwrap()["duplicates"].as_u64().unwrap();
                }
                pop.post(&key, "application/json", json_array(&events[5..])).await
            }
        };
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let body = reply.json().unwrap();
        assert_eq!(body["rejected"], json!([]));
        accepted += body["accepted"].as_u64().unwrap();
        duplicates += body["duplicates"].as_u64().unwrap();
    }
    assert_eq!((accepted, duplicates), (generator.unique, generator.duplicates));

    // Re-sending everything already sent is all duplicates.
    let ids: BTreeSet<u64> = generator.truth.keys().map(|(ad, _)| *ad).collect();
    let from = now - 100_000;
    let to = now + 1_000;
    pop.wait_for_totals(&pop.read_key(0), &generator, &ids.iter().copied().collect::<Vec<_>>(), from, to).await;

    let read = pop.read_key(0);
    for &ad in &ids {
        let truth = per_second(&generator, ad);
        let secs = pop.series(&read, ad, from, to, "1s").await;
        assert_points_equal(&secs, &truth);
        let total = generator.ad_total(ad);
        for step in ["1m", "1h", "1d"] {
            // The rollups fill a moment after the landing rows of the same
            // INSERT become visible (ClickHouse pushes to views afterwards).
            let s = pop.wait_for_series(&read, ad, from, to, step, total.clicks).await;
            assert_eq!(s["step"], step);
            assert_eq!(s["total"]["clicks"].as_u64().unwrap(), total.clicks, "ad {ad} step {step}");
            assert_eq!(s["total"]["spend_micros"].as_u64().unwrap(), total.spend_micros, "ad {ad} step {step}");
            let point_sum: u64 = s["points"].as_array().unwrap().iter().map(|p| p["clicks"].as_u64().unwrap()).sum();
            assert_eq!(point_sum, total.clicks, "ad {ad} step {step}");
            let users = s["total"]["users"].as_u64().unwrap();
            assert!(users > 0 && users <= total.clicks);
        }
    }
    // Another tenant sees none of it.
    let other = pop.series(&pop.read_key(1), 1, from, to, "1m").await;
    assert_eq!(other["total"]["clicks"], 0);
    pop.pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_bad_input_one_by_one_and_answers_errors() {
    let pop = harness::start(&["acme"]).await;
    let key = pop.ingest_key(0);
    let now = now_ms();
    let body = format!(
        r#"[{{"click_id":"ok-1","ad_id":42,"ts":{now}}},
            {{"click_id":"","ad_id":42,"ts":{now}}},
            {{"click_id":"bad-ad","ad_id":"x","ts":{now}}},
            {{"click_id":"ok-2","ad_id":42,"ts":"{}"}},
            {{"click_id":"bad-ts","ad_id":42,"ts":"yesterday"}},
            {{"click_id":"bad-ip","ad_id":42,"ts":{now},"ip":"999.1.1.1"}},
            {{"click_id":"ok-1","ad_id":42,"ts":{now}}}]"#,
        tally_model::timestamp::format_millis(now)
    );
    let reply = pop.post(&key, "application/json", body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json().unwrap();
    assert_eq!((v["accepted"].as_u64(), v["duplicates"].as_u64()), (Some(2), Some(1)));
    let rejected: Vec<u64> = v["rejected"].as_array().unwrap().iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(rejected, vec![1, 2, 4, 5]);
    assert!(v["rejected"].as_array().unwrap().iter().all(|r| !r["reason"].as_str().unwrap().is_empty()));

    // A bad NDJSON line is rejected alone.
    let nd = format!("{{\"click_id\":\"nd-1\",\"ad_id\":42,\"ts\":{now}}}\nnot json\n");
    let v = pop.post(&key, "application/x-ndjson", nd).await.json().unwrap();
    assert_eq!((v["accepted"].as_u64(), v["rejected"][0]["index"].as_u64()), (Some(1), Some(1)));

    assert_eq!(pop.post(&key, "application/json", "{not json").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(pop.post(&key, "application/json", "").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(pop.post("wrong-key-0123456789", "application/json", "[]").await.status, StatusCode::UNAUTHORIZED);
    // The read key is not an ingest key.
    assert_eq!(pop.post(&pop.read_key(0), "application/json", "[]").await.status, StatusCode::UNAUTHORIZED);
    let big = vec![b' '; 9 << 20];
    assert_eq!(pop.post(&key, "application/json", big).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let edge = &pop.pop.state.edge_http;
    assert_eq!(pop.client.get(&format!("{edge}/v1/clicks"), Some(&key)).await.unwrap().status, StatusCode::METHOD_NOT_ALLOWED);
    let metrics = pop.client.get(&format!("{edge}/metrics"), None).await.unwrap().text();
    assert!(metrics.contains("tally_edge_events_rejected_total{tenant=\"acme\"} 5"), "{metrics}");

    // Query parameter errors are 400 with a reason; no key is 401.
    let read = pop.read_key(0);
    for q in ["/v1/ads/x/clicks", "/v1/ads/1/clicks?step=5m", "/v1/ads/1/clicks?from=2&to=1", "/v1/ads/1/clicks?from=0&step=1s"] {
        let r = pop.query(&read, q).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(r.json().unwrap()["error"].as_str().is_some());
    }
    assert_eq!(pop.query(&key, "/v1/ads/1/clicks").await.status, StatusCode::UNAUTHORIZED);

    // What was accepted is counted, exactly.
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    loop {
        let s = pop.series(&read, 42, now - 5_000, now + 5_000, "1s").await;
        if s["total"]["clicks"] == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never counted: {s}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    pop.pop.stop().await;
}

/// Money cannot wrap: a click above the per-click maximum is rejected on its
/// own (JSON and the public beacon route alike), the maximum itself is
/// taken, and series and billing agree on the spend to the micro.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costs_above_the_per_click_maximum_are_rejected_and_spend_stays_exact() {
    use tally_model::money::MAX_COST_MICROS;
    let pop = harness::start(&["acme"]).await;
    let (key, read) = (pop.ingest_key(0), pop.read_key(0));
    let now = now_ms();
    let click = |id: &str, cost: u64| format!(r#"{{"click_id":"{id}","ad_id":77,"ts":{now},"cost_micros":{cost}}}"#);
    let body = format!(
        "[{},{},{},{}]",
        click("max-1", MAX_COST_MICROS),
        click("wrap", u64::MAX),
        click("max-2", MAX_COST_MICROS),
        click("above", MAX_COST_MICROS + 1)
    );
    let r = pop.post(&key, "application/json", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["accepted"], 2, "{v}");
    let rejected: Vec<(u64, String)> =
        v["rejected"].as_array().unwrap().iter().map(|e| (e["index"].as_u64().unwrap(), e["reason"].as_str().unwrap().to_string())).collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3]);
    assert!(rejected.iter().all(|(_, why)| why.contains("above the per-click maximum")), "{rejected:?}");

    // The beacon route takes a public key: the same bound holds there.
    let beacon = pop
        .client
        .send(
            http::Method::POST,
            &format!("{}/v1/beacon/{key}", pop.pop.state.edge_http),
            None,
            Some("text/plain"),
            format!("[{}]", click("beacon-wrap", u64::MAX)),
        )
        .await
        .unwrap();
    assert_eq!(beacon.json().unwrap()["accepted"], 0, "{}", beacon.text());

    let want = 2 * MAX_COST_MICROS;
    let (from, to) = (now - 60_000, now + 60_000);
    let series = pop.wait_for_series(&read, 77, from, to, "1m", 2).await;
    assert_eq!(series["total"]["spend_micros"].as_u64(), Some(want), "{series}");
    harness::wait_for_billing(&pop, &read, from, to, (2, want as i64)).await;
    pop.pop.stop().await;
}

/// With `listen_metrics`, the public ingest port no longer shows every
/// tenant's volume: `/metrics` is on its own listener only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_leave_the_public_port() {
    let pop = harness::start_with(&["acme"], tally::pop::EdgeSettings { metrics_listener: true, ..Default::default() }).await;
    let state = &pop.pop.state;
    let public = pop.client.get(&format!("{}/metrics", state.edge_http), None).await.unwrap();
    assert_eq!(public.status, StatusCode::NOT_FOUND, "{}", public.text());
    let own = pop.client.get(&format!("{}/metrics", state.edge_metrics.as_deref().expect("a metrics listener")), None).await.unwrap();
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.text().contains("tally_edge_"), "{}", own.text());
    pop.pop.stop().await;
}

/// `/v1/refused` counts refused clicks, not refusal answers: a late click
/// re-sent three times (and twice within one request) counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_click_counts_once_however_often_it_is_sent() {
    let pop = harness::start(&["acme"]).await;
    let (key, read) = (pop.ingest_key(0), pop.read_key(0));
    let late = now_ms() - 3 * 3_600_000;
    let clicks: Vec<String> = (0..4).map(|i| format!(r#"{{"click_id":"late-{i}","ad_id":5,"ts":{late}}}"#)).collect();
    for _ in 0..3 {
        let body = format!("[{},{}]", clicks.join(","), clicks[0]);
        let r = pop.post(&key, "application/json", body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json().unwrap()["rejected"].as_array().unwrap().len(), 5, "{}", r.text());
    }
    let range = format!("from={}&to={}", late - 3_600_000, late + 3_600_000);
    let want = json!([{"reason": "too_late", "clicks": 4}]);
    pop.wait_for(&read, &format!("/v1/refused?{range}"), |v| v["reasons"] == want).await;
    pop.pop.stop().await;
}
