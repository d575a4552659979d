//! `GET /v1/clicks` (the tenant's series across all ads and campaigns)
//! against exact ground truth: several ads in several campaigns, another
//! tenant posting the same ad ids, steps of 1s, 1m and 1h; users are a union
//! across ads (a user who clicked three ads counts once), not a sum.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{json, Value};
use tally::traffic::{json_array, now_ms, ClickGen, GenOptions, Truth};

use crate::harness::{self, Pop};

/// Hand-made clicks in one minute: ads 501 and 502 (campaign 50) and 503
/// (campaign 51), six each, from the same three users.
const SHARED_ADS: [(u64, u64); 3] = [(501, 50), (502, 50), (503, 51)];
const SHARED_CLICKS: u64 = 6;
const SHARED_USERS: u64 = 3;

fn shared_clicks(tenant: &str, minute_ms: u64) -> (Vec<String>, Truth) {
    let mut truth = Truth::default();
    let mut events = Vec::new();
    for (ad, campaign) in SHARED_ADS {
        for i in 0..SHARED_CLICKS {
            let cost = 1000 + ad;
            let click = json!({"click_id": format!("{tenant}-{ad}-{i}"), "ad_id": ad, "campaign_id": campaign, "ts": minute_ms + 1000 + i * 500,
                "cost_micros": cost, "user_id": format!("{tenant}-user-{}", i % SHARED_USERS)});
            events.push(click.to_string());
            truth.clicks += 1;
            truth.spend_micros += cost;
        }
    }
    (events, truth)
}

async fn post_all(pop: &Pop, key: &str, generator: &mut ClickGen, now: u64, requests: usize) {
    for _ in 0..requests {
        let reply = pop.post(key, "application/json", json_array(&generator.events(200, now))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json().unwrap()["rejected"], json!([]));
    }
}

fn total(v: &Value) -> Truth {
    Truth { clicks: v["total"]["clicks"].as_u64().unwrap(), spend_micros: v["total"]["spend_micros"].as_u64().unwrap() }
}

/// Non-empty buckets of a series, keyed by bucket start in seconds.
fn buckets(v: &Value) -> BTreeMap<u64, Truth> {
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["clicks"].as_u64().unwrap() > 0)
        .map(|p| (p["t"].as_u64().unwrap() / 1000, Truth { clicks: p["clicks"].as_u64().unwrap(), spend_micros: p["spend_micros"].as_u64().unwrap() }))
        .collect()
}

/// The generator's truth plus the hand-made clicks (all in one second
/// bucket of their minute), per bucket of `size` s in `[from_s, to_s)`.
fn expected(generator: &ClickGen, shared: Option<(u64, Truth)>, size: u64, from_s: u64, to_s: u64) -> BTreeMap<u64, Truth> {
    let mut out: BTreeMap<u64, Truth> = BTreeMap::new();
    let seconds = generator.truth.iter().map(|(&(_ad, second), t)| (second, *t));
    for (second, t) in seconds.chain(shared) {
        if (from_s..to_s).contains(&second) {
            let slot = out.entry(second - second % size).or_default();
            slot.clicks += t.clicks;
            slot.spend_micros += t.spend_micros;
        }
    }
    out
}

