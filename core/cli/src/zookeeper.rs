//! A private standalone ZooKeeper run as a child process, for the cluster
//! tests and `tally demo --cluster`.
//!
//! Layout under its directory: `zoo.cfg`, `log4j.properties`, `data/` (the
//! snapshot and transaction log, kept across [`ZooKeeper::stop`] and
//! [`ZooKeeper::start_again`], so an outage ends with the same state and
//! sessions that have not expired), `logs/zookeeper.log` and
//! `logs/stdout.log`.
//!
//! Constraints: loopback only, a free client port chosen at the first start
//! and kept for restarts (clients and ClickHouse servers hold the address),
//! no admin server (`admin.enableServer=false`, which would take port 8080),
//! four-letter words limited to the read-only ones. Ready means a TCP client
//! sending `ruok` reads `imok`; nothing is inferred from sleeping. The child
//! is [`Supervised`]: its own process group, stopped by pid only, killed when
//! dropped.
//!
//! Runs Debian's `zookeeper` package (3.8) with the system Java: the
//! classpath is its jar and log4j 1.2 through slf4j (the jar's manifest
//! names the rest). `TALLY_ZOOKEEPER_JAR` overrides the jar.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tally_core::supervise::Supervised;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::time::Instant;

const DEFAULT_JAR: &str = "/usr/share/java/zookeeper.jar";
const LOG_JARS: [&str; 2] = ["/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar"];
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ZooKeeper {
    process: Option<Supervised>,
    port: u16,
    dir: PathBuf,
    jar: PathBuf,
}

impl ZooKeeper {
    /// Starts a server whose files all live under `dir` and waits until it
    /// answers `imok`. Retries on a new port if it dies at start (a port race).
    pub async fn start(dir: &Path) -> anyhow::Result<ZooKeeper> {
        let jar = std::env::var_os("TALLY_ZOOKEEPER_JAR").map(PathBuf::from).unwrap_or_else(|| DEFAULT_JAR.into());
        if !jar.exists() {
            bail!("ZooKeeper not found at {}: install the Debian package zookeeper (deploy/dev/setup.sh --demo-cluster does)", jar.display());
        }
        std::fs::create_dir_all(dir.join("data")).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut zk = ZooKeeper { process: None, port, dir: dir.clone(), jar: jar.clone() };
            zk.write_config()?;
            match zk.start_again().await {
                Ok(()) => return Ok(zk),
                Err(e) if attempt < 3 && zk.process.is_none() => tracing::warn!("ZooKeeper did not start on port {port}, trying another: {e:#}"),
                Err(e) => return Err(e),
            }
        }
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let dir = self.dir.to_str().context("the ZooKeeper directory is not UTF-8")?;
        let cfg = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={dir}/data\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=ruok,stat,srvr,mntr\n",
            self.port
        );
        let log4j = format!(
            "log4j.rootLogger=INFO, FILE\nlog4j.appender.FILE=org.apache.log4j.FileAppender\n\
             log4j.appender.FILE.File={dir}/logs/zookeeper.log\nlog4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t] %c{{1}}: %m%n\n"
        );
        for (name, text) in [("zoo.cfg", cfg), ("log4j.properties", log4j)] {
            std::fs::write(self.dir.join(name), text).with_context(|| format!("writing {}", self.dir.join(name).display()))?;
        }
        Ok(())
    }

    /// Starts a stopped server again on the same port and data (the end of an
    /// outage). Does nothing if it is running.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        let stdout_path = self.dir.join("logs/stdout.log");
        let stdout = std::fs::OpenOptions::new().create(true).append(true).open(&stdout_path).with_context(|| format!("opening {}", stdout_path.display()))?;
        let classpath = std::iter::once(self.jar.to_str().context("jar path is not UTF-8")?).chain(LOG_JARS).collect::<Vec<_>>().join(":");
        let mut command = Command::new("java");
        command
            .arg("-Xmx256m")
            .arg("-cp")
            .arg(classpath)
            .arg(format!("-Dlog4j.configuration=file:{}", self.dir.join("log4j.properties").display()))
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.dir.join("zoo.cfg"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout.try_clone()?)
            .stderr(stdout);
        let mut process = Supervised::spawn("zookeeper", command)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(status) = process.exited() {
                bail!("ZooKeeper exited during start-up ({status}); see {}", self.dir.join("logs").display());
            }
            if self.answers_imok().await {
                break;
            }
            if Instant::now() > deadline {
                process.kill_now().await;
                bail!("ZooKeeper did not answer imok on port {} within {START_TIMEOUT:?}; see {}", self.port, self.dir.join("logs").display());
            }
            // A readiness poll: the child offers nothing to wait on but its port.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
        tracing::info!(pid = process.pid(), port = self.port, dir = %self.dir.display(), "private ZooKeeper is up");
        self.process = Some(process);
        Ok(())
    }

    /// Whether `ruok` is answered `imok` now.
    pub async fn answers_imok(&self) -> bool {
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.write_all(b"ruok").await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(answer == b"imok")
        };
        matches!(tokio::time::timeout(Duration::from_secs(2), ask).await, Ok(Ok(true)))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, as ZooKeeper clients take it.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Supervised::pid)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGTERM, wait, then SIGKILL; the data stays for [`ZooKeeper::start_again`].
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(STOP_TIMEOUT).await;
            tracing::info!("private ZooKeeper stopped");
        }
    }

    /// `kill -9`: what was not yet in its transaction log is lost, as in a crash.
    pub async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_now().await;
            tracing::info!("private ZooKeeper killed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Start, an outage (stop), start again on the same port, kill: each step
    /// seen through `ruok` and the pid.
    #[tokio::test]
    async fn starts_answers_stops_and_starts_again() {
        if !Path::new(DEFAULT_JAR).exists() && std::env::var_os("TALLY_ZOOKEEPER_JAR").is_none() {
            panic!("ZooKeeper is not installed: run deploy/dev/setup.sh");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut zk = ZooKeeper::start(dir.path()).await.unwrap();
        assert!(zk.answers_imok().await);
        assert!(zk.pid().is_some());
        let port = zk.port();
        zk.stop().await;
        assert!(zk.pid().is_none());
        assert!(!zk.answers_imok().await, "a stopped ZooKeeper must not answer");
        zk.start_again().await.unwrap();
        assert_eq!(zk.port(), port, "an outage ends on the same address");
        assert!(zk.answers_imok().await);
        zk.kill().await;
        assert!(!zk.answers_imok().await);
        assert!(std::fs::read_to_string(dir.path().join("zoo.cfg")).unwrap().contains("admin.enableServer=false"));
    }
}
