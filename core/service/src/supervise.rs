//! Child processes we start and must stop: by pid, never by name.
//!
//! Each child gets its own process group, so a terminal's Ctrl-C reaches
//! only the parent, which then stops its children in order. Stopping is
//! SIGTERM, a bounded wait, then SIGKILL. Dropping a running child kills it,
//! so a panicking test leaves nothing behind.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("starting {name} ({program}): {source}")]
    Spawn { name: String, program: PathBuf, source: std::io::Error },
    #[error("{name} exited during start-up ({status}){hint}")]
    Exited { name: String, status: String, hint: String },
    #[error("{name} was not ready at {url} within {timeout:?}")]
    Timeout { name: String, url: String, timeout: Duration },
}

pub struct Supervised {
    name: String,
    child: Option<Child>,
}

impl Supervised {
    pub fn spawn(name: &str, mut command: Command) -> Result<Supervised, SuperviseError> {
        let program = PathBuf::from(command.as_std().get_program());
        let child = command.process_group(0).kill_on_drop(true).spawn().map_err(|source| SuperviseError::Spawn { name: name.into(), program, source })?;
        Ok(Supervised { name: name.into(), child: Some(child) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// The exit status if the child has exited (and was reaped now).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until `GET url` answers 2xx, failing early if the child exits.
    /// `hint` is appended to the error if it does (e.g. where its log is).
    pub async fn wait_http_ready(&mut self, url: &str, timeout: Duration, hint: &str) -> Result<(), SuperviseError> {
        let client = tally_http::client::Client::new();
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return Err(SuperviseError::Exited { name: self.name.clone(), status: status.to_string(), hint: hint.into() });
            }
            if client.get(url, None).await.is_ok_and(|r| r.status.is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(SuperviseError::Timeout { name: self.name.clone(), url: url.into(), timeout });
            }
            // A readiness poll: the child offers nothing to wait on but its port.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Sends `signal` to the child (by pid).
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped.
            unsafe { libc::kill(pid as i32, signal) };
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Idempotent.
    pub async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Some(pid) = child.id() {
            // SAFETY: as in `signal`.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                tracing::warn!(name = %self.name, "ignored SIGTERM for {grace:?}; killing it");
                let _ = child.kill().await;
                child.wait().await.ok()
            }
        }
    }

    /// SIGKILL and reap: a crash, as far as the child can tell.
    pub async fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill();
    }
}
