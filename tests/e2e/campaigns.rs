//! Campaigns against exact ground truth: top campaigns, a campaign's series
//! at every step, its ads, billing per campaign, and tenant isolation.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{json, Value};
use tally::traffic::{json_array, now_ms, ClickGen, GenOptions, Truth};

use crate::harness::{self, Pop};

/// The generator's campaign of an ad (`traffic::ClickGen`).
fn campaign_of(ad: u64) -> u64 {
    ad / 10
}

/// Truth per campaign, and per (campaign, second).
fn by_campaign(generator: &ClickGen) -> (BTreeMap<u64, Truth>, BTreeMap<(u64, u64), Truth>) {
    let (mut total, mut per_second) = (BTreeMap::new(), BTreeMap::new());
    for (&(ad, second), t) in &generator.truth {
        for slot in [total.entry(campaign_of(ad)).or_insert(Truth::default()), per_second.entry((campaign_of(ad), second)).or_insert(Truth::default())] {
            slot.clicks += t.clicks;
            slot.spend_micros += t.spend_micros;
        }
    }
    (total, per_second)
}

fn ranked(v: &Value, list: &str, key: &str) -> BTreeMap<u64, Truth> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c[key].as_u64().unwrap(), Truth { clicks: c["clicks"].as_u64().unwrap(), spend_micros: c["spend_micros"].as_u64().unwrap() }))
        .collect()
}

