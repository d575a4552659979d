//! The dashboard in a real browser (tests/browser/dashboard.mjs, Debian's
//! chromium under playwright-core): with known clicks in a POP, every number
//! the page shows for a range equals the API's for the same range (and the
//! clicks posted), the tiles the tenant's (`GET /v1/clicks`) until an ad or
//! campaign is picked, the country and device cards the enrichment of the
//! tenant's filter (geo_enrich, active) and the rollout card the comparison
//! with a candidate in shadow (noop); picking ranges and drilling down change
//! what it shows;
//! with ClickHouse stopped it shows the error and none of the old numbers.
//! Screenshots: target/test-artifacts/dashboard/.

use serde_json::Value;
use tally::traffic::now_ms;

use tally::pop::EdgeSettings;

use crate::harness::{self, plugin, wait_for_filter_version, Pop};
use crate::playwright::{self, step, Said, Script};

/// Clicks posted per ad (ad, clicks, cost per click, distinct users, campaign).
const ADS: [(u64, u64, u64, u64, u64); 3] = [(11, 30, 1500, 10, 5), (12, 20, 700, 4, 5), (13, 10, 250, 10, 6)];

/// Click `i` of an ad: every third from the US (10.1/16 in geo_enrich's
/// table), the others from Germany (10.2/16); every fourth from a phone.
fn origin(i: u64) -> (&'static str, &'static str) {
    let ip = if i % 3 == 0 { "10.1.0.7" } else { "10.2.0.9" };
    let ua = if i % 4 == 0 { "Mozilla/5.0 (iPhone) Mobile" } else { "Mozilla/5.0 (X11; Linux x86_64)" };
    (ip, ua)
}

/// The page's range as its ranked cards ask the API for it: whole ms
/// outward, and a step of a minute or more.
fn ranked_query(shown: &Value) -> String {
    let r = &shown["range"];
    let step = if r["step"] == "1s" { "1m" } else { r["step"].as_str().unwrap() };
    format!("from={}&to={}&step={step}", r["from"].as_f64().unwrap().floor(), r["to"].as_f64().unwrap().ceil())
}

/// What a dimension card must show: (value, clicks) of the API's answer for the page's range.
async fn api_dimension_rows(pop: &Pop, key: &str, shown: &Value, name: &str) -> Vec<(String, String)> {
    let reply = pop.query(key, &format!("/v1/dimensions/{name}?{}&limit=20", ranked_query(shown))).await;
    assert!(reply.status.is_success(), "{name}: {} {}", reply.status, reply.text());
    let v: Value = reply.json().unwrap();
    v["values"].as_array().unwrap().iter().map(|x| (x["value"].as_str().unwrap().to_string(), x["clicks"].to_string())).collect()
}

/// A dimension card as shown: (value, clicks).
fn dimension_rows(shown: &Value, card: &str) -> Vec<(String, String)> {
    rows(shown, card).into_iter().map(|r| (r[0].clone(), r[1].clone())).collect()
}

/// What the rollout card must show: the API's comparison for the page's range.
async fn api_rollout_rows(pop: &Pop, admin: &str, shown: &Value) -> Vec<Vec<String>> {
    let reply = pop.query(admin, &format!("/v1/plugins/comparison?{}", ranked_query(shown))).await;
    assert!(reply.status.is_success(), "comparison: {} {}", reply.status, reply.text());
    let v: Value = reply.json().unwrap();
    let versions = v["versions"].as_array().unwrap().iter();
    versions
        .map(|c| {
            let pair = format!("v{} → v{}", c["active_version"], c["candidate_version"]);
            let failed = format!("{} / {}", c["active_failed"], c["candidate_failed"]);
            let mode = c["mode"].as_str().unwrap().to_string();
            vec![pair, mode, c["clicks"].to_string(), c["agreement"].as_f64().unwrap().to_string(), c["applied_candidate"].to_string(), failed]
        })
        .collect()
}

