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
//! How, all or nothing, and what the log says is shared with the core:
//! `tally_http::reload::Files`; this module adds `max_events_per_request`.
//! Nothing else of the config file applies before a restart (listeners,
//! the other `[limits]`, `max_body_bytes`, spool, dedup, `[core]`,
//! `[[filter]]`, the tenants file's path, ...): the log names each such key
//! that differs from the config the edge started with. Every attempt is
//! counted in `tally_edge_config_reloads{result}`. A tenant added by a
//! reload gets the dedup share computed at start (restart to divide
//! `max_entries` again).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tally_http::limits::ServerLimits;
use tally_http::reload::{ConfigFile, Files};

use crate::config::{ConfigError, EdgeConfig};
use crate::metrics::{Metrics, ReloadLabel};

/// What an edge reloads on SIGHUP (`tally_http::reload::on_sighup`).
pub struct EdgeReload {
    pub files: Files<EdgeConfig>,
    /// Read by the ingest routes per request.
    pub max_events_per_request: Arc<AtomicUsize>,
    pub metrics: Arc<Metrics>,
}

impl ConfigFile for EdgeConfig {
    /// Applied by [`EdgeReload`] itself.
    const RELOADED: &'static [&'static str] = &["max_events_per_request"];

    fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        EdgeConfig::load(path)
    }

    fn limits(&self) -> &ServerLimits {
        &self.limits
    }
}

impl tally_http::reload::Reload for EdgeReload {
    fn reload(&self) -> Result<String, String> {
        self.files.reload(|config| {
            self.max_events_per_request.store(config.max_events_per_request, Ordering::Relaxed);
            Some(format!("max_events_per_request {}", config.max_events_per_request))
        })
    }

    fn count(&self, result: &'static str) {
        self.metrics.config_reloads.get_or_create(&ReloadLabel { result }).inc();
    }
}
