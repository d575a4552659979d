//! The core's configuration file (TOML). See `deploy/config/core.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use tally_http::limits::ServerLimits;
use tally_model::config_file::load_toml;
pub use tally_model::config_file::ConfigError;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    /// Query API, dashboard and plugin registry, in clear.
    pub listen_http: SocketAddr,
    /// The same over TLS (HTTP/1.1 and HTTP/2) with the core's certificate,
    /// if set: what edges and admins use across a network (edges pin the
    /// certificate as they do for QUIC).
    pub listen_https: Option<SocketAddr>,
    /// QUIC endpoint edges ship batches to.
    pub listen_quic: SocketAddr,
    /// Holds the TLS key and certificate (created on first start).
    pub data_dir: PathBuf,
    pub tenants_file: PathBuf,
    pub clickhouse: ClickHouseSection,
    /// Largest batch frame accepted from an edge.
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// Names the self-signed certificate is issued for (default
    /// [`tally_http::tls::DEFAULT_NAMES`]).
    #[serde(default = "default_tls_names")]
    pub tls_names: Vec<String>,
    #[serde(default)]
    pub billing: BillingSection,
    #[serde(default)]
    pub registry: RegistrySection,
    /// The operators' credential (`[ops] token`): `GET /v1/edges` and edge
    /// retirement. Without it only tenant admin keys read `/v1/edges`, and
    /// no edge can be retired.
    #[serde(default)]
    pub ops: OpsSection,
    /// The enrolled edges: each one's id and the fingerprints of the keys
    /// it may connect with (two while rotating). A batch connection with any
    /// other key is refused in the handshake; see `tally_http::pinned`.
    #[serde(default)]
    pub edges: Vec<EdgeKeys>,
    /// Timeouts and caps of the HTTP and HTTPS listeners (`[limits]`,
    /// default [`ServerLimits::default`]; see `tally_http::limits`).
    #[serde(default)]
    pub limits: ServerLimits,
    /// How long each table family is kept (`[retention]`, default: forever;
    /// see `crate::retention`).
    #[serde(default)]
    pub retention: crate::retention::RetentionSection,
    /// Several cores on one ClickHouse: edge leases in ZooKeeper
    /// (`crate::lease`). Absent: this is the only core.
    #[serde(default)]
    pub zookeeper: Option<ZooKeeperSection>,
}

/// `[zookeeper]`: where the edge leases live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZooKeeperSection {
    /// Connect string, e.g. `zk1:2181,zk2:2181,zk3:2181`.
    pub hosts: String,
    /// Node under which `cores/`, `leases/` and `leader/` live.
    #[serde(default = "default_zookeeper_root")]
    pub root: String,
    /// A core that stops answering ZooKeeper this long loses its leases
    /// (its edges move on after about that long).
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// This core's name in ZooKeeper and in refusals; default
    /// `<hostname>:<listen_quic port>`.
    pub core_id: Option<String>,
}

impl ZooKeeperSection {
    pub const DEFAULT_ROOT: &str = "/tally";
    pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 6000;

    pub fn new(hosts: String) -> ZooKeeperSection {
        ZooKeeperSection { hosts, root: default_zookeeper_root(), session_timeout_ms: Self::DEFAULT_SESSION_TIMEOUT_MS, core_id: None }
    }
}

fn default_zookeeper_root() -> String {
    ZooKeeperSection::DEFAULT_ROOT.into()
}

fn default_session_timeout_ms() -> u64 {
    ZooKeeperSection::DEFAULT_SESSION_TIMEOUT_MS
}

/// One enrolled edge (`[[edges]]`), as `tally edge --print-identity` prints it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeKeys {
    pub id: String,
    /// `sha256:<hex>` of each certificate the edge may present.
    pub keys: Vec<String>,
}

/// The plugin registry (tenants' filter components).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Where components and rollout state live; default `<data_dir>/registry`.
    pub dir: Option<PathBuf>,
    /// Edges present it (`Authorization: Bearer`) to fetch the manifest and
    /// components; without it edges cannot use the registry.
    pub edge_token: Option<String>,
    /// Largest component accepted (default [`RegistrySection::DEFAULT_MAX_PLUGIN_BYTES`]).
    pub max_plugin_bytes: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpsSection {
    /// Presented as `Authorization: Bearer <token>`; 16-256 printable ASCII
    /// characters.
    pub token: Option<String>,
}

