//! The published contract, checked against the running servers by
//! schemathesis (PyPI): every documented operation is exercised with
//! generated requests; answers must match the documented statuses, content
//! types and schemas, and no request may cause a server error. The
//! documents served must be the ones kept in `deploy/openapi/`.

use crate::harness;

fn schemathesis(url: &str, key: &str, exclude: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new("schemathesis");
    cmd.args(["run", url, "--checks", "all", "-n", "25", "--generation-deterministic", "--request-timeout", "20"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {key}"));
    for check in exclude {
        cmd.args(["--exclude-checks", check]);
    }
    let out = cmd.output().expect("schemathesis runs (installed by deploy/dev/setup.sh)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_conform_to_their_openapi_documents() {
    let pop = harness::start(&["acme"]).await;
    let state = pop.pop.state.clone();
    for (base, file) in [(&state.edge_http, "edge.json"), (&state.core_http, "core.json")] {
        let served = pop.client.get(&format!("{base}/openapi.json"), None).await.unwrap().json().unwrap();
        let kept: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{}/../../deploy/openapi/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap();
        assert_eq!(served, kept, "{base} serves a different document than deploy/openapi/{file}");
    }
    let (ok, report) = schemathesis(&format!("{}/openapi.json", state.edge_http), &pop.ingest_key(0), &[]);
    assert!(ok, "edge:\n{report}");
    // Relations between query parameters (from before to, at most 10,000
    // points) cannot be said in OpenAPI, so "schema-valid request rejected"
    // is not checked on the core; every other check is.
    let (ok, report) = schemathesis(&format!("{}/openapi.json", state.core_http), &pop.read_key(0), &["positive_data_acceptance"]);
    assert!(ok, "core:\n{report}");
    pop.pop.stop().await;
}
