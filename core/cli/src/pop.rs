//! A local POP as real processes: ClickHouse (private or given), one core,
//! one edge, a tenant with keys. `tally demo` and the end-to-end tests start
//! it the same way; each process can be stopped, killed and restarted on
//! its own state (spool, TLS identity, ClickHouse data).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::process::Command;

use tally_core::clickhouse::private_server::PrivateServer;
use tally_core::supervise::Supervised;
use tally_model::tenant::TenantSpec;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(20);

pub struct PopOptions {
    /// The `tally` binary to run `core` and `edge` with.
    pub tally_bin: PathBuf,
    /// Everything the POP writes goes under here.
    pub dir: PathBuf,
    /// Use this ClickHouse instead of starting a private one.
    pub clickhouse_url: Option<String>,
    pub tenants: Vec<String>,
    /// How often the edge seals and ships.
    pub ship_interval_ms: u64,
    /// Log filter for the children (`TALLY_LOG`).
    pub log: String,
}

/// What a client needs to use the POP (written by `tally demo --state-file`).
#[derive(Debug, Clone, Serialize)]
pub struct PopState {
    pub edge_http: String,
    pub core_http: String,
    pub clickhouse_http: String,
    /// The core's QUIC batch endpoint and the certificate edges trust for it.
    pub core_quic: SocketAddr,
    pub core_cert: PathBuf,
    pub tenant: String,
    pub ingest_key: String,
    pub read_key: String,
    pub admin_key: String,
    pub tenants: Vec<TenantSpec>,
    pub dashboard: String,
    pub dir: PathBuf,
    /// Every process the POP started (ClickHouse if private, core, edge).
    pub pids: Vec<u32>,
}

pub struct LocalPop {
    pub state: PopState,
    clickhouse: Option<PrivateServer>,
    core: Supervised,
    edge: Supervised,
    opts: PopOptions,
    edge_http: SocketAddr,
    core_http: SocketAddr,
}

fn free_tcp() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn free_udp() -> Result<SocketAddr> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?)
}

fn random_key(prefix: &str) -> String {
    let mut key = String::from(prefix);
    key.extend(std::iter::repeat_with(fastrand::alphanumeric).take(32));
    key
}

impl LocalPop {
    pub async fn start(opts: PopOptions) -> Result<LocalPop> {
        let dir = &opts.dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (clickhouse, clickhouse_url) = match &opts.clickhouse_url {
            Some(url) => (None, url.clone()),
            None => {
                let server = PrivateServer::start(&dir.join("clickhouse")).await.context("starting a private ClickHouse")?;
                let url = server.http_url();
                (Some(server), url)
            }
        };
        let specs: Vec<TenantSpec> = opts
            .tenants
            .iter()
            .map(|id| TenantSpec {
                id: id.clone(),
                ingest_key: random_key("ing_"),
                read_key: random_key("read_"),
                admin_key: random_key("adm_"),
            })
            .collect();
        let tenants_file = dir.join("tenants.toml");
        std::fs::write(&tenants_file, toml_tenants(&specs))?;

        let core_http = free_tcp()?;
        let core_quic = free_udp()?;
        let edge_http = free_tcp()?;
        let core_dir = dir.join("core");
        std::fs::write(
            dir.join("core.toml"),
            format!(
                "listen_http = \"{core_http}\"\nlisten_quic = \"{core_quic}\"\ndata_dir = {core_dir:?}\ntenants_file = {tenants_file:?}\n\n[clickhouse]\nurl = \"{clickhouse_url}\"\n"
            ),
        )?;
        std::fs::write(
            dir.join("edge.toml"),
            format!(
                "edge_id = \"local-edge-1\"\nlisten_http = \"{edge_http}\"\nspool_dir = {:?}\ntenants_file = {tenants_file:?}\nship_interval_ms = {}\n\n[core]\naddr = \"{core_quic}\"\nca_cert = {:?}\n",
                dir.join("edge-spool"),
                opts.ship_interval_ms,
                core_dir.join(tally_core::tls::CERT_FILE),
            ),
        )?;
        let core = spawn(&opts, "core", core_http).await?;
        let edge = spawn(&opts, "edge", edge_http).await?;
        let first = &specs[0];
        let state = PopState {
            edge_http: format!("http://{edge_http}"),
            core_http: format!("http://{core_http}"),
            clickhouse_http: clickhouse_url,
            core_quic,
            core_cert: core_dir.join(tally_core::tls::CERT_FILE),
            tenant: first.id.clone(),
            ingest_key: first.ingest_key.clone(),
            read_key: first.read_key.clone(),
            admin_key: first.admin_key.clone(),
            dashboard: format!("http://{core_http}/#key={}", first.read_key),
            tenants: specs,
            dir: dir.clone(),
            pids: Vec::new(),
        };
        let mut pop = LocalPop { state, clickhouse, core, edge, opts, edge_http, core_http };
        pop.state.pids = pop.pids();
        Ok(pop)
    }

