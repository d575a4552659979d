//! A local POP as real processes: ClickHouse (private or given), one core,
//! one edge, a tenant with keys. `tally demo` and the end-to-end tests start
//! it the same way; each process can be stopped, killed and restarted on
//! its own state (spool, TLS identity, ClickHouse data).
//!
//! Config files are the processes' own config types, serialized: every
//! setting not named here keeps the default the process itself has.
//!
//! Several cores with edge leases in ZooKeeper: [`LocalPop::add_cores`]
//! (in `pop/cores.rs`).

mod cores;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::process::Command;

use tally_core::clickhouse::private_server::PrivateServer;
use tally_core::config::{BillingSection, ClickHouseSection, CoreConfig, EdgeKeys};
use tally_core::supervise::Supervised;
use tally_edge::config::{AckMode, CoreSection, EdgeConfig, FailurePolicy, FilterSection, RegistrySection, TimeSection};
use tally_http::limits::ServerLimits;
use tally_model::durable_file::write_atomic;
use tally_model::tenant::{TenantSpec, TenantsFile};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(20);

pub struct PopOptions {
    /// The `tally` binary to run `core` and `edge` with.
    pub tally_bin: PathBuf,
    /// Everything the POP writes goes under here.
    pub dir: PathBuf,
    /// Use this ClickHouse instead of starting a private one.
    pub clickhouse_url: Option<String>,
    /// With `clickhouse_url`: the cluster it belongs to and the cluster's
    /// other servers (`[clickhouse] cluster` and `servers`); `None`: one server.
    pub clickhouse_cluster: Option<(String, Vec<String>)>,
    pub tenants: Vec<String>,
    pub edge: EdgeSettings,
    /// How often the core's billing finalizer and rollup healer run (the
    /// core's defaults are [`BillingSection::DEFAULT_FINALIZE_INTERVAL_MS`]
    /// and `tally_core::heal::INTERVAL`).
    pub finalize_interval_ms: u64,
    /// Log filter for the children (`TALLY_LOG`).
    pub log: String,
}

impl PopOptions {
    /// Read by the core and every edge.
    fn tenants_file(&self) -> PathBuf {
        self.dir.join("tenants.toml")
    }
}

