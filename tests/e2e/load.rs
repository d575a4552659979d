//! `tally load` against a real edge: a failing run exits 1 with the edge's
//! own error text, `--max-error-rate` decides, HTTPS over TCP trusts the
//! edge's certificate, and the edge's counts and the progress lines show.

use crate::harness;

struct Load {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn load(args: &[&str]) -> Load {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally")).arg("load").args(args).output().await.unwrap();
    Load { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// The number after `key` on the report line.
fn after(report: &str, key: &str) -> u64 {
    let words: Vec<&str> = report.split_whitespace().collect();
    let at = words.windows(2).position(|w| w[0] == key).unwrap_or_else(|| panic!("no {key} in {report}"));
    words[at + 1].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tells_the_truth_over_http_and_https() {
    let pop = harness::start(&["acme"]).await;
    let state = &pop.pop.state;
    let key = pop.ingest_key(0);

    // Every request refused: exit 1, the edge's own words quoted once.
    let bad = load(&["--edge", &state.edge_http, "--key", "not-a-key", "--seconds", "1", "--connections", "1", "--batch", "10"]).await;
    assert!(!bad.ok, "a run whose every request failed exited 0: {}", bad.stdout);
    let quoted: Vec<&str> = bad.stdout.lines().filter(|l| l.contains("HTTP 401 Unauthorized: ")).collect();
    assert_eq!(quoted.len(), 1, "{}", bad.stdout);
    assert!(quoted[0].contains("missing or unknown ingest key"), "{}", bad.stdout);
    assert!(bad.stderr.contains("requests failed") && bad.stderr.contains("--max-error-rate"), "{}", bad.stderr);
    // The same run under a threshold that allows it.
    let allowed =
        load(&["--edge", &state.edge_http, "--key", "not-a-key", "--seconds", "1", "--connections", "1", "--batch", "10", "--max-error-rate", "1"]).await;
    assert!(allowed.ok, "{}", allowed.stderr);

    // HTTPS (HTTP/1.1 and HTTP/2 over TLS), trusting the edge's certificate:
    // every event answered is accepted, and the counts add up.
    let cert = state.edge_cert.to_str().unwrap();
    for http in ["1", "2"] {
        let run =
            load(&["--edge", &state.edge_https, "--cacert", cert, "--http", http, "--key", &key, "--seconds", "2", "--connections", "2", "--batch", "50"])
                .await;
        assert!(run.ok, "HTTP/{http} over TLS: {}{}", run.stdout, run.stderr);
        let report = run.stdout.lines().last().unwrap();
        let events = after(report, "events");
        assert!(events > 0 && report.contains(&format!("edge: accepted {events} duplicates 0 rejected 0")), "{report}");
        // Progress as lines (not a terminal), over the run's length.
        assert!(run.stderr.lines().any(|l| l.starts_with('[') && l.contains("s/2s")), "{}", run.stderr);
    }
    // Without the certificate an https:// edge is refused up front.
    let no_ca = load(&["--edge", &state.edge_https, "--key", &key, "--seconds", "1"]).await;
    assert!(!no_ca.ok && no_ca.stderr.contains("--cacert"), "{}", no_ca.stderr);
    pop.pop.stop().await;
}
