//! Reload without restart: on SIGHUP the edge reads its tenants file and its
//! own config file again and applies, between requests:
//! - from the tenants file: the tenants its ingest routes check, their keys
//!   (a rotation lists `previous_ingest_key` beside the new one, so both are
//!   valid until the next reload drops it), rate limits
//!   (`max_events_per_sec`), CORS origins, redirect secrets and dimensions;
//! - from the config file: `max_events_per_request` and the connection caps
//!   of `[limits]` (`max_connections`, `max_connections_per_ip`; see
//!   `tally_http::limits` for why the other bounds take a restart).
//!
//! Both files are read and checked before anything is applied: if either
//! does not load or validate, the reload is refused with the reason in the
//! log and everything stays as it was. Every attempt is counted in
//! `tally_edge_config_reloads{result}`. The rest of the config file
//! (listeners, the other `[limits]`, `max_body_bytes`, spool, dedup, the
//! tenants file's path) is read at start only; a changed restart-only
//! bound of `[limits]` is named in the log. A tenant added by a reload
//! gets the dedup share computed at start (restart to divide `max_entries`
//! again).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tally_http::limits::Gate;
use tally_model::tenant::{LiveTenants, Tenants};

use crate::config::EdgeConfig;
use crate::metrics::{Metrics, ReloadLabel};

/// What an edge reloads on SIGHUP (`tally_http::reload::on_sighup`).
pub struct EdgeReload {
    pub config_file: PathBuf,
    pub tenants_file: PathBuf,
    pub tenants: Arc<LiveTenants>,
    pub gate: Arc<Gate>,
    pub max_events_per_request: Arc<AtomicUsize>,
    pub metrics: Arc<Metrics>,
}

impl tally_http::reload::Reload for EdgeReload {
    fn reload(&self) -> Result<String, String> {
        let file = self.tenants_file.display();
        let tenants =
            Tenants::load(&self.tenants_file).map_err(|e| format!("tenants file refused; the previous tenants and limits stay in force: {file}: {e}"))?;
        let config = EdgeConfig::load(&self.config_file).map_err(|e| format!("config file refused; the previous tenants and limits stay in force: {e}"))?;
        let count = tenants.ids().len();
        self.tenants.replace(tenants);
        self.max_events_per_request.store(config.max_events_per_request, Ordering::Relaxed);
        let restart = self.gate.reload(&config.limits);
        let mut applied = format!(
            "tenants file reloaded ({count} tenants from {file}); max_events_per_request {}, max_connections {}, max_connections_per_ip {}",
            config.max_events_per_request, config.limits.max_connections, config.limits.max_connections_per_ip
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
