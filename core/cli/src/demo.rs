//! `tally demo`: a local POP with live traffic, until SIGINT/SIGTERM; with
//! `--cluster`, on a private ClickHouse cluster with several cores and
//! edges (`demo/cluster.rs`).

mod cluster;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use cluster::DemoCluster;
use tally::pop::{write_state, EdgeSettings, LocalPop, PopOptions, PopState};
use tally::traffic::{self, GenOptions, TrafficStats};
use tally_core::config::BillingSection;
use tally_edge::config::{AckMode, EdgeConfig};
use tally_http::client::Client;

/// The tenant the banner's keys belong to and the generator clicks for.
const DEMO_TENANT: &str = "demo";
/// The freshness probe's own tenant, so its clicks never show in the demo
/// tenant's top ads, series or billing.
const PROBE_TENANT: &str = "probe";
/// The ad the freshness probe clicks.
const PROBE_AD: u64 = 1;
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long each process gets after SIGTERM before SIGKILL when the demo
/// stops: killing any of them loses nothing (see `LocalPop::stop_within`),
/// and a long run leaves more to flush and merge than anyone waits for.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Write the POP's addresses and keys here (JSON) once everything is ready.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Start no synthetic traffic.
    #[arg(long)]
    no_traffic: bool,
    /// Synthetic clicks per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Use this ClickHouse (http://host:8123) instead of a private server.
    #[arg(long, conflicts_with = "cluster")]
    clickhouse_url: Option<String>,
    /// Run a cluster instead: ZooKeeper, 2 shards x 2 replicas of
    /// ClickHouse, 2 cores and 2 edges (needs the Debian package zookeeper).
    #[arg(long)]
    cluster: bool,
    /// Keep the POP's files here instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Edge seal-and-ship interval in ms.
    #[arg(long, default_value_t = EdgeConfig::DEFAULT_SHIP_INTERVAL_MS)]
    ship_interval_ms: u64,
    /// When the edge answers: after an fsync of its write-ahead log, or at once.
    #[arg(long, value_enum, default_value_t = Ack::Durable)]
    ack: Ack,
    /// Click ids each tenant's dedup table holds (the edge's `[dedup]
    /// max_entries_per_tenant`, about 27 bytes each; default: the edge's
    /// `max_entries` split over the tenants). A horizon of H seconds at R
    /// clicks/s needs R * H.
    #[arg(long)]
    dedup_max_entries_per_tenant: Option<usize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Ack {
    Durable,
    Memory,
}

impl Ack {
    fn mode(self) -> AckMode {
        match self {
            Ack::Durable => AckMode::Durable,
            Ack::Memory => AckMode::Memory,
        }
    }
}

