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

pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tally_filter::host::{Compiled, FilterEngine, FilterError, Limits, Plugin};
use tally_filter::manifest::{is_sha256, sha256_hex, Manifest, TenantLimits, VersionRef};
use tally_model::durable_file::write_atomic;

use state::{Action, RolloutError, TenantState};

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
        Ok(Registry { dir: dir.to_path_buf(), engine, max_bytes, states, changing, compiling })
    }

    /// Validates and stores a component as the tenant's next version.
    pub async fn push(&self, tenant: &str, name: &str, bytes: Vec<u8>, now_ms: u64) -> Result<Pushed, RegistryError> {
        if bytes.len() > self.max_bytes {
            return Err(RegistryError::TooLarge(bytes.len(), self.max_bytes));
        }
        let lock = self.tenant_lock(tenant);
        let _changing = lock.lock().await;
        let mut state = self.state(tenant);
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
        let (version, created) = state.push(&sha256, bytes.len() as u64, name, now_ms);
        self.save(tenant, &state)?;
        self.states.lock().expect("registry lock poisoned").insert(tenant.to_string(), state);
        Ok(Pushed { version, sha256, bytes: bytes.len() as u64, created })
    }

    /// Takes a rollout step. Every version it sets running anew (or under
    /// new limits) must start within the tenant's limits, or the step is
    /// refused: edges would fail to build it and keep running what they run.
    pub async fn apply(&self, tenant: &str, action: Action) -> Result<TenantState, RegistryError> {
        let lock = self.tenant_lock(tenant);
        let _changing = lock.lock().await;
        let before = self.state(tenant);
        let mut after = before.clone();
        after.apply(action)?;
        let limits = validate_limits(&after);
        let unchanged = |v: &VersionRef| before.limits == after.limits && before.running().contains(v);
        for v in after.running().into_iter().filter(|v| !unchanged(v)) {
            // Stored before any state named it: missing is damage, not a bad request.
            let blob = self.blob_path(&v.sha256);
            let bytes = std::fs::read(&blob).map_err(io(&blob))?;
            self.validate(&format!("v{}", v.version), bytes, limits).await.map_err(|e| match e {
                Refused::CannotStart(reason) => {
                    RegistryError::CannotStart { version: v.version, memory_mb: limits.memory_bytes >> 20, timeout_ms: limits.timeout.as_millis(), reason }
                }
                Refused::Registry(e) => e,
            })?;
        }
        self.save(tenant, &after)?;
        self.states.lock().expect("registry lock poisoned").insert(tenant.to_string(), after.clone());
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

    /// A component by hash (for edges).
    pub fn blob(&self, sha256: &str) -> Result<Vec<u8>, RegistryError> {
        if !is_sha256(sha256) {
            return Err(RegistryError::NoBlob(sha256.to_string()));
        }
        std::fs::read(self.blob_path(sha256)).map_err(|_| RegistryError::NoBlob(sha256.to_string()))
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
