//! A private `clickhouse-server` run as a child process.
//!
//! Used by the end-to-end tests and `tally demo` so that every run gets its
//! own server: generated config, free loopback ports, its own data dir. The
//! child is put in its own process group (a terminal's Ctrl-C reaches us,
//! not it, and we stop it in order) and is stopped by pid only: SIGTERM,
//! then SIGKILL if it has not exited in time. Dropping a running server
//! kills it, so a panicking test does not leave it behind.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

const SERVER_XML: &str = include_str!("private-server.xml");
const USERS_XML: &str = include_str!("private-users.xml");
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Debian's package installs the server here; `TALLY_CLICKHOUSE_SERVER` overrides.
const DEFAULT_BINARY: &str = "/usr/sbin/clickhouse-server";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("clickhouse-server binary {0} not found: install the Debian package clickhouse-server (see README)")]
    Missing(PathBuf),
    #[error("preparing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("clickhouse-server exited during start-up ({status}); see {log}")]
    Exited { status: String, log: PathBuf },
    #[error("clickhouse-server did not answer /ping within {0:?}")]
    Timeout(Duration),
}

pub struct PrivateServer {
    child: Option<Child>,
    http_port: u16,
    tcp_port: u16,
    dir: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PrivateServer {
    /// Starts a server whose files all live under `dir`, and waits until it
    /// answers. Retries with new ports if it dies at start (a port race).
    pub async fn start(dir: &Path) -> Result<PrivateServer, ServerError> {
        let binary = std::env::var_os("TALLY_CLICKHOUSE_SERVER").map(PathBuf::from).unwrap_or_else(|| DEFAULT_BINARY.into());
        if !binary.exists() {
            return Err(ServerError::Missing(binary));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&binary, dir).await {
                Err(ServerError::Exited { .. }) if attempt < 3 => continue,
                other => return other,
            }
        }
    }

    async fn start_once(binary: &Path, dir: &Path) -> Result<PrivateServer, ServerError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ServerError::Io { path, source }
        };
        for sub in ["data", "tmp", "user_files", "format_schemas", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(&dir.join(sub)))?;
        }
        let dir = dir.canonicalize().map_err(io(dir))?;
        let (http_port, tcp_port) = (free_port().map_err(io(&dir))?, free_port().map_err(io(&dir))?);
        let users = dir.join("users.xml");
        let config = dir.join("config.xml");
        std::fs::write(&users, USERS_XML).map_err(io(&users))?;
        let rendered = SERVER_XML
            .replace("{{HTTP_PORT}}", &http_port.to_string())
            .replace("{{TCP_PORT}}", &tcp_port.to_string())
            .replace("{{DATA_DIR}}", dir.to_str().expect("temp paths are UTF-8"))
            .replace("{{USERS_FILE}}", users.to_str().expect("temp paths are UTF-8"));
        std::fs::write(&config, rendered).map_err(io(&config))?;
        let stdout = std::fs::File::create(dir.join("logs/stdout.log")).map_err(io(&dir))?;
        let child = Command::new(binary)
            .arg(format!("--config-file={}", config.display()))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().map_err(io(&dir))?)
            .stderr(stdout)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(binary))?;
        let mut server = PrivateServer { child: Some(child), http_port, tcp_port, dir };
        server.wait_ready().await?;
        tracing::info!(pid = server.pid(), http_port, dir = %server.dir.display(), "private ClickHouse is up");
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), ServerError> {
        let client = tally_http::client::Client::new();
        let url = format!("{}/ping", self.http_url());
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(ServerError::Exited { status: status.to_string(), log: self.dir.join("logs") });
            }
            if let Ok(reply) = client.get(&url, None).await {
                if reply.status.is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(ServerError::Timeout(START_TIMEOUT));
            }
            // Readiness poll with backoff: there is no signal to wait on.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGTERM, wait, then SIGKILL. Idempotent.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(_) => tracing::info!("private ClickHouse stopped"),
            Err(_) => {
                tracing::warn!("private ClickHouse ignored SIGTERM for {STOP_TIMEOUT:?}; killing it");
                let _ = child.kill().await;
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}
