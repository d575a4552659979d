//! The registry shared by several cores (`[zookeeper]` configured): the
//! rollout state of each tenant in ZooKeeper, component bytes in ClickHouse
//! (`tally.plugin_components`).
//!
//! # Why there
//! * Rollout state is small (a tenant's versions, active, candidate, policy,
//!   limits) and must change by compare-and-set: two cores taking a step for
//!   one tenant at once must not lose one silently. A ZooKeeper `setData`
//!   with the version read is that compare; the loser gets
//!   [`RegistryError::Conflict`] and changes nothing. ClickHouse has no such
//!   compare (an append-only "latest wins" table would drop one of two
//!   racing steps without telling anyone).
//! * Components are up to `max_plugin_bytes` (16 MiB): far past ZooKeeper's
//!   1 MB node limit, so they go to ClickHouse by sha256 (replicated with the
//!   quorum insert in cluster mode), always before a state names them.
//!   Edges verify the sha256 of what they fetch, and so does a core filling
//!   its cache.
//!
//! # Layout in ZooKeeper (under the `[zookeeper]` root)
//! `registry/tenants/<node name of tenant>`: persistent, JSON [`Stored`].

use std::collections::BTreeMap;
use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode};

use super::state::TenantState;
use super::RegistryError;
use crate::clickhouse::Store;
use crate::config::ZooKeeperSection;
use crate::lease::fence::node_name;

/// One tenant's node: its name (node names may be encoded) and state.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    tenant: String,
    state: TenantState,
}

/// A tenant's state as read, with the node version a change must match
/// (`None`: no node yet, a change creates it).
pub struct Versioned {
    pub state: TenantState,
    pub version: Option<i32>,
}

pub struct Shared {
    hosts: String,
    dir: String,
    session_timeout: Duration,
    /// The registry's own session (it holds no ephemeral nodes, so a new
    /// session after expiry loses nothing).
    client: tokio::sync::Mutex<Option<Client>>,
    store: Store,
}

fn zk(what: &str) -> impl FnOnce(zookeeper_client::Error) -> RegistryError + '_ {
    move |e| RegistryError::Shared(format!("ZooKeeper, {what}: {e}"))
}

impl Shared {
    pub fn new(section: &ZooKeeperSection, store: Store) -> Shared {
        Shared {
            hosts: section.hosts.clone(),
            dir: format!("{}/registry/tenants", section.root.trim_end_matches('/')),
            session_timeout: Duration::from_millis(section.session_timeout_ms),
            client: tokio::sync::Mutex::new(None),
            store,
        }
    }

    async fn client(&self) -> Result<Client, RegistryError> {
        let mut held = self.client.lock().await;
        if let Some(client) = held.as_ref().filter(|c| !c.state().is_terminated()) {
            return Ok(client.clone());
        }
        let connecting = Client::connector().with_session_timeout(self.session_timeout).connect(&self.hosts);
        let client = tokio::time::timeout(self.session_timeout, connecting)
            .await
            .map_err(|_| RegistryError::Shared(format!("ZooKeeper at {} did not answer within {:?}", self.hosts, self.session_timeout)))?
            .map_err(zk("connecting"))?;
        client.mkdir(&self.dir, &CreateMode::Persistent.with_acls(Acls::anyone_all())).await.map_err(zk("creating the registry node"))?;
        *held = Some(client.clone());
        Ok(client)
    }

    fn path(&self, tenant: &str) -> String {
        format!("{}/{}", self.dir, node_name(tenant))
    }

    /// The tenant's state as every core sees it now.
    pub async fn read(&self, tenant: &str) -> Result<Versioned, RegistryError> {
        let client = self.client().await?;
        match client.get_data(&self.path(tenant)).await {
            Ok((data, stat)) => Ok(Versioned { state: decode(&data)?.state, version: Some(stat.version) }),
            Err(zookeeper_client::Error::NoNode) => Ok(Versioned { state: TenantState::default(), version: None }),
            Err(e) => Err(zk("reading a tenant's plugins")(e)),
        }
    }

    /// Replaces the tenant's state if nobody changed it since `read`
    /// returned `version`; otherwise [`RegistryError::Conflict`].
    pub async fn write(&self, tenant: &str, state: &TenantState, version: Option<i32>) -> Result<(), RegistryError> {
        let client = self.client().await?;
        let data = serde_json::to_vec(&Stored { tenant: tenant.to_string(), state: state.clone() }).expect("state serializes");
        let path = self.path(tenant);
        let written = match version {
            Some(v) => client.set_data(&path, &data, Some(v)).await.map(drop),
            None => client.create(&path, &data, &CreateMode::Persistent.with_acls(Acls::anyone_all())).await.map(drop),
        };
        match written {
            Ok(()) => Ok(()),
            Err(zookeeper_client::Error::BadVersion | zookeeper_client::Error::NodeExists) => Err(RegistryError::Conflict(tenant.to_string())),
            Err(e) => Err(zk("saving a tenant's plugins")(e)),
        }
    }

    /// Every tenant's state.
    pub async fn all(&self) -> Result<BTreeMap<String, TenantState>, RegistryError> {
        let client = self.client().await?;
        let mut states = BTreeMap::new();
        for child in client.list_children(&self.dir).await.map_err(zk("listing tenants"))? {
            match client.get_data(&format!("{}/{child}", self.dir)).await {
                Ok((data, _)) => match decode(&data) {
                    Ok(stored) => {
                        states.insert(stored.tenant, stored.state);
                    }
                    Err(e) => {
                        tracing::error!(node = %child, error = %e, "shared plugin registry node unreadable; that tenant's plugins stay as this core last saw them")
                    }
                },
                Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => return Err(zk("reading a tenant's plugins")(e)),
            }
        }
        Ok(states)
    }

    pub async fn put_component(&self, sha256: &str, bytes: &[u8], now_ms: u64) -> Result<(), RegistryError> {
        self.store.put_plugin_component(sha256, bytes, now_ms).await.map_err(|e| RegistryError::Shared(format!("ClickHouse, storing a component: {e}")))
    }

    pub async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        self.store.plugin_component(sha256).await.map_err(|e| RegistryError::Shared(format!("ClickHouse, reading a component: {e}")))
    }
}

fn decode(data: &[u8]) -> Result<Stored, RegistryError> {
    let stored: Stored = serde_json::from_slice(data).map_err(|e| RegistryError::Shared(format!("a tenant's shared state is not valid: {e}")))?;
    if !stored.state.is_consistent() {
        return Err(RegistryError::Shared(format!("tenant {}'s shared state names a version it does not list", stored.tenant)));
    }
    Ok(stored)
}
