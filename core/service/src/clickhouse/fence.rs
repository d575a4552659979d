//! The lease's fence on ClickHouse (`crate::lease::fence`): kill, and wait
//! for, every running insert of an edge that names another epoch.

use std::future::Future;
use std::pin::Pin;

use super::sql;
use super::store::{err, Store};
use crate::lease::fence::stale_patterns;
use crate::lease::state::Epoch;
use crate::lease::zk::Fence;

impl Fence for Store {
    fn kill_stale<'a>(&'a self, edge: &'a str, epoch: Epoch) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let (any, spared) = stale_patterns(edge, epoch);
            self.db
                .query(sql::KILL_STALE_INSERTS)
                .bind(any)
                .bind(spared)
                .execute()
                .await
                .map_err(err("killing a stale owner's inserts"))
                .map_err(|e| e.to_string())
        })
    }
}
