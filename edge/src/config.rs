//! The edge's configuration file (TOML). See `deploy/config/edge.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use tally_model::config_file::load_toml;
pub use tally_model::config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
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
    /// space (not RAM) for a plugin's memory.
    #[serde(default = "defaults::filter_instances")]
    pub filter_instances: u32,
    #[serde(default)]
    pub time: TimeSection,
    pub core: CoreSection,
    /// The central plugin registry; tenants listed there override `[[filter]]`.
    pub registry: Option<RegistrySection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// The core's HTTP API, e.g. `http://core.internal:8080`.
    pub url: String,
    /// The core's `registry.edge_token`.
    pub token: String,
    /// How often the manifest is polled: new versions run within this.
    #[serde(default = "defaults::registry_poll_ms")]
    pub poll_ms: u64,
    /// Limits of a registry plugin, unless its tenant set lower ones.
    #[serde(default = "defaults::filter_memory_mb")]
    pub memory_mb: usize,
    #[serde(default = "defaults::filter_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    pub tenant: String,
    /// The plugin: a WebAssembly component exporting `tally:filter/filter`.
    pub path: PathBuf,
    /// What a batch gets when the filter fails: `open` (count the clicks)
    /// or `closed` (answer 503 so the client retries).
    #[serde(default = "defaults::filter_policy")]
    pub policy: tally_filter::host::FailurePolicy,
    #[serde(default = "defaults::filter_memory_mb")]
    pub memory_mb: usize,
    #[serde(default = "defaults::filter_timeout_ms")]
    pub timeout_ms: u64,
}

/// The edge's certificate for HTTPS and HTTP/3. Without files, a
/// self-signed one is generated once and kept in `<spool_dir>/tls/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Names a generated certificate is issued for.
    #[serde(default = "defaults::tls_names")]
    pub names: Vec<String>,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection { cert_file: None, key_file: None, names: defaults::tls_names() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// Answer after the clicks are fsynced in the write-ahead log.
    Durable,
    /// Answer once the clicks are in memory: faster, loses up to one ship
    /// interval of acknowledged clicks if the edge crashes.
    Memory,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckSection {
    #[serde(default = "defaults::ack_mode")]
    pub mode: AckMode,
    /// Extra time the WAL thread waits to gather requests into one fsync
    /// (0: fold in whatever queued during the previous fsync).
    #[serde(default)]
    pub group_commit_ms: u64,
}

impl Default for AckSection {
    fn default() -> Self {
        AckSection { mode: defaults::ack_mode(), group_commit_ms: 0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSection {
    /// Clicks whose event time is this far behind the edge's watermark are
    /// still counted (mobile SDKs upload after being offline).
    #[serde(default = "defaults::allowed_lateness_secs")]
    pub allowed_lateness_secs: u64,
    /// Clicks further than this ahead of the edge's clock are refused.
    #[serde(default = "defaults::max_future_secs")]
    pub max_future_secs: u64,
    /// The watermark (latest accepted event time) is never further than
    /// this behind the wall clock, so it advances on an idle edge.
    #[serde(default = "defaults::idle_lag_secs")]
    pub idle_lag_secs: u64,
}

impl Default for TimeSection {
    fn default() -> Self {
        TimeSection {
            allowed_lateness_secs: defaults::allowed_lateness_secs(),
            max_future_secs: defaults::max_future_secs(),
            idle_lag_secs: defaults::idle_lag_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSection {
    #[serde(default = "defaults::dedup_horizon_secs")]
    pub horizon_secs: u64,
    #[serde(default = "defaults::dedup_max_entries")]
    pub max_entries: usize,
}

impl Default for DedupSection {
    fn default() -> Self {
        DedupSection { horizon_secs: defaults::dedup_horizon_secs(), max_entries: defaults::dedup_max_entries() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreSection {
    /// The core's QUIC batch endpoint.
    pub addr: SocketAddr,
    /// Name the core's certificate is issued for.
    #[serde(default = "defaults::server_name")]
    pub server_name: String,
    /// PEM certificate(s) to trust for the core (its self-signed cert in a
    /// single-POP setup, or the CA that issued it).
    pub ca_cert: PathBuf,
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
}

mod defaults {
    pub fn max_body_bytes() -> usize {
        8 << 20
    }
    pub fn max_events_per_request() -> usize {
        100_000
    }
    pub fn spool_max_bytes() -> u64 {
        4 << 30
    }
    pub fn ship_interval_ms() -> u64 {
        1000
    }
    pub fn dedup_horizon_secs() -> u64 {
        3600
    }
    pub fn dedup_max_entries() -> usize {
        10_000_000
    }
    pub fn server_name() -> String {
        "localhost".into()
    }
    pub fn filter_policy() -> tally_filter::host::FailurePolicy {
        tally_filter::host::FailurePolicy::Open
    }
    pub fn registry_poll_ms() -> u64 {
        1000
    }
    pub fn filter_memory_mb() -> usize {
        64
    }
    pub fn filter_instances() -> u32 {
        tally_filter::host::DEFAULT_INSTANCES
    }

    pub fn filter_timeout_ms() -> u64 {
        100
    }
    pub fn tls_names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }
    pub fn heartbeat_ms() -> u64 {
        5000
    }
    pub fn ack_mode() -> super::AckMode {
        super::AckMode::Durable
    }
    pub fn allowed_lateness_secs() -> u64 {
        3600
    }
    pub fn max_future_secs() -> u64 {
        300
    }
    pub fn idle_lag_secs() -> u64 {
        300
    }
    pub fn max_in_flight() -> usize {
        8
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
        if !(10..=60_000).contains(&self.ship_interval_ms) {
            return Err("ship_interval_ms must be 10..=60000".into());
        }
        if self.dedup.horizon_secs == 0 || self.dedup.max_entries == 0 {
            return Err("dedup.horizon_secs and dedup.max_entries must be positive".into());
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
        if self.filters.iter().any(|f| f.memory_mb == 0 || f.memory_mb > 256 || f.timeout_ms == 0) {
            return Err("filter memory_mb must be 1..=256 and timeout_ms positive".into());
        }
        if !(1..=10_000).contains(&self.filter_instances) {
            return Err("filter_instances must be 1..=10000".into());
        }
        if let Some(r) = &self.registry {
            if r.memory_mb == 0 || r.memory_mb > 256 || r.timeout_ms == 0 || !(10..=600_000).contains(&r.poll_ms) {
                return Err("registry memory_mb must be 1..=256, timeout_ms positive, poll_ms 10..=600000".into());
            }
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

    #[test]
    fn rejects_nonsense() {
        let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/edge.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (from, to) in [
            ("ship_interval_ms = 1000", "ship_interval_ms = 0"),
            ("edge_id = \"pop-fra-1\"", "edge_id = \"\""),
            ("max_in_flight = 8", "max_in_flight = 8\nbogus = 1"),
        ] {
            let p = dir.path().join("e.toml");
            std::fs::write(&p, base.replace(from, to)).unwrap();
            assert!(EdgeConfig::load(&p).is_err(), "{to}");
        }
    }
}
