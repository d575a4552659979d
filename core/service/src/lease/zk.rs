//! The thin shell between [`super::state::Leases`] and ZooKeeper
//! (`zookeeper-client`): one session at a time (a new one after expiry),
//! whose state changes feed the machine at once, and the creates, reads and
//! kills its verdicts ask for. Everything that decides is in the machine.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client::{Acls, Client, CreateMode, EventType, SessionState};

use super::fence;
use super::state::{Epoch, Leases, SessionEvent, SessionId, Verdict};
use crate::config::ZooKeeperSection;
use crate::metrics::Metrics;

/// The finalizer leader's node under the root.
pub const LEADER: &str = "leader/finalizer";
/// Longest wait for older owners' inserts to end (an insert whose client
/// stalled mid-body ends only at ClickHouse's receive timeout); past it the
/// batch is answered `Retry` and the next one fences again.
const FENCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Between attempts to open a session while ZooKeeper is away.
const RECONNECT: Duration = Duration::from_millis(500);

/// Stops every running insert of `edge` that names another epoch, and
/// returns once they are gone (`KILL QUERY ... SYNC` on ClickHouse).
pub trait Fence: Send + Sync {
    fn kill_stale<'a>(&'a self, edge: &'a str, epoch: Epoch) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Why this core may not commit an edge now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    #[error("edge {edge} is served by core {owner}, which holds its lease; send to another core")]
    Owner { edge: String, owner: String },
    #[error("this core has no ZooKeeper session, so it holds no edge lease; send to another core")]
    NoSession,
    #[error("ZooKeeper: {0}")]
    ZooKeeper(String),
    #[error("stopping a stale owner's inserts before taking over edge {edge}: {reason}")]
    Fence { edge: String, reason: String },
}

pub struct Keeper {
    core_id: String,
    /// This core's addresses, the data of `cores/<core_id>`.
    about: String,
    root: String,
    hosts: String,
    session_timeout: Duration,
    leases: Mutex<Leases>,
    client: Mutex<Option<(SessionId, Client)>>,
    /// Bumped at every session change, so the leader loop reacts at once.
    changes: watch::Sender<u64>,
    fence: Arc<dyn Fence>,
    metrics: Arc<Metrics>,
    /// Shutting down: no new session after this one is closed.
    closing: AtomicBool,
}

impl Keeper {
    /// Starts keeping a session; until it is open every check refuses.
    pub fn start(section: &ZooKeeperSection, core_id: String, about: String, fence: Arc<dyn Fence>, metrics: Arc<Metrics>) -> Arc<Keeper> {
        let keeper = Arc::new(Keeper {
            core_id,
            about,
            root: section.root.clone(),
            hosts: section.hosts.clone(),
            session_timeout: Duration::from_millis(section.session_timeout_ms),
            leases: Mutex::new(Leases::new()),
            client: Mutex::new(None),
            changes: watch::channel(0).0,
            fence,
            metrics,
            closing: AtomicBool::new(false),
        });
        tokio::spawn(keeper.clone().keep_session());
        keeper
    }

    pub fn core_id(&self) -> &str {
        &self.core_id
    }

    /// Whether `edge`'s batches may be committed now, and at which epoch
    /// (no round trip: the machine's cached answer).
    pub fn epoch(&self, edge: &str) -> Option<Epoch> {
        match self.leases.lock().expect("lease lock").check(&fence::lease_path(edge)) {
            Verdict::Commit { epoch } => Some(epoch),
            _ => None,
        }
    }

    /// Makes sure this core holds `edge`'s lease, taking it (and fencing
    /// older owners' inserts) if it is free.
    pub async fn ensure(self: &Arc<Self>, edge: &str) -> Result<Epoch, Refusal> {
        self.hold(&fence::lease_path(edge), Some(edge)).await
    }

    /// Who holds each edge's lease now (read from ZooKeeper, for `GET
    /// /v1/edges` and retire's drain check): lease node name
    /// ([`fence::node_name`] of the edge) -> core id. Read-only.
    pub async fn lease_owners(&self) -> Result<BTreeMap<String, String>, Refusal> {
        let client = match &*self.client.lock().expect("client lock") {
            Some((_, client)) => client.clone(),
            None => return Err(Refusal::NoSession),
        };
        let dir = format!("{}/leases", self.root);
        let zk = |e: zookeeper_client::Error| Refusal::ZooKeeper(format!("{dir}: {e}"));
        let mut owners = BTreeMap::new();
        for node in client.list_children(&dir).await.map_err(zk)? {
            match client.get_data(&format!("{dir}/{node}")).await {
                Ok((owner, _)) => {
                    owners.insert(node, String::from_utf8_lossy(&owner).into_owned());
                }
                // Released meanwhile: nobody holds it.
                Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => return Err(zk(e)),
            }
        }
        Ok(owners)
    }

