//! Reload without restart: on SIGHUP the core reads its tenants file again
//! (tenants, their keys including a rotation's previous key, limits, CORS
//! origins) and replaces the set the API and the batch receiver check
//! against. A file that does not load or validate is refused with the
//! reason in the log and the previous tenants stay in force. Every attempt
//! is counted in `tally_core_config_reloads{result}`. The rest of the
//! config file (listeners, `[limits]`, `[[edges]]`, `[ops]`) is read at
//! start only.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use tally_model::tenant::LiveTenants;

use crate::metrics::{Metrics, ReloadLabel};

pub async fn on_sighup(path: PathBuf, tenants: Arc<LiveTenants>, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(e) => return tracing::error!(error = %e, "cannot listen for SIGHUP: the tenants file is read at start only"),
    };
    loop {
        tokio::select! {
            Some(()) = hup.recv() => {}
            _ = tally_http::serve::stopped(&mut shutdown) => return,
        }
        let result = match tenants.reload(&path) {
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
