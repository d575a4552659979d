//! Plugin components shared by every core (`tally.plugin_components`, by
//! sha256): the registry writes a component here before any rollout state
//! names it, and a core that lacks one locally reads it from here
//! ([`crate::registry`]).

use serde::{Deserialize, Serialize};

use super::sql;
use super::store::err;
use super::{Store, StoreError};

/// A row of `tally.plugin_components`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
struct ComponentRow {
    sha256: String,
    bytes: Vec<u8>,
    stored_ms: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct ComponentBytes {
    bytes: Vec<u8>,
}

impl Store {
    /// Stores a component's bytes under their sha256 (storing the same bytes
    /// again is harmless: one row per hash survives merges, and any is right).
    pub async fn put_plugin_component(&self, sha256: &str, bytes: &[u8], now_ms: u64) -> Result<(), StoreError> {
        let row = ComponentRow { sha256: sha256.to_string(), bytes: bytes.to_vec(), stored_ms: now_ms };
        self.insert_rows("plugin_components", &[row], None).await
    }

    /// A component's bytes, if any core stored them.
    pub async fn plugin_component(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.db.query(sql::PLUGIN_COMPONENT).bind(sha256).fetch_optional::<ComponentBytes>().await;
        Ok(row.map_err(err("reading a plugin component"))?.map(|r| r.bytes))
    }
}
