//! Reload without restart: on SIGHUP the core reads its tenants file
//! (tenants, their keys including a rotation's previous key, CORS origins)
//! and its own config file again, and replaces the tenants the API and the
//! batch receiver check against and the connection caps of `[limits]`
//! (`max_connections`, `max_connections_per_ip`; see `tally_http::limits`
//! for why the other bounds take a restart). How, all or nothing, and what
//! the log says is shared with the edge: `tally_http::reload::Files`.
//!
//! Nothing else of the config file applies before a restart (listeners,
//! the other `[limits]`, `max_batch_bytes`, `[clickhouse]`, `[[edges]]`,
//! `[ops]`, ...): the log names each such key that differs from the config
//! the core started with. Every attempt is counted in
//! `tally_core_config_reloads{result}`.

use std::path::Path;
use std::sync::Arc;

use tally_http::limits::ServerLimits;
use tally_http::reload::{ConfigFile, Files};

use crate::config::{ConfigError, CoreConfig};
use crate::metrics::{Metrics, ReloadLabel};

/// What a core reloads on SIGHUP (`tally_http::reload::on_sighup`).
pub struct CoreReload {
    pub files: Files<CoreConfig>,
    pub metrics: Arc<Metrics>,
}

impl ConfigFile for CoreConfig {
    /// The core applies nothing of its own: only the tenants and `[limits]`'
    /// connection caps, which `Files` does.
    const RELOADED: &'static [&'static str] = &[];

    fn load(path: &Path) -> Result<CoreConfig, ConfigError> {
        CoreConfig::load(path)
    }

    fn limits(&self) -> &ServerLimits {
        &self.limits
    }
}

impl tally_http::reload::Reload for CoreReload {
    fn reload(&self) -> Result<String, String> {
        self.files.reload(|_| None)
    }

    fn count(&self, result: &'static str) {
        self.metrics.config_reloads.get_or_create(&ReloadLabel { result }).inc();
    }
}
