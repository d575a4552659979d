//! A private `clickhouse-server` run as a child process.
//!
//! Used by the end-to-end tests and `tally demo` so that every run gets its
//! own server: generated config, free loopback ports, its own data dir. It is
//! a [`Supervised`] child: own process group, stopped by pid only.
//!
//! A cluster member ([`PrivateServer::start_member`]) also gets an
//! interserver port, the ZooKeeper address, its `{shard}`/`{replica}` macros
//! and the whole cluster's `remote_servers` (every shard with
//! `internal_replication`: a Distributed INSERT writes one replica per shard
//! and replication copies it). Its ports are chosen by whoever lays out the
//! cluster ([`MemberPorts::free`]), since every member must know every
//! other's TCP port before any of them starts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::supervise::{SuperviseError, Supervised};

const SERVER_XML: &str = include_str!("private-server.xml");
const USERS_XML: &str = include_str!("private-users.xml");
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Debian's package installs the server here; `TALLY_CLICKHOUSE_SERVER` overrides.
const DEFAULT_BINARY: &str = "/usr/sbin/clickhouse-server";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("clickhouse-server binary {0} not found: install the Debian package clickhouse-server (see README)")]
    Missing(PathBuf),
    #[error("preparing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Process(#[from] SuperviseError),
}

pub struct PrivateServer {
    process: Supervised,
    http_port: u16,
    binary: PathBuf,
    dir: PathBuf,
}

/// The loopback ports of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPorts {
    pub http: u16,
    pub tcp: u16,
    pub interserver: u16,
}

impl MemberPorts {
    pub fn free() -> std::io::Result<MemberPorts> {
        // Held together so the three differ.
        let listeners = [TcpListener::bind("127.0.0.1:0")?, TcpListener::bind("127.0.0.1:0")?, TcpListener::bind("127.0.0.1:0")?];
        let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
        Ok(MemberPorts { http: port(0)?, tcp: port(1)?, interserver: port(2)? })
    }
}

/// What a server must know to be one replica of one shard of a cluster.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The `remote_servers` name (`[clickhouse] cluster`).
    pub cluster: String,
    /// 1-based shard number (the `{shard}` macro).
    pub shard: usize,
    /// The `{replica}` macro, unique within the shard.
    pub replica: String,
    /// `host:port` of ZooKeeper.
    pub zookeeper: String,
    /// Every shard's replicas' TCP ports, shards in order.
    pub shards: Vec<Vec<u16>>,
}

impl Membership {
    /// The XML inside `<yandex>` that makes a server this member.
    fn render(&self, interserver_port: u16) -> String {
        let (zk_host, zk_port) = self.zookeeper.rsplit_once(':').unwrap_or((&self.zookeeper, "2181"));
        let shards: String = self
            .shards
            .iter()
            .map(|replicas| {
                let replicas: String =
                    replicas.iter().map(|port| format!("<replica><host>127.0.0.1</host><port>{port}</port></replica>")).collect::<Vec<_>>().join("\n        ");
                format!("    <shard><internal_replication>true</internal_replication>\n        {replicas}\n    </shard>")
            })
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "    <interserver_http_port>{interserver_port}</interserver_http_port>\n    <interserver_http_host>127.0.0.1</interserver_http_host>\n    \
             <zookeeper><node><host>{zk_host}</host><port>{zk_port}</port></node><session_timeout_ms>6000</session_timeout_ms></zookeeper>\n    \
             <macros><shard>{}</shard><replica>{}</replica></macros>\n    <remote_servers><{cluster}>\n{shards}\n    </{cluster}></remote_servers>\n    \
             <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>",
            self.shard,
            self.replica,
            cluster = self.cluster,
        )
    }
}

impl PrivateServer {
    /// Starts a server whose files all live under `dir`, and waits until it
    /// answers. Retries with new ports if it dies at start (a port race).
    pub async fn start(dir: &Path) -> Result<PrivateServer, ServerError> {
        let binary = std::env::var_os("TALLY_CLICKHOUSE_SERVER").map(PathBuf::from).unwrap_or_else(|| DEFAULT_BINARY.into());
        if !binary.exists() {
            return Err(ServerError::Missing(binary));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ports = MemberPorts::free().map_err(|source| ServerError::Io { path: dir.into(), source })?;
            match Self::start_once(&binary, dir, ports, None).await {
                Err(ServerError::Process(SuperviseError::Exited { .. })) if attempt < 3 => continue,
                other => return other,
            }
        }
    }

