//! A private ClickHouse cluster on loopback: a [`ZooKeeper`] and `S` shards x
//! `R` replicas of ClickHouse 18.16, for the cluster tests and `tally demo
//! --cluster`.
//!
//! Layout under its directory: `zookeeper/`, `s<shard>r<replica>/` per server
//! (1-based). Every member's ports are chosen before the first starts (each
//! server's `remote_servers` names every other's TCP port) and kept for its
//! restarts. Every process is stopped by pid; each server can be killed
//! (`kill -9`), stopped and started again on its own data, and so can a whole
//! shard or ZooKeeper, so tests can stage a replica crash, a shard outage or
//! a ZooKeeper outage.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tally_core::clickhouse::private_server::{MemberPorts, Membership, PrivateServer};

use crate::zookeeper::ZooKeeper;

/// The `remote_servers` name the launcher gives its cluster.
pub const CLUSTER_NAME: &str = "tally";

pub struct Cluster {
    pub zookeeper: ZooKeeper,
    /// `servers[shard][replica]`, 0-based here (the macros are 1-based).
    servers: Vec<Vec<PrivateServer>>,
    dir: PathBuf,
}

impl Cluster {
    pub async fn start(dir: &Path, shards: usize, replicas: usize) -> anyhow::Result<Cluster> {
        anyhow::ensure!(shards > 0 && replicas > 0, "a cluster needs at least one shard and one replica");
        let zookeeper = ZooKeeper::start(&dir.join("zookeeper")).await.context("starting ZooKeeper for the cluster")?;
        let ports: Vec<Vec<MemberPorts>> =
            (0..shards).map(|_| (0..replicas).map(|_| MemberPorts::free()).collect::<Result<_, _>>()).collect::<Result<_, _>>()?;
        let layout: Vec<Vec<u16>> = ports.iter().map(|shard| shard.iter().map(|p| p.tcp).collect()).collect();
        let mut servers = Vec::with_capacity(shards);
        for (s, shard_ports) in ports.iter().enumerate() {
            let mut shard = Vec::with_capacity(replicas);
            for (r, &member_ports) in shard_ports.iter().enumerate() {
                let membership = Membership {
                    cluster: CLUSTER_NAME.into(),
                    shard: s + 1,
                    replica: format!("r{}", r + 1),
                    zookeeper: zookeeper.connect_string(),
                    shards: layout.clone(),
                };
                let server_dir = dir.join(format!("s{}r{}", s + 1, r + 1));
                let server = PrivateServer::start_member(&server_dir, member_ports, &membership)
                    .await
                    .with_context(|| format!("starting ClickHouse shard {} replica {}", s + 1, r + 1))?;
                shard.push(server);
            }
            servers.push(shard);
        }
        Ok(Cluster { zookeeper, servers, dir: dir.into() })
    }

    pub fn name(&self) -> &str {
        CLUSTER_NAME
    }

    pub fn shards(&self) -> usize {
        self.servers.len()
    }

    pub fn replicas(&self) -> usize {
        self.servers[0].len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every server's HTTP URL, shard by shard.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().flatten().map(PrivateServer::http_url).collect()
    }

    /// The server of `shard` and `replica` (0-based).
    pub fn server(&mut self, shard: usize, replica: usize) -> &mut PrivateServer {
        &mut self.servers[shard][replica]
    }

    /// Stops every replica of `shard` (0-based): the shard is unreachable
    /// until [`Cluster::start_shard`].
    pub async fn stop_shard(&mut self, shard: usize) {
        for server in &mut self.servers[shard] {
            server.stop().await;
        }
    }

    pub async fn start_shard(&mut self, shard: usize) -> anyhow::Result<()> {
        for (r, server) in self.servers[shard].iter_mut().enumerate() {
            server.restart().await.with_context(|| format!("restarting ClickHouse shard {} replica {}", shard + 1, r + 1))?;
        }
        Ok(())
    }

    /// Stops every server, then ZooKeeper.
    pub async fn stop(&mut self) {
        for server in self.servers.iter_mut().flatten() {
            server.stop().await;
        }
        self.zookeeper.stop().await;
    }
}
