//! The plugin registry: tenants upload filter components, edges fetch what
//! to run.
//!
//! # Design constraints
//! * An upload is accepted only if it compiles and instantiates against
//!   the contract (`tally_filter`, the same code the edges run) within the
//!   size limit and the tenant's limits (at most the edges' defaults); a
//!   rollout step that sets a version running anew, or under new limits,
//!   only if that version starts within them. So an edge with the default
//!   limits can start whatever the registry hands it.
//! * One change per tenant at a time (read, validate, save), and at most
//!   two compiles at once for the whole registry, one per lane
//!   ([`CompileLanes`]): compiling is CPU-bound and must not crowd out the
//!   committer. Components up to [`SMALL_COMPONENT_BYTES`] compile in their
//!   own lane, so a tenant's large upload (compile time grows with size: a
//!   15.7 MiB component took 12 s on a 2-core machine) never
//!   holds up another tenant's small one; each lane is first come, first
//!   served, and a tenant has at most one change waiting. A slow upload of
//!   one tenant never holds up another tenant's rollback.
//! * Limits on what a component may be: `registry.max_plugin_bytes` (16 MiB
//!   by default) bounds its size and so its compile time and code size; it
//!   must start within the tenant's memory and time limits (at most
//!   `TenantLimits::DEFAULT_LIMITS`); it may import nothing but the
//!   contract's types.
//! * Tenants are isolated by their admin key: the key names the tenant, so
//!   no request can read, replace or roll out another tenant's plugin.
//!   Component bytes are served only to edges (edge token), by hash.
//! * Edges verify each component's sha256 before compiling it, so a blob
//!   damaged on disk or in transit is never run.
//!
//! # On-disk layout
//! ```text
//! <dir>/blobs/<sha256 hex>.wasm   component bytes, written once, never changed
//! <dir>/tenants/<tenant>.json     state::TenantState (versions, rollout, policy)
//! ```
//! Every file is written to a temporary name, fsynced and renamed, and a
//! blob is in place before the state that names it.
//!
//! # Several cores ([`shared`])
//! With `[zookeeper]` configured, cores share one registry: each tenant's
//! state in ZooKeeper (changed by compare-and-set, so of two racing steps
//! one wins and the other is refused with [`RegistryError::Conflict`]),
//! component bytes in ClickHouse (stored before any state names them). A
//! change reads the shared state first, so a step through one core builds on
//! a push through another. The directory above becomes this core's cache:
//! the manifest is served from memory, refreshed from ZooKeeper every
//! [`REFRESH`] (missing components fetched from ClickHouse and their sha256
//! checked), so another core's change reaches this core's manifest within
//! about that long, and a core restarted while ZooKeeper is away serves
//! what it last saw. On the first start with `[zookeeper]`, tenants the
//! directory knows and ZooKeeper does not are copied there (components
//! first); where ZooKeeper already has a tenant, ZooKeeper wins.

pub mod shared;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tally_filter::host::{Compiled, FilterEngine, FilterError, Limits, Plugin};
use tally_filter::manifest::{is_sha256, sha256_hex, Manifest, TenantLimits, VersionRef};
use tally_model::durable_file::write_atomic;

use shared::{Shared, Versioned};
use state::{Action, RolloutError, TenantState};

/// How often a core with a shared registry reads every tenant's state.
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry storage {path}: {message}")]
    Io { path: String, message: String },
    #[error("the component is {0} bytes; the limit is {1}")]
    TooLarge(usize, usize),
    #[error("the component was refused: {0}")]
    Invalid(String),
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    #[error("no component with sha256 {0}")]
    NoBlob(String),
    #[error("version {version} cannot start within the tenant's limits ({memory_mb} MiB, {timeout_ms} ms): {reason}")]
    CannotStart { version: u32, memory_mb: usize, timeout_ms: u128, reason: String },
    /// No instance slot was free to try a component (retry).
    #[error("the registry is busy: {0}")]
    Busy(String),
    /// The shared registry (ZooKeeper, ClickHouse) could not be read or written.
    #[error("the shared plugin registry is unavailable ({0}); nothing was changed, try again when it is back")]
    Shared(String),
    /// Another core changed the tenant's plugins between this change's read and its write.
    #[error("another core changed tenant {0}'s plugins at the same moment, so this request changed nothing; check `tally plugin status` and run it again")]
    Conflict(String),
}

