//! The plugin registry end to end: `tally plugin push` to the core, edges
//! picking versions up without a restart, hot swap under load (no click
//! lost or counted twice), shadow and canary comparisons, enrichment
//! dimensions, and tenant isolation.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use tally::pop::EdgeSettings;
use tally::traffic::now_ms;
use tally_edge::filter::rollout::in_canary;
use tally_edge::ingest::event::click_key;
use tally_model::tenant::TenantId;

use crate::harness::{self, plugin, post_until_acked, wait_for_filter_version, Pop};

/// `tally plugin ...` as a tenant admin runs it.
fn cli(pop: &Pop, admin_key: &str, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("plugin")
        .args(["--core", &pop.pop.state.core_https, "--key", admin_key])
        .arg("--ca-cert")
        .arg(&pop.pop.state.core_cert)
        .args(["-o", "json"])
        .args(args)
        .output()
        .expect("running tally plugin");
    assert!(out.status.success(), "tally plugin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    // `push --activate` prints two documents; the last one is the state.
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.rfind("\n{").map_or(0, |i| i + 1);
    serde_json::from_str(&text[last..]).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn click(id: &str, ad: u64, ts: u64, bot: bool, ip: &str) -> String {
    let ua = if bot { "Googlebot/2.1" } else { "Mozilla/5.0 (iPhone) Mobile" };
    format!(r#"{{"click_id":"{id}","ad_id":{ad},"ts":{ts},"user_agent":"{ua}","ip":"{ip}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_hot_swap_shadow_canary_and_isolation() {
    let settings = EdgeSettings { registry_poll_ms: 100, ..EdgeSettings::default() };
    let pop = harness::start_with(&["acme", "other"], settings).await;
    let (edge, core) = (pop.pop.state.edge_http.clone(), pop.pop.state.core_http.clone());
    let admin = pop.pop.state.tenants[0].admin_key.clone();
    let other_admin = pop.pop.state.tenants[1].admin_key.clone();
    let key = pop.ingest_key(0);
    let acme = TenantId::parse("acme").unwrap();

    // Isolation and validation: keys name tenants; junk is refused.
    let junk = pop.client.send(http::Method::POST, &format!("{core}/v1/plugins"), Some(&admin), None, &b"\0asm junk"[..]).await.unwrap();
    assert_eq!(junk.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", junk.text());
    let read = pop.client.get(&format!("{core}/v1/plugins"), Some(&pop.read_key(0))).await.unwrap();
    assert_eq!(read.status, StatusCode::UNAUTHORIZED);
    let manifest = pop.client.get(&format!("{core}/v1/registry/manifest"), Some(&admin)).await.unwrap();
    assert_eq!(manifest.status, StatusCode::UNAUTHORIZED, "a tenant key is not an edge token");
    // Over HTTPS the registry serves only an enrolled edge key (the edges of
    // this POP poll it with theirs: the rest of this test shows they get it).
    let anonymous = tally_http::client::PinnedHttps::new(&pop.pop.state.core_cert, "localhost", None).unwrap();
    let manifest = anonymous.get(&format!("{}/v1/registry/manifest", pop.pop.state.core_https), Some(&admin)).await.unwrap();
    assert_eq!(manifest.status, StatusCode::UNAUTHORIZED, "{}", manifest.text());
    assert!(manifest.text().contains("enrolled key"), "{}", manifest.text());

    // v1: a no-op, active. The edge picks it up without a restart.
    let v1 = cli(&pop, &admin, &["push", plugin("noop").to_str().unwrap(), "--activate"]);
    assert_eq!(v1["active"], 1, "{v1}");
    let theirs = cli(&pop, &other_admin, &["status"]);
    assert_eq!(theirs["versions"].as_array().unwrap().len(), 0, "another tenant sees nothing: {theirs}");
    let steal = pop.client.post_json(&format!("{core}/v1/plugins/rollout"), Some(&other_admin), r#"{"action":"activate","version":1}"#).await.unwrap();
    assert_eq!(steal.status, StatusCode::CONFLICT, "{}", steal.text());
    assert_eq!(cli(&pop, &admin, &["status"])["active"], 1, "the other tenant's step changed nothing here");
    // Component bytes go to edges only, whoever's admin key asks.
    let blob = format!("{core}/v1/registry/blobs/{}", v1["versions"][0]["sha256"].as_str().unwrap());
    for key in [&admin, &other_admin] {
        assert_eq!(pop.client.get(&blob, Some(key)).await.unwrap().status, StatusCode::UNAUTHORIZED);
    }
    wait_for_filter_version(&pop, "acme", "active", 1).await;

    // Hot swap under load: clicks keep coming while v2 (the bot filter)
    // replaces v1. Every click is answered once, as counted or as filtered.
    let now = now_ms();
    // Four senders, each its own ids, each re-sending until acknowledged.
    let swapped = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (client, edge, key, swapped, answered) = (pop.client.clone(), edge.clone(), key.clone(), swapped.clone(), answered.clone());
            tokio::spawn(async move {
                let (mut accepted, mut filtered, mut sent) = (0u64, 0u64, 0u64);
                let mut per_batch = Vec::new();
                // Until the edge runs v2, then 10 batches more.
                let mut after = 0;
                for batch in 0u64.. {
                    if swapped.load(Ordering::SeqCst) {
                        after += 1;
                        if after > 10 {
                            break;
                        }
                    }
                    let events: Vec<String> = (0..50).map(|i| click(&format!("s{sender}-{batch}-{i}"), 41, now, i % 5 == 0, "8.8.8.8")).collect();
                    let r = post_until_acked(&client, &edge, &key, &events).await;
                    accepted += r["accepted"].as_u64().unwrap();
                    filtered += r["rejected"].as_array().unwrap().len() as u64;
                    sent += 50;
                    per_batch.push(r["rejected"].as_array().unwrap().len());
                    if batch == 0 {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (accepted, filtered, sent, per_batch)
            })
        })
        .collect();
    // The swap happens under load: every sender has been answered by v1 first.
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    while answered.load(Ordering::SeqCst) < 4 {
        assert!(tokio::time::Instant::now() < deadline, "the senders never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v2 = cli(&pop, &admin, &["push", plugin("bot_filter").to_str().unwrap(), "--activate"]);
    assert_eq!(v2["active"], 2, "{v2}");
    wait_for_filter_version(&pop, "acme", "active", 2).await;
    swapped.store(true, Ordering::SeqCst);
    let (mut accepted, mut filtered) = (0, 0);
    for sender in senders {
        let (a, f, sent, per_batch) = sender.await.unwrap();
        assert_eq!(a + f, sent, "every click answered once");
        assert!(per_batch.last() == Some(&10), "the bot filter ran by the end: {per_batch:?}");
        assert!(per_batch.first() == Some(&0), "the no-op ran first: {per_batch:?}");
        (accepted, filtered) = (accepted + a, filtered + f);
    }
    // The counts equal the answers: nothing lost, nothing doubled.
    pop.wait_for_series(&pop.read_key(0), 41, now - 60_000, now + 60_000, "1m", accepted).await;
    let series = pop
        .wait_for(&pop.read_key(0), &format!("/v1/ads/41/clicks?from={}&to={}&step=1m", now - 60_000, now + 60_000), |s| {
            s["total_filtered"].as_u64() == Some(filtered)
        })
        .await;
    assert_eq!(series["total"]["clicks"].as_u64(), Some(accepted));

    // Shadow: v1 (no-op) runs beside v2 and is only compared.
    let state = cli(&pop, &admin, &["shadow", "1"]);
    assert_eq!(state["candidate"], serde_json::json!({"version": 1, "mode": "shadow"}), "{state}");
    wait_for_filter_version(&pop, "acme", "candidate", 1).await;
    let t = now_ms();
    let events: Vec<String> = (0..40).map(|i| click(&format!("sh{i}"), 42, t, i % 4 == 0, "10.2.0.9")).collect();
    let r = post_until_acked(&pop.client, &edge, &key, &events).await;
    assert_eq!((r["accepted"].as_u64(), r["rejected"].as_array().unwrap().len()), (Some(30), 10), "the active version applies: {r}");
    let range = format!("from={}&to={}", t - 120_000, t + 120_000);
    let cmp = pop
        .wait_for(&admin, &format!("/v1/plugins/comparison?{range}"), |v| {
            v["versions"].as_array().is_some_and(|a| a.iter().any(|c| c["mode"] == "shadow" && c["clicks"] == 40))
        })
        .await;
    let shadow = cmp["versions"].as_array().unwrap().iter().find(|c| c["mode"] == "shadow").unwrap().clone();
    assert_eq!((shadow["active_version"].as_u64(), shadow["candidate_version"].as_u64()), (Some(2), Some(1)));
    assert_eq!((shadow["agree"].as_u64(), shadow["applied_candidate"].as_u64()), (Some(30), Some(0)), "{shadow}");

    // Canary: v3 (geo enrichment, keeps everything) on half the clicks. Its
    // clicks are kept and tagged; the others follow v2.
    let v3 = cli(&pop, &admin, &["push", plugin("geo_enrich").to_str().unwrap()]);
    assert_eq!(v3["version"], 3, "{v3}");
    cli(&pop, &admin, &["canary", "3", "--percent", "50"]);
    wait_for_filter_version(&pop, "acme", "candidate", 3).await;
    let t = now_ms();
    let ids: Vec<String> = (0..200).map(|i| format!("ca{i}")).collect();
    let events: Vec<String> = ids.iter().map(|id| click(id, 43, t, true, "10.2.0.9")).collect();
    let canary: BTreeSet<&String> = ids.iter().filter(|id| in_canary(click_key(&acme, id), 50)).collect();
    let r = post_until_acked(&pop.client, &edge, &key, &events).await;
    assert_eq!(r["accepted"].as_u64(), Some(canary.len() as u64), "only canary clicks escape the bot filter: {r}");
    let range = format!("from={}&to={}", t - 120_000, t + 120_000);
    let dims =
        pop.wait_for(&pop.read_key(0), &format!("/v1/dimensions/country?{range}"), |v| v["values"][0]["clicks"].as_u64() == Some(canary.len() as u64)).await;
    assert_eq!(dims["values"][0]["value"], "DE", "{dims}");
    let cmp = pop
        .wait_for(&admin, &format!("/v1/plugins/comparison?{range}"), |v| {
            v["versions"].as_array().is_some_and(|a| a.iter().any(|c| c["mode"] == "canary" && c["clicks"] == 200))
        })
        .await;
    let c = cmp["versions"].as_array().unwrap().iter().find(|c| c["mode"] == "canary").unwrap().clone();
    assert_eq!((c["applied_candidate"].as_u64(), c["agree"].as_u64()), (Some(canary.len() as u64), Some(0)), "{c}");

    // Promote, then roll a new candidate back: the state says so.
    let state = cli(&pop, &admin, &["promote"]);
    assert_eq!((state["active"].as_u64(), state["candidate"].is_null()), (Some(3), true), "{state}");
    wait_for_filter_version(&pop, "acme", "active", 3).await;
    cli(&pop, &admin, &["shadow", "2"]);
    let state = cli(&pop, &admin, &["rollback"]);
    assert!(state["candidate"].is_null(), "{state}");

    // Billing shows what was filtered, next to what is billed.
    let billing = pop
        .wait_for(&pop.read_key(0), &format!("/v1/billing?from={}&to={}", now - 3_600_000, now + 3_600_000), |b| {
            b["total"]["filtered"].as_u64() == Some(filtered + 10 + (200 - canary.len() as u64))
        })
        .await;
    assert!(billing["total"]["clicks"].as_i64().unwrap() > 0, "{billing}");
    pop.pop.stop().await;
}