    /// Whether this core runs the finalizer and healer now.
    pub fn leading(&self) -> bool {
        matches!(self.leases.lock().expect("lease lock").check(LEADER), Verdict::Commit { .. })
    }

    /// Session changes, for [`lead`].
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    async fn hold(self: &Arc<Self>, name: &str, edge: Option<&str>) -> Result<Epoch, Refusal> {
        // Acquire, then fence, then commit: three steps unless the session changes meanwhile.
        for _ in 0..4 {
            let verdict = self.leases.lock().expect("lease lock").check(name);
            match verdict {
                Verdict::Commit { epoch } => return Ok(epoch),
                Verdict::NoSession => return Err(Refusal::NoSession),
                Verdict::Acquire { session } => self.acquire(name, session, edge).await?,
                Verdict::Fence { session, epoch } => {
                    if let Some(edge) = edge {
                        let started = std::time::Instant::now();
                        let refused = |reason: String| Refusal::Fence { edge: edge.to_string(), reason };
                        match tokio::time::timeout(FENCE_TIMEOUT, self.fence.kill_stale(edge, epoch)).await {
                            Ok(killed) => killed.map_err(refused)?,
                            // Still fenced off: the next batch tries again.
                            Err(_) => return Err(refused(format!("older owners' inserts still running after {FENCE_TIMEOUT:?}"))),
                        }
                        tracing::info!(%edge, epoch, took_ms = started.elapsed().as_millis() as u64, "edge lease taken; older owners' inserts stopped");
                    }
                    self.leases.lock().expect("lease lock").fenced(name, session, epoch);
                }
            }
        }
        Err(Refusal::NoSession)
    }

    async fn acquire(self: &Arc<Self>, name: &str, session: SessionId, edge: Option<&str>) -> Result<(), Refusal> {
        let client = match &*self.client.lock().expect("client lock") {
            Some((id, client)) if *id == session => client.clone(),
            _ => return Err(Refusal::NoSession),
        };
        let path = format!("{}/{name}", self.root);
        let zk = |e: zookeeper_client::Error| Refusal::ZooKeeper(format!("{path}: {e}"));
        let epoch = match client.create(&path, self.core_id.as_bytes(), &CreateMode::Ephemeral.with_acls(Acls::anyone_all())).await {
            Ok((stat, _)) => {
                self.metrics.lease_takeovers.inc();
                stat.czxid
            }
            Err(zookeeper_client::Error::NodeExists) => match client.get_data(&path).await {
                Ok((_, stat)) if stat.ephemeral_owner == session => stat.czxid,
                Ok((owner, _)) => {
                    if edge.is_some() {
                        self.metrics.lease_refusals.inc();
                    }
                    let owner = String::from_utf8_lossy(&owner).into_owned();
                    return Err(Refusal::Owner { edge: edge.unwrap_or(name).to_string(), owner });
                }
                // Deleted meanwhile: the next round creates it.
                Err(zookeeper_client::Error::NoNode) => return Ok(()),
                Err(e) => return Err(zk(e)),
            },
            Err(e) => return Err(zk(e)),
        };
        self.leases.lock().expect("lease lock").acquired(name, session, epoch);
        self.metrics.leases_held.set(self.leases.lock().expect("lease lock").held() as i64);
        // Deleted or rewritten while we hold it (by hand; outside what the
        // lease guarantees): stop as soon as we hear of it.
        let watch = client.check_and_watch_stat(&path).await;
        if !matches!(&watch, Ok((Some(stat), _)) if stat.czxid == epoch) {
            self.leases.lock().expect("lease lock").lost(name, session, epoch);
        }
        if let Ok((Some(_), watcher)) = watch {
            let keeper_name = name.to_string();
            let this = Arc::downgrade(self);
            tokio::spawn(async move {
                let event = watcher.changed().await;
                if matches!(event.event_type, EventType::NodeDeleted | EventType::NodeDataChanged) {
                    if let Some(this) = this.upgrade() {
                        tracing::warn!(lease = %keeper_name, "a lease node this core held was deleted or changed; no longer committing for it");
                        this.leases.lock().expect("lease lock").lost(&keeper_name, session, epoch);
                    }
                }
            });
        }
        Ok(())
    }

