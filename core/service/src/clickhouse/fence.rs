//! The lease's fence on ClickHouse (`crate::lease::fence`): kill, and wait
//! for, every running insert of an edge that names another epoch, on every
//! server the core knows (a stale owner may have used another one).

use std::future::Future;
use std::pin::Pin;

use super::sql;
use super::store::{err, Store, StoreError};
use crate::lease::fence::stale_patterns;
use crate::lease::state::Epoch;
use crate::lease::zk::Fence;

/// The core's store and, in cluster mode, a connection to each other server.
pub struct EveryServer(pub Vec<Store>);

impl Store {
    async fn kill_stale_inserts(&self, edge: &str, epoch: Epoch) -> Result<(), StoreError> {
        let (any, spared) = stale_patterns(edge, epoch);
        self.db.query(sql::KILL_STALE_INSERTS).bind(any).bind(spared).execute().await.map_err(err("killing a stale owner's inserts"))
    }
}

impl Fence for EveryServer {
    fn kill_stale<'a>(&'a self, edge: &'a str, epoch: Epoch) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            for store in &self.0 {
                store.kill_stale_inserts(edge, epoch).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}
