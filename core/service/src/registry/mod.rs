//! The plugin registry: tenants upload filter components, edges fetch what
//! to run.
//!
//! # Design constraints
//! * An upload is accepted only if it compiles and instantiates against
//!   the contract (`tally_filter`, the same code the edges run) within the
//!   size limit: what the registry hands an edge, the edge can run.
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
use std::sync::Mutex;

use tally_filter::host::{Compiled, FilterEngine, Limits, Plugin};
use tally_filter::manifest::{is_sha256, sha256_hex, Manifest, VersionRef};
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
    /// One change (upload or rollout step) at a time: each may compile,
    /// which is CPU-bound and must not crowd out the committer, and a step
    /// is checked against the state it changes.
    changing: tokio::sync::Semaphore,
}

/// Limits an upload must start within to be accepted (its tenant's, if
/// lower: edges cap tenants' limits at their own, 64 MiB by default).
const VALIDATE_LIMITS: Limits = Limits::new(64 << 20, std::time::Duration::from_secs(1));

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
        // Uploads are validated one at a time: a couple of slots suffice.
        let engine = FilterEngine::new(4).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        Ok(Registry { dir: dir.to_path_buf(), engine, max_bytes, states: Mutex::new(states), changing: tokio::sync::Semaphore::new(1) })
    }

    /// Validates and stores a component as the tenant's next version.
    pub async fn push(&self, tenant: &str, name: &str, bytes: Vec<u8>, now_ms: u64) -> Result<Pushed, RegistryError> {
        if bytes.len() > self.max_bytes {
            return Err(RegistryError::TooLarge(bytes.len(), self.max_bytes));
        }
        let _permit = self.changing.acquire().await.map_err(|_| RegistryError::Invalid("the registry is shutting down".into()))?;
        // Within the limits edges will give it: a version that cannot start
        // there is refused here, not discovered on every edge.
        let bytes = self.validate(name, bytes, validate_limits(&self.state(tenant))).await?;
        let sha256 = sha256_hex(&bytes);
        let blob = self.blob_path(&sha256);
        if !blob.exists() {
            write_atomic(&blob, &bytes).map_err(io(&blob))?;
        }
        let mut states = self.states.lock().expect("registry lock poisoned");
        let mut state = states.get(tenant).cloned().unwrap_or_default();
        let (version, created) = state.push(&sha256, bytes.len() as u64, name, now_ms);
        self.save(tenant, &state)?;
        states.insert(tenant.to_string(), state);
        Ok(Pushed { version, sha256, bytes: bytes.len() as u64, created })
    }

    /// Takes a rollout step. Every version it sets running anew (or under
    /// new limits) must start within the tenant's limits, or the step is
    /// refused: edges would otherwise fail it and fall back to the policy.
    pub async fn apply(&self, tenant: &str, action: Action) -> Result<TenantState, RegistryError> {
        let _permit = self.changing.acquire().await.map_err(|_| RegistryError::Invalid("the registry is shutting down".into()))?;
        let before = self.state(tenant);
        let mut after = before.clone();
        after.apply(action)?;
        let limits = validate_limits(&after);
        let unchanged = |v: &VersionRef| before.limits == after.limits && before.running().contains(v);
        for v in after.running().into_iter().filter(|v| !unchanged(v)) {
            let bytes = self.blob(&v.sha256)?;
            self.validate(&format!("v{}", v.version), bytes, limits)
                .await
                .map_err(|e| RegistryError::Invalid(format!("version {} cannot run within the tenant's limits: {e}", v.version)))?;
        }
        self.save(tenant, &after)?;
        self.states.lock().expect("registry lock poisoned").insert(tenant.to_string(), after.clone());
        Ok(after)
    }

    /// Compiles and starts a component within `limits`, as an edge would.
    async fn validate(&self, name: &str, bytes: Vec<u8>, limits: Limits) -> Result<Vec<u8>, RegistryError> {
        let (engine, label) = (self.engine.clone(), name.to_string());
        // Compiling takes tens of milliseconds: off the async workers.
        tokio::task::spawn_blocking(move || {
            let compiled = Compiled::new(&engine, &label, &bytes).map_err(|e| RegistryError::Invalid(e.to_string()))?;
            Plugin::new(compiled, limits).map_err(|e| RegistryError::Invalid(e.to_string()))?;
            Ok::<_, RegistryError>(bytes)
        })
        .await
        .map_err(|e| RegistryError::Invalid(format!("validation task failed: {e}")))?
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
