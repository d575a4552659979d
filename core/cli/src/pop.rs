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
    pub edge: EdgeSettings,
    /// How often the core's billing finalizer runs.
    pub finalize_interval_ms: u64,
    /// Log filter for the children (`TALLY_LOG`).
    pub log: String,
}

/// The edge settings a POP's edges are started with.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub ship_interval_ms: u64,
    pub heartbeat_ms: u64,
    /// `durable` or `memory`.
    pub ack_mode: &'static str,
    pub allowed_lateness_secs: u64,
    pub idle_lag_secs: u64,
    pub archive_acknowledged: bool,
    /// Tenant filters: (tenant, plugin path, policy `open` or `closed`).
    pub filters: Vec<(String, PathBuf, &'static str)>,
    /// How often edges poll the core's plugin registry.
    pub registry_poll_ms: u64,
    /// A filter call's deadline (registry and `filters` plugins alike).
    pub filter_timeout_ms: u64,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            ship_interval_ms: 1000,
            heartbeat_ms: 5000,
            ack_mode: "durable",
            allowed_lateness_secs: 3600,
            idle_lag_secs: 300,
            archive_acknowledged: false,
            filters: Vec::new(),
            registry_poll_ms: 1000,
            filter_timeout_ms: 100,
        }
    }
}