async fn post_all(pop: &Pop, key: &str, generator: &mut ClickGen, now: u64, requests: usize) {
    for _ in 0..requests {
        let reply = pop.post(key, "application/json", json_array(&generator.events(200, now))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json().unwrap()["rejected"], json!([]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_equal_the_truth_and_stay_within_their_tenant() {
    let pop = harness::start(&["acme", "globex"]).await;
    let now = now_ms();
    let mut acme = ClickGen::new(GenOptions { seed: 21, ads: 35, duplicate_share: 0.05, jitter_ms: 60_000, ..GenOptions::default() });
    let mut globex = ClickGen::new(GenOptions { seed: 22, ads: 25, duplicate_share: 0.05, jitter_ms: 60_000, ..GenOptions::default() });
    post_all(&pop, &pop.ingest_key(0), &mut acme, now, 8).await;
    post_all(&pop, &pop.ingest_key(1), &mut globex, now, 4).await;
    // Ad 99 of acme names two campaigns in one second: both count in the
    // rollups; billing cannot say which campaign the ad belongs to.
    let ts = now - 5_000;
    let split = [(7, "split-7"), (8, "split-8")]
        .map(|(campaign, id)| json!({"click_id": id, "ad_id": 99, "campaign_id": campaign, "ts": ts, "cost_micros": 1000}).to_string());
    assert_eq!(pop.post(&pop.ingest_key(0), "application/json", json_array(&split)).await.json().unwrap()["accepted"], 2);

    let (from, to) = (now - 100_000, now + 1_000);
    let range = format!("from={from}&to={to}");
    let (acme_total, acme_seconds) = by_campaign(&acme);
    let mut want = acme_total.clone();
    for c in [7, 8] {
        want.insert(c, Truth { clicks: 1, spend_micros: 1000 });
    }
    let read = pop.read_key(0);
    let top = pop.wait_for(&read, &format!("/v1/campaigns?{range}&limit=100"), |v| ranked(v, "campaigns", "campaign_id") == want).await;
    // Most clicked first, users at most one per click.
    let clicks: Vec<u64> = top["campaigns"].as_array().unwrap().iter().map(|c| c["clicks"].as_u64().unwrap()).collect();
    assert!(clicks.windows(2).all(|w| w[0] >= w[1]), "{top}");
    // (The split clicks carry no user id.)
    for c in top["campaigns"].as_array().unwrap() {
        let (users, clicks) = (c["users"].as_u64().unwrap(), c["clicks"].as_u64().unwrap());
        assert!(users <= clicks && (users > 0) == acme_total.contains_key(&c["campaign_id"].as_u64().unwrap()), "{c}");
    }
    let limited = pop.query(&read, &format!("/v1/campaigns?{range}&limit=2")).await.json().unwrap();
    assert_eq!(limited["campaigns"].as_array().unwrap()[..], top["campaigns"].as_array().unwrap()[..2]);

    for (&campaign, truth) in &acme_total {
        // Per second, second for second.
        let path = format!("/v1/campaigns/{campaign}/clicks?{range}&step=1s");
        let s = pop.wait_for(&read, &path, |v| v["total"]["clicks"].as_u64() == Some(truth.clicks)).await;
        let got: BTreeMap<u64, Truth> = s["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["clicks"].as_u64().unwrap() > 0)
            .map(|p| (p["t"].as_u64().unwrap() / 1000, Truth { clicks: p["clicks"].as_u64().unwrap(), spend_micros: p["spend_micros"].as_u64().unwrap() }))
            .collect();
        let expected: BTreeMap<u64, Truth> = acme_seconds.range((campaign, 0)..(campaign + 1, 0)).map(|(&(_, s), &t)| (s, t)).collect();
        assert_eq!(got, expected, "campaign {campaign} per second");
        // Rollup steps: totals and point sums.
        for step in ["1m", "1h", "1d"] {
            let path = format!("/v1/campaigns/{campaign}/clicks?{range}&step={step}");
            let s = pop.wait_for(&read, &path, |v| v["total"]["clicks"].as_u64() == Some(truth.clicks)).await;
            assert_eq!((s["campaign_id"].as_u64(), s["step"].as_str()), (Some(campaign), Some(step)));
            assert_eq!(s["total"]["spend_micros"].as_u64().unwrap(), truth.spend_micros, "campaign {campaign} step {step}");
            let sum: u64 = s["points"].as_array().unwrap().iter().map(|p| p["clicks"].as_u64().unwrap()).sum();
            assert_eq!(sum, truth.clicks, "campaign {campaign} step {step}");
            let users = s["total"]["users"].as_u64().unwrap();
            assert!(users > 0 && users <= truth.clicks);
        }
        // Its ads, each with its own total.
        let ads = pop.query(&read, &format!("/v1/campaigns/{campaign}/ads?{range}&limit=1000")).await.json().unwrap();
        let expected: BTreeMap<u64, Truth> =
            acme.truth.keys().map(|&(ad, _)| ad).filter(|&ad| campaign_of(ad) == campaign).map(|ad| (ad, acme.ad_total(ad))).collect();
        assert_eq!(ranked(&ads, "ads", "ad_id"), expected, "ads of campaign {campaign}");
    }

    // Billing per campaign: exact (each click id once), the split ad apart.
    let (clicks, spend) = harness::truth_total(&acme);
    harness::wait_for_billing(&pop, &read, from, to, (clicks + 2, spend + 2000)).await;
    let (_, _, _, per_ad) = harness::billing(&pop, &read, from, to).await;
    let billing = pop.query(&read, &format!("/v1/billing/campaigns?{range}")).await;
    assert_eq!(billing.status, StatusCode::OK, "{}", billing.text());
    let billing = billing.json().unwrap();
    assert_eq!(billing["total"], per_ad["total"]);
    let mut billed: BTreeMap<u64, Truth> = BTreeMap::new();
    let mut unattributed = Vec::new();
    for (hour, ads_hour) in billing["hours"].as_array().unwrap().iter().zip(per_ad["hours"].as_array().unwrap()) {
        assert_eq!((&hour["hour"], &hour["final"]), (&ads_hour["hour"], &ads_hour["final"]));
        for c in hour["campaigns"].as_array().unwrap() {
            let t = billed.entry(c["campaign_id"].as_u64().unwrap()).or_default();
            t.clicks += c["clicks"].as_u64().unwrap();
            t.spend_micros += c["spend_micros"].as_u64().unwrap();
            assert!(c["ads"].as_array().unwrap().iter().all(|ad| campaign_of(ad.as_u64().unwrap()) == c["campaign_id"].as_u64().unwrap()));
        }
        unattributed.extend(hour["unattributed"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(billed, acme_total, "billing per campaign");
    assert_eq!(unattributed.len(), 1, "{unattributed:?}");
    assert_eq!((&unattributed[0]["ad_id"], &unattributed[0]["campaigns"], &unattributed[0]["clicks"]), (&json!(99), &json!([7, 8]), &json!(2)));

    // Another tenant sees its own campaigns only, never acme's.
    let other = pop.read_key(1);
    let (globex_total, _) = by_campaign(&globex);
    pop.wait_for(&other, &format!("/v1/campaigns?{range}&limit=100"), |v| ranked(v, "campaigns", "campaign_id") == globex_total).await;
    let s = pop.query(&other, &format!("/v1/campaigns/3/clicks?{range}&step=1m")).await.json().unwrap();
    assert_eq!(s["total"]["clicks"], 0, "globex has no campaign 3 (ads 1..=25): {s}");
    let ads = pop.query(&other, &format!("/v1/campaigns/7/ads?{range}")).await.json().unwrap();
    assert_eq!(ads["ads"], json!([]));
    let billing = pop.query(&other, &format!("/v1/billing/campaigns?{range}")).await.json().unwrap();
    assert!(billing["hours"].as_array().unwrap().iter().all(|h| h["unattributed"] == json!([])), "{billing}");

    // Bad requests and keys.
    for path in ["/v1/campaigns/x/clicks", "/v1/campaigns/1/ads?limit=0", "/v1/campaigns?step=5m", "/v1/billing/campaigns?step=1m"] {
        assert_eq!(pop.query(&read, path).await.status, StatusCode::BAD_REQUEST, "{path}");
    }
    for path in ["/v1/campaigns", "/v1/campaigns/1/clicks", "/v1/campaigns/1/ads", "/v1/billing/campaigns"] {
        assert_eq!(pop.query(&pop.ingest_key(0), path).await.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    pop.pop.stop().await;
}

/// A campaign's filtered clicks are exactly the clicks the tenant's filter
/// dropped from the ads that named only that campaign (a dropped click
/// carries its ad, not its campaign: `clickhouse::campaigns`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaigns_filtered_clicks_are_its_ads_dropped_clicks() {
    let filters = vec![("acme".into(), harness::plugin("bot_filter"), tally_edge::config::FailurePolicy::Open)];
    let pop = harness::start_with(&["acme"], tally::pop::EdgeSettings { filters, ..Default::default() }).await;
    let now = now_ms();
    // (ad, campaign, kept, dropped): ad 31 only dropped (counts under no
    // campaign), ad 41 named campaigns 4 and 5 (under neither).
    let plan = [(11, 1, 3, 2), (12, 1, 1, 4), (21, 2, 2, 1), (31, 3, 0, 5), (41, 4, 1, 2), (41, 5, 1, 0)];
    let mut events = Vec::new();
    for (ad, campaign, kept, dropped) in plan {
        for (n, ua) in [(kept, "Mozilla/5.0"), (dropped, "Googlebot/2.1")] {
            for i in 0..n {
                let id = format!("{ad}-{campaign}-{ua}-{i}");
                events.push(json!({"click_id": id, "ad_id": ad, "campaign_id": campaign, "ts": now - 2_000, "user_agent": ua, "ip": "8.8.8.8"}).to_string());
            }
        }
    }
    let r = harness::post_until_acked(&pop.client, &pop.pop.state.edge_http, &pop.ingest_key(0), &events).await;
    assert_eq!(r["accepted"], 8, "{r}");
    let (from, to) = (now - 120_000, now + 60_000);
    let read = pop.read_key(0);
    for (campaign, clicks, filtered) in [(1, 4, 6), (2, 2, 1), (3, 0, 0), (4, 1, 0), (5, 1, 0)] {
        for step in ["1m", "1h", "1d"] {
            let path = format!("/v1/campaigns/{campaign}/clicks?from={from}&to={to}&step={step}");
            let s = pop.wait_for(&read, &path, |v| v["total"]["clicks"].as_u64() == Some(clicks) && v["total_filtered"].as_u64() == Some(filtered)).await;
            let sum: u64 = s["points"].as_array().unwrap().iter().map(|p| p["filtered"].as_u64().unwrap()).sum();
            assert_eq!(sum, filtered, "campaign {campaign} step {step}: {s}");
        }
        // Per second there is no filtered count (refusals roll up per minute).
        let s = pop.query(&read, &format!("/v1/campaigns/{campaign}/clicks?from={from}&to={to}&step=1s")).await.json().unwrap();
        assert!(s.get("total_filtered").is_none(), "{s}");
    }
    pop.pop.stop().await;
}
