//! The quick start as a newcomer pastes it: `tally demo` starts, the
//! banner's `curl` lines are run as printed, its `export` line is pasted
//! before every `sh` block of the README (as the README tells a user to),
//! and each block's answer is checked against what the README says it is.
//!
//! Every `sh` block is run except the three that cannot run against a demo
//! (installing and starting the demo itself, or the cluster demo, which
//! `tests/e2e/demo.rs` starts; running `tally core`/`tally edge` by hand): a
//! new block without a check here fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tally_core::supervise::Supervised;

/// Blocks that cannot run against a running demo, by a line they contain.
const NOT_RUN: [&str; 3] = ["./deploy/dev/setup.sh --demo &&", "./deploy/dev/setup.sh --demo-cluster &&", "tally core --config deploy/config/core.toml"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The README's ```sh blocks, in order.
fn sh_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unterminated ```sh block in README.md");
    blocks
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `script` in bash from the repository root (as a user in a
/// checkout), after `prelude`.
async fn bash(prelude: &str, script: &str) -> Run {
    let mut command = tokio::process::Command::new("bash");
    command.arg("-c").arg(format!("set -eo pipefail\n{prelude}\n{script}")).current_dir(repo()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), command.output()).await.expect("a README block ran for 10 minutes").unwrap();
    Run { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// Runs `script` until `done` holds for its JSON answer (counts become
/// visible within a second or so; a user would look again too).
async fn until(prelude: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let run = bash(prelude, script).await;
        assert!(run.ok, "{script} failed: {}", run.stderr);
        let answer: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{script}: not JSON ({e}): {}", run.stdout));
        if done(&answer) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "{script}: never the expected answer: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every object key anywhere in `v`.
fn keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                out.insert(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// The keys the README's `# {...}` answer comment of `block` names.
fn documented_keys(block: &str) -> BTreeSet<String> {
    let comment: String = block.lines().filter_map(|l| l.trim_start().strip_prefix("# ")).collect();
    comment.split('"').skip(1).step_by(2).filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !k.is_empty()).map(str::to_string).collect()
}

fn assert_shape(block: &str, answer: &Value) {
    let mut found = BTreeSet::new();
    keys(answer, &mut found);
    let missing: Vec<_> = documented_keys(block).difference(&found).cloned().collect();
    assert!(missing.is_empty(), "the answer lacks {missing:?} that README.md shows:\n{block}\n{answer}");
}

