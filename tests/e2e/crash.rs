//! Crash and replay tests: processes are killed, ClickHouse disappears,
//! spools are replayed and damaged; every test ends with counts equal to
//! the generator's exact truth (billing and the per-second landing data).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tally::pop::EdgeSettings;
use tally::traffic::{now_ms, ClickGen, GenOptions};
use tally_edge::shipper::Connector;
use tally_model::batch::frame;
use tally_model::reply::Status;
use tokio::sync::Mutex;

use crate::harness::{self, post_until_acked, truth_total, wait_for_billing, Pop};

const ROUNDS: usize = 30;

fn generator(seed: u64) -> ClickGen {
    ClickGen::new(GenOptions { seed, ads: 8, hot_share: 0.6, duplicate_share: 0.05, jitter_ms: 20_000, ..GenOptions::default() })
}

/// Posts `rounds` batches of generated clicks, each until acknowledged;
/// counts finished rounds in `done`.
async fn load_counted(edge: String, key: String, generator: Arc<Mutex<ClickGen>>, rounds: usize, done: Arc<AtomicUsize>) {
    let client = tally_http::client::Client::new();
    for _ in 0..rounds {
        let events = generator.lock().await.events(100, now_ms());
        post_until_acked(&client, &edge, &key, &events).await;
        done.fetch_add(1, Ordering::Relaxed);
    }
}

async fn load(pop: &Pop, edge: &str, key: &str, generator: &Mutex<ClickGen>, rounds: usize) {
    for _ in 0..rounds {
        let events = generator.lock().await.events(100, now_ms());
        post_until_acked(&pop.client, edge, key, &events).await;
    }
}

/// Waits until billing and the per-second totals of every ad equal the truth.
async fn converge(pop: &Pop, tenant: usize, generator: &ClickGen, from: u64, to: u64) {
    let key = pop.read_key(tenant);
    wait_for_billing(pop, &key, from, to, truth_total(generator)).await;
    let ads: Vec<u64> = (1..=8).collect();
    pop.wait_for_totals(&key, generator, &ads, from, to).await;
}

