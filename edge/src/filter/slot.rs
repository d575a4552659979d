//! The plugin versions a tenant's clicks go through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;

use tally_filter::host::{Compiled, FailurePolicy, FilterEngine, FilterError, Limits, Plugin, SharedPlugin};
use tally_filter::manifest::Mode;
use tally_model::tenant::{TenantId, Tenants};

use super::coalesce::Queue;
use super::rollout::Judged;
use crate::config::EdgeConfig;
use crate::metrics::Metrics;

/// One plugin version, live, or why it could not be loaded.
pub struct Loaded {
    /// Registry version; 0 for a plugin named in the edge's config file.
    pub version: u32,
    pub sha256: String,
    pub plugin: Result<SharedPlugin, String>,
}

/// Where a queued request's part of a call's answer goes.
pub type Reply = oneshot::Sender<Judged>;

pub struct TenantFilter {
    pub policy: FailurePolicy,
    pub active: Loaded,
    pub candidate: Option<(Loaded, Mode)>,
    /// Requests waiting for the next call of these versions.
    pub queue: Queue<Reply>,
}

impl TenantFilter {
    pub fn new(policy: FailurePolicy, active: Loaded, candidate: Option<(Loaded, Mode)>) -> TenantFilter {
        TenantFilter { policy, active, candidate, queue: Queue::default() }
    }
}

/// Every tenant's filter; swapped whole per tenant.
#[derive(Default)]
pub struct Filters {
    slots: RwLock<HashMap<TenantId, Arc<TenantFilter>>>,
}

impl Filters {
    pub fn get(&self, tenant: &TenantId) -> Option<Arc<TenantFilter>> {
        self.slots.read().expect("filters lock poisoned").get(tenant).cloned()
    }

    pub fn set(&self, tenant: TenantId, filter: Option<TenantFilter>) {
        self.put(tenant, filter.map(Arc::new));
    }

    pub fn put(&self, tenant: TenantId, filter: Option<Arc<TenantFilter>>) {
        let mut slots = self.slots.write().expect("filters lock poisoned");
        match filter {
            Some(f) => slots.insert(tenant, f),
            None => slots.remove(&tenant),
        };
    }
}

pub fn shared(plugin: Plugin) -> SharedPlugin {
    Arc::new(Mutex::new(plugin))
}

/// Loads the filters named in the config file. A plugin that cannot be
/// loaded does not stop the edge: its tenant's batches follow the policy.
/// One that compiles but finds every instance slot taken starts on a later
/// call, once a slot is free (its calls fail as `NoCapacity` until then).
pub fn load_config(config: &EdgeConfig, engine: &FilterEngine, tenants: &Tenants, metrics: &Metrics, filters: &Filters) {
    for f in &config.filters {
        let Some((tenant, _)) = tenants.get(&f.tenant) else {
            tracing::error!(tenant = %f.tenant, "filter configured for an unknown tenant; ignored");
            continue;
        };
        let limits = Limits::new(f.memory_mb << 20, Duration::from_millis(f.timeout_ms));
        let plugin = Compiled::from_file(engine, &f.path).and_then(|compiled| match Plugin::new(compiled.clone(), limits) {
            Err(FilterError::NoCapacity { message, .. }) => {
                tracing::warn!(%tenant, reason = %message, "no instance slot free for the tenant filter; it starts when one is");
                Ok(Plugin::unstarted(compiled, limits))
            }
            started => started,
        });
        let plugin = plugin.map_err(|e| e.to_string());
        match &plugin {
            Ok(p) => tracing::info!(%tenant, plugin = %p.name(), policy = ?f.policy, "tenant filter loaded"),
            Err(e) => {
                tracing::error!(%tenant, error = %e, policy = ?f.policy, "tenant filter could not be loaded");
                metrics.filter_quarantined.get_or_create(&Metrics::tenant(tenant.as_str())).set(1);
            }
        }
        let active = Loaded { version: 0, sha256: String::new(), plugin: plugin.map(shared) };
        filters.set(tenant.clone(), Some(TenantFilter::new(f.policy, active, None)));
    }
}