    /// Starts one member of a cluster on `ports` (chosen beforehand, see
    /// [`MemberPorts::free`]) and waits until it answers.
    pub async fn start_member(dir: &Path, ports: MemberPorts, membership: &Membership) -> Result<PrivateServer, ServerError> {
        let binary = std::env::var_os("TALLY_CLICKHOUSE_SERVER").map(PathBuf::from).unwrap_or_else(|| DEFAULT_BINARY.into());
        if !binary.exists() {
            return Err(ServerError::Missing(binary));
        }
        Self::start_once(&binary, dir, ports, Some(membership)).await
    }

    async fn start_once(binary: &Path, dir: &Path, ports: MemberPorts, membership: Option<&Membership>) -> Result<PrivateServer, ServerError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ServerError::Io { path, source }
        };
        for sub in ["data", "tmp", "user_files", "format_schemas", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(&dir.join(sub)))?;
        }
        let dir = dir.canonicalize().map_err(io(dir))?;
        let (http_port, tcp_port) = (ports.http, ports.tcp);
        let users = dir.join("users.xml");
        let config = dir.join("config.xml");
        std::fs::write(&users, USERS_XML).map_err(io(&users))?;
        let rendered = SERVER_XML
            .replace("{{HTTP_PORT}}", &http_port.to_string())
            .replace("{{TCP_PORT}}", &tcp_port.to_string())
            .replace("{{DATA_DIR}}", dir.to_str().expect("temp paths are UTF-8"))
            .replace("{{USERS_FILE}}", users.to_str().expect("temp paths are UTF-8"))
            .replace("{{CLUSTER}}", &membership.map(|m| m.render(ports.interserver)).unwrap_or_default());
        std::fs::write(&config, rendered).map_err(io(&config))?;
        let process = Self::launch(binary, &dir, http_port).await?;
        Ok(PrivateServer { process, http_port, binary: binary.into(), dir })
    }

    async fn launch(binary: &Path, dir: &Path, http_port: u16) -> Result<Supervised, ServerError> {
        let io = |source| ServerError::Io { path: dir.into(), source };
        let stdout = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("logs/stdout.log")).map_err(io)?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--config-file={}", dir.join("config.xml").display()))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().map_err(io)?)
            .stderr(stdout);
        let mut process = Supervised::spawn("clickhouse-server", command)?;
        let url = format!("http://127.0.0.1:{http_port}/ping");
        let hint = format!("; see {}", dir.join("logs").display());
        process.wait_http_ready(&url, START_TIMEOUT, &hint).await?;
        tracing::info!(pid = process.pid(), http_port, dir = %dir.display(), "private ClickHouse is up");
        Ok(process)
    }

    /// Starts a stopped server again on the same data and port.
    pub async fn restart(&mut self) -> Result<(), ServerError> {
        self.stop().await;
        self.process = Self::launch(&self.binary, &self.dir, self.http_port).await?;
        Ok(())
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// `kill -9`: no shutdown, whatever it was writing stays half-written,
    /// as in a power cut. [`PrivateServer::restart`] starts it again.
    pub async fn kill(&mut self) {
        self.process.kill_now().await;
        tracing::info!("private ClickHouse killed");
    }

    /// SIGTERM, wait, then SIGKILL. Idempotent.
    pub async fn stop(&mut self) {
        self.stop_within(STOP_TIMEOUT).await;
    }

    /// [`PrivateServer::stop`] with SIGKILL after `grace` (a graceful 18.16
    /// shutdown can wait on merges far longer than a caller wants to).
    pub async fn stop_within(&mut self, grace: Duration) {
        if self.process.stop(grace).await.is_some() {
            tracing::info!("private ClickHouse stopped");
        }
    }
}
