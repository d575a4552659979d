//! The same ingest contract over every transport, driven by clients nobody
//! here wrote: curl over HTTP/1.1 and HTTP/2 (cleartext and TLS), and
//! aioquic's HTTP/3 stack. Clicks posted through each are counted exactly.

use serde_json::Value;
use tally::traffic::now_ms;

use crate::harness;

fn curl(args: &[&str]) -> (u16, String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/stderr", "-w", "%{http_code}\n", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let code = stdout.lines().last().unwrap_or("0").trim().parse().unwrap_or(0);
    (code, stdout, String::from_utf8_lossy(&out.stderr).to_string())
}

fn h3(pop: &harness::Pop, method: &str, path: &str, key: Option<&str>, data: &str) -> Value {
    let state = &pop.pop.state;
    let port = state.edge_h3.rsplit(':').next().unwrap();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients/h3_request.py")).args([
        "--cafile",
        state.edge_cert.to_str().unwrap(),
        "--port",
        port,
        "--method",
        method,
        "--data",
        data,
    ]);
    if let Some(k) = key {
        cmd.args(["--header", &format!("authorization: Bearer {k}")]);
    }
    let out = cmd.arg(path).output().expect("python3 runs");
    assert!(out.status.success(), "aioquic client failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn body(prefix: &str, n: usize, ts: u64) -> String {
    let events: Vec<String> = (0..n).map(|i| format!(r#"{{"click_id":"{prefix}-{i}","ad_id":4242,"ts":{ts}}}"#)).collect();
    format!("[{}]", events.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_contract_on_every_transport() {
    let pop = harness::start(&["acme"]).await;
    let key = pop.ingest_key(0);
    let auth = format!("authorization: Bearer {key}");
    let state = pop.pop.state.clone();
    let https_port = state.edge_https.rsplit(':').next().unwrap().to_string();
    let resolve = format!("localhost:{https_port}:127.0.0.1");
    let https = format!("https://localhost:{https_port}");
    let cacert = state.edge_cert.to_str().unwrap().to_string();
    let now = now_ms();
    let mut sent = 0;

    // curl, HTTP/1.1 and HTTP/2 (prior knowledge) in clear.
    for (name, flag) in [("h1", "--http1.1"), ("h2c", "--http2-prior-knowledge")] {
        let (code, headers, resp) = curl(&[
            flag,
            "-H",
            &auth,
            "-H",
            "content-type: application/json",
            "--data-binary",
            &body(name, 10, now),
            &format!("{}/v1/clicks", state.edge_http),
        ]);
        assert_eq!(code, 200, "{name}: {headers}{resp}");
        assert!(headers.to_lowercase().contains("alt-svc: h3=\":"), "{name} lacks Alt-Svc: {headers}");
        sent += 10;
    }
    // curl over TLS, HTTP/1.1 and HTTP/2, verifying the edge's certificate.
    for (name, flag) in [("tls-h1", "--http1.1"), ("tls-h2", "--http2")] {
        let (code, headers, resp) =
            curl(&[flag, "--cacert", &cacert, "--resolve", &resolve, "-H", &auth, "--data-binary", &body(name, 10, now), &format!("{https}/v1/clicks")]);
        assert_eq!(code, 200, "{name}: {headers}{resp}");
        let want = if name == "tls-h2" { "HTTP/2 200" } else { "HTTP/1.1 200" };
        assert!(headers.contains(want), "{name}: {headers}");
        sent += 10;
    }
    let (code, headers, _) = curl(&["--http2", "--cacert", &cacert, "--resolve", &resolve, &format!("{https}/v1/clicks")]);
    assert_eq!(code, 405, "{headers}");

    // aioquic over HTTP/3: same routes, same answers.
    let r = h3(&pop, "POST", "/v1/clicks", Some(&key), &body("h3", 10, now));
    assert_eq!(r["status"], 200, "{r}");
    let answer: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["accepted"], 10, "{r}");
    assert!(r["headers"].get("alt-svc").is_none(), "HTTP/3 answers need no Alt-Svc: {r}");
    sent += 10;
    let again = h3(&pop, "POST", "/v1/clicks", Some(&key), &body("h3", 10, now));
    let answer: Value = serde_json::from_str(again["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["duplicates"], 10, "{again}");
    assert_eq!(h3(&pop, "POST", "/v1/clicks", None, "[]")["status"], 401);
    assert_eq!(h3(&pop, "GET", "/v1/clicks", Some(&key), "")["status"], 405);
    assert_eq!(h3(&pop, "POST", "/v1/clicks", Some(&key), "{oops")["status"], 400);
    assert_eq!(h3(&pop, "GET", "/healthz", None, "")["status"], 200);

    pop.wait_for_series(&pop.read_key(0), 4242, now - 5_000, now + 5_000, "1s", sent).await;
    let metrics = pop.client.get(&format!("{}/metrics", state.edge_http), None).await.unwrap().text();
    for transport in ["tcp", "tls", "h3"] {
        assert!(metrics.contains(&format!("code=\"200\",transport=\"{transport}\"")), "{transport} missing: {metrics}");
    }
    assert!(metrics.contains("tally_edge_udp_rcvbuf_errors"), "{metrics}");
    pop.pop.stop().await;
}
