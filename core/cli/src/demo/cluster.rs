//! `tally demo --cluster`: the demo POP on a private ClickHouse cluster
//! (`tally::cluster`: ZooKeeper and 2 shards x 2 replicas of 18.16), with 2
//! cores sharing edge leases in that ZooKeeper and 2 edges that list both
//! cores (first core first).
//!
//! The POP's single-POP fields (`edge_http`, `core_http`, keys, ...) stay
//! those of the first edge and core; [`ClusterState`] adds every member.
//! Stop order: edges, cores (the POP's), then every ClickHouse server, then
//! ZooKeeper, each bounded by the caller's grace.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use tally::cluster::Cluster;
use tally::pop::{LocalPop, PopState};
use tally_core::config::ZooKeeperSection;
use tally_model::durable_file::write_atomic;

const SHARDS: usize = 2;
const REPLICAS: usize = 2;
const CORES: usize = 2;
/// The POP starts `local-edge-1`; the demo adds the others.
const EDGES: usize = 2;

pub struct DemoCluster {
    cluster: Cluster,
    /// Every edge's id and HTTP base URL, in order.
    edges: Vec<(String, String)>,
}

/// What `--state-file` holds in cluster mode: the single-POP fields (first
/// edge, first core) and every member.
#[derive(Serialize)]
pub struct ClusterState {
    #[serde(flatten)]
    pub pop: PopState,
    pub edges: Vec<EdgeEntry>,
    pub cores: Vec<CoreEntry>,
    pub clickhouse: Vec<ServerEntry>,
    pub zookeeper: Vec<ZooKeeperEntry>,
}

#[derive(Serialize)]
pub struct EdgeEntry {
    pub id: String,
    pub http: String,
}

#[derive(Serialize)]
pub struct CoreEntry {
    pub id: String,
    pub http: String,
    pub quic: SocketAddr,
}

#[derive(Serialize)]
pub struct ServerEntry {
    pub shard: usize,
    pub replica: usize,
    pub http: String,
    pub pid: Option<u32>,
}

#[derive(Serialize)]
pub struct ZooKeeperEntry {
    /// `host:port`, as clients take it.
    pub addr: String,
    pub pid: Option<u32>,
}

impl DemoCluster {
    /// ZooKeeper and the ClickHouse servers, under `dir/cluster`.
    pub async fn start(dir: &Path) -> Result<DemoCluster> {
        let cluster = Cluster::start(&dir.join("cluster"), SHARDS, REPLICAS).await.context("starting ZooKeeper and 2 shards x 2 replicas of ClickHouse")?;
        Ok(DemoCluster { cluster, edges: Vec::new() })
    }

    /// The POP's ClickHouse: the first server, and the cluster's name and
    /// other servers (`PopOptions::clickhouse_url`, `clickhouse_cluster`).
    pub fn clickhouse(&self) -> (String, (String, Vec<String>)) {
        let urls = self.cluster.urls();
        (urls[0].clone(), (self.cluster.name().into(), urls[1..].to_vec()))
    }

    /// Makes the one-core, one-edge POP into `CORES` cores with leases in
    /// the cluster's ZooKeeper and `EDGES` edges shipping to all of them.
    pub async fn grow(&mut self, pop: &mut LocalPop) -> Result<()> {
        let zookeeper = self.cluster.zookeeper.connect_string();
        pop.add_cores(&zookeeper, ZooKeeperSection::DEFAULT_SESSION_TIMEOUT_MS, CORES).await.context("starting the second core")?;
        self.edges.push(("local-edge-1".into(), pop.state.edge_http.clone()));
        for i in 2..=EDGES {
            let id = format!("local-edge-{i}");
            let (_, http) = pop.add_edge(&id).await.with_context(|| format!("starting edge {id}"))?;
            self.edges.push((id, http));
        }
        Ok(())
    }

    /// Every process: the POP's and the cluster's.
    pub fn state(&mut self, pop: &LocalPop) -> ClusterState {
        let mut clickhouse = Vec::new();
        for shard in 0..self.cluster.shards() {
            for replica in 0..self.cluster.replicas() {
                let server = self.cluster.server(shard, replica);
                clickhouse.push(ServerEntry { shard: shard + 1, replica: replica + 1, http: server.http_url(), pid: server.pid() });
            }
        }
        let zookeeper = vec![ZooKeeperEntry { addr: self.cluster.zookeeper.connect_string(), pid: self.cluster.zookeeper.pid() }];
        let mut state = pop.state.clone();
        state.pids.extend(clickhouse.iter().filter_map(|s| s.pid).chain(zookeeper.iter().filter_map(|z| z.pid)));
        ClusterState {
            pop: state,
            edges: self.edges.iter().map(|(id, http)| EdgeEntry { id: id.clone(), http: http.clone() }).collect(),
            cores: (0..pop.core_count())
                .map(|i| CoreEntry { id: pop.core_name_at(i).into(), http: format!("http://{}", pop.core_http_at(i)), quic: pop.core_quic_at(i) })
                .collect(),
            clickhouse,
            zookeeper,
        }
    }

    /// Every edge's HTTP base URL (traffic goes to each).
    pub fn edge_urls(&self) -> Vec<String> {
        self.edges.iter().map(|(_, http)| http.clone()).collect()
    }

    /// Stops every ClickHouse server, then ZooKeeper, saying each step.
    pub async fn stop_within(mut self, grace: Duration, say: impl Fn(&str)) {
        for shard in 0..self.cluster.shards() {
            for replica in 0..self.cluster.replicas() {
                let server = self.cluster.server(shard, replica);
                say(&format!("stopping ClickHouse shard {} replica {} (pid {})...", shard + 1, replica + 1, server.pid().unwrap_or(0)));
                server.stop_within(grace).await;
            }
        }
        say(&format!("stopping ZooKeeper (pid {})...", self.cluster.zookeeper.pid().unwrap_or(0)));
        self.cluster.zookeeper.stop().await;
    }
}

impl ClusterState {
    /// Lines the banner prints before the single-POP part: what runs where.
    pub fn topology(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "  cluster      {SHARDS} shards x {REPLICAS} replicas of ClickHouse, {CORES} cores with edge leases in ZooKeeper, {EDGES} edges listing every core"
        )];
        for z in &self.zookeeper {
            lines.push(format!("  zookeeper    {}  (pid {})", z.addr, z.pid.unwrap_or(0)));
        }
        for s in &self.clickhouse {
            lines.push(format!("  clickhouse   shard {} replica {}  {}  (pid {})", s.shard, s.replica, s.http, s.pid.unwrap_or(0)));
        }
        for c in &self.cores {
            lines.push(format!("  {:<12} API {}  QUIC {}", c.id, c.http, c.quic));
        }
        for e in &self.edges {
            lines.push(format!("  {:<12} ingest {}", e.id, e.http));
        }
        lines.push("  Any core answers every query with the same numbers; the lines below name the first edge and core.".into());
        lines
    }

    /// Writes the state as JSON atomically, readable by its owner only (it
    /// holds the POP's keys), like `tally::pop::write_state`.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }
}
