//! Reload without restart: on SIGHUP the edge reads its tenants file again
//! and replaces, between requests, the tenants its ingest routes check:
//! their keys (a rotation lists `previous_ingest_key` beside the new one, so
//! both are valid until the next reload drops it), rate limits
//! (`max_events_per_sec`), CORS origins, redirect secrets and dimensions. A
//! file that does not load or validate is refused with the reason in the log
//! and the previous tenants stay in force; every attempt is counted in
//! `tally_edge_config_reloads{result}`. A tenant added by a reload gets the
//! dedup share computed at start (restart to divide `max_entries` again);
//! the edge's own config file (listeners, `[limits]`, spool) is read at
//! start only.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use tally_model::tenant::LiveTenants;

use crate::metrics::{Metrics, ReloadLabel};

/// Listens for SIGHUP from the moment it is called (a SIGHUP before would
/// end the process), reloading until `shutdown`.
pub fn on_sighup(path: PathBuf, tenants: Arc<LiveTenants>, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) -> impl Future<Output = ()> {
    let hup = signal(SignalKind::hangup());
    async move {
        let mut hup = match hup {
            Ok(hup) => hup,
            Err(e) => return tracing::error!(error = %e, "cannot listen for SIGHUP: the tenants file is read at start only"),
        };
        reload_on_each(&mut hup, &path, &tenants, &metrics, &mut shutdown).await
    }
}

async fn reload_on_each(hup: &mut Signal, path: &Path, tenants: &LiveTenants, metrics: &Metrics, shutdown: &mut watch::Receiver<bool>) {
    loop {
        tokio::select! {
            Some(()) = hup.recv() => {}
            _ = tally_http::serve::stopped(shutdown) => return,
        }
        let result = match tenants.reload(path) {
            Ok(count) => {
                tracing::info!(file = %path.display(), tenants = count, "SIGHUP: tenants file reloaded");
                "ok"
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "SIGHUP: tenants file refused; the previous tenants stay in force");
                "refused"
            }
        };
        metrics.config_reloads.get_or_create(&ReloadLabel { result }).inc();
    }
}
