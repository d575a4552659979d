//! The rest of the public ingest contract: compressed bodies, limits,
//! per-tenant rate limits, the sendBeacon route with CORS, and signed
//! click redirects that are never open redirects.

use std::io::Write;

use http::{Method, StatusCode};
use tally::traffic::now_ms;
use tally_edge::ingest::redirect::{sign, signed_text};

use crate::harness;

fn events(prefix: &str, n: usize, ad: u64, ts: u64) -> String {
    let e: Vec<String> = (0..n).map(|i| format!(r#"{{"click_id":"{prefix}-{i}","ad_id":{ad},"ts":{ts},"cost_micros":10}}"#)).collect();
    format!("[{}]", e.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_limits_beacon_cors_and_redirects() {
    let mut pop = harness::start(&["acme", "limited"]).await;
    let mut specs = pop.pop.state.tenants.clone();
    specs[0].allowed_origins = vec!["https://news.example".into()];
    specs[1].max_events_per_sec = Some(50);
    pop.pop.set_tenants(specs.clone()).await.unwrap();
    let (key, limited) = (specs[0].ingest_key.clone(), specs[1].ingest_key.clone());
    let edge = pop.pop.state.edge_http.clone();
    let c = pop.client.clone();
    let now = now_ms();
    let post = |path: String, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let c = c.clone();
        async move {
            let mut req = http::Request::builder().method(Method::POST).uri(path);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            c.request(req.body(body.into()).unwrap()).await.unwrap()
        }
    };
    let auth = ("authorization", format!("Bearer {key}"));

    // gzip and zstd bodies.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(events("gz", 20, 55, now).as_bytes()).unwrap();
    let r = post(format!("{edge}/v1/clicks"), vec![auth.clone(), ("content-encoding", "gzip".into())], gz.finish().unwrap()).await;
    assert_eq!((r.status, r.json().unwrap()["accepted"].as_u64()), (StatusCode::OK, Some(20)), "{}", r.text());
    let zs = zstd::encode_all(events("zs", 20, 55, now).as_bytes(), 3).unwrap();
    let r = post(format!("{edge}/v1/clicks"), vec![auth.clone(), ("content-encoding", "zstd".into())], zs).await;
    assert_eq!(r.json().unwrap()["accepted"], 20, "{}", r.text());
    let r = post(format!("{edge}/v1/clicks"), vec![auth.clone(), ("content-encoding", "br".into())], b"x".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = post(format!("{edge}/v1/clicks"), vec![auth.clone(), ("content-encoding", "gzip".into())], b"not gzip".to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A tenant over its rate gets 429 with Retry-After; others are unaffected.
    let lim = ("authorization", format!("Bearer {limited}"));
    let r = post(format!("{edge}/v1/clicks"), vec![lim.clone()], events("l1", 50, 56, now).into_bytes()).await;
    assert_eq!(r.status, StatusCode::OK);
    // The bucket holds one second of tokens: on a machine slow enough to
    // refill it between two posts, the next one is over.
    let mut r = post(format!("{edge}/v1/clicks"), vec![lim.clone()], events("l2", 50, 56, now).into_bytes()).await;
    for round in 3..6 {
        if r.status != StatusCode::OK {
            break;
        }
        r = post(format!("{edge}/v1/clicks"), vec![lim.clone()], events(&format!("l{round}"), 50, 56, now).into_bytes()).await;
    }
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.headers.get("retry-after").is_some());
    let r = post(format!("{edge}/v1/clicks"), vec![auth.clone()], events("free", 60, 55, now).into_bytes()).await;
    assert_eq!(r.status, StatusCode::OK);
    // More events in one request than the tenant's per-second limit can never fit: 413 naming it.
    let r = post(format!("{edge}/v1/clicks"), vec![lim.clone()], events("big", 51, 56, now).into_bytes()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    assert!(r.text().contains("limited to 50 events/s"), "{}", r.text());

    // sendBeacon: key in the path, text/plain body, CORS for allowed origins only.
    let origin = ("origin", "https://news.example".to_string());
    let r = post(
        format!("{edge}/v1/beacon/{key}"),
        vec![origin.clone(), ("content-type", "text/plain;charset=UTF-8".into())],
        events("bc", 5, 55, now).into_bytes(),
    )
    .await;
    assert_eq!(r.json().unwrap()["accepted"], 5, "{}", r.text());
    assert_eq!(r.headers.get("access-control-allow-origin").unwrap(), "https://news.example");
    let r = post(format!("{edge}/v1/beacon/{key}"), vec![("origin", "https://evil.example".into())], events("bd", 1, 55, now).into_bytes()).await;
    assert!(r.headers.get("access-control-allow-origin").is_none());
    let r = post(format!("{edge}/v1/beacon/not-a-key-000000000"), vec![], b"[]".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let pre = c
        .request(
            http::Request::builder()
                .method(Method::OPTIONS)
                .uri(format!("{edge}/v1/clicks"))
                .header("origin", "https://news.example")
                .body(Vec::new().into())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert!(pre.headers.get("access-control-allow-headers").unwrap().to_str().unwrap().contains("authorization"));

    // Signed redirects: 302 to the landing URL and one click; tampering is 403.
    let secret = specs[0].redirect_secret.clone().unwrap();
    let url = "https://shop.example/landing?x=1";
    let sig = sign(&secret, &signed_text("acme", 57, None, Some(700), url));
    let link = format!("{edge}/c/acme/57?url={}&cost_micros=700&sig={sig}&click_id=link-1", url.replace('&', "%26").replace('?', "%3F"));
    let r = c.get(&link, None).await.unwrap();
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(r.headers.get("location").unwrap(), url);
    let again = c.get(&link, None).await.unwrap();
    assert_eq!(again.status, StatusCode::FOUND, "a reload still lands");
    let tampered = link.replace("cost_micros=700", "cost_micros=70000");
    assert_eq!(c.get(&tampered, None).await.unwrap().status, StatusCode::FORBIDDEN);
    let open = format!("{edge}/c/acme/57?url=https%3A%2F%2Fevil.example&sig={sig}");
    assert_eq!(c.get(&open, None).await.unwrap().status, StatusCode::FORBIDDEN);
    assert_eq!(c.get(&format!("{edge}/c/nobody/57?url=x&sig=00"), None).await.unwrap().status, StatusCode::NOT_FOUND);

    // Too many events in one request.
    let r = post(format!("{edge}/v1/clicks"), vec![auth.clone()], events("big", 100_001, 58, now).into_bytes()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());

    // Everything accepted is counted: 20 + 20 + 60 + 5 + 1 on ad 55, one redirect click on ad 57 (reload deduplicated).
    let read = pop.read_key(0);
    pop.wait_for_series(&read, 55, now - 5_000, now + 5_000, "1s", 106).await;
    // The redirect click carries the edge's clock, not `now`.
    let s = pop.wait_for_series(&read, 57, now - 60_000, now_ms() + 60_000, "1m", 1).await;
    assert_eq!(s["total"]["spend_micros"], 700);
    let doc = c.get(&format!("{edge}/openapi.json"), None).await.unwrap().json().unwrap();
    assert!(doc["paths"]["/v1/beacon/{ingest_key}"].is_object());
    pop.pop.stop().await;
}
