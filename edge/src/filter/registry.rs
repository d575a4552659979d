//! Keeps this edge's tenant filters in step with the central registry.
//!
//! Every `poll_ms` the edge fetches the manifest (`GET /v1/registry/manifest`)
//! and, for each tenant whose versions changed, fetches the components it
//! lacks by hash, verifies their sha256, compiles them and swaps the
//! tenant's slot. A version that cannot be fetched or verified leaves the
//! tenant's current slot in place until a later poll succeeds; so does one
//! that cannot be compiled or started here (one that finds no instance slot
//! free is swapped in and starts once a slot is). A tenant the registry no longer
//! lists goes back to the filter of the edge's config file, if any. Every
//! request to the registry has a deadline, so a hung core never stalls the
//! edge (or its shutdown).
//!
//! # On-disk layout
//! ```text
//! <spool_dir>/plugins/manifest.json    the last manifest applied
//! <spool_dir>/plugins/<sha256>.wasm    components, verified before use
//! ```
//! At start the cached manifest is applied before the edge takes requests,
//! so a restarted edge runs its tenants' filters even while the core is down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use tally_filter::host::{Compiled, FilterEngine, FilterError, Limits, Plugin, SharedPlugin};
use tally_filter::manifest::{is_sha256, sha256_hex, Manifest, TenantPlugins, VersionRef};
use tally_http::client::ApiClient;
use tally_model::durable_file::write_atomic;
use tally_model::tenant::{LiveTenants, TenantId};

use super::slot::{shared, Filters, Loaded, TenantFilter};
use crate::metrics::{Metrics, ResultLabel, RoleLabel};

/// Longest a request to the registry may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RegistrySync {
    url: String,
    token: String,
    poll: Duration,
    cache_dir: PathBuf,
    limits: Limits,
    engine: FilterEngine,
    /// As last reloaded: a tenant added by a reload gets its filters at the next poll.
    tenants: Arc<LiveTenants>,
    filters: Arc<Filters>,
    metrics: Arc<Metrics>,
    /// Over `https://` it trusts only the core's certificate (the one pinned for QUIC).
    client: ApiClient,
    /// What each tenant's slot was built from.
    applied: HashMap<String, TenantPlugins>,
    /// The slots from the edge's config file, for tenants the registry drops.
    from_config: HashMap<TenantId, Arc<TenantFilter>>,
}

