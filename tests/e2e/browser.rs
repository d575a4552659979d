//! A real browser over HTTP/3: headless Chromium, forced onto QUIC, opens a
//! signed `/c/` click link on the edge, follows its redirect to a
//! same-origin landing page, and that page posts clicks with `fetch` and
//! `navigator.sendBeacon`. Every click is counted exactly, and the edge saw
//! the requests over HTTP/3.

use std::time::Duration;

use tally::traffic::now_ms;
use tally_edge::ingest::redirect::{sign, signed_text};

use crate::harness;

/// base64(sha256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's
/// `--ignore-certificate-errors-spki-list` wants it.
fn spki_hash(cert: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("openssl x509 -pubkey -noout -in '{}' | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64", cert.display()))
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_over_quic_posts_beacons_and_follows_redirects() {
    let pop = harness::start(&["acme"]).await;
    let state = pop.pop.state.clone();
    let origin = state.edge_h3.clone(); // https://127.0.0.1:<udp port>
    let host_port = origin.trim_start_matches("https://").to_string();
    let key = pop.ingest_key(0);
    let now = now_ms();

    let landing = format!("{origin}/sdk/landed.html");
    let secret = state.tenants[0].redirect_secret.clone().unwrap();
    let sig = sign(&secret, &signed_text("acme", 91, None, Some(300), &landing));
    let link = format!("{origin}/c/acme/91?url={}&cost_micros=300&sig={sig}&click_id=redirect-1", landing.replace(':', "%3A").replace('/', "%2F"));
    // fetch and sendBeacon go out asynchronously; the page then holds its
    // load event (synchronous XHRs) until the edge's own metrics count all
    // four clicks, so Chromium's --dump-dom cannot race them.
    let page = format!(
        r#"<!doctype html><title>landed</title><p>landed on the advertiser</p><script>
const key = "{key}", now = {now};
fetch('/v1/clicks', {{ method: 'POST', headers: {{ 'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json' }},
  body: JSON.stringify([{{ click_id: 'fetch-1', ad_id: 91, ts: now }}, {{ click_id: 'fetch-2', ad_id: 91, ts: now }}]) }});
const queued = navigator.sendBeacon('/v1/beacon/' + key, JSON.stringify([{{ click_id: 'beacon-1', ad_id: 91, ts: now }}]));
let seen = 0;
const until = Date.now() + 60000;
while (seen < 4 && Date.now() < until) {{
  const m = new XMLHttpRequest();
  m.open('GET', '/metrics', false);
  m.send();
  const hit = m.responseText.match(/tally_edge_events_accepted_total\{{tenant="acme"\}} (\d+)/);
  seen = hit ? Number(hit[1]) : 0;
}}
document.title = 'accepted ' + seen + ' ' + queued;
</script>"#
    );
    std::fs::write(state.site_dir.join("landed.html"), page).unwrap();

    let profile = tempfile::tempdir().unwrap();
    let mut chromium = tokio::process::Command::new("chromium");
    chromium
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--enable-quic"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--origin-to-force-quic-on={host_port}"))
        .arg(format!("--ignore-certificate-errors-spki-list={}", spki_hash(&state.edge_cert)))
        .arg("--dump-dom")
        .arg(&link)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), chromium.output()).await.expect("chromium hung").expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("landed on the advertiser"), "the redirect was not followed; DOM: {dom}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(dom.contains("<title>accepted 4 true</title>"), "the page's clicks did not all arrive: {dom}");

    // 1 redirect + 2 fetched + 1 beacon, all over HTTP/3.
    // (the redirect's click is stamped when Chromium opened it, after `now`)
    let s = pop.wait_for_series(&pop.read_key(0), 91, now - 60_000, now_ms() + 60_000, "1m", 4).await;
    assert_eq!(s["total"]["spend_micros"], 300);
    let metrics = pop.client.get(&format!("{}/metrics", state.edge_http), None).await.unwrap().text();
    for code in ["200", "302"] {
        assert!(metrics.contains(&format!("code=\"{code}\",transport=\"h3\"")), "no {code} over h3: {metrics}");
    }
    pop.pop.stop().await;
}
