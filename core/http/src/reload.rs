//! Reload without restart, the loop edge and core share: from the moment
//! [`on_sighup`] is called until shutdown, each SIGHUP (`systemctl reload`)
//! asks the process's [`Reload`] to read its files again, logs what it
//! applied or why it refused them, and has the attempt counted. What is
//! read and applied, all or nothing, is the process's own (`reload` in
//! `tally-edge` and `tally-core`).

use std::future::Future;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// What one process reloads on SIGHUP.
pub trait Reload: Send + 'static {
    /// Reads the files again and applies them all, or nothing: a line for
    /// the log saying what was applied, or why nothing was.
    fn reload(&self) -> Result<String, String>;

    /// Counts one attempt: `ok` or `refused`.
    fn count(&self, result: &'static str);
}

/// Listens for SIGHUP from the moment it is called (a SIGHUP before would
/// end the process), reloading until `shutdown`.
pub fn on_sighup(reload: impl Reload, mut shutdown: watch::Receiver<bool>) -> impl Future<Output = ()> {
    let hup = signal(SignalKind::hangup());
    async move {
        let mut hup = match hup {
            Ok(hup) => hup,
            Err(e) => return tracing::error!(error = %e, "cannot listen for SIGHUP: the tenants file is read at start only"),
        };
        reload_on_each(&mut hup, &reload, &mut shutdown).await
    }
}

async fn reload_on_each(hup: &mut Signal, reload: &impl Reload, shutdown: &mut watch::Receiver<bool>) {
    loop {
        tokio::select! {
            Some(()) = hup.recv() => {}
            _ = crate::serve::stopped(shutdown) => return,
        }
        let result = match reload.reload() {
            Ok(applied) => {
                tracing::info!("SIGHUP: {applied}");
                "ok"
            }
            Err(why) => {
                tracing::error!("SIGHUP: {why}");
                "refused"
            }
        };
        reload.count(result);
    }
}