    /// Shutdown, once nothing commits any more: closes the session, so
    /// ZooKeeper deletes this core's leases at once and its edges move on
    /// without waiting for the session timeout.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.session_event(SessionEvent::Ended);
        let mut changes = self.changes();
        changes.borrow_and_update();
        // Dropping the last handle sends CloseSession; its end is reported.
        if self.client.lock().expect("client lock").take().is_some() {
            let _ = tokio::time::timeout(Duration::from_secs(2), changes.changed()).await;
        }
    }

    fn session_event(&self, event: SessionEvent) {
        let mut leases = self.leases.lock().expect("lease lock");
        leases.session(event);
        self.metrics.leases_held.set(leases.held() as i64);
        drop(leases);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Opens a session, registers this core, and feeds the machine every
    /// state change; after the session ends, opens a new one.
    async fn keep_session(self: Arc<Self>) {
        let mut said = false;
        while !self.closing.load(Ordering::SeqCst) {
            let connecting = Client::connector().with_session_timeout(self.session_timeout).connect(&self.hosts);
            let client = match connecting.await {
                Ok(client) => client,
                Err(e) => {
                    if !said {
                        tracing::warn!(hosts = %self.hosts, error = %e, "cannot open a ZooKeeper session; this core commits no batches until it can");
                        said = true;
                    }
                    tokio::time::sleep(RECONNECT).await;
                    continue;
                }
            };
            said = false;
            if let Err(e) = self.register(&client).await {
                tracing::warn!(error = %e, "cannot register this core in ZooKeeper; retrying");
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
            let session = client.session_id().0;
            let mut states = client.state_watcher();
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            *self.client.lock().expect("client lock") = Some((session, client));
            tracing::info!(core = %self.core_id, session = format_args!("{session:#x}"), "ZooKeeper session open");
            self.session_event(SessionEvent::Connected(session));
            loop {
                match states.changed().await {
                    SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                        tracing::info!("ZooKeeper connection back; leases are confirmed again before the next commit");
                        self.session_event(SessionEvent::Connected(session));
                    }
                    SessionState::Disconnected => {
                        tracing::warn!("ZooKeeper connection lost: no commits until it is back");
                        self.session_event(SessionEvent::Disconnected);
                    }
                    state => {
                        tracing::warn!(?state, "ZooKeeper session ended: every lease is gone; opening a new session");
                        self.session_event(SessionEvent::Ended);
                        break;
                    }
                }
            }
            *self.client.lock().expect("client lock") = None;
        }
    }

    async fn register(&self, client: &Client) -> Result<(), zookeeper_client::Error> {
        let dirs = CreateMode::Persistent.with_acls(Acls::anyone_all());
        for dir in ["cores", "leases", "leader"] {
            client.mkdir(&format!("{}/{dir}", self.root), &dirs).await?;
        }
        let path = format!("{}/cores/{}", self.root, fence::node_name(&self.core_id));
        match client.create(&path, self.about.as_bytes(), &CreateMode::Ephemeral.with_acls(Acls::anyone_all())).await {
            Ok(_) => Ok(()),
            // An earlier session of this core (it expires), or another process with the same id.
            Err(zookeeper_client::Error::NodeExists) => {
                tracing::warn!(%path, "a core with this id is registered already (an earlier run whose session has not expired, or a duplicate core_id)");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Runs `work` (the finalizer and healer) while this core holds the leader
/// node, and stops it as soon as it does not.
pub async fn lead<F, Fut>(keeper: Arc<Keeper>, mut shutdown: watch::Receiver<bool>, work: F)
where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut changes = keeper.changes();
    let mut term: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> = None;
    loop {
        let leading = keeper.leading() || keeper.hold(LEADER, None).await.is_ok();
        match (&term, leading) {
            (None, true) => {
                tracing::info!(core = %keeper.core_id, "this core runs the billing finalizer and the rollup healer");
                let (stop, stopped) = watch::channel(false);
                term = Some((stop, tokio::spawn(work(stopped))));
            }
            (Some(_), false) => {
                tracing::warn!(core = %keeper.core_id, "no longer the finalizer leader; stopping the finalizer and healer");
                let (stop, task) = term.take().expect("matched Some");
                let _ = stop.send(true);
                let _ = task.await;
            }
            _ => {}
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tally_http::serve::stopped(&mut shutdown) => break,
        }
    }
    if let Some((stop, task)) = term {
        let _ = stop.send(true);
        let _ = task.await;
    }
}

/// `<hostname>:<quic port>`: unique per core process on a host.
pub fn default_core_id(quic: std::net::SocketAddr) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let host = if ok && len > 0 { String::from_utf8_lossy(&buf[..len]).into_owned() } else { "core".into() };
    format!("{host}:{}", quic.port())
}
