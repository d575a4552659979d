//! A private `clickhouse-server` run as a child process.
//!
//! Used by the end-to-end tests and `tally demo` so that every run gets its
//! own server: generated config, free loopback ports, its own data dir. It is
//! a [`Supervised`] child: own process group, stopped by pid only.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::supervise::{SuperviseError, Supervised};

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
    #[error(transparent)]
    Process(#[from] SuperviseError),
}

pub struct PrivateServer {
    process: Supervised,
    http_port: u16,
    binary: PathBuf,
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
                Err(ServerError::Process(SuperviseError::Exited { .. })) if attempt < 3 => continue,
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
        let process = Self::launch(binary, &dir, http_port).await?;
        Ok(PrivateServer { process, http_port, binary: binary.into(), dir })
    }

    async fn launch(binary: &Path, dir: &Path, http_port: u16) -> Result<Supervised, ServerError> {
        let io = |source| ServerError::Io { path: dir.into(), source };
        let stdout = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("logs/stdout.log")).map_err(io)?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--config-file={}", dir.join("config.xml").display()))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().map_err(io)?)
            .stderr(stdout);
        let mut process = Supervised::spawn("clickhouse-server", command)?;
        let url = format!("http://127.0.0.1:{http_port}/ping");
        let hint = format!("; see {}", dir.join("logs").display());
        process.wait_http_ready(&url, START_TIMEOUT, &hint).await?;
        tracing::info!(pid = process.pid(), http_port, dir = %dir.display(), "private ClickHouse is up");
        Ok(process)
    }

    /// Starts a stopped server again on the same data and port.
    pub async fn restart(&mut self) -> Result<(), ServerError> {
        self.stop().await;
        self.process = Self::launch(&self.binary, &self.dir, self.http_port).await?;
        Ok(())
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// `kill -9`: no shutdown, whatever it was writing stays half-written,
    /// as in a power cut. [`PrivateServer::restart`] starts it again.
    pub async fn kill(&mut self) {
        self.process.kill_now().await;
        tracing::info!("private ClickHouse killed");
    }

    /// SIGTERM, wait, then SIGKILL. Idempotent.
    pub async fn stop(&mut self) {
        self.stop_within(STOP_TIMEOUT).await;
    }

    /// [`PrivateServer::stop`] with SIGKILL after `grace` (a graceful 18.16
    /// shutdown can wait on merges far longer than a caller wants to).
    pub async fn stop_within(&mut self, grace: Duration) {
        if self.process.stop(grace).await.is_some() {
            tracing::info!("private ClickHouse stopped");
        }
    }
}
