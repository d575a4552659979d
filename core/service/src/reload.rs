//! Reload without restart: on SIGHUP the core reads its tenants file again
//! (tenants, their keys including a rotation's previous key, limits, CORS
//! origins) and replaces the set the API and the batch receiver check
//! against. A file that does not load or validate is refused with the
//! reason in the log and the previous tenants stay in force. Every attempt
//! is counted in `tally_core_config_reloads{result}`. The rest of the
//! config file (listeners, `[limits]`, `[[edges]]`, `[ops]`) is read at
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
