//! Reload without restart, what edge and core share: from the moment
//! [`on_sighup`] is called until shutdown, each SIGHUP (`systemctl reload`)
//! asks the process's [`Reload`] to read its files again, logs what it
//! applied or why it refused them, and has the attempt counted.
//!
//! Both processes reload the same way ([`Files::reload`]): the tenants file
//! and the process's config file are both read and checked before anything
//! is applied, so a reload applies all or nothing; a refusal keeps the
//! previous tenants and limits and says why. Then the tenants are replaced,
//! the connection caps of `[limits]` go to the [`Gate`], and the process
//! applies its own reloadable settings ([`ConfigFile::RELOADED`]). The log
//! line says what is in force, which is not always what the file says: the
//! gate keeps `max_connections` below the descriptor limit
//! ([`ConnectionCap`](crate::limits::ConnectionCap)). Everything else in the config file is read at start
//! only; the line names each such key whose value differs from the config
//! the process started with, so an edit that waits for a restart is never
//! ignored in silence. The comparison is with the started config, not the
//! previous reload's, because that is what the listeners, spool and other
//! start-only parts run with: a pending change is named on every reload
//! until a restart.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tally_model::config_file::{changed_keys, ConfigError};
use tally_model::tenant::{LiveTenants, Tenants};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::limits::{Gate, ServerLimits};

/// What one process reloads on SIGHUP.
pub trait Reload: Send + 'static {
    /// Reads the files again and applies them all, or nothing: a line for
    /// the log saying what was applied, or why nothing was.
    fn reload(&self) -> Result<String, String>;

    /// Counts one attempt: `ok` or `refused`.
    fn count(&self, result: &'static str);
}

/// A process's config file, as a reload reads it.
pub trait ConfigFile: Serialize + Sized {
    /// The top-level keys besides `[limits]` the process applies on a
    /// reload (through the `apply` of [`Files::reload`]); every other key
    /// waits for a restart.
    const RELOADED: &'static [&'static str];

    /// Reads and validates the file.
    fn load(path: &Path) -> Result<Self, ConfigError>;

    /// Its `[limits]`.
    fn limits(&self) -> &ServerLimits;
}

/// What edge and core alike reload: the tenants file and, of the config
/// file, the connection caps of `[limits]`.
pub struct Files<C> {
    pub config_file: PathBuf,
    pub tenants_file: PathBuf,
    pub tenants: Arc<LiveTenants>,
    pub gate: Arc<Gate>,
    /// The config as read at start: what a reload names the restart-only
    /// changes against.
    pub started: C,
}

impl<C: ConfigFile> Files<C> {
    /// Reads both files and, if both load and validate, replaces the
    /// tenants, applies the connection caps and then `apply` (the process's
    /// own [`ConfigFile::RELOADED`] settings, returning what it applied for
    /// the log). Returns the log line for [`Reload::reload`].
    pub fn reload(&self, apply: impl FnOnce(&C) -> Option<String>) -> Result<String, String> {
        let file = self.tenants_file.display();
        let kept = "the previous tenants and limits stay in force";
        let tenants = Tenants::load(&self.tenants_file).map_err(|e| format!("tenants file refused; {kept}: {file}: {e}"))?;
        let config = C::load(&self.config_file).map_err(|e| format!("config file refused; {kept}: {e}"))?;
        let count = tenants.ids().len();
        self.tenants.replace(tenants);
        let limits = self.gate.reload(config.limits());
        let own = apply(&config);
        let caps = format!("max_connections {}, max_connections_per_ip {}", limits.max_connections, limits.max_connections_per_ip);
        let applied = own.into_iter().chain([caps]).collect::<Vec<_>>().join(", ");
        let mut line = format!("tenants file reloaded ({count} tenants from {file}); {applied}");
        let skip: Vec<&str> = C::RELOADED.iter().copied().chain(["limits"]).collect();
        let mut restart: Vec<String> = limits.restart_only.iter().map(|key| format!("limits.{key}")).collect();
        let uncompared = match changed_keys(&self.started, &config, &skip) {
            Ok(changed) => {
                restart.extend(changed);
                None
            }
            Err(e) => Some(e),
        };
        if !restart.is_empty() {
            line += &format!("; changed but applied only after a restart: {}", restart.join(", "));
        }
        // Not seen (both configs were parsed from TOML), but said rather than hidden.
        if let Some(e) = uncompared {
            line += &format!("; the rest of the config could not be compared with the one in force ({e}): restart to be sure an edit applies");
        }
        Ok(line)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::config_file::load_toml;

    #[derive(Serialize, serde::Deserialize)]
    struct Config {
        listen: String,
        knob: u32,
        #[serde(default)]
        limits: ServerLimits,
    }

    impl ConfigFile for Config {
        const RELOADED: &'static [&'static str] = &["knob"];

        fn load(path: &Path) -> Result<Config, ConfigError> {
            load_toml(path)
        }

        fn limits(&self) -> &ServerLimits {
            &self.limits
        }
    }

    fn tenant(id: &str) -> String {
        format!("[[tenant]]\nid = \"{id}\"\ningest_key = \"ing_{id}_0123456789abcdef\"\nread_key = \"read_{id}_0123456789abcdef\"\nadmin_key = \"adm_{id}_0123456789abcdef\"\n")
    }

    #[test]
    fn a_reload_says_what_is_in_force_and_names_what_waits_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (config_file, tenants_file) = (dir.path().join("c.toml"), dir.path().join("t.toml"));
        let started = Config { listen: "a".into(), knob: 1, limits: ServerLimits::default() };
        let gate = Gate::new(started.limits.clone());
        let files = Files { config_file: config_file.clone(), tenants_file: tenants_file.clone(), tenants: Arc::default(), gate, started };
        let reload = |tenants: &str, config: &str| {
            std::fs::write(&tenants_file, tenants).unwrap();
            std::fs::write(&config_file, config).unwrap();
            files.reload(|c| Some(format!("knob {}", c.knob)))
        };
        let head = format!("tenants file reloaded (1 tenants from {}); knob 2, max_connections 10, max_connections_per_ip 256", tenants_file.display());
        assert_eq!(reload(&tenant("acme"), "listen = \"a\"\nknob = 2\n[limits]\nmax_connections = 10\n"), Ok(head.clone()), "all applied");
        let edited = "listen = \"b\"\nknob = 2\n[limits]\nmax_connections = 10\nbody_timeout_ms = 5\n";
        let pending = format!("{head}; changed but applied only after a restart: limits.body_timeout_ms, listen");
        assert_eq!(reload(&tenant("acme"), edited), Ok(pending.clone()));
        assert_eq!(reload(&tenant("acme"), edited), Ok(pending), "named again until a restart");

        let refused = reload(&(tenant("acme") + &tenant("beta")), "listen = \"a\"\nknob = \"x\"\n").unwrap_err();
        assert!(refused.starts_with("config file refused; the previous tenants and limits stay in force: "), "{refused}");
        assert_eq!(files.tenants.current().ids().len(), 1, "the tenants file beside a refused config is not applied");
    }
}
