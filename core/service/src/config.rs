//! The core's configuration file (TOML). See `deploy/config/core.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use tally_model::config_file::load_toml;
pub use tally_model::config_file::ConfigError;

#[derive(Debug, Clone, Deserialize)]
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
    /// Names the self-signed certificate is issued for.
    #[serde(default = "default_tls_names")]
    pub tls_names: Vec<String>,
    #[serde(default)]
    pub billing: BillingSection,
    #[serde(default)]
    pub registry: RegistrySection,
}

/// The plugin registry (tenants' filter components).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Where components and rollout state live; default `<data_dir>/registry`.
    pub dir: Option<PathBuf>,
    /// Edges present it (`Authorization: Bearer`) to fetch the manifest and
    /// components; without it edges cannot use the registry.
    pub edge_token: Option<String>,
    /// Largest component accepted (default 16 MiB).
    pub max_plugin_bytes: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSection {
    /// Run the finalizer here (exactly one core per ClickHouse should; a
    /// second one writes nothing new, but wastes queries).
    #[serde(default = "yes")]
    pub finalize: bool,
    #[serde(default = "default_finalize_interval_ms")]
    pub finalize_interval_ms: u64,
    /// How far back late clicks still turn into adjustment rows.
    #[serde(default = "default_lookback_hours")]
    pub lookback_hours: u32,
}

impl Default for BillingSection {
    fn default() -> Self {
        BillingSection { finalize: true, finalize_interval_ms: default_finalize_interval_ms(), lookback_hours: default_lookback_hours() }
    }
}

fn yes() -> bool {
    true
}

fn default_finalize_interval_ms() -> u64 {
    10_000
}

fn default_lookback_hours() -> u32 {
    48
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSection {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

fn default_max_batch_bytes() -> usize {
    256 << 20
}

fn default_tls_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

impl CoreConfig {
    pub fn load(path: &Path) -> Result<CoreConfig, ConfigError> {
        let config: CoreConfig = load_toml(path)?;
        if config.registry.edge_token.as_ref().is_some_and(|t| t.len() < tally_model::tenant::MIN_KEY_LEN) {
            let message = format!("registry.edge_token must be at least {} characters", tally_model::tenant::MIN_KEY_LEN);
            return Err(ConfigError::invalid(path, message));
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
}