/// What the page's ad table must show for its range: the API's top ads,
/// with users and filtered clicks from each ad's series.
async fn api_ad_rows(pop: &Pop, key: &str, shown: &Value) -> Vec<Vec<String>> {
    let r = &shown["range"];
    let (from, to, step) = (r["from"].as_u64().unwrap(), r["to"].as_u64().unwrap(), r["step"].as_str().unwrap());
    let top: Value = pop.query(key, &format!("/v1/ads?from={from}&to={to}&step={step}&limit=10")).await.json().unwrap();
    let mut rows = Vec::new();
    for ad in top["ads"].as_array().unwrap() {
        let id = ad["ad_id"].as_u64().unwrap();
        let s = pop.series(key, id, from, to, step).await;
        let filtered = s["total_filtered"].as_u64().map_or("–".to_string(), |f| f.to_string());
        rows.push(vec![id.to_string(), ad["clicks"].to_string(), ad["spend_micros"].to_string(), s["total"]["users"].to_string(), filtered]);
    }
    rows
}

/// The tiles as shown: clicks, spend, users, filtered (`data-v`).
fn tiles(shown: &Value) -> [String; 4] {
    ["clicks", "spend_micros", "users", "filtered"].map(|t| shown["tiles"][t].as_str().unwrap().to_string())
}

/// What the tiles must show with nothing picked: the totals of
/// `GET /v1/clicks` for the page's range (filtered empty at 1s).
async fn api_tenant_tiles(pop: &Pop, key: &str, shown: &Value) -> [String; 4] {
    let r = &shown["range"];
    let path = format!("/v1/clicks?from={}&to={}&step={}", r["from"], r["to"], r["step"].as_str().unwrap());
    let v: Value = pop.query(key, &path).await.json().unwrap();
    let t = &v["total"];
    let filtered = v["total_filtered"].as_u64().map_or(String::new(), |f| f.to_string());
    [t["clicks"].to_string(), t["spend_micros"].to_string(), t["users"].to_string(), filtered]
}