pub async fn run(args: DemoArgs, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    // Removed only once every process is gone (see the end).
    let temp = match &args.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("tally-demo-").tempdir()?),
    };
    let dir = args.dir.clone().unwrap_or_else(|| temp.as_ref().expect("a temporary directory without --dir").path().to_path_buf());
    let tally_bin = std::env::current_exe().context("locating the tally binary")?;
    let kept = |temp: Option<tempfile::TempDir>, e: anyhow::Error, what: &str| {
        // Its logs say why: kept, whether temporary or not.
        if let Some(temp) = temp {
            let _ = temp.keep();
        }
        e.context(format!("{what} did not start; its files and logs (core.log, edge logs, clickhouse/, cluster/) are kept in {}", dir.display()))
    };
    let mut cluster = None;
    if args.cluster {
        match DemoCluster::start(&dir).await {
            Ok(c) => cluster = Some(c),
            Err(e) => return Err(kept(temp, e, "the local cluster")),
        }
    }
    let (clickhouse_url, clickhouse_cluster) = match &cluster {
        Some(c) => {
            let (url, members) = c.clickhouse();
            (Some(url), Some(members))
        }
        None => (args.clickhouse_url.clone(), None),
    };
    let started = LocalPop::start(PopOptions {
        tally_bin: tally_bin.clone(),
        dir: dir.clone(),
        clickhouse_url,
        clickhouse_cluster,
        tenants: vec![DEMO_TENANT.into(), PROBE_TENANT.into()],
        edge: EdgeSettings {
            ship_interval_ms: args.ship_interval_ms,
            ack_mode: args.ack.mode(),
            dedup_max_entries_per_tenant: args.dedup_max_entries_per_tenant,
            ..EdgeSettings::default()
        },
        finalize_interval_ms: BillingSection::DEFAULT_FINALIZE_INTERVAL_MS,
        log: std::env::var("TALLY_LOG").unwrap_or_else(|_| "info".into()),
    })
    .await;
    let grown = match (started, cluster.as_mut()) {
        (Ok(mut pop), Some(c)) => match c.grow(&mut pop).await {
            Ok(()) => Ok(pop),
            Err(e) => {
                pop.stop_within(STOP_GRACE, |_| {}).await;
                Err(e)
            }
        },
        (started, _) => started,
    };
    let mut pop = match grown {
        Ok(pop) => pop,
        Err(e) => {
            if let Some(c) = cluster {
                c.stop_within(STOP_GRACE, |_| {}).await;
            }
            return Err(kept(temp, e, "the local POP"));
        }
    };
    let state = pop.state.clone();
    let probe = state.tenants.iter().find(|t| t.id == PROBE_TENANT).expect("the probe tenant was configured").clone();
    // The banner goes out before the state file: the file is the readiness
    // signal scripts wait for, and by then the banner must be readable.
    let members = cluster.as_mut().map(|c| c.state(&pop));
    let topology = members.as_ref().map(|m| m.topology()).unwrap_or_default();
    print_banner(&state, &topology, &tally_bin, &dir);
    if let Some(path) = &args.state_file {
        match &members {
            Some(members) => members.write(path)?,
            None => write_state(path, &state)?,
        }
    }
    let edges = match &cluster {
        Some(c) => c.edge_urls(),
        None => vec![state.edge_http.clone()],
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let stats = Arc::new(TrafficStats::default());
    if !args.no_traffic {
        // The rate is split over the edges, each with its own click ids.
        for (i, edge) in edges.iter().enumerate() {
            tokio::spawn(traffic::drive(
                edge.clone(),
                state.ingest_key.clone(),
                args.rate / edges.len() as u64,
                500,
                GenOptions { seed: traffic::now_ms() + i as u64, ..GenOptions::default() },
                stats.clone(),
                stop_rx.clone(),
            ));
        }
    }
    let mut report = tokio::time::interval(REPORT_EVERY);
    report.tick().await;
    let mut last = (Instant::now(), 0u64);
    let mut probes = 0u64;
    let outcome = loop {
        tokio::select! {
            _ = tally_http::serve::stopped(&mut shutdown) => break Ok(()),
            _ = report.tick() => {}
        }
        if let Some((name, status)) = pop.exited() {
            break Err(anyhow::anyhow!("{name} exited unexpectedly ({status}); see its log in {}", dir.display()));
        }
        let accepted = stats.accepted.load(Ordering::Relaxed);
        let rate = (accepted - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), accepted);
        probes += 1;
        let freshness = match probe_freshness(&state.edge_http, &state.core_http, &probe.ingest_key, &probe.read_key, probes).await {
            Ok(d) => format!("{} ms", d.as_millis()),
            Err(e) => format!("unavailable ({e})"),
        };
        println!(
            "edge accepted {rate:>8.0} clicks/s | total {accepted} accepted, {} duplicates, {} errors | post->query freshness {freshness}",
            stats.duplicates.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
        );
    };
    let _ = stop_tx.send(true);
    let stopping = Instant::now();
    pop.stop_within(STOP_GRACE, |step| println!("{step}")).await;
    if let Some(c) = cluster {
        c.stop_within(STOP_GRACE, |step| println!("{step}")).await;
    }
    match temp {
        // A process died: its log says why, so the files stay where the error points.
        Some(temp) if outcome.is_err() => {
            let _ = temp.keep();
        }
        Some(temp) => remove_in_background(temp)?,
        None => {}
    }
    println!("stopped in {:.1} s", stopping.elapsed().as_secs_f64());
    outcome
}

