//! The committer's deadline (`tally_core::clickhouse::stalled`): a
//! ClickHouse that keeps its connections and answers nothing (SIGSTOP by
//! pid) fails commits after `commit_timeout_ms` instead of holding them
//! forever; an INSERT cut off that way is stopped before anything is probed
//! again, and once the server is back (SIGCONT) every click counts once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tally::traffic::{now_ms, ClickGen, GenOptions};
use tally_core::config::CoreConfig;
use tokio::sync::Mutex;

use crate::harness::{self, post_until_acked, truth_total, wait_for_billing, CONVERGE};

/// The shortest allowed, so the test waits least.
const COMMIT_TIMEOUT_MS: u64 = tally_core::clickhouse::stalled::MIN_DEADLINE_MS;
/// Stop/resume cycles tried until one stopped the server inside an INSERT.
const MAX_CYCLES: usize = 20;
const INSERT_CUT: &str = "an INSERT got no answer within commit_timeout_ms";

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: a plain kill(2) on the pid of the ClickHouse this test's POP started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0, "signalling pid {pid}");
}

fn core_log(p: &harness::Pop) -> String {
    std::fs::read_to_string(p.pop.state.dir.join("core.log")).unwrap()
}

/// Waits until the core's log has grown past `from` with a line holding `needle`.
async fn logged_after(p: &harness::Pop, from: usize, needle: &str) -> bool {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while tokio::time::Instant::now() < deadline {
        if core_log(p).get(from..).is_some_and(|new| new.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_clickhouse_fails_commits_on_time_and_loses_and_doubles_nothing() {
    let mut p = harness::start(&["acme"]).await;
    let config_path = p.pop.state.dir.join("core.toml");
    let mut config = CoreConfig::load(&config_path).unwrap();
    config.clickhouse.commit_timeout_ms = COMMIT_TIMEOUT_MS;
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    p.pop.restart_core().await.unwrap();

    let start = now_ms() - 60_000;
    let gen = Arc::new(Mutex::new(ClickGen::new(GenOptions { seed: 97, ads: 8, duplicate_share: 0.05, jitter_ms: 20_000, ..GenOptions::default() })));
    let (edge, key) = (p.pop.state.edge_http.clone(), p.ingest_key(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (gen, stop) = (gen.clone(), stop.clone());
        tokio::spawn(async move {
            let client = tally_http::client::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let events = gen.lock().await.events(100, now_ms());
                post_until_acked(&client, &edge, &key, &events).await;
                // Pacing only: keeps the committer busy, the truth small.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Stop ClickHouse under traffic, the moment it runs one of the core's
    // INSERTs (query ids `tally|...`), until a stop has cut one off; each
    // stop lasts until the core saw a commit fail.
    let ch = p.pop.clickhouse_pid().expect("the POP runs a private ClickHouse");
    let url = format!("{}/", p.pop.state.clickhouse_http);
    let inserting = "SELECT count() FROM system.processes WHERE like(query_id, 'tally|%') FORMAT TSV";
    let mut cut = false;
    for _ in 0..MAX_CYCLES {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        while p.client.send(http::Method::POST, &url, None, None, inserting).await.map(|r| r.text().trim() == "0").unwrap_or(true) {
            assert!(tokio::time::Instant::now() < deadline, "the core never inserted");
        }
        let before = core_log(&p).len();
        signal(ch, libc::SIGSTOP);
        let failed = logged_after(&p, before, "group commit failed").await;
        signal(ch, libc::SIGCONT);
        assert!(failed, "no commit failed while ClickHouse was stopped: the committer waits on a hung server");
        if core_log(&p)[before..].contains(INSERT_CUT) {
            assert!(logged_after(&p, before, "an INSERT that timed out is settled").await, "the cut INSERT was never settled");
            cut = true;
            break;
        }
    }
    assert!(cut, "no stop in {MAX_CYCLES} caught an INSERT in flight");
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    let end = now_ms() + 60_000;
    let truth = gen.lock().await;
    let read = p.read_key(0);
    wait_for_billing(&p, &read, start, end, truth_total(&truth)).await;
    let ads: Vec<u64> = (1..=8).collect();
    p.wait_for_totals(&read, &truth, &ads, start, end).await;
    // No row of any batch stored twice (billing alone would hide doubled
    // click records: it dedups click ids).
    let sql = "SELECT (SELECT count() - uniqExact(edge, batch_seq, row_idx) FROM tally.clicks_by_second), \
               (SELECT count() - uniqExact(edge, batch_seq, row_idx) FROM tally.click_records) FORMAT TSV";
    let reply = p.client.send(http::Method::POST, &url, None, None, sql).await.expect("asking ClickHouse");
    assert_eq!(reply.text().split_whitespace().collect::<Vec<_>>(), ["0", "0"], "rows stored twice (landing, click records)");
    drop(truth);
    p.pop.stop().await;
}
