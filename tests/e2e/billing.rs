//! Billing across edges: a click reaching two edges is billed once, an hour
//! becomes final when every edge's watermark is past it, a click arriving
//! after that is an adjustment (not a restatement), a too-late click is
//! refused with a reason, an unchanged final hour is not billed again from
//! its click records, and reconciliation agrees.

use std::time::Duration;

use tally::pop::EdgeSettings;
use tally::traffic::{now_ms, ClickGen, GenOptions};
use tally_edge::config::FailurePolicy;

use crate::harness::{self, billing, post_until_acked, truth_total, wait_for_billing};

const HOUR_MS: u64 = 3_600_000;

fn click(id: &str, ad: u64, ts: u64, cost: u64) -> String {
    format!(r#"{{"click_id":"{id}","ad_id":{ad},"ts":{ts},"cost_micros":{cost}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_is_exact_final_and_adjusted_across_edges() {
    // A backfill three hours old is inside the edges' window (idle lag of a
    // week); lateness is one minute.
    let settings = EdgeSettings { allowed_lateness_secs: 60, idle_lag_secs: 7 * 24 * 3600, ..EdgeSettings::default() };
    let mut pop = harness::start_with(&["acme"], settings).await;
    let (key, read) = (pop.ingest_key(0), pop.read_key(0));
    let hour = (now_ms() / HOUR_MS - 3) * HOUR_MS;
    let edge_a = pop.pop.state.edge_http.clone();
    let (_, edge_b) = pop.pop.add_edge("edge-b").await.unwrap();

    // The same clicks through both edges (a client retrying via two POPs).
    let mut generator = ClickGen::new(GenOptions { seed: 71, ads: 4, duplicate_share: 0.05, jitter_ms: 20 * 60_000, ..GenOptions::default() });
    let events = generator.events(400, hour + 30 * 60_000);
    post_until_acked(&pop.client, &edge_a, &key, &events).await;
    post_until_acked(&pop.client, &edge_b, &key, &events).await;
    let truth = truth_total(&generator);
    wait_for_billing(&pop, &read, hour, hour + HOUR_MS, truth).await;
    let (_, _, is_final, _) = billing(&pop, &read, hour, hour + HOUR_MS).await;
    assert!(!is_final, "the hour cannot be final while the edges may still take clicks for it");
    // Dashboards count per edge: each edge counted every click once.
    pop.wait_for_series(&read, 1, hour, hour + HOUR_MS, "1h", 2 * generator.ad_total(1).clicks).await;

    // Both edges move past the hour: it becomes final with the same numbers.
    let next = hour + HOUR_MS + 2 * 60_000;
    post_until_acked(&pop.client, &edge_a, &key, &[click("tick-a", 99, next, 0)]).await;
    post_until_acked(&pop.client, &edge_b, &key, &[click("tick-b", 99, next, 0)]).await;
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    loop {
        let (clicks, spend, is_final, _) = billing(&pop, &read, hour, hour + HOUR_MS).await;
        if is_final {
            assert_eq!((clicks, spend), truth, "final billing differs from the truth");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the hour never became final");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A click for the final hour is now too late for edge A: refused, recorded.
    let r = post_until_acked(&pop.client, &edge_a, &key, &[click("late-a", 1, hour + 60_000, 500)]).await;
    assert_eq!(r["accepted"], 0);
    assert!(r["rejected"][0]["reason"].as_str().unwrap().contains("older than the edge accepts"), "{r}");
    let metrics = pop.client.get(&format!("{edge_a}/metrics"), None).await.unwrap().text();
    assert!(metrics.contains(r#"tally_edge_events_refused_total{tenant="acme",reason="too_late"} 1"#), "{metrics}");

    // A new edge, unknown when the hour was finalized, still takes one: it
    // shows up as an adjustment of the final hour, not a restatement.
    let (_, edge_c) = pop.pop.add_edge("edge-c").await.unwrap();
    // (Until edge C's watermark passes the hour too, the adjustment waits.)
    post_until_acked(&pop.client, &edge_c, &key, &[click("late-c", 1, hour + 60_000, 500)]).await;
    post_until_acked(&pop.client, &edge_c, &key, &[click("tick-c", 99, next, 0)]).await;
    let want = (truth.0 + 1, truth.1 + 500);
    wait_for_billing(&pop, &read, hour, hour + HOUR_MS, want).await;
    let (_, _, is_final, v) = billing(&pop, &read, hour, hour + HOUR_MS).await;
    assert!(is_final);
    let ad1 = v["hours"][0]["ads"].as_array().unwrap().iter().find(|a| a["ad_id"] == 1).unwrap().clone();
    assert_eq!(ad1["adjustments"], 1, "{v}");
    assert_eq!(ad1["clicks"].as_u64().unwrap(), generator.ad_total(1).clicks + 1);

    // No batch comes in any more: further passes bill no hour again (two
    // passes first, so the adjusting pass has counted its hours).
    let passes = || core_metric(&pop, r#"tally_core_clickhouse_query_seconds_count{kind="billing"}"#);
    let recomputed = || core_metric(&pop, "tally_core_billing_hours_recomputed_total");
    wait_for_passes(&passes, 2).await;
    let before = recomputed().await;
    assert!(before >= 1, "the finalizer billed the hour at least once");
    wait_for_passes(&passes, 3).await;
    assert_eq!(recomputed().await, before, "an unchanged final hour was billed again from its click records");
    let (clicks, spend, _, v) = billing(&pop, &read, hour, hour + HOUR_MS).await;
    assert_eq!((clicks, spend), want);
    let ad1 = v["hours"][0]["ads"].as_array().unwrap().iter().find(|a| a["ad_id"] == 1).unwrap().clone();
    assert_eq!(ad1["adjustments"], 1, "exactly one adjustment: {v}");

    // Reconciliation over the hours agrees: no rollup drift, manifests match.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["billing", "reconcile", "--clickhouse-url", &pop.pop.state.clickhouse_http])
        .args(["--from", &hour.to_string(), "--to", &(hour + 2 * HOUR_MS).to_string()])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("0 manifest mismatches"), "{text}");
    pop.pop.stop().await;
}

async fn core_metric(pop: &harness::Pop, name: &str) -> u64 {
    let text = pop.client.get(&format!("{}/metrics", pop.pop.state.core_http), None).await.unwrap().text();
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok()).sum()
}

/// Waits until `more` finalizer passes have finished after this call.
async fn wait_for_passes<F: std::future::Future<Output = u64>>(passes: &impl Fn() -> F, more: u64) {
    let want = passes().await + more;
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    while passes().await < want {
        assert!(tokio::time::Instant::now() < deadline, "the billing finalizer stopped running passes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn reconcile(pop: &harness::Pop, from: u64, to: u64, repair: bool) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"));
    cmd.args(["billing", "reconcile", "--clickhouse-url", &pop.pop.state.clickhouse_http]).args(["--from", &from.to_string(), "--to", &to.to_string()]);
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd.output().await.unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The families named on the report's `ROLLUP DRIFT (a, b)` lines, every hour together.
fn drifting_families(report: &str) -> impl Iterator<Item = &str> {
    report.lines().filter_map(|line| line.split_once("ROLLUP DRIFT (")).flat_map(|(_, rest)| rest.trim_end().trim_end_matches(')').split(", "))
}

/// Rollups that missed rows (their views were gone while the rows landed)
/// are reported by reconcile and repaired from their landing tables by the
/// core on its own: clicks, refused clicks and enrichment dimensions alike;
/// a `--repair` afterwards finds nothing to add.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_drift_is_reported_and_repaired() {
    // The geo filter tags clicks carrying a country; lateness is one minute,
    // so a click an hour old is refused (and recorded, in the previous hour).
    let geo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/wasm32-wasip2/release/tally_plugin_geo_enrich.wasm");
    let settings = EdgeSettings { allowed_lateness_secs: 60, filters: vec![("acme".into(), geo, FailurePolicy::Open)], ..EdgeSettings::default() };
    let pop = harness::start_with(&["acme"], settings).await;
    let (key, read) = (pop.ingest_key(0), pop.read_key(0));
    let edge = pop.pop.state.edge_http.clone();
    let clickhouse = pop.pop.state.clickhouse_http.clone();
    let sql = |q: String| {
        let (client, url) = (pop.client.clone(), format!("{clickhouse}/"));
        async move {
            let r = client.send(http::Method::POST, &url, None, None, q).await.unwrap();
            assert!(r.status.is_success(), "{}", r.text());
        }
    };
    let now = now_ms();
    let mut generator = ClickGen::new(GenOptions { seed: 81, ads: 3, ..GenOptions::default() });
    let ads = [1, 2, 3];
    post_until_acked(&pop.client, &edge, &key, &generator.events(300, now)).await;
    let (from, to) = (now - 60_000, now + 60_000);
    pop.wait_for_totals(&read, &generator, &ads, from, to).await;

    // The hourly views disappear while more rows land, then come back.
    for view in ["clicks_by_hour_mv", "refused_by_hour_mv", "dimensions_by_hour_mv", "dimension_values_by_hour_mv"] {
        sql(format!("DROP TABLE tally.{view}")).await;
    }
    post_until_acked(&pop.client, &edge, &key, &generator.events(300, now)).await;
    let tagged: Vec<String> = (0..20).map(|i| format!(r#"{{"click_id":"de-{i}","ad_id":9,"ts":{now},"cost_micros":5,"country":"DE"}}"#)).collect();
    let late: Vec<String> = (0..5).map(|i| click(&format!("late-{i}"), 9, now - HOUR_MS, 5)).collect();
    let r = post_until_acked(&pop.client, &edge, &key, &[tagged, late].concat()).await;
    assert_eq!((r["accepted"].as_u64(), r["rejected"].as_array().map(Vec::len)), (Some(20), Some(5)), "{r}");
    // Batches commit in any order: every generated click has landed before the repair.
    pop.wait_for_totals(&read, &generator, &ads, from, to).await;
    let (hour_from, hour_to) = ((now / HOUR_MS - 1) * HOUR_MS, (now / HOUR_MS + 1) * HOUR_MS);
    // Every family drifts once its landing rows are committed.
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    loop {
        let (ok, text) = reconcile(&pop, hour_from, hour_to, false).await;
        // The late clicks are refused into the previous hour: families drift on different lines.
        if ["clicks", "refused", "dimensions", "dimension_values"].iter().all(|family| drifting_families(&text).any(|f| f == *family)) {
            assert!(!ok);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "drift never showed in every family: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for migration in [1, 4] {
        for stmt in tally_core::clickhouse::schema::statements(tally_core::clickhouse::schema::MIGRATIONS[migration].sql) {
            sql(stmt).await;
        }
    }
    // Only the views of 0010: all of it would rebuild its tables from the landing table.
    for stmt in tally_core::clickhouse::schema::statements(tally_core::clickhouse::schema::MIGRATIONS[9].sql) {
        if stmt.starts_with("CREATE MATERIALIZED VIEW") {
            sql(stmt).await;
        }
    }

    // The core's healer repairs what it finds once the batches have settled
    // (`tally_core::heal::SETTLE_SECS`), with no operator; a `--repair` run by
    // hand meanwhile would race it, so this only reads until it agrees.
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    loop {
        let (ok, text) = reconcile(&pop, hour_from, hour_to, false).await;
        if ok {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rollups never healed: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for ad in ads {
        let s = pop.series(&read, ad, hour_from, hour_to, "1h").await;
        assert_eq!(s["total"]["clicks"].as_u64().unwrap(), generator.ad_total(ad).clicks, "ad {ad}");
        assert_eq!(s["total"]["spend_micros"].as_u64().unwrap(), generator.ad_total(ad).spend_micros, "ad {ad}");
    }
    let dims = pop.query(&read, &format!("/v1/dimensions/country?from={hour_from}&to={hour_to}&step=1h")).await.json().unwrap();
    assert_eq!((dims["values"][0]["value"].as_str(), dims["values"][0]["clicks"].as_u64()), (Some("DE"), Some(20)), "{dims}");
    // Repairing again finds nothing to add.
    let (ok, text) = reconcile(&pop, hour_from, hour_to, true).await;
    assert!(ok && !text.contains("repaired"), "{text}");
    pop.pop.stop().await;
}