/// Why a component did not pass validation.
enum Refused {
    /// It does not compile, link against the contract or start in time and memory.
    CannotStart(String),
    Registry(RegistryError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |e| RegistryError::Io { path: path.display().to_string(), message: e.to_string() }
}

/// What an upload produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    pub version: u32,
    pub sha256: String,
    pub bytes: u64,
    /// False when the same bytes were uploaded before (same version).
    pub created: bool,
}

pub struct Registry {
    dir: PathBuf,
    engine: FilterEngine,
    max_bytes: usize,
    states: Mutex<BTreeMap<String, TenantState>>,
    /// Per tenant: held from reading its state to saving the change.
    changing: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    compiling: CompileLanes,
    /// Several cores: the state and components every core serves.
    shared: Option<Shared>,
}

/// Components up to this size compile in the small lane.
pub const SMALL_COMPONENT_BYTES: usize = 1 << 20;

/// One compile at a time per lane, the permit held by the compiling thread
/// itself (so a caller that goes away does not let a second one start
/// beside it). tokio's semaphore queues waiters in order.
#[derive(Clone)]
pub struct CompileLanes {
    small: Arc<tokio::sync::Semaphore>,
    large: Arc<tokio::sync::Semaphore>,
}

impl Default for CompileLanes {
    fn default() -> Self {
        CompileLanes { small: Arc::new(tokio::sync::Semaphore::new(1)), large: Arc::new(tokio::sync::Semaphore::new(1)) }
    }
}

impl CompileLanes {
    /// The lane of a component of `len` bytes.
    pub fn lane(&self, len: usize) -> &Arc<tokio::sync::Semaphore> {
        if len <= SMALL_COMPONENT_BYTES {
            &self.small
        } else {
            &self.large
        }
    }
}

/// Limits a version must start within (its tenant's, if lower): the edges'
/// defaults, at which they cap tenants' limits. An edge configured lower may
/// still fail a version that passed here.
const VALIDATE_LIMITS: Limits = TenantLimits::DEFAULT_LIMITS;

/// What a tenant's plugins must start within: the limits edges will give them.
fn validate_limits(state: &TenantState) -> Limits {
    state.limits.map_or(VALIDATE_LIMITS, |l| l.limits().capped(VALIDATE_LIMITS))
}

