//! The edge's configuration file (TOML). See `deploy/config/edge.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tally_filter::manifest::TenantLimits;

pub use tally_filter::host::FailurePolicy;
use tally_http::limits::ServerLimits;
use tally_model::config_file::load_toml;
pub use tally_model::config_file::ConfigError;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Stable, unique name of this edge; batches are identified by it.
    pub edge_id: String,
    /// HTTP/1.1 + HTTP/2 cleartext ingest listener.
    pub listen_http: SocketAddr,
    /// HTTP/1.1 + HTTP/2 over TLS, if set.
    pub listen_https: Option<SocketAddr>,
    /// HTTP/3 (QUIC, UDP), if set; TCP responses then advertise it in `Alt-Svc`.
    pub listen_h3: Option<SocketAddr>,
    /// Prometheus `/metrics` (and `/healthz`) on a listener of their own, if
    /// set; the ingest listeners then do not serve `/metrics`, so the public
    /// port does not show every tenant's volume.
    #[serde(default)]
    pub listen_metrics: Option<SocketAddr>,
    #[serde(default)]
    pub tls: TlsSection,
    pub spool_dir: PathBuf,
    pub tenants_file: PathBuf,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Requests with more events are answered 413.
    #[serde(default = "defaults::max_events_per_request")]
    pub max_events_per_request: usize,
    /// Served at `GET /sdk/{name}` (a click SDK, test pages), if set.
    pub static_dir: Option<PathBuf>,
    #[serde(default = "defaults::spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// Move acknowledged batches to `<spool_dir>/sent/` instead of deleting them.
    #[serde(default)]
    pub spool_archive_acknowledged: bool,
    /// How often accumulated rows are sealed into a batch and shipped.
    #[serde(default = "defaults::ship_interval_ms")]
    pub ship_interval_ms: u64,
    /// Seal an empty batch after this long without one, so the core sees
    /// the watermark advance on an idle edge.
    #[serde(default = "defaults::heartbeat_ms")]
    pub heartbeat_ms: u64,
    #[serde(default)]
    pub dedup: DedupSection,
    #[serde(default)]
    pub ack: AckSection,
    /// Tenants' WebAssembly click filters (`wit/filter.wit`).
    #[serde(default, rename = "filter")]
    pub filters: Vec<FilterSection>,
    /// Live plugin instances this edge keeps slots for: a tenant's active
    /// version and its candidate take one each. Each slot reserves address
    /// space (not RAM) for a plugin's memory. Default
    /// [`tally_filter::host::DEFAULT_INSTANCES`].
    #[serde(default = "defaults::filter_instances")]
    pub filter_instances: u32,
    #[serde(default)]
    pub time: TimeSection,
    pub core: CoreSection,
    /// The central plugin registry; tenants listed there override `[[filter]]`.
    pub registry: Option<RegistrySection>,
    /// Timeouts and caps of every ingest listener (HTTP, HTTPS, HTTP/3):
    /// `[limits]`, default [`ServerLimits::default`]; see `tally_http::limits`.
    #[serde(default)]
    pub limits: ServerLimits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// The core's HTTP API, e.g. `http://core.internal:8080`.
    pub url: String,
    /// The core's `registry.edge_token`.
    pub token: String,
    /// How often the manifest is polled: new versions run within this.
    #[serde(default = "defaults::registry_poll_ms")]
    pub poll_ms: u64,
    /// Limits of a registry plugin, unless its tenant set lower ones
    /// (default [`FilterSection::DEFAULT_MEMORY_MB`] and
    /// [`FilterSection::DEFAULT_TIMEOUT_MS`]).
    #[serde(default = "defaults::filter_memory_mb")]
    pub memory_mb: usize,
    #[serde(default = "defaults::filter_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    pub tenant: String,
    /// The plugin: a WebAssembly component exporting `tally:filter/filter`.
    pub path: PathBuf,
    /// What a batch gets when the filter fails: `open` (count the clicks)
    /// or `closed` (answer 503 so the client retries).
    #[serde(default)]
    pub policy: FailurePolicy,
    #[serde(default = "defaults::filter_memory_mb")]
    pub memory_mb: usize,
    #[serde(default = "defaults::filter_timeout_ms")]
    pub timeout_ms: u64,
}