async fn batches_acknowledged(pop: &Pop, edge: &str) -> u64 {
    let metrics = pop.client.get(&format!("{edge}/metrics"), None).await.unwrap().text();
    let line = metrics.lines().find(|l| l.starts_with("tally_edge_batches_acknowledged_total ")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Prints how long the edge took to ship again after the core was
/// restarted (the figure the reconnect design is about); asserts nothing.
async fn report_first_commit(pop: &Pop, edge: &str, acked_before: u64, restarting: tokio::time::Instant, up: tokio::time::Instant) {
    let deadline = up + harness::CONVERGE;
    while batches_acknowledged(pop, edge).await <= acked_before {
        if tokio::time::Instant::now() > deadline {
            eprintln!("core restart: no batch acknowledged within {:?}", harness::CONVERGE);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let now = tokio::time::Instant::now();
    eprintln!("core restart to first commit: {:?} ({:?} after the core was up)", now - restarting, now - up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_killed_under_load_loses_nothing_it_acknowledged() {
    let mut pop = harness::start(&["acme", "globex"]).await;
    let start = now_ms() - 60_000;
    let gens = [Arc::new(Mutex::new(generator(21))), Arc::new(Mutex::new(generator(22)))];
    let edge = pop.pop.state.edge_http.clone();
    let done = Arc::new(AtomicUsize::new(0));
    let loads: Vec<_> = (0..2).map(|t| tokio::spawn(load_counted(edge.clone(), pop.ingest_key(t), gens[t].clone(), ROUNDS, done.clone()))).collect();
    // Once traffic flows, kill -9 the edge with requests in flight; clients
    // retry until it is back on the same spool.
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    while done.load(Ordering::Relaxed) < ROUNDS / 2 {
        assert!(tokio::time::Instant::now() < deadline, "no traffic got through");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pop.pop.kill_edge(0).await;
    pop.pop.restart_edge(0).await.unwrap();
    for l in loads {
        l.await.unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), 2 * ROUNDS);
    let end = now_ms() + 60_000;
    for (tenant, g) in gens.iter().enumerate() {
        converge(&pop, tenant, &*g.lock().await, start, end).await;
    }
    pop.pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_of_a_click_lost_in_a_crash_was_never_acknowledged() {
    let mut pop = harness::start(&["acme"]).await;
    let start = now_ms() - 60_000;
    // No re-sends of its own: the two requests below are the duplicates.
    let gen = Mutex::new(ClickGen::new(GenOptions { seed: 71, ads: 8, duplicate_share: 0.0, jitter_ms: 20_000, ..GenOptions::default() }));
    let edge = pop.pop.state.edge_http.clone();
    let key = pop.ingest_key(0);
    load(&pop, &edge, &key, &gen, 3).await;
    // The edge aborts before its first group commit is written, once a
    // request repeating clicks of that group waits on it.
    pop.pop.restart_edge_with(0, &[("TALLY_FAULT_ABORT_BEFORE_WAL_WRITE", "1")]).await.unwrap();
    let events = gen.lock().await.events(50, now_ms());
    let body = tally::traffic::json_array(&events);
    let url = format!("{edge}/v1/clicks");
    let (first, repeat) = tokio::join!(pop.client.post_json(&url, Some(&key), body.clone()), pop.client.post_json(&url, Some(&key), body.clone()));
    let status = |r: &Result<tally_http::client::Reply, _>| r.as_ref().map(|r| r.status).ok();
    assert!(first.is_err() && repeat.is_err(), "a request was answered before its clicks were durable: {:?} {:?}", status(&first), status(&repeat));
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    while pop.pop.exited().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the edge did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(pop.pop.state.dir.join("local-edge-1.log")).unwrap();
    assert!(log.contains("fault injection: aborting before the WAL write"), "the fault hook did not fire");

    // Never durable, so new to the restarted edge; then duplicates.
    pop.pop.restart_edge(0).await.unwrap();
    let retry = post_until_acked(&pop.client, &edge, &key, &events).await;
    assert_eq!((retry["accepted"].as_u64(), retry["duplicates"].as_u64()), (Some(50), Some(0)), "{retry}");
    let again = post_until_acked(&pop.client, &edge, &key, &events).await;
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(50)), "{again}");
    load(&pop, &edge, &key, &gen, 3).await;
    converge(&pop, 0, &*gen.lock().await, start, now_ms() + 60_000).await;
    pop.pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_killed_between_insert_and_ack_commits_once() {
    let mut pop = harness::start(&["acme"]).await;
    let start = now_ms() - 60_000;
    // The core aborts right after its first group commit wrote rows, before
    // the ledger says committed and before the edge hears anything.
    pop.pop.restart_core_with(&[("TALLY_FAULT_ABORT_AFTER_INSERTS", "1")]).await.unwrap();
    let gen = Mutex::new(generator(31));
    let edge = pop.pop.state.edge_http.clone();
    load(&pop, &edge, &pop.ingest_key(0), &gen, 3).await;
    let deadline = tokio::time::Instant::now() + harness::CONVERGE;
    while !pop.pop.core_exited() {
        assert!(tokio::time::Instant::now() < deadline, "the fault hook never fired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load(&pop, &edge, &pop.ingest_key(0), &gen, 3).await;
    let acked_before = batches_acknowledged(&pop, &edge).await;
    let restarting = tokio::time::Instant::now();
    pop.pop.restart_core().await.unwrap();
    let up = tokio::time::Instant::now();
    report_first_commit(&pop, &edge, acked_before, restarting, up).await;
    load(&pop, &edge, &pop.ingest_key(0), &gen, 3).await;
    converge(&pop, 0, &*gen.lock().await, start, now_ms() + 60_000).await;
    let log = std::fs::read_to_string(pop.pop.state.dir.join("core.log")).unwrap();
    assert!(log.contains("resuming an interrupted commit"), "the resume path was not taken");
    pop.pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_under_load_then_back() {
    let mut pop = harness::start(&["acme"]).await;
    let start = now_ms() - 60_000;
    let gen = Mutex::new(generator(41));
    let edge = pop.pop.state.edge_http.clone();
    load(&pop, &edge, &pop.ingest_key(0), &gen, 5).await;
    pop.pop.stop_clickhouse().await;
    // The edge keeps acknowledging (durably); the core answers Retry.
    load(&pop, &edge, &pop.ingest_key(0), &gen, 10).await;
    pop.pop.start_clickhouse().await.unwrap();
    load(&pop, &edge, &pop.ingest_key(0), &gen, 5).await;
    converge(&pop, 0, &*gen.lock().await, start, now_ms() + 60_000).await;
    pop.pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_whole_spool_changes_nothing() {
    let pop = harness::start_with(&["acme"], EdgeSettings { archive_acknowledged: true, ..EdgeSettings::default() }).await;
    let start = now_ms() - 60_000;
    let gen = Mutex::new(generator(51));
    let edge = pop.pop.state.edge_http.clone();
    load(&pop, &edge, &pop.ingest_key(0), &gen, 10).await;
    let end = now_ms() + 60_000;
    converge(&pop, 0, &*gen.lock().await, start, end).await;

    // Every batch the edge ever sent, sent again: all duplicates.
    let sent = pop.pop.edge_spool(0).join("sent");
    let mut files: Vec<_> = std::fs::read_dir(&sent).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty());
    let state = &pop.pop.state;
    // The edge's own key: the core takes its batches only from it.
    let identity = tally_edge::shipper::identity::load(&pop.pop.edge_spool(0)).unwrap();
    let connector = Connector::new(state.core_quic, "localhost", &state.core_cert, Some(&identity)).unwrap();
    for f in &files {
        let reply = connector.send(Bytes::from(std::fs::read(f).unwrap())).await.unwrap();
        assert_eq!(reply.status, Status::Duplicate, "{}: {reply:?}", f.display());
    }
    converge(&pop, 0, &*gen.lock().await, start, end).await;
    pop.pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_spool_is_reported_and_the_rest_recovered() {
    let mut pop = harness::start(&["acme"]).await;
    let start = now_ms() - 60_000;
    let gen = Mutex::new(generator(61));
    let edge = pop.pop.state.edge_http.clone();
    // Batches pile up in the outbox while the core is away.
    pop.pop.kill_core().await;
    let outbox = pop.pop.edge_spool(0).join("outbox");
    let pending = || std::fs::read_dir(&outbox).unwrap().count();
    for want in 1..=3 {
        load(&pop, &edge, &pop.ingest_key(0), &gen, 2).await;
        // Wait for the shipper to seal these into a batch of their own.
        let deadline = tokio::time::Instant::now() + harness::CONVERGE;
        while pending() < want {
            assert!(tokio::time::Instant::now() < deadline, "no batch sealed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    pop.pop.stop_edge(0).await;
    let mut files: Vec<_> = std::fs::read_dir(&outbox).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 3, "expected several pending batches, found {}", files.len());

    // Damage the first batch; what it held is what we expect to lose.
    let victim = &files[0];
    let bytes = std::fs::read(victim).unwrap();
    let lost = frame::decode(&bytes).unwrap();
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x5a;
    std::fs::write(victim, damaged).unwrap();
    // And tear the tail of the WAL, as a crash mid-write would.
    let wal = pop.pop.edge_spool(0).join("wal");
    let seg = std::fs::read_dir(&wal).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    let f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut &f, &[7, 0, 0, 0, 1, 2]).unwrap();

    pop.pop.restart_edge(0).await.unwrap();
    pop.pop.restart_core().await.unwrap();
    let metrics = pop.client.get(&format!("{edge}/metrics"), None).await.unwrap().text();
    assert!(metrics.contains("tally_edge_batches_quarantined_total 1"), "{metrics}");
    assert!(pop.pop.edge_spool(0).join("quarantine").join(victim.file_name().unwrap()).exists());

    // Expected: the truth minus exactly the clicks of the damaged batch.
    let mut truth = gen.lock().await;
    for t in &lost.tenants {
        for c in &t.clicks {
            let e = truth.truth.get_mut(&(c.ad_id, c.ts_ms / 1000)).unwrap();
            e.clicks -= 1;
            e.spend_micros -= c.cost_micros;
        }
    }
    converge(&pop, 0, &truth, start, now_ms() + 60_000).await;
    pop.pop.stop().await;
}

/// Runs one statement on the POP's ClickHouse over HTTP; `None` while the
/// server is down or refuses it.
async fn clickhouse(pop: &Pop, sql: &str) -> Option<String> {
    let url = format!("{}/", pop.pop.state.clickhouse_http);
    let reply = pop.client.send(http::Method::POST, &url, None, Some("text/plain"), Bytes::from(sql.to_string())).await.ok()?;
    reply.status.is_success().then(|| reply.text())
}

/// Posts generated clicks until `stop`; returns how many requests were acknowledged.
async fn load_until(edge: String, key: String, generator: Arc<Mutex<ClickGen>>, stop: Arc<AtomicBool>) -> usize {
    let client = tally_http::client::Client::new();
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) {
        let events = generator.lock().await.events(200, now_ms());
        post_until_acked(&client, &edge, &key, &events).await;
        rounds += 1;
    }
    rounds
}

/// Waits until every ad's series at each rollup step totals the truth:
/// the dashboards' figures, which only the rollups give.
async fn converge_rollups(pop: &Pop, tenant: usize, generator: &ClickGen, from: u64, to: u64) {
    let key = pop.read_key(tenant);
    for step in ["1m", "1h", "1d"] {
        // Whole buckets: a 1d series of a range inside one day still reads that day.
        let (from, to) = (from / 86_400_000 * 86_400_000, to.div_ceil(86_400_000) * 86_400_000);
        for ad in 1..=8 {
            pop.wait_for_series(&key, ad, from, to, step, generator.ad_total(ad).clicks).await;
        }
    }
}

fn core_metric(metrics: &str, name: &str) -> u64 {
    metrics.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok()).sum()
}

/// An INSERT into the landing table whose view parts never get written:
/// `kill -9` of ClickHouse while one runs, three times, under load. No
/// operator acts; billing, the 1s data and every rollup end exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_killed_mid_insert_rollups_heal_themselves() {
    let mut pop = harness::start(&["acme"]).await;
    let start = now_ms() - 60_000;
    let gen = Arc::new(Mutex::new(generator(71)));
    let stop = Arc::new(AtomicBool::new(false));
    let edge = pop.pop.state.edge_http.clone();
    let loads: Vec<_> = (0..2).map(|_| tokio::spawn(load_until(edge.clone(), pop.ingest_key(0), gen.clone(), stop.clone()))).collect();
    // The polling query's own text starts with SELECT, so it never matches itself.
    let running = "SELECT count() FROM system.processes WHERE query LIKE 'INSERT INTO%clicks_by_second%'";
    let mut polls_per_round = Vec::new();
    for _ in 0..3 {
        let deadline = tokio::time::Instant::now() + harness::CONVERGE;
        let mut polls = 0u64;
        loop {
            polls += 1;
            if clickhouse(&pop, running).await.is_some_and(|n| n.trim() != "0") {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no INSERT into clicks_by_second was seen running");
        }
        pop.pop.kill_clickhouse().await;
        polls_per_round.push(polls);
        pop.pop.start_clickhouse().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let mut requests = 0;
    for l in loads {
        requests += l.await.unwrap();
    }
    let end = now_ms() + 60_000;
    let truth = gen.lock().await;
    converge(&pop, 0, &truth, start, end).await;
    converge_rollups(&pop, 0, &truth, start, end).await;
    let log = std::fs::read_to_string(pop.pop.state.dir.join("core.log")).unwrap();
    let metrics = pop.client.get(&format!("{}/metrics", pop.pop.state.core_http), None).await.unwrap().text();
    eprintln!(
        "kill -9 rounds: 3, each while system.processes listed an INSERT into clicks_by_second (polls per round {polls_per_round:?}); \
         {requests} requests of 200 clicks; resumed commits: {}; rollup buckets repaired: {} ({} clicks)",
        log.matches("resuming an interrupted commit").count(),
        core_metric(&metrics, "tally_core_rollup_repairs_total"),
        core_metric(&metrics, "tally_core_rollup_drift_clicks_total"),
    );
    drop(truth);
    pop.pop.stop().await;
}

/// Landing rows whose view rows were never written (the minute and day
/// views detached while batches commit): the core's periodic healer finds
/// the drift and repairs it on its own, exactly once, counted and logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_missing_view_rows_heal_on_their_own() {
    let pop = harness::start(&["acme"]).await;
    let start = now_ms() - 60_000;
    let gen = Mutex::new(generator(81));
    let edge = pop.pop.state.edge_http.clone();
    load(&pop, &edge, &pop.ingest_key(0), &gen, 3).await;
    for view in ["clicks_by_minute_mv", "clicks_by_day_mv"] {
        clickhouse(&pop, &format!("DETACH TABLE tally.{view}")).await.expect("detaching a view");
    }
    load(&pop, &edge, &pop.ingest_key(0), &gen, 10).await;
    let end = now_ms() + 60_000;
    // Every click is in the landing table (and billed) while the views are away.
    converge(&pop, 0, &*gen.lock().await, start, end).await;
    for view in ["clicks_by_minute_mv", "clicks_by_day_mv"] {
        clickhouse(&pop, &format!("ATTACH TABLE tally.{view}")).await.expect("attaching a view");
    }
    load(&pop, &edge, &pop.ingest_key(0), &gen, 3).await;
    let truth = gen.lock().await;
    converge(&pop, 0, &truth, start, end).await;
    converge_rollups(&pop, 0, &truth, start, end).await;
    let metrics = pop.client.get(&format!("{}/metrics", pop.pop.state.core_http), None).await.unwrap().text();
    let minute = core_metric(&metrics, "tally_core_rollup_drift_clicks_total{family=\"clicks\",step=\"1m\"}");
    let day = core_metric(&metrics, "tally_core_rollup_drift_clicks_total{family=\"clicks\",step=\"1d\"}");
    assert!(minute > 0 && day > 0, "the healer did not count its repairs: {metrics}");
    assert_eq!(core_metric(&metrics, "tally_core_rollup_drift_clicks_total{family=\"clicks\",step=\"1h\"}"), 0, "the hourly view lost nothing");
    let log = std::fs::read_to_string(pop.pop.state.dir.join("core.log")).unwrap();
    assert!(log.contains("rollup repaired"), "no repair was logged");
    eprintln!("healed without an operator: {minute} clicks into clicks_by_minute, {day} into clicks_by_day");
    drop(truth);
    pop.pop.stop().await;
}