impl Registry {
    pub fn open(dir: &Path, max_bytes: usize) -> Result<Registry, RegistryError> {
        let tenants = dir.join("tenants");
        std::fs::create_dir_all(dir.join("blobs")).map_err(io(dir))?;
        std::fs::create_dir_all(&tenants).map_err(io(&tenants))?;
        let mut states = BTreeMap::new();
        for entry in std::fs::read_dir(&tenants).map_err(io(&tenants))? {
            let path = entry.map_err(io(&tenants))?.path();
            let Some(tenant) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else { continue };
            // One damaged state file costs its tenant's plugins, not the core.
            let state = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_slice::<TenantState>(&text).map_err(|e| e.to_string()))
                .and_then(|s| if s.is_consistent() { Ok(s) } else { Err("names a version it does not list".into()) });
            match state {
                Ok(state) => {
                    states.insert(tenant.to_string(), state);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "plugin registry state unreadable; that tenant's plugins are off until it is fixed")
                }
            }
        }
        // One compile per lane at a time: a few slots suffice.
        let engine = FilterEngine::new(4).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let (states, changing, compiling) = (Mutex::new(states), Mutex::default(), CompileLanes::default());
        Ok(Registry { dir: dir.to_path_buf(), engine, max_bytes, states, changing, compiling, shared: None })
    }

    /// Shares state and components with the other cores (see the module docs).
    pub fn shared_through(self, shared: Shared) -> Registry {
        Registry { shared: Some(shared), ..self }
    }

    /// The tenant's state a change starts from: the shared one if shared.
    async fn current(&self, tenant: &str) -> Result<Versioned, RegistryError> {
        match &self.shared {
            Some(shared) => shared.read(tenant).await,
            None => Ok(Versioned { state: self.state(tenant), version: None }),
        }
    }

    /// Saves a change: to the shared registry (if the state read is still
    /// current there), then to the local directory and memory.
    async fn commit(&self, tenant: &str, read: &Versioned, state: &TenantState) -> Result<(), RegistryError> {
        if let Some(shared) = &self.shared {
            if state != &read.state || read.version.is_none() {
                shared.write(tenant, state, read.version).await?;
            }
        }
        self.save(tenant, state)?;
        self.states.lock().expect("registry lock poisoned").insert(tenant.to_string(), state.clone());
        Ok(())
    }

    /// Validates and stores a component as the tenant's next version.
    pub async fn push(&self, tenant: &str, name: &str, bytes: Vec<u8>, now_ms: u64) -> Result<Pushed, RegistryError> {
        if bytes.len() > self.max_bytes {
            return Err(RegistryError::TooLarge(bytes.len(), self.max_bytes));
        }
        let lock = self.tenant_lock(tenant);
        let _changing = lock.lock().await;
        let read = self.current(tenant).await?;
        let mut state = read.state.clone();
        // Within the limits edges will give it: a version that cannot start
        // there is refused here, not discovered on every edge.
        let bytes = self.validate(name, bytes, validate_limits(&state)).await.map_err(|e| match e {
            Refused::CannotStart(reason) => RegistryError::Invalid(reason),
            Refused::Registry(e) => e,
        })?;
        let sha256 = sha256_hex(&bytes);
        let blob = self.blob_path(&sha256);
        if !blob.exists() {
            write_atomic(&blob, &bytes).map_err(io(&blob))?;
        }
        // Stored for every core before any state names it.
        if let Some(shared) = &self.shared {
            shared.put_component(&sha256, &bytes, now_ms).await?;
        }
        let (version, created) = state.push(&sha256, bytes.len() as u64, name, now_ms);
        self.commit(tenant, &read, &state).await?;
        Ok(Pushed { version, sha256, bytes: bytes.len() as u64, created })
    }

    /// Takes a rollout step. Every version it sets running anew (or under
    /// new limits) must start within the tenant's limits, or the step is
    /// refused: edges would fail to build it and keep running what they run.
    pub async fn apply(&self, tenant: &str, action: Action) -> Result<TenantState, RegistryError> {
        let lock = self.tenant_lock(tenant);
        let _changing = lock.lock().await;
        let read = self.current(tenant).await?;
        let before = &read.state;
        let mut after = before.clone();
        after.apply(action)?;
        let limits = validate_limits(&after);
        let unchanged = |v: &VersionRef| before.limits == after.limits && before.running().contains(v);
        for v in after.running().into_iter().filter(|v| !unchanged(v)) {
            // Stored before any state named it: missing is damage, not a bad request.
            let bytes = match self.blob(&v.sha256).await {
                Err(RegistryError::NoBlob(_)) => {
                    let blob = self.blob_path(&v.sha256);
                    return Err(RegistryError::Io { path: blob.display().to_string(), message: "missing, though a state names it".into() });
                }
                found => found?,
            };
            self.validate(&format!("v{}", v.version), bytes, limits).await.map_err(|e| match e {
                Refused::CannotStart(reason) => {
                    RegistryError::CannotStart { version: v.version, memory_mb: limits.memory_bytes >> 20, timeout_ms: limits.timeout.as_millis(), reason }
                }
                Refused::Registry(e) => e,
            })?;
        }
        self.commit(tenant, &read, &after).await?;
        Ok(after)
    }

    fn tenant_lock(&self, tenant: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.changing.lock().expect("registry lock poisoned").entry(tenant.to_string()).or_default().clone()
    }

    /// Compiles and starts a component within `limits`, as an edge would.
    async fn validate(&self, name: &str, bytes: Vec<u8>, limits: Limits) -> Result<Vec<u8>, Refused> {
        let busy = |why: String| Refused::Registry(RegistryError::Busy(why));
        let permit = self.compiling.lane(bytes.len()).clone().acquire_owned().await.map_err(|_| busy("shutting down".into()))?;
        let (engine, label) = (self.engine.clone(), name.to_string());
        // Compiling takes tens of milliseconds: off the async workers.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let compiled = Compiled::new(&engine, &label, &bytes).map_err(|e| Refused::CannotStart(e.to_string()))?;
            match Plugin::new(compiled, limits) {
                Ok(_) => Ok(bytes),
                Err(FilterError::NoCapacity { message, .. }) => Err(busy(message)),
                Err(e) => Err(Refused::CannotStart(e.to_string())),
            }
        })
        .await
        .map_err(|e| busy(format!("validation task failed: {e}")))?
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub fn state(&self, tenant: &str) -> TenantState {
        self.states.lock().expect("registry lock poisoned").get(tenant).cloned().unwrap_or_default()
    }

    /// What every edge should run.
    pub fn manifest(&self) -> Manifest {
        let states = self.states.lock().expect("registry lock poisoned");
        Manifest { tenants: states.iter().filter_map(|(t, s)| s.manifest(t)).collect() }
    }

    /// A component by hash (for edges): from the local directory, else (shared)
    /// from ClickHouse, checked against its hash and kept in the directory.
    pub async fn blob(&self, sha256: &str) -> Result<Vec<u8>, RegistryError> {
        if !is_sha256(sha256) {
            return Err(RegistryError::NoBlob(sha256.to_string()));
        }
        let path = self.blob_path(sha256);
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(bytes);
        }
        let Some(shared) = &self.shared else { return Err(RegistryError::NoBlob(sha256.to_string())) };
        let bytes = shared.component(sha256).await?.ok_or_else(|| RegistryError::NoBlob(sha256.to_string()))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(RegistryError::Shared(format!("the stored component {sha256} does not match its sha256")));
        }
        write_atomic(&path, &bytes).map_err(io(&path))?;
        Ok(bytes)
    }

    /// Keeps the manifest equal to the shared registry's (every [`REFRESH`])
    /// until shutdown; first copies tenants only this directory knows.
    pub async fn follow(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let (mut seeded, mut failing) = (false, false);
        loop {
            let pass = async {
                if !seeded {
                    self.seed().await?;
                    seeded = true;
                }
                self.refresh().await
            };
            match pass.await {
                Ok(()) if failing => {
                    tracing::info!("shared plugin registry readable again");
                    failing = false;
                }
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "cannot read the shared plugin registry; edges get what this core last saw");
                    failing = true;
                }
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = tally_http::serve::stopped(&mut shutdown) => return,
            }
        }
    }

    /// Copies tenants the directory knows and the shared registry does not
    /// (a single core's registry the first time it runs with `[zookeeper]`).
    async fn seed(&self) -> Result<(), RegistryError> {
        let Some(shared) = &self.shared else { return Ok(()) };
        let known = shared.all().await?;
        let local: Vec<(String, TenantState)> =
            self.states.lock().expect("registry lock poisoned").iter().filter(|(t, _)| !known.contains_key(*t)).map(|(t, s)| (t.clone(), s.clone())).collect();
        for (tenant, state) in local {
            for v in &state.versions {
                let bytes = self.blob(&v.sha256).await?;
                shared.put_component(&v.sha256, &bytes, v.uploaded_ms).await?;
            }
            match shared.write(&tenant, &state, None).await {
                // Another core copied its own first: that one is shared.
                Ok(()) | Err(RegistryError::Conflict(_)) => {
                    tracing::info!(%tenant, "plugin registry: this directory's state of the tenant copied to the shared registry")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Adopts every tenant's shared state that differs from what this core
    /// serves, its running components fetched first (an edge asks this core
    /// for them next).
    async fn refresh(&self) -> Result<(), RegistryError> {
        let Some(shared) = &self.shared else { return Ok(()) };
        for (tenant, seen) in shared.all().await? {
            if self.states.lock().expect("registry lock poisoned").get(&tenant) == Some(&seen) {
                continue;
            }
            // Under the tenant's lock and read again: never over a change this core is saving.
            let lock = self.tenant_lock(&tenant);
            let _changing = lock.lock().await;
            let state = shared.read(&tenant).await?.state;
            for v in state.running() {
                self.blob(&v.sha256).await?;
            }
            self.save(&tenant, &state)?;
            self.states.lock().expect("registry lock poisoned").insert(tenant, state);
        }
        Ok(())
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{sha256}.wasm"))
    }

    fn save(&self, tenant: &str, state: &TenantState) -> Result<(), RegistryError> {
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        let path = self.dir.join("tenants").join(format!("{tenant}.json"));
        write_atomic(&path, &json).map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large compile in progress leaves the small lane free, and the other
    /// way round; two large uploads queue for their lane.
    #[test]
    fn a_large_compile_never_holds_up_a_small_one() {
        let lanes = CompileLanes::default();
        let (small, large) = (1024, 15 << 20);
        let big = lanes.lane(large).clone().try_acquire_owned().expect("the large lane is free");
        assert!(lanes.lane(small).clone().try_acquire_owned().is_ok(), "a small upload waited for a large compile");
        assert!(lanes.lane(large).clone().try_acquire_owned().is_err(), "two large compiles at once");
        drop(big);
        let held = lanes.lane(SMALL_COMPONENT_BYTES).clone().try_acquire_owned().unwrap();
        assert!(lanes.lane(SMALL_COMPONENT_BYTES + 1).clone().try_acquire_owned().is_ok());
        drop(held);
    }
}