fn sum(buckets: &BTreeMap<u64, Truth>) -> Truth {
    buckets.values().fold(Truth::default(), |a, t| Truth { clicks: a.clicks + t.clicks, spend_micros: a.spend_micros + t.spend_micros })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_series_equals_the_truth_across_ads_and_campaigns() {
    let pop = harness::start(&["acme", "globex"]).await;
    let now = now_ms();
    // Ads 1..=20: campaigns 0, 1 and 2 (traffic::ClickGen); globex posts the same ad ids.
    let mut acme = ClickGen::new(GenOptions { seed: 41, ads: 20, duplicate_share: 0.05, jitter_ms: 60_000, ..GenOptions::default() });
    let mut globex = ClickGen::new(GenOptions { seed: 42, ads: 20, duplicate_share: 0.05, jitter_ms: 60_000, ..GenOptions::default() });
    post_all(&pop, &pop.ingest_key(0), &mut acme, now, 6).await;
    post_all(&pop, &pop.ingest_key(1), &mut globex, now, 3).await;
    // Ten minutes back: a minute the generators' clicks (the last minute) do not touch.
    let minute = (now - 10 * 60_000) / 60_000 * 60_000;
    let (acme_shared, acme_shared_truth) = shared_clicks("acme", minute);
    let (globex_shared, globex_shared_truth) = shared_clicks("globex", minute);
    assert_eq!(pop.post(&pop.ingest_key(0), "application/json", json_array(&acme_shared)).await.json().unwrap()["accepted"], 18);
    assert_eq!(pop.post(&pop.ingest_key(1), "application/json", json_array(&globex_shared)).await.json().unwrap()["accepted"], 18);

    let (from, to) = (now / 3_600_000 * 3_600_000 - 3_600_000, now / 3_600_000 * 3_600_000 + 3_600_000);
    let (from_s, to_s) = (from / 1000, to / 1000);
    let (read, other) = (pop.read_key(0), pop.read_key(1));
    let acme_minutes = expected(&acme, Some((minute / 1000 + 1, acme_shared_truth)), 60, from_s, to_s);
    let want = sum(&acme_minutes);
    let (posted_clicks, posted_spend) = harness::truth_total(&acme);
    assert_eq!((want.clicks, want.spend_micros), (posted_clicks as u64 + acme_shared_truth.clicks, posted_spend as u64 + acme_shared_truth.spend_micros));
    let by_minute = pop.wait_for(&read, &format!("/v1/clicks?from={from}&to={to}&step=1m"), |v| total(v) == want).await;
    // Every minute equals the clicks posted in it, over all ads and campaigns.
    assert_eq!(buckets(&by_minute), acme_minutes, "per minute");
    assert_eq!(by_minute["points"].as_array().unwrap().len() as u64, (to_s - from_s) / 60, "dense points");
    assert_eq!(by_minute["total_filtered"], 0, "no filter: nothing filtered");
    assert!(by_minute["points"].as_array().unwrap().iter().all(|p| p["filtered"] == 0));
    // Users: one union across the three ads of the shared minute, not 3 x 3.
    let shared = by_minute["points"].as_array().unwrap().iter().find(|p| p["t"] == minute).unwrap().clone();
    assert_eq!((shared["clicks"].as_u64(), shared["users"].as_u64()), (Some(18), Some(SHARED_USERS)), "{shared}");
    let users = by_minute["total"]["users"].as_u64().unwrap();
    assert!(users >= SHARED_USERS && users <= want.clicks, "{}", by_minute["total"]);
    // The same minute alone: its planned totals carry the union too.
    let one = pop.query(&read, &format!("/v1/clicks?from={minute}&to={}&step=1m", minute + 60_000)).await.json().unwrap();
    assert_eq!((total(&one), one["total"]["users"].as_u64()), (acme_shared_truth, Some(SHARED_USERS)), "{one}");

    // 1h: the same totals over hour rows (the plan reads hour rollups).
    let by_hour = pop.query(&read, &format!("/v1/clicks?from={from}&to={to}&step=1h")).await.json().unwrap();
    assert_eq!(buckets(&by_hour), expected(&acme, Some((minute / 1000 + 1, acme_shared_truth)), 3600, from_s, to_s), "per hour");
    assert_eq!(total(&by_hour), want);
    assert_eq!(by_hour["total"]["users"], by_minute["total"]["users"], "one union of the same clicks");

    // 1s from the landing table: every second of the last two minutes, no filtered column.
    let (lo, hi) = ((now - 120_000) / 1000 * 1000, (now + 2_000) / 1000 * 1000);
    let by_second = pop.query(&read, &format!("/v1/clicks?from={lo}&to={hi}&step=1s")).await.json().unwrap();
    let want_seconds = expected(&acme, None, 1, lo / 1000, hi / 1000);
    assert_eq!(buckets(&by_second), want_seconds, "per second");
    assert_eq!(total(&by_second), sum(&want_seconds));
    assert!(by_second.get("total_filtered").is_none() && by_second["points"][0].get("filtered").is_none(), "{}", by_second["points"][0]);

    // Tenant isolation: globex sees its own clicks only, acme none of them.
    let globex_want = expected(&globex, Some((minute / 1000 + 1, globex_shared_truth)), 60, from_s, to_s);
    let theirs = pop.wait_for(&other, &format!("/v1/clicks?from={from}&to={to}&step=1m"), |v| total(v) == sum(&globex_want)).await;
    assert_eq!(buckets(&theirs), globex_want);
    let ours = pop.query(&read, &format!("/v1/clicks?from={from}&to={to}&step=1m")).await.json().unwrap();
    assert_eq!(total(&ours), want, "another tenant's clicks are not acme's");

    // The dashboard's headline equals billing for the same hours.
    harness::wait_for_billing(&pop, &read, from, to, (want.clicks as i64, want.spend_micros as i64)).await;

    // Without a read key: refused; a bad step: said so.
    assert_eq!(pop.query("nope", &format!("/v1/clicks?from={from}&to={to}")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(pop.query(&read, &format!("/v1/clicks?from={from}&to={to}&step=7m")).await.status, StatusCode::BAD_REQUEST);
    pop.pop.stop().await;
}