/// The edge's certificate for HTTPS and HTTP/3. Without files, a
/// self-signed one is generated once and kept in `<spool_dir>/tls/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Names a generated certificate is issued for (default
    /// [`tally_http::tls::DEFAULT_NAMES`]).
    pub names: Vec<String>,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection { cert_file: None, key_file: None, names: tally_http::tls::DEFAULT_NAMES.map(String::from).to_vec() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// Answer after the clicks are fsynced in the write-ahead log.
    #[default]
    Durable,
    /// Answer once the clicks are in memory: faster, loses up to one ship
    /// interval of acknowledged clicks if the edge crashes.
    Memory,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AckSection {
    pub mode: AckMode,
    /// Extra time the WAL thread waits to gather requests into one fsync
    /// (0, the default: fold in whatever queued during the previous fsync).
    pub group_commit_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeSection {
    /// Clicks whose event time is this far behind the edge's watermark are
    /// still counted (mobile SDKs upload after being offline).
    pub allowed_lateness_secs: u64,
    /// Clicks further than this ahead of the edge's clock are refused.
    pub max_future_secs: u64,
    /// The watermark (latest accepted event time) is never further than
    /// this behind the wall clock, so it advances on an idle edge.
    pub idle_lag_secs: u64,
}

impl TimeSection {
    pub const DEFAULT_ALLOWED_LATENESS_SECS: u64 = 3600;
    pub const DEFAULT_MAX_FUTURE_SECS: u64 = 300;
    pub const DEFAULT_IDLE_LAG_SECS: u64 = 300;
}

impl Default for TimeSection {
    fn default() -> Self {
        TimeSection {
            allowed_lateness_secs: Self::DEFAULT_ALLOWED_LATENESS_SECS,
            max_future_secs: Self::DEFAULT_MAX_FUTURE_SECS,
            idle_lag_secs: Self::DEFAULT_IDLE_LAG_SECS,
        }
    }
}

/// Each tenant has its own dedup table (see `dedup`), bounded by its share.
///
/// A full table costs about 27 bytes per key (16 in its ring, 10.7 in its
/// index; see `dedup` for a table still growing). A horizon at a rate needs
/// rate x horizon keys per edge: 200k clicks/s for 1 h is 720M keys,
/// 19.2 GB; 10k clicks/s, 36M keys, 0.96 GB. The default `max_entries`
/// (10M, 267 MB) covers the full hour only up to about 2,700 clicks/s per
/// edge (50 s at 200k/s): past that the oldest keys are evicted early and
/// the horizon really covered is reported (`tally_edge_dedup_horizon_seconds`,
/// logged when short), never silently.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupSection {
    pub horizon_secs: u64,
    /// Keys held over all tenants: the default share is this divided by
    /// the number of tenants (a share is at most [`crate::dedup::MAX_SHARE`]).
    pub max_entries: usize,
    /// Keys one tenant's table holds, instead of the default share.
    pub max_entries_per_tenant: Option<usize>,
    /// Shares of named tenants, over the one above.
    pub tenant_max_entries: BTreeMap<String, usize>,
    /// How often the keys accepted meanwhile are written to
    /// `<spool_dir>/dedup/` (WAL segments are kept until they are).
    pub snapshot_interval_secs: u64,
}

impl DedupSection {
    pub const DEFAULT_HORIZON_SECS: u64 = 3600;
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000_000;
    pub const DEFAULT_SNAPSHOT_INTERVAL_SECS: u64 = 30;

    /// The dedup tables' settings for an edge serving `tenants` tenants.
    pub fn dedup_config(&self, tenants: usize) -> crate::dedup::DedupConfig {
        let share = self.max_entries_per_tenant.unwrap_or(self.max_entries / tenants.max(1));
        crate::dedup::DedupConfig {
            horizon_ms: self.horizon_secs * 1000,
            max_entries_per_tenant: share,
            tenant_max_entries: self.tenant_max_entries.iter().map(|(t, n)| (t.clone(), *n)).collect(),
        }
    }
}

impl Default for DedupSection {
    fn default() -> Self {
        DedupSection {
            horizon_secs: Self::DEFAULT_HORIZON_SECS,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_entries_per_tenant: None,
            tenant_max_entries: BTreeMap::new(),
            snapshot_interval_secs: Self::DEFAULT_SNAPSHOT_INTERVAL_SECS,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoreSection {
    /// The core's QUIC batch endpoint (one core; or use `addrs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// Several cores' QUIC batch endpoints, tried in this order: the edge
    /// moves to the next one when its core is unreachable or answers that
    /// another core serves this edge (edge leases, `[zookeeper]` on cores).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<SocketAddr>,
    /// Name the core's certificate is issued for (default
    /// [`CoreSection::DEFAULT_SERVER_NAME`]).
    #[serde(default = "defaults::server_name")]
    pub server_name: String,
    /// PEM certificate(s) to trust for the cores (each core's self-signed
    /// cert, concatenated in one PEM file, or the CA that issued them).
    pub ca_cert: PathBuf,
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
}

impl EdgeConfig {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;
    pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 100_000;
    pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 4 << 30;
    pub const DEFAULT_SHIP_INTERVAL_MS: u64 = 1000;
    pub const DEFAULT_HEARTBEAT_MS: u64 = 5000;

    /// A config with these required settings and every other at its default.
    pub fn new(edge_id: String, listen_http: SocketAddr, spool_dir: PathBuf, tenants_file: PathBuf, core: CoreSection) -> EdgeConfig {
        EdgeConfig {
            edge_id,
            listen_http,
            listen_https: None,
            listen_h3: None,
            listen_metrics: None,
            tls: TlsSection::default(),
            spool_dir,
            tenants_file,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_events_per_request: Self::DEFAULT_MAX_EVENTS_PER_REQUEST,
            static_dir: None,
            spool_max_bytes: Self::DEFAULT_SPOOL_MAX_BYTES,
            spool_archive_acknowledged: false,
            ship_interval_ms: Self::DEFAULT_SHIP_INTERVAL_MS,
            heartbeat_ms: Self::DEFAULT_HEARTBEAT_MS,
            dedup: DedupSection::default(),
            ack: AckSection::default(),
            filters: Vec::new(),
            filter_instances: tally_filter::host::DEFAULT_INSTANCES,
            time: TimeSection::default(),
            core,
            registry: None,
            limits: ServerLimits::default(),
        }
    }
}

impl RegistrySection {
    pub const DEFAULT_POLL_MS: u64 = 1000;

    /// The registry at `url`, polled and its plugins limited by default.
    pub fn new(url: String, token: String) -> RegistrySection {
        RegistrySection {
            url,
            token,
            poll_ms: Self::DEFAULT_POLL_MS,
            memory_mb: FilterSection::DEFAULT_MEMORY_MB,
            timeout_ms: FilterSection::DEFAULT_TIMEOUT_MS,
        }
    }
}

impl FilterSection {
    /// The host's defaults ([`TenantLimits`]), in the config's units.
    pub const DEFAULT_MEMORY_MB: usize = TenantLimits::DEFAULT_MEMORY_MB as usize;
    pub const DEFAULT_TIMEOUT_MS: u64 = TenantLimits::DEFAULT_TIMEOUT_MS as u64;

    /// The plugin at `path` for `tenant`, with the default policy and limits.
    pub fn new(tenant: String, path: PathBuf) -> FilterSection {
        FilterSection {
            tenant,
            path,
            policy: FailurePolicy::default(),
            memory_mb: FilterSection::DEFAULT_MEMORY_MB,
            timeout_ms: FilterSection::DEFAULT_TIMEOUT_MS,
        }
    }
}

impl CoreSection {
    /// The first name the core's generated certificate is issued for by default.
    pub const DEFAULT_SERVER_NAME: &str = tally_http::tls::DEFAULT_NAMES[0];
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

    /// The core at `addr`, trusted through `ca_cert`.
    pub fn new(addr: SocketAddr, ca_cert: PathBuf) -> CoreSection {
        CoreSection::several(vec![addr], ca_cert)
    }

    /// The cores at `addrs`, in failover order.
    pub fn several(addrs: Vec<SocketAddr>, ca_cert: PathBuf) -> CoreSection {
        CoreSection { addr: None, addrs, server_name: Self::DEFAULT_SERVER_NAME.into(), ca_cert, max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT }
    }

    /// Every core, in failover order (`addr` or `addrs`).
    pub fn cores(&self) -> Vec<SocketAddr> {
        self.addr.into_iter().chain(self.addrs.iter().copied()).collect()
    }
}

/// Serde names field defaults by function; these return the constants above.
mod defaults {
    use super::{CoreSection, EdgeConfig, FilterSection, RegistrySection};

    pub fn max_body_bytes() -> usize {
        EdgeConfig::DEFAULT_MAX_BODY_BYTES
    }
    pub fn max_events_per_request() -> usize {
        EdgeConfig::DEFAULT_MAX_EVENTS_PER_REQUEST
    }
    pub fn spool_max_bytes() -> u64 {
        EdgeConfig::DEFAULT_SPOOL_MAX_BYTES
    }
    pub fn ship_interval_ms() -> u64 {
        EdgeConfig::DEFAULT_SHIP_INTERVAL_MS
    }
    pub fn heartbeat_ms() -> u64 {
        EdgeConfig::DEFAULT_HEARTBEAT_MS
    }
    pub fn filter_instances() -> u32 {
        tally_filter::host::DEFAULT_INSTANCES
    }
    pub fn registry_poll_ms() -> u64 {
        RegistrySection::DEFAULT_POLL_MS
    }
    pub fn filter_memory_mb() -> usize {
        FilterSection::DEFAULT_MEMORY_MB
    }
    pub fn filter_timeout_ms() -> u64 {
        FilterSection::DEFAULT_TIMEOUT_MS
    }
    pub fn server_name() -> String {
        CoreSection::DEFAULT_SERVER_NAME.into()
    }
    pub fn max_in_flight() -> usize {
        CoreSection::DEFAULT_MAX_IN_FLIGHT
    }
}

impl EdgeConfig {
    pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        let config: EdgeConfig = load_toml(path)?;
        config.validate().map_err(|message| ConfigError::invalid(path, message))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.edge_id.is_empty() || self.edge_id.len() > tally_model::batch::MAX_EDGE_ID_LEN {
            return Err("edge_id must be 1-128 bytes".into());
        }
        self.limits.check().map_err(|e| format!("[limits]: {e}"))?;
        if !(10..=60_000).contains(&self.ship_interval_ms) {
            return Err("ship_interval_ms must be 10..=60000".into());
        }
        let d = &self.dedup;
        if d.horizon_secs == 0 || d.max_entries == 0 || d.max_entries_per_tenant == Some(0) || d.tenant_max_entries.values().any(|&n| n == 0) {
            return Err("dedup.horizon_secs and every dedup entry bound must be positive".into());
        }
        if d.max_entries_per_tenant.into_iter().chain(d.tenant_max_entries.values().copied()).any(|n| n > crate::dedup::MAX_SHARE) {
            return Err(format!("a dedup share (max_entries_per_tenant, tenant_max_entries) must be at most {}", crate::dedup::MAX_SHARE));
        }
        if !(1..=3600).contains(&d.snapshot_interval_secs) {
            return Err("dedup.snapshot_interval_secs must be 1..=3600".into());
        }
        if self.ack.group_commit_ms > 1000 {
            return Err("ack.group_commit_ms must be at most 1000".into());
        }
        if self.heartbeat_ms < self.ship_interval_ms {
            return Err("heartbeat_ms must be at least ship_interval_ms".into());
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err("tls.cert_file and tls.key_file go together".into());
        }
        let max_mb = TenantLimits::MAX_MEMORY_MB as usize;
        if self.filters.iter().any(|f| f.memory_mb == 0 || f.memory_mb > max_mb || f.timeout_ms == 0) {
            return Err(format!("filter memory_mb must be 1..={max_mb} and timeout_ms positive"));
        }
        if !(1..=10_000).contains(&self.filter_instances) {
            return Err("filter_instances must be 1..=10000".into());
        }
        if let Some(r) = &self.registry {
            if r.memory_mb == 0 || r.memory_mb > max_mb || r.timeout_ms == 0 || !(10..=600_000).contains(&r.poll_ms) {
                return Err(format!("registry memory_mb must be 1..={max_mb}, timeout_ms positive, poll_ms 10..=600000"));
            }
        }
        match (self.core.addr.is_some(), self.core.addrs.is_empty()) {
            (false, true) => return Err("[core] needs addr = \"host:port\" or addrs = [\"host:port\", ...]".into()),
            (true, false) => return Err("[core] has both addr and addrs: list every core in addrs".into()),
            _ => {}
        }
        if self.core.max_in_flight == 0 {
            return Err("core.max_in_flight must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/edge.toml");
        let c = EdgeConfig::load(&path).unwrap();
        assert_eq!((c.ship_interval_ms, c.dedup.horizon_secs), (1000, 3600));
    }

    /// The cluster example (`deploy/cluster/edge.toml`) lists both cores in order.
    #[test]
    fn cluster_example_parses() {
        let c = EdgeConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cluster/edge.toml")).unwrap();
        let cores: Vec<SocketAddr> = vec!["10.0.0.10:4433".parse().unwrap(), "10.0.0.11:4433".parse().unwrap()];
        assert_eq!((c.core.cores(), c.registry.map(|r| r.url)), (cores, Some("https://10.0.0.10:8443".to_string())));
    }

    #[test]
    fn one_core_or_several_in_order() {
        let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/edge.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.toml");
        std::fs::write(&p, &base).unwrap();
        assert_eq!(EdgeConfig::load(&p).unwrap().core.cores(), ["10.0.0.10:4433".parse::<SocketAddr>().unwrap()]);
        std::fs::write(&p, base.replace("addr = \"10.0.0.10:4433\"", "").replace("# addrs = [", "addrs = [")).unwrap();
        let several: Vec<SocketAddr> = vec!["10.0.0.10:4433".parse().unwrap(), "10.0.0.11:4433".parse().unwrap()];
        assert_eq!(EdgeConfig::load(&p).unwrap().core.cores(), several);
    }

    #[test]
    fn rejects_nonsense() {
        let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/edge.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (from, to) in [
            ("ship_interval_ms = 1000", "ship_interval_ms = 0"),
            ("edge_id = \"pop-fra-1\"", "edge_id = \"\""),
            ("max_in_flight = 8", "max_in_flight = 8\nbogus = 1"),
            ("addr = \"10.0.0.10:4433\"", ""),
            ("# addrs = [", "addrs = ["),
        ] {
            let p = dir.path().join("e.toml");
            std::fs::write(&p, base.replace(from, to)).unwrap();
            assert!(EdgeConfig::load(&p).is_err(), "{to}");
        }
    }
}