/// What a newcomer needs next: every endpoint, certificate and key the
/// README's examples use, as literal commands and as one `export` line
/// (the README's examples read `$EDGE`, `$CORE`, the keys and `tally` on
/// the `PATH` from it; `tests/e2e/readme.rs` runs them that way).
/// In cluster mode `topology` says what runs where first.
fn print_banner(state: &PopState, topology: &[String], tally_bin: &Path, dir: &Path) {
    println!("\nTally local POP is up (files in {}):", dir.display());
    for line in topology {
        println!("{line}");
    }
    println!("  dashboard    {}", state.dashboard);
    println!("  edge ingest  {}  (HTTPS {}, HTTP/3 {} over UDP; certificate {})", state.edge_http, state.edge_https, state.edge_h3, state.edge_cert.display());
    println!("  core API     {}  (HTTPS {}; certificate {})", state.core_http, state.core_https, state.core_cert.display());
    println!("  metrics      {}/metrics  {}/metrics", state.edge_http, state.core_http);
    println!("  clickhouse   {}", state.clickhouse_http);
    println!("  tenant {:?}: ingest key {}  read key {}  admin key {}", state.tenant, state.ingest_key, state.read_key, state.admin_key);
    println!("Try (a click without ts counts at the time the edge receives it):");
    println!("  curl -H 'Authorization: Bearer {}' -d '{{\"click_id\":\"c1\",\"ad_id\":1}}' {}/v1/clicks", state.ingest_key, state.edge_http);
    println!("  curl -H 'Authorization: Bearer {}' '{}/v1/ads/1/clicks?step=1m'", state.read_key, state.core_http);
    println!("For the README's examples, paste this into another shell:");
    let bin_dir = tally_bin.parent().map(|d| d.display().to_string()).unwrap_or_default();
    println!(
        "  export PATH=\"{bin_dir}:$PATH\" EDGE={} EDGE_HTTPS={} CORE={} INGEST_KEY={} READ_KEY={} TALLY_ADMIN_KEY={} TALLY_CORE={} TALLY_CORE_CA_CERT={} EDGE_CA_CERT={} TALLY_REDIRECT_SECRET={} TALLY_OPS_TOKEN={}",
        state.edge_http,
        state.edge_https,
        state.core_http,
        state.ingest_key,
        state.read_key,
        state.admin_key,
        state.core_https,
        state.core_cert.display(),
        state.edge_cert.display(),
        state.tenants[0].redirect_secret.as_deref().unwrap_or_default(),
        state.ops_token
    );
    println!("Ctrl-C stops everything.\n");
}

/// Renames the POP's directory aside (at once: its path is free) and
/// leaves the unlinking to a detached `rm`, which outlives the demo: after
/// a long run ClickHouse alone has tens of thousands of part files, and
/// unlinking them took minutes on a loaded disk. Called only once every
/// process that wrote there is gone.
fn remove_in_background(temp: tempfile::TempDir) -> Result<()> {
    let dir = temp.keep();
    let aside = dir.with_extension("removing");
    std::fs::rename(&dir, &aside).with_context(|| format!("moving {} aside", dir.display()))?;
    let rm = std::process::Command::new("rm")
        .arg("-rf")
        .arg("--one-file-system")
        .arg(&aside)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting rm -rf {}", aside.display()))?;
    println!("removing {} (moved to {}; rm -rf in the background, pid {})", dir.display(), aside.display(), rm.id());
    Ok(())
}

/// Posts one probe click and measures until the query API counts it.
async fn probe_freshness(edge: &str, core: &str, ingest_key: &str, read_key: &str, n: u64) -> Result<Duration> {
    let client = Client::new();
    let now = traffic::now_ms();
    let url = format!("{core}/v1/ads/{PROBE_AD}/clicks?step=1s&from={}&to={}", now - 60_000, now + 60_000);
    let before = count(&client, &url, read_key).await?;
    let started = Instant::now();
    let body = format!(r#"{{"click_id":"probe-{now}-{n}","ad_id":{PROBE_AD},"ts":{now}}}"#);
    client.post_json(&format!("{edge}/v1/clicks"), Some(ingest_key), body).await?;
    while started.elapsed() < Duration::from_secs(30) {
        if count(&client, &url, read_key).await? > before {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("probe not visible after 30 s")
}

async fn count(client: &Client, url: &str, read_key: &str) -> Result<u64> {
    let reply = client.get(url, Some(read_key)).await?;
    anyhow::ensure!(reply.status.is_success(), "query answered {}: {}", reply.status, reply.text());
    Ok(reply.json()?["total"]["clicks"].as_u64().unwrap_or(0))
}