fn clicks_of(billing: &Value, ad: u64) -> u64 {
    billing["hours"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| h["ads"].as_array().into_iter().flatten())
        .filter(|a| a["ad_id"] == ad)
        .map(|a| a["clicks"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_and_the_demo_banner_work_when_pasted() {
    let dir = tempfile::tempdir().unwrap();
    let (state_file, out_file) = (dir.path().join("state.json"), dir.path().join("demo.out"));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"));
    command.args(["demo", "--no-traffic", "--ship-interval-ms", "200", "--state-file"]).arg(&state_file).arg("--dir").arg(dir.path().join("pop"));
    command.stdout(std::fs::File::create(&out_file).unwrap());
    let mut demo = Supervised::spawn("demo", command).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let banner = loop {
        let out = std::fs::read_to_string(&out_file).unwrap();
        if out.contains("Ctrl-C stops everything.") && state_file.exists() {
            break out;
        }
        assert!(demo.exited().is_none(), "demo exited before it was ready: {out}");
        assert!(tokio::time::Instant::now() < deadline, "demo never became ready: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let pids: Vec<u32> = state["pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect();
    let _reap = crate::demo::ReapOnPanic(pids);

    // The banner names every key, endpoint and certificate the README needs.
    for key in ["admin_key", "ingest_key", "read_key", "edge_http", "edge_https", "edge_h3", "core_http", "core_https", "core_cert", "edge_cert", "dashboard"] {
        let value = state[key].as_str().unwrap();
        assert!(banner.contains(value), "the banner lacks {key} ({value}):\n{banner}");
    }
    assert!(Path::new(state["core_cert"].as_str().unwrap()).is_file() && Path::new(state["edge_cert"].as_str().unwrap()).is_file());

    // The banner's own lines, as printed.
    let curls: Vec<&str> = banner.lines().filter_map(|l| l.strip_prefix("  ")).filter(|l| l.starts_with("curl ")).collect();
    assert_eq!(curls.len(), 2, "{banner}");
    let posted = bash("", curls[0]).await;
    assert!(posted.ok, "{}: {}", curls[0], posted.stderr);
    assert_eq!(serde_json::from_str::<Value>(&posted.stdout).unwrap(), serde_json::json!({"accepted": 1, "duplicates": 0, "rejected": []}), "{}", curls[0]);
    until("", curls[1], |v| v["total"]["clicks"] == 1).await;

    // The freshness probe ran (its report line) and stayed out of the
    // demo tenant's numbers: ad 1 (the probe's ad too) has the banner's click only (before the
    // README's `tally load` clicks ads 1..1000).
    while !std::fs::read_to_string(&out_file).unwrap().contains(" ms\n") {
        assert!(tokio::time::Instant::now() < deadline, "no freshness measured");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = bash("", curls[1]).await;
    assert_eq!(serde_json::from_str::<Value>(&again.stdout).unwrap()["total"]["clicks"], 1, "the probe's clicks showed in the demo tenant");

    let export = banner.lines().map(str::trim).find(|l| l.starts_with("export PATH=")).unwrap_or_else(|| panic!("no export line:\n{banner}"));
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    let mut skipped = 0;
    for block in &blocks {
        if NOT_RUN.iter().any(|marker| block.contains(marker)) {
            skipped += 1;
            continue;
        }
        if block.contains("/v1/clicks") {
            let run = bash(export, block).await;
            assert!(run.ok, "{block}: {}", run.stderr);
            let comment: String = block.lines().filter_map(|l| l.strip_prefix("# ")).collect();
            let want: Value = serde_json::from_str(&comment).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap(), want, "{block}");
        } else if block.contains("/v1/campaigns/7/clicks") {
            let answer = until(export, block, |v| v["total"]["clicks"] == 2).await;
            assert_shape(block, &answer);
        } else if block.contains("/v1/ads/42/clicks") {
            let answer = until(export, block, |v| v["total"]["clicks"] == 2).await;
            assert_shape(block, &answer);
        } else if block.contains("/v1/billing") {
            let answer = until(export, block, |v| clicks_of(v, 42) == 2).await;
            assert_shape(block, &answer);
        } else if block.contains("tally plugin") {
            let run = bash(export, block).await;
            assert!(run.ok, "{block}: {}\n{}", run.stdout, run.stderr);
            // After promote the canary (version 2) is the active one, in the last table (status).
            let last_table = &run.stdout[run.stdout.rfind("VERSION").expect("a status table")..];
            let row = |v: &str| last_table.lines().find(|l| l.starts_with(v)).unwrap_or_else(|| panic!("no version {v}: {}", run.stdout)).to_string();
            assert!(row("2 ").contains("active") && row("2 ").contains("tally_plugin_noop.wasm"), "{}", run.stdout);
            assert!(!row("1 ").contains("active"), "{}", run.stdout);
        } else if block.contains("tally load") {
            let run = bash(export, block).await;
            assert!(run.ok, "{block}: {}\n{}", run.stdout, run.stderr);
            // One report per run, each with the edge's own counts.
            let reports: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("events/s")).collect();
            assert_eq!(reports.len(), block.lines().filter(|l| l.starts_with("tally load")).count(), "{}", run.stdout);
            for report in reports {
                assert!(report.contains("rejected 0") && !report.contains("edge: accepted 0 "), "{}", run.stdout);
            }
        } else if block.contains("tally edge list") {
            let run = bash(export, block).await;
            assert!(run.ok, "{block}: {}", run.stderr);
            let edge = run.stdout.lines().find(|l| l.starts_with("local-edge-1")).unwrap_or_else(|| panic!("no demo edge: {}", run.stdout));
            assert!(edge.ends_with("holds finality"), "{}", run.stdout);
        } else if block.contains("tally link sign") {
            let run = bash(export, block).await;
            assert!(run.ok, "{block}: {}", run.stderr);
            let edge = state["edge_http"].as_str().unwrap();
            assert!(run.stdout.trim().starts_with(&format!("{edge}/c/demo/42?")), "{}", run.stdout);
        } else {
            panic!("README.md has a sh block this test does not check; add a check:\n{block}");
        }
    }
    assert_eq!(skipped, NOT_RUN.len(), "a block this test skips moved or changed");

    let status = demo.stop(Duration::from_secs(60)).await.expect("demo exit status");
    assert!(status.success(), "demo exited with {status}");
}