/// The edge settings a POP's edges are started with; by default the edge's
/// own defaults.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub ship_interval_ms: u64,
    pub heartbeat_ms: u64,
    pub ack_mode: AckMode,
    pub allowed_lateness_secs: u64,
    pub idle_lag_secs: u64,
    pub archive_acknowledged: bool,
    /// Tenant filters: (tenant, plugin path, policy).
    pub filters: Vec<(String, PathBuf, FailurePolicy)>,
    /// How often edges poll the core's plugin registry.
    pub registry_poll_ms: u64,
    /// A filter call's deadline (registry and `filters` plugins alike).
    pub filter_timeout_ms: u64,
    /// The ingest listeners' timeouts and caps (short ones let tests see them act).
    pub limits: ServerLimits,
    /// Each tenant's dedup share (`[dedup] max_entries_per_tenant`; `None`:
    /// the edge's default, its `max_entries` split over the tenants).
    pub dedup_max_entries_per_tenant: Option<usize>,
    /// Edges serve `/metrics` on a listener of their own (`listen_metrics`).
    pub metrics_listener: bool,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            ship_interval_ms: EdgeConfig::DEFAULT_SHIP_INTERVAL_MS,
            heartbeat_ms: EdgeConfig::DEFAULT_HEARTBEAT_MS,
            ack_mode: AckMode::default(),
            allowed_lateness_secs: TimeSection::DEFAULT_ALLOWED_LATENESS_SECS,
            idle_lag_secs: TimeSection::DEFAULT_IDLE_LAG_SECS,
            archive_acknowledged: false,
            filters: Vec::new(),
            registry_poll_ms: RegistrySection::DEFAULT_POLL_MS,
            filter_timeout_ms: FilterSection::DEFAULT_TIMEOUT_MS,
            limits: ServerLimits::default(),
            dedup_max_entries_per_tenant: None,
            metrics_listener: false,
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
    /// The first edge's `/metrics` listener, if it has its own.
    pub edge_metrics: Option<String>,
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
    /// The core's `[ops] token` (`tally edge list|retire`, `GET /v1/edges`).
    pub ops_token: String,
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
    /// Edges present it to read the core's plugin registry.
    edge_token: String,
    /// What `core.toml` holds; rewritten when an edge is enrolled.
    core_config: CoreConfig,
    /// The cores after the first (`add_cores`).
    more_cores: Vec<cores::MoreCore>,
    /// What edges ship to once there are several cores.
    edge_cores: Option<CoreSection>,
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
                previous_ingest_key: None,
                previous_read_key: None,
                previous_admin_key: None,
                redirect_secret: Some(random_key("sig_")),
                allowed_origins: Vec::new(),
                max_events_per_sec: None,
                dimensions: vec!["country".into(), "device".into()],
            })
            .collect();
        std::fs::create_dir_all(dir.join("site"))?;
        write_tenants(&opts.tenants_file(), &specs)?;

        let (core_http, core_https) = (free_tcp()?, free_tcp()?);
        let core_quic = free_udp()?;
        let edge_token = random_key("edge_");
        let mut core_config = core_config(&opts, [core_http, core_https, core_quic], &clickhouse_url, &edge_token);
        let core_dir = core_config.data_dir.clone();
        // The first edge's key is enrolled before the core starts (later edges restart it).
        let first_edge = "local-edge-1";
        core_config.edges.push(EdgeKeys { id: first_edge.into(), keys: vec![edge_fingerprint(&dir.join(format!("{first_edge}-spool")))?] });
        write_toml(&dir.join("core.toml"), &core_config)?;
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
            edge_metrics: None,
            edge_cert: tally_http::tls::generated_paths(&dir.join("local-edge-1-spool").join("tls"), "edge").0,
            site_dir: dir.join("site"),
            tenant: first.id.clone(),
            ingest_key: first.ingest_key.clone(),
            read_key: first.read_key.clone(),
            admin_key: first.admin_key.clone(),
            ops_token: core_config.ops.token.clone().unwrap_or_default(),
            dashboard: format!("http://{core_http}/#key={}", first.read_key),
            tenants: specs,
            dir: dir.clone(),
            pids: Vec::new(),
        };
        let mut pop = LocalPop {
            state,
            clickhouse,
            core,
            edges: Vec::new(),
            opts,
            core_http,
            core_https,
            core_quic,
            edge_token,
            core_config,
            more_cores: Vec::new(),
            edge_cores: None,
        };
        pop.add_edge_on(first_edge, edge_http, edge_https, edge_h3).await?;
        Ok(pop)
    }

    /// Starts another edge (its own id, port and spool) shipping to the core;
    /// returns its index and HTTP base URL.
    pub async fn add_edge(&mut self, id: &str) -> Result<(usize, String)> {
        self.add_edge_on(id, free_tcp()?, free_tcp()?, free_udp()?).await
    }

    async fn add_edge_on(&mut self, id: &str, http: SocketAddr, https: SocketAddr, h3: SocketAddr) -> Result<(usize, String)> {
        let key = edge_fingerprint(&self.opts.dir.join(format!("{id}-spool")))?;
        if !self.core_config.edges.iter().any(|e| e.id == id && e.keys.contains(&key)) {
            self.enroll(id, vec![key]).await?;
        }
        let dir = &self.opts.dir;
        let config = dir.join(format!("{id}.toml"));
        let core = self.edge_cores.clone().unwrap_or_else(|| CoreSection::new(self.core_quic, self.state.core_cert.clone()));
        let mut edge = edge_config(&self.opts, id, [http, https, h3], core, self.core_https, &self.edge_token);
        if self.opts.edge.metrics_listener {
            let addr = free_tcp()?;
            edge.listen_metrics = Some(addr);
            self.state.edge_metrics.get_or_insert(format!("http://{addr}"));
        }
        write_toml(&config, &edge)?;
        let process = spawn(&self.opts, "edge", &config, &dir.join(format!("{id}.log")), http).await?;
        self.edges.push(Edge { id: id.into(), http, process });
        self.state.pids = self.pids();
        Ok((self.edges.len() - 1, format!("http://{http}")))
    }

    /// Sets the keys the core accepts for edge `id` (its `[[edges]]` entry)
    /// and restarts the core so it reads them: enrolment and key rotation.
    pub async fn enroll(&mut self, id: &str, keys: Vec<String>) -> Result<()> {
        match self.core_config.edges.iter_mut().find(|e| e.id == id) {
            Some(entry) => entry.keys = keys,
            None => self.core_config.edges.push(EdgeKeys { id: id.into(), keys }),
        }
        write_toml(&self.opts.dir.join("core.toml"), &self.core_config)?;
        self.enroll_on_more_cores().await?;
        self.restart_core().await
    }

    /// Replaces the tenants file (keys, policies) and restarts edges and
    /// core so they read it.
    pub async fn set_tenants(&mut self, specs: Vec<TenantSpec>) -> Result<()> {
        write_tenants(&self.opts.tenants_file(), &specs)?;
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
        self.restart_edge_with(i, &[]).await
    }

    /// Starts edge `i` again, optionally with extra environment (fault hooks).
    pub async fn restart_edge_with(&mut self, i: usize, env: &[(&str, &str)]) -> Result<()> {
        self.edges[i].process.stop(STOP_GRACE).await;
        let id = self.edges[i].id.clone();
        let dir = &self.opts.dir;
        let (config, log) = (dir.join(format!("{id}.toml")), dir.join(format!("{id}.log")));
        self.edges[i].process = spawn_with(&self.opts, "edge", &config, &log, self.edges[i].http, env).await?;
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

    /// `kill -9` of the private ClickHouse (its data stays, half-written
    /// parts and all); see `start_clickhouse`.
    pub async fn kill_clickhouse(&mut self) {
        if let Some(ch) = self.clickhouse.as_mut() {
            ch.kill().await;
        }
    }

    /// Starts the private ClickHouse again on its data, on the same port.
    pub async fn start_clickhouse(&mut self) -> Result<()> {
        if let Some(ch) = self.clickhouse.as_mut() {
            ch.restart().await?;
        }
        Ok(())
    }

    /// The core's `[ops] token` (`GET /v1/edges`, `tally edge retire`).
    pub fn ops_token(&self) -> &str {
        self.core_config.ops.token.as_deref().expect("a POP's core has an ops token")
    }

    /// Writes the tenants file and sends SIGHUP to every edge and the core,
    /// which reload it without a restart (their metrics count each reload).
    pub fn reload_tenants(&mut self, specs: Vec<TenantSpec>) -> Result<()> {
        write_tenants(&self.opts.tenants_file(), &specs)?;
        self.state.tenants = specs;
        for e in &self.edges {
            e.process.signal(libc::SIGHUP);
        }
        self.core.signal(libc::SIGHUP);
        Ok(())
    }

    pub fn core_http(&self) -> SocketAddr {
        self.core_http
    }

    /// The private ClickHouse's pid (`None` on a given server).
    pub fn clickhouse_pid(&self) -> Option<u32> {
        self.clickhouse.as_ref().and_then(|c| c.pid())
    }

    /// Pids of every process this POP runs (ClickHouse if private).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = [self.clickhouse.as_ref().and_then(|c| c.pid()), self.core.pid()].into_iter().flatten().collect();
        pids.extend(self.more_cores.iter().filter_map(|c| c.process.pid()));
        pids.extend(self.edges.iter().filter_map(|e| e.process.pid()));
        pids
    }

    /// A child that exited on its own, if any (name, status).
    pub fn exited(&mut self) -> Option<(String, String)> {
        let more_cores = self.more_cores.iter_mut().map(|c| &mut c.process);
        for child in self.edges.iter_mut().map(|e| &mut e.process).chain([&mut self.core]).chain(more_cores) {
            if let Some(status) = child.exited() {
                return Some((child.name().to_string(), status.to_string()));
            }
        }
        None
    }

    /// Stops everything in dependency order: edges (flush to core), core
    /// (finishes commits), then the private ClickHouse.
    pub async fn stop(self) {
        self.stop_within(STOP_GRACE, |_| {}).await;
    }

    /// [`LocalPop::stop`], giving each process `grace` after SIGTERM before
    /// SIGKILL (safe for each: acknowledged clicks are in the WAL, a commit
    /// cut short is resumed, ClickHouse drops half-written parts), and
    /// telling `say` each step before it starts.
    pub async fn stop_within(mut self, grace: Duration, say: impl Fn(&str)) {
        for e in &mut self.edges {
            say(&format!("stopping edge {} (pid {})...", e.id, e.process.pid().unwrap_or(0)));
            e.process.stop(grace).await;
        }
        let first = if self.more_cores.is_empty() { "core" } else { "core core-1" };
        say(&format!("stopping {first} (pid {})...", self.core.pid().unwrap_or(0)));
        self.core.stop(grace).await;
        for c in &mut self.more_cores {
            say(&format!("stopping core {} (pid {})...", c.name, c.process.pid().unwrap_or(0)));
            c.process.stop(grace).await;
        }
        if let Some(mut ch) = self.clickhouse.take() {
            say(&format!("stopping ClickHouse (pid {})...", ch.pid().unwrap_or(0)));
            ch.stop_within(grace).await;
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

/// The fingerprint of the edge key in `spool` (generated there if absent,
/// as the edge itself would on its first start).
fn edge_fingerprint(spool: &Path) -> Result<String> {
    let identity = tally_edge::shipper::identity::load(spool).with_context(|| format!("creating an edge key in {}", spool.display()))?;
    Ok(tally_edge::shipper::identity::fingerprint(&identity)?.to_string())
}

/// The core's config: its defaults but for the POP's addresses (HTTP,
/// HTTPS, QUIC), files, ClickHouse, finalizer interval and edge token.
fn core_config(opts: &PopOptions, [http, https, quic]: [SocketAddr; 3], clickhouse_url: &str, edge_token: &str) -> CoreConfig {
    let (cluster, servers) = opts.clickhouse_cluster.clone().unzip();
    let clickhouse = ClickHouseSection { cluster, servers: servers.unwrap_or_default(), ..ClickHouseSection::new(clickhouse_url.into()) };
    let mut config = CoreConfig::new(http, quic, opts.dir.join("core"), opts.tenants_file(), clickhouse);
    config.listen_https = Some(https);
    // The rollup healer runs at the finalizer's pace, so tests see it act.
    let every = opts.finalize_interval_ms;
    config.billing = BillingSection { finalize_interval_ms: every, rollup_heal_interval_ms: every, ..config.billing };
    config.registry.edge_token = Some(edge_token.into());
    config.ops.token = Some(random_key("ops_"));
    config
}

/// Edge `id`'s config: the edge's defaults but for `opts.edge`, its
/// addresses (HTTP, HTTPS, HTTP/3) and files, and the core it ships to and
/// whose registry (at `core_https`) it polls.
fn edge_config(opts: &PopOptions, id: &str, [http, https, h3]: [SocketAddr; 3], core: CoreSection, core_https: SocketAddr, edge_token: &str) -> EdgeConfig {
    let e = &opts.edge;
    let dir = &opts.dir;
    let mut config = EdgeConfig::new(id.into(), http, dir.join(format!("{id}-spool")), opts.tenants_file(), core);
    config.listen_https = Some(https);
    config.listen_h3 = Some(h3);
    config.static_dir = Some(dir.join("site"));
    config.ship_interval_ms = e.ship_interval_ms;
    config.heartbeat_ms = e.heartbeat_ms;
    config.spool_archive_acknowledged = e.archive_acknowledged;
    config.ack.mode = e.ack_mode;
    config.limits = e.limits.clone();
    config.dedup.max_entries_per_tenant = e.dedup_max_entries_per_tenant;
    config.time = TimeSection { allowed_lateness_secs: e.allowed_lateness_secs, idle_lag_secs: e.idle_lag_secs, ..config.time };
    let registry = RegistrySection::new(format!("https://{core_https}"), edge_token.into());
    config.registry = Some(RegistrySection { poll_ms: e.registry_poll_ms, timeout_ms: e.filter_timeout_ms, ..registry });
    config.filters = e
        .filters
        .iter()
        .map(|(tenant, path, policy)| FilterSection { policy: *policy, timeout_ms: e.filter_timeout_ms, ..FilterSection::new(tenant.clone(), path.clone()) })
        .collect();
    config
}

/// Configs hold tokens and keys: written 0600, atomically.
fn write_toml(path: &Path, value: &impl Serialize) -> Result<()> {
    write_atomic(path, toml::to_string(value)?.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

fn write_tenants(path: &Path, specs: &[TenantSpec]) -> Result<()> {
    let text = toml::to_string(&TenantsFile { tenants: specs.to_vec() })?;
    write_atomic(path, format!("# Generated by tally: tenants and their keys.\n\n{text}").as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Writes `state` as JSON to `path` atomically (readers never see half),
/// readable by its owner only: it holds the POP's keys.
pub fn write_state(path: &Path, state: &PopState) -> Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(state)?).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What pop writes is read back by the processes' own loaders (which
    /// also validate) as exactly what was built.
    #[test]
    fn written_configs_load_as_built() {
        let dir = tempfile::tempdir().unwrap();
        let edge = EdgeSettings {
            ack_mode: AckMode::Memory,
            filters: vec![("acme".into(), dir.path().join("bot.wasm"), FailurePolicy::Closed)],
            ..EdgeSettings::default()
        };
        let opts = PopOptions {
            tally_bin: "tally".into(),
            dir: dir.path().into(),
            clickhouse_url: None,
            clickhouse_cluster: None,
            tenants: vec!["acme".into()],
            edge,
            finalize_interval_ms: 500,
            log: "info".into(),
        };
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));

        let core = core_config(&opts, [addr(1), addr(2), addr(3)], "http://127.0.0.1:8123", &random_key("edge_"));
        write_toml(&dir.path().join("core.toml"), &core).unwrap();
        let loaded = CoreConfig::load(&dir.path().join("core.toml")).unwrap();
        assert_eq!(format!("{loaded:?}"), format!("{core:?}"));
        assert_eq!((loaded.billing.finalize_interval_ms, loaded.billing.lookback_hours), (500, BillingSection::DEFAULT_LOOKBACK_HOURS));

        let edge = edge_config(&opts, "e1", [addr(4), addr(5), addr(6)], CoreSection::new(addr(3), dir.path().join("core.pem")), addr(2), "token");
        write_toml(&dir.path().join("e1.toml"), &edge).unwrap();
        let loaded = EdgeConfig::load(&dir.path().join("e1.toml")).unwrap();
        assert_eq!(format!("{loaded:?}"), format!("{edge:?}"));
        // They hold tokens: readable by their owner only.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.path().join("e1.toml")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            (loaded.ack.mode, loaded.filters[0].policy, loaded.core.max_in_flight),
            (AckMode::Memory, FailurePolicy::Closed, CoreSection::DEFAULT_MAX_IN_FLIGHT)
        );

        let specs = vec![TenantSpec {
            id: "acme".into(),
            ingest_key: random_key("ing_"),
            read_key: random_key("read_"),
            admin_key: random_key("adm_"),
            previous_ingest_key: None,
            previous_read_key: None,
            previous_admin_key: None,
            redirect_secret: None,
            allowed_origins: vec!["https://example.com".into()],
            max_events_per_sec: Some(10),
            dimensions: vec!["country".into()],
        }];
        write_tenants(&opts.tenants_file(), &specs).unwrap();
        let loaded: TenantsFile = tally_model::config_file::load_toml(&opts.tenants_file()).unwrap();
        assert_eq!(loaded.tenants, specs);
        tally_model::tenant::Tenants::load(&opts.tenants_file()).unwrap();
    }
}