    /// Stops the edge gracefully (it seals and ships what it holds).
    pub async fn stop_edge(&mut self) {
        self.edge.stop(STOP_GRACE).await;
    }

    /// `kill -9` of the edge: no chance to flush anything.
    pub async fn kill_edge(&mut self) {
        self.edge.kill_now().await;
    }

    pub async fn restart_edge(&mut self) -> Result<()> {
        self.edge.stop(STOP_GRACE).await;
        self.edge = spawn(&self.opts, "edge", self.edge_http).await?;
        self.state.pids = self.pids();
        Ok(())
    }

    pub async fn kill_core(&mut self) {
        self.core.kill_now().await;
    }

    pub async fn restart_core(&mut self) -> Result<()> {
        self.core.stop(STOP_GRACE).await;
        self.core = spawn(&self.opts, "core", self.core_http).await?;
        self.state.pids = self.pids();
        Ok(())
    }

    pub fn core_http(&self) -> SocketAddr {
        self.core_http
    }

    /// Pids of every process this POP runs (ClickHouse if private).
    pub fn pids(&self) -> Vec<u32> {
        [self.clickhouse.as_ref().and_then(|c| c.pid()), self.core.pid(), self.edge.pid()].into_iter().flatten().collect()
    }

    /// A child that exited on its own, if any (name, status).
    pub fn exited(&mut self) -> Option<(String, String)> {
        for child in [&mut self.edge, &mut self.core] {
            if let Some(status) = child.exited() {
                return Some((child.name().to_string(), status.to_string()));
            }
        }
        None
    }

    /// Stops everything in dependency order: edge (flushes to core), core
    /// (finishes commits), then the private ClickHouse.
    pub async fn stop(mut self) {
        self.edge.stop(STOP_GRACE).await;
        self.core.stop(STOP_GRACE).await;
        if let Some(mut ch) = self.clickhouse.take() {
            ch.stop().await;
        }
    }
}

async fn spawn(opts: &PopOptions, role: &str, http: SocketAddr) -> Result<Supervised> {
    let config = opts.dir.join(format!("{role}.toml"));
    let log = opts.dir.join(format!("{role}.log"));
    let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let mut command = Command::new(&opts.tally_bin);
    command
        .arg(role)
        .arg("--config")
        .arg(&config)
        .env("TALLY_LOG", &opts.log)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let mut child = Supervised::spawn(role, command)?;
    let hint = format!("; see {}", log.display());
    child.wait_http_ready(&format!("http://{http}/healthz"), READY_TIMEOUT, &hint).await?;
    tracing::info!(role, pid = child.pid(), %http, "started");
    Ok(child)
}

fn toml_tenants(specs: &[TenantSpec]) -> String {
    let mut out = String::from("# Generated by tally: tenants and their keys.\n");
    for t in specs {
        out.push_str(&format!(
            "\n[[tenant]]\nid = {:?}\ningest_key = {:?}\nread_key = {:?}\nadmin_key = {:?}\n",
            t.id, t.ingest_key, t.read_key, t.admin_key
        ));
    }
    out
}

/// Writes `state` as JSON to `path` atomically (readers never see half).
pub fn write_state(path: &Path, state: &PopState) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
