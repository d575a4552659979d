//! `tally demo` as a user runs it: ready state file, clicks counted, and
//! every process it started gone after SIGTERM.

use std::time::Duration;

use serde_json::Value;
use tally::traffic::now_ms;
use tally_core::supervise::Supervised;
use tally_http::client::Client;

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The demo's children lead their own process groups, so killing the demo
/// does not take them: if the test fails, this does.
pub struct ReapOnPanic(pub Vec<u32>);

impl Drop for ReapOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for &pid in &self.0 {
                // SAFETY: these are the groups of the processes this test started.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_a_pop_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"));
    command.args(["demo", "--no-traffic", "--ship-interval-ms", "200", "--state-file"]).arg(&state_file).arg("--dir").arg(dir.path().join("pop"));
    command.stdout(std::process::Stdio::null());
    let mut demo = Supervised::spawn("demo", command).unwrap();

    // Readiness: the state file appears once everything is up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let state: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&state_file) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(demo.exited().is_none(), "demo exited before it was ready");
        assert!(tokio::time::Instant::now() < deadline, "demo never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for key in ["edge_http", "core_http", "clickhouse_http", "tenant", "ingest_key", "read_key", "admin_key"] {
        assert!(state[key].is_string(), "state lacks {key}: {state}");
    }
    let pids: Vec<u32> = state["pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect();
    let _reap = ReapOnPanic(pids.clone());
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| alive(p)));

    let client = Client::new();
    let s = |k: &str| state[k].as_str().unwrap().to_string();
    let now = now_ms();
    let body = format!(r#"[{{"click_id":"a","ad_id":5,"ts":{now}}},{{"click_id":"b","ad_id":5,"ts":{now}}},{{"click_id":"a","ad_id":5,"ts":{now}}}]"#);
    let r = client.post_json(&format!("{}/v1/clicks", s("edge_http")), Some(&s("ingest_key")), body).await.unwrap();
    assert_eq!(r.json().unwrap()["accepted"], 2);
    let url = format!("{}/v1/ads/5/clicks?step=1m&from={}&to={}", s("core_http"), now - 120_000, now + 120_000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let v = client.get(&url, Some(&s("read_key"))).await.unwrap().json().unwrap();
        if v["total"]["clicks"] == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "click never counted: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dashboard = client.get(&format!("{}/", s("core_http")), None).await.unwrap();
    assert!(dashboard.text().contains("<title>Tally dashboard</title>"));

    let status = demo.stop(Duration::from_secs(60)).await.expect("demo exit status");
    assert!(status.success(), "demo exited with {status}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the demo");
    }
}

/// Ctrl-C (SIGINT) after traffic ran: the demo says what it stops, every
/// process it started is gone, and so is its temporary directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_stops_on_sigint_and_removes_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (state_file, out_file) = (dir.path().join("state.json"), dir.path().join("demo.out"));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"));
    command.args(["demo", "--rate", "500", "--ship-interval-ms", "200", "--state-file"]).arg(&state_file);
    command.stdout(std::fs::File::create(&out_file).unwrap());
    let mut demo = Supervised::spawn("demo", command).unwrap();

    // Readiness: the state file, then a traffic report (clicks flowed).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let state: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&state_file) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(demo.exited().is_none(), "demo exited before it was ready");
        assert!(tokio::time::Instant::now() < deadline, "demo never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pids: Vec<u32> = state["pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect();
    let _reap = ReapOnPanic(pids.clone());
    let pop_dir = std::path::PathBuf::from(state["dir"].as_str().unwrap());
    assert!(pop_dir.is_dir(), "{pop_dir:?} is not the demo's directory");
    while !std::fs::read_to_string(&out_file).unwrap().contains("edge accepted") {
        assert!(demo.exited().is_none(), "demo exited while running");
        assert!(tokio::time::Instant::now() < deadline, "demo never reported traffic");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    demo.signal(libc::SIGINT);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = demo.exited() {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "demo did not exit after SIGINT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = std::fs::read_to_string(&out_file).unwrap();
    assert!(status.success(), "demo exited with {status}: {out}");
    for step in ["stopping edge", "stopping core", "stopping ClickHouse", "removing"] {
        assert!(out.contains(step), "demo did not say {step:?}: {out}");
    }
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the demo");
    }
    assert!(!pop_dir.exists(), "{pop_dir:?} is still there");
    // Its files go in the background, after the demo: wait for that too.
    let aside = pop_dir.with_extension("removing");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while aside.exists() {
        assert!(tokio::time::Instant::now() < deadline, "{aside:?} was never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A POP that cannot start (no ClickHouse where it was told to look): the
/// demo fails, says where the POP's files and logs are, and keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_keeps_the_pop_directory_and_says_where() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["demo", "--no-traffic", "--clickhouse-url", &format!("http://127.0.0.1:{port}")])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the demo started without ClickHouse: {stderr}");
    let (_, rest) = stderr.split_once("are kept in ").unwrap_or_else(|| panic!("the error does not say where the files are: {stderr}"));
    let dir = std::path::PathBuf::from(rest.split_whitespace().next().unwrap().trim_end_matches([':', ',', ';']));
    assert!(dir.join("core.log").is_file(), "{dir:?} lacks the core's log: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