impl RegistrySync {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        url: &str,
        client: ApiClient,
        token: &str,
        poll: Duration,
        cache_dir: PathBuf,
        limits: Limits,
        engine: FilterEngine,
        tenants: Arc<LiveTenants>,
        filters: Arc<Filters>,
        metrics: Arc<Metrics>,
    ) -> RegistrySync {
        RegistrySync {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            poll,
            cache_dir,
            limits,
            engine,
            metrics,
            client,
            applied: HashMap::new(),
            from_config: tenants.current().ids().iter().filter_map(|t| Some((t.clone(), filters.get(t)?))).collect(),
            tenants,
            filters,
        }
    }

    /// GET with the edge token, under [`REQUEST_TIMEOUT`].
    async fn get(&self, path: &str) -> Result<bytes::Bytes, String> {
        let url = format!("{}{path}", self.url);
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, self.client.get(&url, Some(&self.token)))
            .await
            .map_err(|_| format!("GET {url}: no answer within {REQUEST_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if !reply.status.is_success() {
            return Err(format!("GET {url}: HTTP {}: {}", reply.status, reply.text()));
        }
        Ok(reply.body)
    }

    /// Applies the cached manifest, if any (start-up, before serving).
    pub async fn apply_cached(&mut self) {
        let Ok(text) = std::fs::read(self.cache_dir.join("manifest.json")) else { return };
        match serde_json::from_slice::<Manifest>(&text) {
            Ok(m) => {
                self.apply(m).await;
            }
            Err(e) => tracing::warn!(error = %e, "cached plugin manifest unreadable; waiting for the registry"),
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let polled = tokio::select! {
                polled = self.poll_once() => polled,
                _ = shutdown.changed() => return,
            };
            let result = match polled {
                Ok(true) => "applied",
                Ok(false) => "unchanged",
                Err(e) => {
                    tracing::warn!(error = %e, "plugin registry poll failed");
                    "error"
                }
            };
            self.metrics.registry_syncs.get_or_create(&ResultLabel { result }).inc();
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One poll: true if some tenant's filter changed.
    pub async fn poll_once(&mut self) -> Result<bool, String> {
        let body = self.get("/v1/registry/manifest").await?;
        let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| format!("manifest: {e}"))?;
        let changed = self.apply(manifest.clone()).await;
        if changed {
            let path = self.cache_dir.join("manifest.json");
            let json = serde_json::to_vec(&manifest).expect("manifest serializes");
            if let Err(e) = std::fs::create_dir_all(&self.cache_dir).and_then(|_| write_atomic(&path, &json)) {
                tracing::warn!(error = %e, "could not cache the plugin manifest");
            }
        }
        Ok(changed)
    }

    async fn apply(&mut self, manifest: Manifest) -> bool {
        let mut changed = false;
        let listed: Vec<String> = manifest.tenants.iter().map(|t| t.tenant.clone()).collect();
        for entry in manifest.tenants {
            if self.applied.get(&entry.tenant) == Some(&entry) {
                continue;
            }
            let Some(tenant) = self.tenants.current().get(&entry.tenant).map(|(t, _)| t.clone()) else { continue };
            match self.build(&entry).await {
                Ok(filter) => {
                    let (active, candidate) = (filter.active.version, filter.candidate.as_ref().map(|c| (c.0.version, c.1)));
                    // Swapped first: whoever sees the new version in the
                    // metrics or the log finds it running.
                    self.filters.set(tenant.clone(), Some(filter));
                    let label = |role| RoleLabel { tenant: tenant.to_string(), role };
                    self.metrics.filter_version.get_or_create(&label("active")).set(active as i64);
                    self.metrics.filter_version.get_or_create(&label("candidate")).set(candidate.map_or(0, |c| c.0 as i64));
                    tracing::info!(%tenant, active, ?candidate, "tenant filter swapped");
                    self.applied.insert(entry.tenant.clone(), entry);
                    changed = true;
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "plugin version not applied; keeping the current one"),
            }
        }
        let gone: Vec<String> = self.applied.keys().filter(|t| !listed.contains(t)).cloned().collect();
        for t in gone {
            self.applied.remove(&t);
            if let Some(tenant) = self.tenants.current().get(&t).map(|(t, _)| t.clone()) {
                tracing::info!(%tenant, config_file = self.from_config.contains_key(&tenant), "tenant filter removed by the registry");
                self.filters.put(tenant.clone(), self.from_config.get(&tenant).cloned());
                changed = true;
            }
        }
        changed
    }

    async fn build(&self, entry: &TenantPlugins) -> Result<TenantFilter, String> {
        // Live instances carry over only while their limits stay the same.
        let same_limits = self.applied.get(&entry.tenant).is_some_and(|e| e.limits == entry.limits);
        let current = self.tenants.current().get(&entry.tenant).and_then(|(t, _)| self.filters.get(t)).filter(|_| same_limits);
        let limits = self.limits_for(entry);
        let active = self.load(&entry.active, current.as_deref(), limits).await?;
        let candidate = match &entry.candidate {
            Some(c) => Some((self.load(&c.version, current.as_deref(), limits).await?, c.mode)),
            None => None,
        };
        Ok(TenantFilter::new(entry.policy, active, candidate))
    }

    /// The tenant's limits, capped at this edge's configured ones.
    fn limits_for(&self, entry: &TenantPlugins) -> Limits {
        match entry.limits {
            None => self.limits,
            Some(t) => t.limits().capped(self.limits),
        }
    }

    /// A live plugin for a version: the tenant's current instance of the same
    /// bytes if it has one (its state carries over, e.g. on promote), else a
    /// new one from a verified component.
    async fn load(&self, v: &VersionRef, current: Option<&TenantFilter>, limits: Limits) -> Result<Loaded, String> {
        let running = current.into_iter().flat_map(|c| std::iter::once(&c.active).chain(c.candidate.as_ref().map(|(l, _)| l)));
        // A quarantined instance is not carried over: a new rollout step is a
        // fresh start; nor is one poisoned by a host panic.
        let live = |p: &&SharedPlugin| p.lock().is_ok_and(|p| !p.is_quarantined());
        if let Some(plugin) = running.filter(|l| l.sha256 == v.sha256).filter_map(|l| l.plugin.as_ref().ok()).find(live) {
            return Ok(Loaded { version: v.version, sha256: v.sha256.clone(), plugin: Ok(plugin.clone()) });
        }
        let bytes = self.component(&v.sha256).await?;
        let (engine, name) = (self.engine.clone(), format!("v{}-{}", v.version, &v.sha256[..12.min(v.sha256.len())]));
        let plugin = tokio::task::spawn_blocking(move || -> Result<SharedPlugin, String> {
            let compiled = Compiled::new(&engine, &name, &bytes).map_err(|e| e.to_string())?;
            match Plugin::new(compiled.clone(), limits) {
                Ok(p) => Ok(shared(p)),
                // The core saw it start; it starts here once a slot is free.
                Err(FilterError::NoCapacity { message, .. }) => {
                    tracing::warn!(plugin = %name, reason = %message, "no instance slot free for the plugin; it starts when one is");
                    Ok(shared(Plugin::unstarted(compiled, limits)))
                }
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .map_err(|e| format!("compile task failed: {e}"))??;
        Ok(Loaded { version: v.version, sha256: v.sha256.clone(), plugin: Ok(plugin) })
    }

    /// A component's bytes, from the cache or the registry, verified.
    async fn component(&self, sha256: &str) -> Result<Vec<u8>, String> {
        if !is_sha256(sha256) {
            return Err(format!("malformed sha256 {sha256:?} in the manifest"));
        }
        let path = self.cache_dir.join(format!("{sha256}.wasm"));
        if let Ok(bytes) = std::fs::read(&path) {
            if sha256_hex(&bytes) == sha256 {
                return Ok(bytes);
            }
            tracing::warn!(path = %path.display(), "cached component does not match its hash; fetching it again");
        }
        let body = self.get(&format!("/v1/registry/blobs/{sha256}")).await?;
        let got = sha256_hex(&body);
        if got != sha256 {
            return Err(format!("component {sha256} arrived with sha256 {got}; refused"));
        }
        std::fs::create_dir_all(&self.cache_dir).and_then(|_| write_atomic(&path, &body)).map_err(|e| format!("caching {}: {e}", path.display()))?;
        Ok(body.to_vec())
    }
}