impl OpsSection {
    pub const MAX_TOKEN_LEN: usize = 256;
}

impl RegistrySection {
    pub const DEFAULT_MAX_PLUGIN_BYTES: usize = 16 << 20;
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingSection {
    /// Run the finalizer here (exactly one core per ClickHouse should; a
    /// second one writes nothing new, but wastes queries). Default: yes.
    pub finalize: bool,
    pub finalize_interval_ms: u64,
    /// How far back late clicks still turn into adjustment rows.
    pub lookback_hours: u32,
    /// How often this core (if it finalizes) checks the recent hours'
    /// rollups against their landing tables and repairs drift (`heal`).
    pub rollup_heal_interval_ms: u64,
}

impl BillingSection {
    pub const DEFAULT_FINALIZE_INTERVAL_MS: u64 = 10_000;
    pub const DEFAULT_LOOKBACK_HOURS: u32 = 48;
}

impl Default for BillingSection {
    fn default() -> Self {
        BillingSection {
            finalize: true,
            finalize_interval_ms: Self::DEFAULT_FINALIZE_INTERVAL_MS,
            lookback_hours: Self::DEFAULT_LOOKBACK_HOURS,
            rollup_heal_interval_ms: crate::heal::INTERVAL.as_millis() as u64,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSection {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Deadline of every query the API runs (also sent as
    /// `max_execution_time`): past it the API answers `504` instead of
    /// waiting on a hung server (`clickhouse::deadline`).
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
    /// The `remote_servers` cluster `url` belongs to: cluster mode
    /// (`clickhouse::cluster`: Replicated shards behind Distributed tables,
    /// quorum inserts). Absent: one server, as before.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The cluster's other servers (HTTP URLs): the core applies the cluster
    /// schema on each of them and on `url` at start, and moves its queries
    /// to them when the one in use cannot be reached (`clickhouse::failover`).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Cluster mode: how many replicas of a shard must hold an INSERT's
    /// rows before it is answered (`"all"`, the default, or a number from 2
    /// to the replicas per shard; checked against the cluster at start).
    /// See `clickhouse::cluster`.
    #[serde(default)]
    pub insert_quorum: crate::clickhouse::cluster::InsertQuorum,
    /// Deadline of every query and INSERT the committer sends: a server
    /// that answers nothing this long counts as failed (the committer moves
    /// to another one and the ledger protocol decides the batch;
    /// `clickhouse::stalled`). Above the quorum wait in cluster mode.
    #[serde(default = "default_commit_timeout_ms")]
    pub commit_timeout_ms: u64,
}

impl ClickHouseSection {
    pub const DEFAULT_QUERY_TIMEOUT_MS: u64 = 10_000;
    pub const DEFAULT_COMMIT_TIMEOUT_MS: u64 = 30_000;

    pub fn new(url: String) -> ClickHouseSection {
        ClickHouseSection {
            url,
            user: None,
            password: None,
            query_timeout_ms: Self::DEFAULT_QUERY_TIMEOUT_MS,
            cluster: None,
            servers: Vec::new(),
            insert_quorum: Default::default(),
            commit_timeout_ms: Self::DEFAULT_COMMIT_TIMEOUT_MS,
        }
    }
}

fn default_query_timeout_ms() -> u64 {
    ClickHouseSection::DEFAULT_QUERY_TIMEOUT_MS
}

fn default_commit_timeout_ms() -> u64 {
    ClickHouseSection::DEFAULT_COMMIT_TIMEOUT_MS
}

fn default_max_batch_bytes() -> usize {
    CoreConfig::DEFAULT_MAX_BATCH_BYTES
}

fn default_tls_names() -> Vec<String> {
    tally_http::tls::DEFAULT_NAMES.map(String::from).to_vec()
}

impl CoreConfig {
    pub const DEFAULT_MAX_BATCH_BYTES: usize = 256 << 20;

    /// A config with these required settings and every other at its default.
    pub fn new(listen_http: SocketAddr, listen_quic: SocketAddr, data_dir: PathBuf, tenants_file: PathBuf, clickhouse: ClickHouseSection) -> CoreConfig {
        CoreConfig {
            listen_http,
            listen_https: None,
            listen_quic,
            data_dir,
            tenants_file,
            clickhouse,
            max_batch_bytes: Self::DEFAULT_MAX_BATCH_BYTES,
            tls_names: default_tls_names(),
            billing: BillingSection::default(),
            registry: RegistrySection::default(),
            ops: OpsSection::default(),
            edges: Vec::new(),
            limits: ServerLimits::default(),
            retention: crate::retention::RetentionSection::default(),
            zookeeper: None,
        }
    }

    /// The pins the batch port accepts.
    pub fn pinned_edges(&self) -> Result<tally_http::pinned::PinnedClients, tally_http::pinned::PinError> {
        tally_http::pinned::PinnedClients::new(self.edges.iter().map(|e| (e.id.as_str(), e.keys.as_slice())))
    }

    pub fn load(path: &Path) -> Result<CoreConfig, ConfigError> {
        let config: CoreConfig = load_toml(path)?;
        if config.registry.edge_token.as_ref().is_some_and(|t| t.len() < tally_model::tenant::MIN_KEY_LEN) {
            let message = format!("registry.edge_token must be at least {} characters", tally_model::tenant::MIN_KEY_LEN);
            return Err(ConfigError::invalid(path, message));
        }
        let ops_ok = |t: &String| (tally_model::tenant::MIN_KEY_LEN..=OpsSection::MAX_TOKEN_LEN).contains(&t.len()) && t.chars().all(|c| c.is_ascii_graphic());
        if config.ops.token.as_ref().is_some_and(|t| !ops_ok(t)) {
            let message = format!("ops.token must be {}-{} printable ASCII characters", tally_model::tenant::MIN_KEY_LEN, OpsSection::MAX_TOKEN_LEN);
            return Err(ConfigError::invalid(path, message));
        }
        if config.ops.token.is_some() && config.ops.token == config.registry.edge_token {
            return Err(ConfigError::invalid(path, "ops.token must differ from registry.edge_token (edges must not retire edges)"));
        }
        // Its client marks a server failed after this much silence, like the
        // committer's: shorter, and an idle pooled connection would count.
        if config.clickhouse.query_timeout_ms < crate::clickhouse::stalled::MIN_DEADLINE_MS {
            let message = format!(
                "clickhouse.query_timeout_ms must be at least {} (default {}): an idle pooled connection waits up to about 4 s on a read and must not be taken for a hung server",
                crate::clickhouse::stalled::MIN_DEADLINE_MS,
                ClickHouseSection::DEFAULT_QUERY_TIMEOUT_MS
            );
            return Err(ConfigError::invalid(path, message));
        }
        if let Err(e) = config.limits.check() {
            return Err(ConfigError::invalid(path, format!("[limits]: {e}")));
        }
        if let Err(e) = config.pinned_edges() {
            return Err(ConfigError::invalid(path, format!("[[edges]]: {e}")));
        }
        if let Some(cluster) = &config.clickhouse.cluster {
            if !crate::clickhouse::cluster::valid_name(cluster) {
                return Err(ConfigError::invalid(path, format!("[clickhouse] cluster {cluster:?}: use the remote_servers name (letters, digits, _)")));
            }
        } else if !config.clickhouse.servers.is_empty() {
            return Err(ConfigError::invalid(path, "[clickhouse] servers is for a cluster: set cluster too, or remove servers"));
        } else if config.clickhouse.insert_quorum != Default::default() {
            return Err(ConfigError::invalid(path, "[clickhouse] insert_quorum is for a cluster: set cluster too, or remove insert_quorum"));
        }
        if let Err(e) = crate::clickhouse::stalled::check_deadline(config.clickhouse.commit_timeout_ms, config.clickhouse.cluster.is_some()) {
            return Err(ConfigError::invalid(path, format!("[clickhouse] commit_timeout_ms: {e}")));
        }
        if let Some(zk) = &config.zookeeper {
            if zk.hosts.trim().is_empty() || !zk.root.starts_with('/') || zk.root.len() < 2 || zk.root.ends_with('/') {
                return Err(ConfigError::invalid(path, "[zookeeper]: hosts must be set and root must be an absolute node path like /tally"));
            }
        }
        if config.edges.is_empty() {
            tracing::warn!(config = %path.display(), "no [[edges]] enrolled: every batch connection will be refused; add each edge's `tally edge --print-identity` output");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config");
        let c = CoreConfig::load(&root.join("core.toml")).unwrap();
        assert_eq!(c.clickhouse.url, "http://127.0.0.1:8123");
        tally_model::tenant::Tenants::load(&root.join("tenants.toml")).unwrap();
    }

    /// The cluster example (`deploy/cluster/`): cluster mode with every
    /// other server, leases in the 3-node ensemble, both edges enrolled.
    #[test]
    fn cluster_example_parses() {
        let c = CoreConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cluster/core.toml")).unwrap();
        assert_eq!((c.clickhouse.cluster.as_deref(), c.clickhouse.servers.len()), (Some("tally"), 3));
        assert_eq!((c.clickhouse.insert_quorum, c.clickhouse.commit_timeout_ms), (crate::clickhouse::cluster::InsertQuorum::All, 30_000));
        let zk = c.zookeeper.expect("[zookeeper] in the cluster example");
        assert_eq!((zk.hosts.split(',').count(), zk.core_id.as_deref()), (3, Some("core1")));
        assert_eq!(c.edges.len(), 2);
        // The ClickHouse snippets name the same cluster and servers, and each
        // server's macros file is its own.
        let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cluster/clickhouse");
        let remote = std::fs::read_to_string(cluster.join("config.d/tally-cluster.xml")).unwrap();
        assert!(remote.contains("<remote_servers>\n        <tally>"));
        for url in std::iter::once(&c.clickhouse.url).chain(&c.clickhouse.servers) {
            let host = url.trim_start_matches("http://").split(':').next().unwrap();
            assert!(remote.contains(&format!("<host>{host}</host>")), "{host} is not in remote_servers");
            let name = host.trim_start_matches("ch-").split('.').next().unwrap();
            let macros = std::fs::read_to_string(cluster.join(format!("macros/{name}.xml"))).unwrap();
            let (shard, replica) = name.trim_start_matches('s').split_once('r').unwrap();
            for line in [format!("<shard>{shard}</shard>"), format!("<replica>r{replica}</replica>"), format!("<interserver_http_host>{host}<")] {
                assert!(macros.contains(&line), "macros/{name}.xml lacks {line}");
            }
        }
    }

    /// The quorum is for a cluster; the commit deadline must outlast an idle
    /// pooled connection, and on a cluster the quorum wait.
    #[test]
    fn insert_quorum_and_commit_timeout_are_checked() {
        let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/core.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.toml");
        let load = |from: &str, to: &str| {
            std::fs::write(&path, shipped.replace(from, to)).unwrap();
            CoreConfig::load(&path)
        };
        let quorum = load("commit_timeout_ms = 30000", "commit_timeout_ms = 30000\ninsert_quorum = 2").unwrap_err().to_string();
        assert!(quorum.contains("insert_quorum is for a cluster"), "{quorum}");
        let short = load("commit_timeout_ms = 30000", "commit_timeout_ms = 1000").unwrap_err().to_string();
        assert!(short.contains("commit_timeout_ms: 1000 ms is too short"), "{short}");
        let cluster = load("commit_timeout_ms = 30000", "commit_timeout_ms = 10000\ncluster = \"tally\"").unwrap_err().to_string();
        assert!(cluster.contains("quorum INSERT waits"), "{cluster}");
        assert_eq!(
            load("commit_timeout_ms = 30000", "commit_timeout_ms = 20000\ncluster = \"tally\"\ninsert_quorum = 2").unwrap().clickhouse.commit_timeout_ms,
            20_000
        );
    }

    #[test]
    fn the_ops_token_is_bounded_and_not_the_edge_token() {
        let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/core.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.toml");
        let load = |token: &str| {
            std::fs::write(&path, shipped.replace("replace-with-the-core-ops-token", token)).unwrap();
            CoreConfig::load(&path)
        };
        assert_eq!(load(&"o".repeat(16)).unwrap().ops.token, Some("o".repeat(16)));
        for bad in ["o".repeat(15), "o".repeat(257), "ops token with spaces".into()] {
            assert!(load(&bad).unwrap_err().to_string().contains("ops.token must be 16-256 printable ASCII"), "{bad:?}");
        }
        assert!(load("replace-with-the-core-registry-edge-token").unwrap_err().to_string().contains("must differ from registry.edge_token"));
    }
}
