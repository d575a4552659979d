//! The edge's click tag (`/sdk/tally.js`) in a real browser
//! (tests/browser/sdk.mjs, Debian's chromium under playwright-core), and
//! `tally link sign`: a page's clicks sent with sendBeacon and with the fetch
//! fallback, a re-sent click, a followed `data-tally-ad` link and a signed
//! link opened twice are each counted exactly once.

use tally::traffic::now_ms;

use crate::harness;
use crate::playwright::{self, Script};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tally_js_and_signed_links_count_each_click_once() {
    let pop = harness::start(&["acme"]).await;
    let state = pop.pop.state.clone();
    let (key, read) = (pop.ingest_key(0), pop.read_key(0));
    let secret = state.tenants[0].redirect_secret.clone().unwrap();
    let landing = format!("{}/sdk/landed.html", state.edge_http);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["link", "sign", "--edge", &state.edge_http, "--tenant", "acme", "--ad", "73", "--campaign", "9", "--cost-micros", "250", "--url", &landing])
        .env("TALLY_REDIRECT_SECRET", &secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "tally link sign: {}", String::from_utf8_lossy(&out.stderr));
    let signed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(signed.starts_with(&format!("{}/c/acme/73?url=", state.edge_http)), "{signed}");

    let site = &state.site_dir;
    std::fs::write(site.join("landed.html"), "<!doctype html><title>landed</title><p>landed on the advertiser").unwrap();
    std::fs::write(
        site.join("tagged.html"),
        format!(
            r#"<!doctype html><title>publisher</title><script src="/sdk/tally.js" data-key="{key}"></script>
<p><a id="tagged" href="/sdk/landed.html" data-tally-ad="72" data-tally-cost="40">an ad</a>
<p><a id="signed" href="{}">a signed ad link</a>"#,
            signed.replace('&', "&amp;")
        ),
    )
    .unwrap();

    let before = now_ms();
    let artifacts = playwright::artifacts("click-tag");
    let env = [("TALLY_PAGE", format!("{}/sdk/tagged.html", state.edge_http)), ("TALLY_ARTIFACTS", artifacts.display().to_string())];
    let reports = Script::start("sdk.mjs", &env).finish().await;
    assert_eq!(reports.last().unwrap()["step"], "done");

    // 3 beacons + 2 fetches + one click sent twice; the followed link; the signed link (opened twice).
    let (from, to) = (before - 60_000, now_ms() + 60_000);
    let tag = pop.wait_for_series(&read, 71, from, to, "1m", 6).await;
    assert_eq!(tag["total"]["spend_micros"], 600);
    let followed = pop.wait_for_series(&read, 72, from, to, "1m", 1).await;
    assert_eq!(followed["total"]["spend_micros"], 40);
    let link = pop.wait_for_series(&read, 73, from, to, "1m", 1).await;
    assert_eq!(link["total"]["spend_micros"], 250);
    // Exactly once: the edge accepted 8 clicks and took the repeats as duplicates.
    let metrics = pop.client.get(&format!("{}/metrics", state.edge_http), None).await.unwrap().text();
    assert!(metrics.contains(r#"tally_edge_events_accepted_total{tenant="acme"} 8"#), "{metrics}");
    assert!(metrics.contains(r#"tally_edge_events_duplicate_total{tenant="acme"} 2"#), "{metrics}");
    pop.pop.stop().await;
}
