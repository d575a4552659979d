//! Reload without restart: on SIGHUP the core reads its tenants file
//! (tenants, their keys including a rotation's previous key, CORS origins)
//! and its own config file again, and replaces the tenants the API and the
//! batch receiver check against and the connection caps of `[limits]`
//! (`max_connections`, `max_connections_per_ip`; see `tally_http::limits`
//! for why the other bounds take a restart). Both files are read and
//! checked before anything is applied: if either does not load or
//! validate, the reload is refused with the reason in the log and
//! everything stays as it was. Every attempt is counted in
//! `tally_core_config_reloads{result}`. The rest of the config file
//! (listeners, the other `[limits]`, `max_batch_bytes`, `[[edges]]`,
//! `[ops]`) is read at start only; a changed restart-only bound of
//! `[limits]` is named in the log.

use std::path::PathBuf;
use std::sync::Arc;

use tally_http::limits::Gate;
use tally_model::tenant::{LiveTenants, Tenants};

use crate::config::CoreConfig;
use crate::metrics::{Metrics, ReloadLabel};

/// What a core reloads on SIGHUP (`tally_http::reload::on_sighup`).
pub struct CoreReload {
    pub config_file: PathBuf,
    pub tenants_file: PathBuf,
    pub tenants: Arc<LiveTenants>,
    pub gate: Arc<Gate>,
    pub metrics: Arc<Metrics>,
}

impl tally_http::reload::Reload for CoreReload {
    fn reload(&self) -> Result<String, String> {
        let file = self.tenants_file.display();
        let tenants =
            Tenants::load(&self.tenants_file).map_err(|e| format!("tenants file refused; the previous tenants and limits stay in force: {file}: {e}"))?;
        let config = CoreConfig::load(&self.config_file).map_err(|e| format!("config file refused; the previous tenants and limits stay in force: {e}"))?;
        let count = tenants.ids().len();
        self.tenants.replace(tenants);
        let restart = self.gate.reload(&config.limits);
        let mut applied = format!(
            "tenants file reloaded ({count} tenants from {file}); max_connections {}, max_connections_per_ip {}",
            config.limits.max_connections, config.limits.max_connections_per_ip
        );
        if !restart.is_empty() {
            applied += &format!("; changed in [limits] but applied only after a restart: {}", restart.join(", "));
        }
        Ok(applied)
    }

    fn count(&self, result: &'static str) {
        self.metrics.config_reloads.get_or_create(&ReloadLabel { result }).inc();
    }
}