/// What a client needs to use the POP (written by `tally demo --state-file`).
#[derive(Debug, Clone, Serialize)]
pub struct PopState {
    pub edge_http: String,
    /// The edge over HTTPS (HTTP/1.1 and HTTP/2) and over HTTP/3 (QUIC, same
    /// port number on UDP is not assumed), and its self-signed certificate.
    pub edge_https: String,
    pub edge_h3: String,
    pub edge_cert: PathBuf,
    /// Served by the edges at `/sdk/{name}` (a test page, an SDK).
    pub site_dir: PathBuf,
    pub core_http: String,
    /// The same API over TLS (the core's certificate, `core_cert`).
    pub core_https: String,
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

struct Edge {
    id: String,
    http: SocketAddr,
    process: Supervised,
}

pub struct LocalPop {
    pub state: PopState,
    clickhouse: Option<PrivateServer>,
    core: Supervised,
    edges: Vec<Edge>,
    opts: PopOptions,
    core_http: SocketAddr,
    /// The core's API over TLS: edges read the registry there.
    core_https: SocketAddr,
    core_quic: SocketAddr,
    tenants_file: PathBuf,
    /// Edges present it to read the core's plugin registry.
    edge_token: String,
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
                redirect_secret: Some(random_key("sig_")),
                allowed_origins: Vec::new(),
                max_events_per_sec: None,
                dimensions: vec!["country".into(), "device".into()],
            })
            .collect();
        let tenants_file = dir.join("tenants.toml");
        std::fs::create_dir_all(dir.join("site"))?;
        std::fs::write(&tenants_file, toml_tenants(&specs))?;

        let (core_http, core_https) = (free_tcp()?, free_tcp()?);
        let core_quic = free_udp()?;
        let edge_token = random_key("edge_");
        let core_dir = dir.join("core");
        std::fs::write(
            dir.join("core.toml"),
            format!(
                "listen_http = \"{core_http}\"\nlisten_https = \"{core_https}\"\nlisten_quic = \"{core_quic}\"\ndata_dir = {core_dir:?}\ntenants_file = {tenants_file:?}\n\n[clickhouse]\nurl = \"{clickhouse_url}\"\n\n[billing]\nfinalize_interval_ms = {}\n\n[registry]\nedge_token = \"{edge_token}\"\n",
                opts.finalize_interval_ms
            ),
        )?;
        let core = spawn(&opts, "core", &dir.join("core.toml"), &dir.join("core.log"), core_http).await?;
        let (edge_http, edge_https, edge_h3) = (free_tcp()?, free_tcp()?, free_udp()?);
        let first = &specs[0];
        let state = PopState {
            edge_http: format!("http://{edge_http}"),
            core_http: format!("http://{core_http}"),
            core_https: format!("https://{core_https}"),
            clickhouse_http: clickhouse_url,
            core_quic,
            core_cert: tally_http::tls::generated_paths(&core_dir, "core").0,
            edge_https: format!("https://127.0.0.1:{}", edge_https.port()),
            edge_h3: format!("https://127.0.0.1:{}", edge_h3.port()),
            edge_cert: tally_http::tls::generated_paths(&dir.join("local-edge-1-spool").join("tls"), "edge").0,
            site_dir: dir.join("site"),
            tenant: first.id.clone(),
            ingest_key: first.ingest_key.clone(),
            read_key: first.read_key.clone(),
            admin_key: first.admin_key.clone(),
            dashboard: format!("http://{core_http}/#key={}", first.read_key),
            tenants: specs,
            dir: dir.clone(),
            pids: Vec::new(),
        };
        let mut pop = LocalPop { state, clickhouse, core, edges: Vec::new(), opts, core_http, core_https, core_quic, tenants_file, edge_token };
        pop.add_edge_on("local-edge-1", edge_http, edge_https, edge_h3).await?;
        Ok(pop)
    }

    /// Starts another edge (its own id, port and spool) shipping to the core;
    /// returns its index and HTTP base URL.
    pub async fn add_edge(&mut self, id: &str) -> Result<(usize, String)> {
        self.add_edge_on(id, free_tcp()?, free_tcp()?, free_udp()?).await
    }

    async fn add_edge_on(&mut self, id: &str, http: SocketAddr, https: SocketAddr, h3: SocketAddr) -> Result<(usize, String)> {
        let e = &self.opts.edge;
        let dir = &self.opts.dir;
        let config = dir.join(format!("{id}.toml"));
        let mut text = format!(
                "edge_id = \"{id}\"\nlisten_http = \"{http}\"\nlisten_https = \"{https}\"\nlisten_h3 = \"{h3}\"\nstatic_dir = {:?}\nspool_dir = {:?}\ntenants_file = {:?}\nship_interval_ms = {}\nheartbeat_ms = {}\nspool_archive_acknowledged = {}\n\n[ack]\nmode = \"{}\"\n\n[time]\nallowed_lateness_secs = {}\nidle_lag_secs = {}\n\n[core]\naddr = \"{}\"\nca_cert = {:?}\n",
                dir.join("site"),
                dir.join(format!("{id}-spool")),
                self.tenants_file,
                e.ship_interval_ms,
                e.heartbeat_ms,
                e.archive_acknowledged,
                e.ack_mode,
                e.allowed_lateness_secs,
                e.idle_lag_secs,
                self.core_quic,
                self.state.core_cert,
            );
        text.push_str(&format!(
            "\n[registry]\nurl = \"https://{}\"\ntoken = \"{}\"\npoll_ms = {}\ntimeout_ms = {}\n",
            self.core_https, self.edge_token, e.registry_poll_ms, e.filter_timeout_ms
        ));
        for (tenant, path, policy) in &e.filters {
            text.push_str(&format!("\n[[filter]]\ntenant = {tenant:?}\npath = {path:?}\npolicy = {policy:?}\ntimeout_ms = {}\n", e.filter_timeout_ms));
        }
        std::fs::write(&config, text)?;
        let process = spawn(&self.opts, "edge", &config, &dir.join(format!("{id}.log")), http).await?;
        self.edges.push(Edge { id: id.into(), http, process });
        self.state.pids = self.pids();
        Ok((self.edges.len() - 1, format!("http://{http}")))
    }

    /// Replaces the tenants file (keys, policies) and restarts edges and
    /// core so they read it.
    pub async fn set_tenants(&mut self, specs: Vec<TenantSpec>) -> Result<()> {
        std::fs::write(&self.tenants_file, toml_tenants(&specs))?;
        self.state.tenants = specs;
        for i in 0..self.edges.len() {
            self.restart_edge(i).await?;
        }
        self.restart_core().await
    }

    /// The spool directory of edge `i`.
    pub fn edge_spool(&self, i: usize) -> PathBuf {
        self.opts.dir.join(format!("{}-spool", self.edges[i].id))
    }

    /// Stops edge `i` gracefully (it seals and ships what it holds).
    pub async fn stop_edge(&mut self, i: usize) {
        self.edges[i].process.stop(STOP_GRACE).await;
    }

    /// `kill -9` of edge `i`: no chance to flush anything.
    pub async fn kill_edge(&mut self, i: usize) {
        self.edges[i].process.kill_now().await;
    }

    /// Starts edge `i` again on the same config, port and spool.
    pub async fn restart_edge(&mut self, i: usize) -> Result<()> {
        self.edges[i].process.stop(STOP_GRACE).await;
        let id = self.edges[i].id.clone();
        let dir = &self.opts.dir;
        self.edges[i].process = spawn(&self.opts, "edge", &dir.join(format!("{id}.toml")), &dir.join(format!("{id}.log")), self.edges[i].http).await?;
        self.state.pids = self.pids();
        Ok(())
    }

    pub async fn kill_core(&mut self) {
        self.core.kill_now().await;
    }

    /// Starts the core again, optionally with extra environment (fault hooks).
    pub async fn restart_core_with(&mut self, env: &[(&str, &str)]) -> Result<()> {
        self.core.stop(STOP_GRACE).await;
        let dir = &self.opts.dir;
        self.core = spawn_with(&self.opts, "core", &dir.join("core.toml"), &dir.join("core.log"), self.core_http, env).await?;
        self.state.pids = self.pids();
        Ok(())
    }

    pub async fn restart_core(&mut self) -> Result<()> {
        self.restart_core_with(&[]).await
    }

    /// Whether the core process has exited (e.g. a fault hook fired).
    pub fn core_exited(&mut self) -> bool {
        self.core.exited().is_some()
    }

    /// Stops the private ClickHouse (its data stays); see `start_clickhouse`.
    pub async fn stop_clickhouse(&mut self) {
        if let Some(ch) = self.clickhouse.as_mut() {
            ch.stop().await;
        }
    }

    /// Starts the private ClickHouse again on its data, on the same port.
    pub async fn start_clickhouse(&mut self) -> Result<()> {
        if let Some(ch) = self.clickhouse.as_mut() {
            ch.restart().await?;
        }
        Ok(())
    }

    pub fn core_http(&self) -> SocketAddr {
        self.core_http
    }

    /// Pids of every process this POP runs (ClickHouse if private).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = [self.clickhouse.as_ref().and_then(|c| c.pid()), self.core.pid()].into_iter().flatten().collect();
        pids.extend(self.edges.iter().filter_map(|e| e.process.pid()));
        pids
    }

    /// A child that exited on its own, if any (name, status).
    pub fn exited(&mut self) -> Option<(String, String)> {
        for child in self.edges.iter_mut().map(|e| &mut e.process).chain([&mut self.core]) {
            if let Some(status) = child.exited() {
                return Some((child.name().to_string(), status.to_string()));
            }
        }
        None
    }

    /// Stops everything in dependency order: edges (flush to core), core
    /// (finishes commits), then the private ClickHouse.
    pub async fn stop(mut self) {
        for e in &mut self.edges {
            e.process.stop(STOP_GRACE).await;
        }
        self.core.stop(STOP_GRACE).await;
        if let Some(mut ch) = self.clickhouse.take() {
            ch.stop().await;
        }
    }
}

