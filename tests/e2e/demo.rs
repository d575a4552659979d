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

/// A process of the POP dies while the demo runs (here `kill -9` of the
/// edge): the demo stops the rest, exits non-zero naming the process, and
/// keeps the temporary directory its error points to, logs and all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_dies_stops_the_demo_and_keeps_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"));
    command.args(["demo", "--no-traffic", "--state-file"]).arg(&state_file).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let demo = command.spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let state: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&state_file) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "demo never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pids: Vec<u32> = state["pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect();
    let _reap = ReapOnPanic(pids.clone());
    // The edges come last in `pids`.
    let edge = *pids.last().unwrap();
    // SAFETY: a process this test's demo started.
    unsafe { libc::kill(edge as i32, libc::SIGKILL) };
    let out = tokio::time::timeout(Duration::from_secs(120), demo.wait_with_output()).await.expect("the demo ran on without its edge").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("edge exited unexpectedly"), "{}: {stderr}", out.status);
    let pop_dir = std::path::PathBuf::from(state["dir"].as_str().unwrap());
    assert!(stderr.contains(&pop_dir.display().to_string()) && pop_dir.join("local-edge-1.log").is_file(), "{pop_dir:?} was not kept: {stderr}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the demo");
    }
    std::fs::remove_dir_all(&pop_dir).unwrap();
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

/// Reads `/v1/ads/{ad}`'s per-second total and the billing clicks of `ad`
/// over `[from, to)` through the core at `core`.
async fn ad_clicks(client: &Client, core: &str, read_key: &str, ad: u64, from: u64, to: u64) -> (u64, u64) {
    let series = client.get(&format!("{core}/v1/ads/{ad}/clicks?step=1s&from={from}&to={to}"), Some(read_key)).await.unwrap().json().unwrap();
    let billing: Value = client.get(&format!("{core}/v1/billing?from={from}&to={to}"), Some(read_key)).await.unwrap().json().unwrap();
    let billed = billing["hours"]
        .as_array()
        .unwrap_or_else(|| panic!("billing through {core}: {billing}"))
        .iter()
        .flat_map(|h| h["ads"].as_array().unwrap().iter())
        .filter(|a| a["ad_id"] == ad)
        .map(|a| a["clicks"].as_u64().unwrap())
        .sum();
    (series["total"]["clicks"].as_u64().unwrap_or(0), billed)
}

/// `tally demo --cluster`: its state file lists every member (the
/// single-POP fields name the first), clicks posted to both edges are
/// counted once and read the same through both cores, and Ctrl-C stops
/// every process it started (edges, cores, 4 ClickHouse servers, ZooKeeper).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_demo_reads_the_same_through_every_core_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (state_file, out_file) = (dir.path().join("state.json"), dir.path().join("demo.out"));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"));
    command.args(["demo", "--cluster", "--no-traffic", "--ship-interval-ms", "200", "--state-file"]).arg(&state_file).arg("--dir").arg(dir.path().join("pop"));
    command.stdout(std::fs::File::create(&out_file).unwrap());
    let mut demo = Supervised::spawn("demo", command).unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let state: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&state_file) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(demo.exited().is_none(), "demo exited before it was ready: {}", std::fs::read_to_string(&out_file).unwrap());
        assert!(tokio::time::Instant::now() < deadline, "demo never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pids: Vec<u32> = state["pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect();
    let _reap = ReapOnPanic(pids.clone());
    let list = |key: &str| state[key].as_array().unwrap_or_else(|| panic!("state lacks the list {key}: {state}")).clone();
    let (edges, cores, servers, zookeeper) = (list("edges"), list("cores"), list("clickhouse"), list("zookeeper"));
    assert_eq!((edges.len(), cores.len(), servers.len(), zookeeper.len()), (2, 2, 4, 1), "{state}");
    assert!(cores.iter().all(|c| c["http"].is_string() && c["quic"].as_str().is_some_and(|q| q.parse::<std::net::SocketAddr>().is_ok())), "{state}");
    assert!(servers.iter().all(|s| s["http"].is_string()) && edges.iter().all(|e| e["http"].is_string()), "{state}");
    assert_eq!((&state["edge_http"], &state["core_http"], &state["clickhouse_http"]), (&edges[0]["http"], &cores[0]["http"], &servers[0]["http"]));
    for key in ["tenant", "ingest_key", "read_key", "admin_key", "ops_token"] {
        assert!(state[key].is_string(), "state lacks {key}: {state}");
    }
    assert_eq!(pids.len(), 2 + 2 + 4 + 1, "edges, cores, ClickHouse servers and ZooKeeper: {state}");
    assert!(pids.iter().all(|&p| alive(p)));
    let banner = std::fs::read_to_string(&out_file).unwrap();
    for member in edges.iter().chain(&cores).chain(&servers) {
        assert!(banner.contains(member["http"].as_str().unwrap()), "the banner does not name {member}: {banner}");
    }
    assert!(banner.contains(zookeeper[0]["addr"].as_str().unwrap()), "the banner does not name ZooKeeper: {banner}");

    // Clicks to each edge (one a duplicate on its edge), each edge with ids of its own.
    let client = Client::new();
    let (ingest, read) = (state["ingest_key"].as_str().unwrap(), state["read_key"].as_str().unwrap());
    let now = now_ms();
    let batches = [(&edges[0], ["a", "b", "a"], 2), (&edges[1], ["c", "d", "e"], 3)];
    for (edge, ids, accepted) in batches {
        let body: Vec<String> = ids.iter().map(|id| format!(r#"{{"click_id":"{id}","ad_id":7,"ts":{now}}}"#)).collect();
        let url = format!("{}/v1/clicks", edge["http"].as_str().unwrap());
        let reply = client.post_json(&url, Some(ingest), format!("[{}]", body.join(","))).await.unwrap();
        assert_eq!(reply.json().unwrap()["accepted"], accepted, "{url}");
    }
    let (from, to) = (now - 120_000, now + 120_000);
    for core in &cores {
        let core = core["http"].as_str().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let got = ad_clicks(&client, core, read, 7, from, to).await;
            if got == (5, 5) {
                break;
            }
            assert!(got.0 <= 5 && got.1 <= 5, "{core} counts more than was posted: (series, billing) {got:?}");
            assert!(tokio::time::Instant::now() < deadline, "{core} never counted the 5 clicks: (series, billing) {got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let dashboard = client.get(&format!("{core}/"), None).await.unwrap();
        assert!(dashboard.text().contains("<title>Tally dashboard</title>"), "{core}");
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
    for step in ["stopping edge local-edge-2", "stopping core core-1", "stopping core core-2", "stopping ClickHouse shard 2 replica 2", "stopping ZooKeeper"] {
        assert!(out.contains(step), "demo did not say {step:?}: {out}");
    }
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the demo");
    }
}
