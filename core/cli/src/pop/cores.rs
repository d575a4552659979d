//! A POP with several cores on one ClickHouse and edge leases in ZooKeeper
//! (issue 10): the first core is `core-1` (the POP's own), the others
//! `core-2`..., each with its own ports, data directory and TLS identity;
//! every edge lists all cores, first core first, and trusts all their
//! certificates through one PEM bundle (`cores-ca.pem`).

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};

use tally_core::config::{CoreConfig, ZooKeeperSection};
use tally_core::supervise::Supervised;
use tally_edge::config::{CoreSection, EdgeConfig};

use super::{free_tcp, free_udp, spawn, write_toml, LocalPop, STOP_GRACE};

pub(super) struct MoreCore {
    pub(super) name: String,
    http: SocketAddr,
    config: CoreConfig,
    pub(super) process: Supervised,
}

impl LocalPop {
    /// Makes this POP `n` cores sharing its ClickHouse, with edge leases in
    /// the ZooKeeper at `zookeeper` (a connect string) and this session
    /// timeout: the first core restarts with `[zookeeper]`, the others
    /// start, and every edge restarts shipping to all of them in order.
    pub async fn add_cores(&mut self, zookeeper: &str, session_timeout_ms: u64, n: usize) -> Result<()> {
        if n < 2 || !self.more_cores.is_empty() {
            bail!("add_cores makes a one-core POP into n >= 2 cores, once");
        }
        let leases = |id: String| ZooKeeperSection { core_id: Some(id), session_timeout_ms, ..ZooKeeperSection::new(zookeeper.into()) };
        let dir = self.opts.dir.clone();
        self.core_config.zookeeper = Some(leases("core-1".into()));
        write_toml(&dir.join("core.toml"), &self.core_config)?;
        self.restart_core().await?;
        let mut bundle = std::fs::read(&self.state.core_cert).context("reading the first core's certificate")?;
        let mut addrs = vec![self.core_quic];
        for i in 2..=n {
            let name = format!("core-{i}");
            let mut config = self.core_config.clone();
            config.listen_http = free_tcp()?;
            config.listen_https = Some(free_tcp()?);
            config.listen_quic = free_udp()?;
            config.data_dir = dir.join(&name);
            config.zookeeper = Some(leases(name.clone()));
            write_toml(&dir.join(format!("{name}.toml")), &config)?;
            let process = spawn(&self.opts, "core", &dir.join(format!("{name}.toml")), &dir.join(format!("{name}.log")), config.listen_http).await?;
            let cert = tally_http::tls::generated_paths(&config.data_dir, "core").0;
            bundle.extend(std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?);
            addrs.push(config.listen_quic);
            self.more_cores.push(MoreCore { name, http: config.listen_http, config, process });
        }
        let ca = dir.join("cores-ca.pem");
        std::fs::write(&ca, bundle).with_context(|| format!("writing {}", ca.display()))?;
        let cores = CoreSection::several(addrs, ca);
        for i in 0..self.edges.len() {
            let path = dir.join(format!("{}.toml", self.edges[i].id));
            let mut edge = EdgeConfig::load(&path).with_context(|| format!("reading {}", path.display()))?;
            edge.core = CoreSection { max_in_flight: edge.core.max_in_flight, ..cores.clone() };
            write_toml(&path, &edge)?;
            self.restart_edge(i).await?;
        }
        self.edge_cores = Some(cores);
        self.state.pids = self.pids();
        Ok(())
    }

    /// How many cores this POP runs.
    pub fn core_count(&self) -> usize {
        1 + self.more_cores.len()
    }

    /// Core `i`'s HTTP API (0 is the first core).
    pub fn core_http_at(&self, i: usize) -> SocketAddr {
        match i {
            0 => self.core_http,
            i => self.more_cores[i - 1].http,
        }
    }

    /// Core `i`'s QUIC batch endpoint (0 is the first core).
    pub fn core_quic_at(&self, i: usize) -> SocketAddr {
        match i {
            0 => self.core_quic,
            i => self.more_cores[i - 1].config.listen_quic,
        }
    }

    /// Core `i`'s name in ZooKeeper (`core-1`...).
    pub fn core_name_at(&self, i: usize) -> &str {
        match i {
            0 => "core-1",
            i => &self.more_cores[i - 1].name,
        }
    }

    /// `kill -9` of core `i` (0 is the first core).
    pub async fn kill_core_at(&mut self, i: usize) {
        match i {
            0 => self.core.kill_now().await,
            i => self.more_cores[i - 1].process.kill_now().await,
        }
    }

    /// Stops core `i` gracefully (it finishes its commits and gives its
    /// leases up).
    pub async fn stop_core_at(&mut self, i: usize) {
        match i {
            0 => _ = self.core.stop(STOP_GRACE).await,
            i => _ = self.more_cores[i - 1].process.stop(STOP_GRACE).await,
        }
    }

    /// Starts core `i` again on its config and data.
    pub async fn restart_core_at(&mut self, i: usize) -> Result<()> {
        if i == 0 {
            return self.restart_core().await;
        }
        let dir = self.opts.dir.clone();
        let c = &mut self.more_cores[i - 1];
        c.process.stop(STOP_GRACE).await;
        c.process = spawn(&self.opts, "core", &dir.join(format!("{}.toml", c.name)), &dir.join(format!("{}.log", c.name)), c.http).await?;
        self.state.pids = self.pids();
        Ok(())
    }

    /// The other cores take the first core's `[[edges]]` and restart.
    pub(super) async fn enroll_on_more_cores(&mut self) -> Result<()> {
        for i in 1..=self.more_cores.len() {
            let c = &mut self.more_cores[i - 1];
            c.config.edges = self.core_config.edges.clone();
            write_toml(&self.opts.dir.join(format!("{}.toml", c.name)), &c.config)?;
            self.restart_core_at(i).await?;
        }
        Ok(())
    }
}