async fn spawn(opts: &PopOptions, role: &str, config: &Path, log: &Path, http: SocketAddr) -> Result<Supervised> {
    spawn_with(opts, role, config, log, http, &[]).await
}

async fn spawn_with(opts: &PopOptions, role: &str, config: &Path, log: &Path, http: SocketAddr, env: &[(&str, &str)]) -> Result<Supervised> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut command = Command::new(&opts.tally_bin);
    command
        .arg(role)
        .arg("--config")
        .arg(config)
        .env("TALLY_LOG", &opts.log)
        .envs(env.iter().copied())
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
        out.push_str(&format!("\n[[tenant]]\nid = {:?}\ningest_key = {:?}\nread_key = {:?}\nadmin_key = {:?}\n", t.id, t.ingest_key, t.read_key, t.admin_key));
        if let Some(secret) = &t.redirect_secret {
            out.push_str(&format!("redirect_secret = {secret:?}\n"));
        }
        if !t.allowed_origins.is_empty() {
            out.push_str(&format!("allowed_origins = {:?}\n", t.allowed_origins));
        }
        if let Some(rate) = t.max_events_per_sec {
            out.push_str(&format!("max_events_per_sec = {rate}\n"));
        }
        if !t.dimensions.is_empty() {
            out.push_str(&format!("dimensions = {:?}\n", t.dimensions));
        }
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