fn rows(shown: &Value, table: &str) -> Vec<Vec<String>> {
    serde_json::from_value(shown[table].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_apis_numbers_drills_down_and_shows_errors() {
    let mut pop = harness::start_with(&["acme"], EdgeSettings { registry_poll_ms: 100, ..EdgeSettings::default() }).await;
    let (ingest, read) = (pop.ingest_key(0), pop.read_key(0));
    let admin = pop.pop.state.tenants[0].admin_key.clone();
    // The tenant's filter tags country and device (v1, active); v2 (keeps
    // every click, tags nothing) runs beside it in shadow, only compared.
    let core = pop.pop.state.core_http.clone();
    for name in ["geo_enrich", "noop"] {
        let component = std::fs::read(plugin(name)).unwrap();
        let pushed = pop.client.send(http::Method::POST, &format!("{core}/v1/plugins?name={name}"), Some(&admin), None, component).await.unwrap();
        assert!(pushed.status.is_success(), "pushing {name}: {} {}", pushed.status, pushed.text());
    }
    for action in [r#"{"action":"activate","version":1}"#, r#"{"action":"shadow","version":2}"#] {
        let applied = pop.client.post_json(&format!("{core}/v1/plugins/rollout"), Some(&admin), action).await.unwrap();
        assert!(applied.status.is_success(), "{action}: {} {}", applied.status, applied.text());
    }
    wait_for_filter_version(&pop, "acme", "active", 1).await;
    wait_for_filter_version(&pop, "acme", "candidate", 2).await;
    let now = now_ms();
    let mut events = Vec::new();
    for (ad, clicks, cost, users, campaign) in ADS {
        for i in 0..clicks {
            let ts = now - 60_000 + i * 100;
            let (ip, ua) = origin(i);
            events.push(format!(
                r#"{{"click_id":"d{ad}-{i}","ad_id":{ad},"campaign_id":{campaign},"ts":{ts},"cost_micros":{cost},"user_id":"u{}","ip":"{ip}","user_agent":"{ua}"}}"#,
                i % users
            ));
        }
    }
    let acked = harness::post_until_acked(&pop.client, &pop.pop.state.edge_http, &ingest, &events).await;
    assert_eq!(acked["accepted"], 60);
    // Two hours behind the watermark: refused as too late, counted at its event time.
    let late = format!(r#"[{{"click_id":"late-1","ad_id":11,"ts":{}}}]"#, now - 2 * 3600_000);
    let answer = pop.post(&ingest, "application/json", late).await.json().unwrap();
    assert_eq!(answer["rejected"].as_array().map(Vec::len), Some(1), "{answer}");
    for (ad, clicks, ..) in ADS {
        pop.wait_for_series(&read, ad, now - 3600_000, now + 60_000, "1m", clicks).await;
    }
    pop.wait_for(&read, &format!("/v1/refused?from={}&to={}", now - 3 * 3600_000, now + 60_000), |v| v["reasons"].as_array().is_some_and(|r| !r.is_empty()))
        .await;
    let window = format!("from={}&to={}", now - 3600_000, now + 60_000);
    let tagged = |v: &Value| v["values"].as_array().is_some_and(|a| a.iter().map(|x| x["clicks"].as_u64().unwrap_or(0)).sum::<u64>() == 60);
    for name in ["country", "device"] {
        pop.wait_for(&read, &format!("/v1/dimensions/{name}?{window}"), tagged).await;
    }
    let compared = |v: &Value| v["versions"].as_array().is_some_and(|a| a.iter().any(|c| c["clicks"].as_u64() >= Some(60)));
    pop.wait_for(&admin, &format!("/v1/plugins/comparison?{window}"), compared).await;

    let artifacts = playwright::artifacts("dashboard");
    let env = [
        ("TALLY_DASHBOARD", format!("{}/", pop.pop.state.core_http)),
        ("TALLY_READ_KEY", read.clone()),
        ("TALLY_ADMIN_KEY", admin),
        ("TALLY_ARTIFACTS", artifacts.display().to_string()),
    ];
    let admin = env[2].1.clone();
    let mut script = Script::start("dashboard.mjs", &env);
    // ClickHouse stops once the page has shown the last hour again.
    loop {
        match script.next().await {
            Said::Waiting => {
                pop.pop.stop_clickhouse().await;
                script.resume().await;
                break;
            }
            Said::Report => {}
            Said::Done => break,
        }
    }
    let reports = script.finish().await;

    // The last hour (1m): the API's numbers, which are the clicks posted.
    let hour = step(&reports, "hour");
    assert_eq!(hour["range"]["step"], "1m");
    let shown = rows(hour, "ads");
    let want: Vec<Vec<String>> =
        ADS.iter().map(|&(ad, c, cost, u, _)| vec![ad.to_string(), c.to_string(), (c * cost).to_string(), u.to_string(), "0".into()]).collect();
    assert_eq!(shown, want, "the page's ad table is not the clicks posted");
    // Nothing picked: the tiles and the chart are the tenant's, every ad's
    // clicks and spend, and users a union (the ads share users u0..u9).
    let billed: u64 = ADS.iter().map(|&(_, c, ..)| c).sum();
    let spent: u64 = ADS.iter().map(|&(_, c, cost, ..)| c * cost).sum();
    assert_eq!(tiles(hour), [billed.to_string(), spent.to_string(), "10".into(), "0".into()], "{}", hour["tiles"]);
    assert!(hour["title"].as_str().unwrap().starts_with("All ads"), "{}", hour["title"]);
    assert_eq!(hour["scope"], "Totals of all ads (the whole tenant)");
    assert_eq!(hour["billing_total"][2], billed.to_string());
    assert_eq!(hour["billing_total"][3], spent.to_string());
    assert!(step(&reports, "hover")["legend"].as_str().unwrap().contains("clicks"));
    // The filter's tags: 21 of the 60 clicks from the US, 16 from phones.
    let pairs = |p: &[(&str, &str)]| p.iter().map(|&(v, c)| (v.to_string(), c.to_string())).collect::<Vec<_>>();
    assert_eq!(dimension_rows(hour, "country"), pairs(&[("DE", "39"), ("US", "21")]), "{}", hour["country"]);
    assert_eq!(dimension_rows(hour, "device"), pairs(&[("desktop", "44"), ("mobile", "16")]), "{}", hour["device"]);
    assert_eq!((hour["states"]["dim-country-card"].as_str(), hour["states"]["rollout-card"].as_str()), (Some("ready"), Some("ready")));
    // The candidate in shadow agreed on every click it saw (neither drops one).
    let rollout = rows(hour, "rollout");
    assert_eq!(rollout.len(), 1, "one version pair in rollout: {rollout:?}");
    assert_eq!((&rollout[0][..2], &rollout[0][3..]), (&["v1 → v2".to_string(), "shadow".into()][..], &["1".to_string(), "0".into(), "0 / 0".into()][..]));
    // The CSV holds each ad's exact billing in the hour(s) of the clicks.
    let csv = step(&reports, "csv")["csv"].as_str().unwrap().to_string();
    assert!(csv.starts_with("hour_utc,final,ad_id,clicks,spend_micros,adjustments,filtered\n"), "{csv}");
    let billed_rows: Vec<(u64, u64, u64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].parse().unwrap())
        })
        .fold(Vec::new(), |mut acc: Vec<(u64, u64, u64)>, (ad, c, s)| {
            match acc.iter_mut().find(|a| a.0 == ad) {
                Some(a) => (a.1, a.2) = (a.1 + c, a.2 + s),
                None => acc.push((ad, c, s)),
            }
            acc
        });
    let want_billed: Vec<(u64, u64, u64)> = ADS.iter().map(|&(ad, c, cost, ..)| (ad, c, c * cost)).collect();
    assert_eq!(billed_rows, want_billed, "{csv}");

    // Other ranges and steps: still the API's numbers for the page's range.
    let fifteen = step(&reports, "fifteen");
    assert_eq!(fifteen["range"]["step"], "1s");
    let week = step(&reports, "week");
    assert_eq!(week["range"]["step"], "1h");
    assert_eq!(rows(week, "refused"), vec![vec!["too_late".to_string(), "1".into(), "100 %".into()]]);

    // Drill-down to the second ad.
    let ad = step(&reports, "ad");
    assert_eq!(ad["ad"], 12);
    assert_eq!((ad["tiles"]["clicks"].as_str(), ad["tiles"]["users"].as_str()), (Some("20"), Some("4")));
    assert!(ad["title"].as_str().unwrap().starts_with("Ad 12"));
    assert_eq!(ad["scope"], "Totals of ad 12");

    // An empty range shows the empty state, not zeros in a table.
    let empty = step(&reports, "empty");
    assert_eq!(empty["states"]["ads-card"], "empty");
    assert_eq!(empty["states"]["chart-card"], "empty");
    assert_eq!(empty["states"]["billing-card"], "empty");

    // ClickHouse stopped: errors, and none of the numbers from before.
    let error = step(&reports, "error");
    for card in ["ads-card", "chart-card", "billing-card", "refused-card"] {
        assert_eq!(error["states"][card], "error", "{card}: {error}");
    }
    assert!(rows(error, "ads").is_empty() && rows(error, "billing").is_empty(), "stale rows under an error: {error}");
    assert_eq!(error["tiles"]["clicks"], "");
    assert_eq!(error["charts"], 0);
    assert!(error["banner"].as_str().unwrap().contains("ClickHouse"), "{}", error["banner"]);
    let out = step(&reports, "signed-out");
    assert_eq!(out["view"], "signed-out");

    // The ranges compared with the API need it up again.
    pop.pop.start_clickhouse().await.unwrap();
    for s in ["hour", "fifteen", "week", "ad"] {
        let shown = step(&reports, s);
        let api = wait_api_rows(&pop, &read, shown).await;
        assert_eq!(rows(shown, "ads"), api, "{s}: the page's ad table differs from the API's");
    }
    // The dimension and rollout cards of every range are the API's.
    for s in ["hour", "fifteen", "week"] {
        let shown = step(&reports, s);
        for name in ["country", "device"] {
            assert_eq!(dimension_rows(shown, name), api_dimension_rows(&pop, &read, shown, name).await, "{s}: the {name} card differs from the API's");
        }
        assert_eq!(rows(shown, "rollout"), api_rollout_rows(&pop, &admin, shown).await, "{s}: the rollout card differs from the API's");
    }
    // The tiles of every range with nothing picked are GET /v1/clicks's totals.
    for s in ["hour", "fifteen", "week"] {
        let shown = step(&reports, s);
        assert_eq!(tiles(shown), api_tenant_tiles(&pop, &read, shown).await, "{s}: the tiles differ from /v1/clicks");
        assert_eq!(shown["tiles"]["clicks"], billed.to_string(), "{s}");
    }
    // Campaigns, where the core has them: campaign 5 holds ads 11 and 12.
    if pop.query(&read, "/v1/campaigns").await.status != http::StatusCode::NOT_FOUND {
        // Filtered per campaign: each campaign's series for the page's range.
        let r = &hour["range"];
        let mut filtered = Vec::new();
        for c in [5, 6] {
            let path = format!("/v1/campaigns/{c}/clicks?from={}&to={}&step={}", r["from"], r["to"], r["step"].as_str().unwrap());
            let s: Value = pop.query(&read, &path).await.json().unwrap();
            filtered.push(s["total_filtered"].as_u64().map_or("–".to_string(), |f| f.to_string()));
        }
        assert_eq!(rows(hour, "campaigns"), [["5", "50", "59000", "10", &filtered[0]], ["6", "10", "2500", "10", &filtered[1]]]);
        let campaign = step(&reports, "campaign");
        assert_eq!(campaign["campaign"], 5);
        assert!(campaign["title"].as_str().unwrap().starts_with("Campaign 5"), "{}", campaign["title"]);
        assert_eq!((campaign["tiles"]["clicks"].as_str(), campaign["tiles"]["spend_micros"].as_str()), (Some("50"), Some("59000")));
        let ads: Vec<Vec<String>> = rows(campaign, "ads").into_iter().map(|r| r[..4].to_vec()).collect();
        assert_eq!(ads, [["11", "30", "45000", "10"], ["12", "20", "14000", "4"]], "campaign 5's ads");
        assert!(campaign["billing_title"].as_str().unwrap().contains("campaign 5"));
        assert_eq!((campaign["billing_total"][2].as_str(), campaign["billing_total"][3].as_str()), (Some("50"), Some("59000")));
        assert_eq!(campaign["scope"], "Totals of campaign 5");
        // Back to all ads: the tenant's totals again.
        let all = step(&reports, "all-again");
        assert_eq!(tiles(all), tiles(hour), "back at all ads");
        assert!(all["title"].as_str().unwrap().starts_with("All ads"), "{}", all["title"]);
    }
    pop.pop.stop().await;
}

/// The API's rows once ClickHouse answers again after its restart.
async fn wait_api_rows(pop: &Pop, key: &str, shown: &Value) -> Vec<Vec<String>> {
    let r = &shown["range"];
    let path = format!("/v1/ads?from={}&to={}&step={}", r["from"], r["to"], r["step"].as_str().unwrap());
    pop.wait_for(key, &path, |_| true).await;
    api_ad_rows(pop, key, shown).await
}
