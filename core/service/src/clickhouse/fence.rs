//! The lease's fence on ClickHouse (`crate::lease::fence`): kill, and wait
//! for, every running insert of an edge that names another epoch, on every
//! server the core knows (a stale owner may have used another one). Each
//! server gets its own connection per fence (the core's clients move between
//! servers, `super::failover`); one that cannot be reached is logged and
//! skipped (its queries died with it, or it is cut off and a stale insert's
//! bytes there are dropped by block deduplication, `super::cluster`), while a
//! KILL that a live server refuses still fails the fence.

use std::future::Future;
use std::pin::Pin;

use super::sql;
use super::store::{err, Store, StoreError};
use crate::lease::fence::stale_patterns;
use crate::lease::state::Epoch;
use crate::lease::zk::Fence;

/// Every server of the core's configuration (`[clickhouse] url` and
/// `servers`), reached with these credentials.
pub struct EveryServer {
    pub urls: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl Store {
    async fn kill_stale_inserts(&self, edge: &str, epoch: Epoch) -> Result<(), StoreError> {
        let (any, spared) = stale_patterns(edge, epoch);
        self.db.query(sql::KILL_STALE_INSERTS).bind(any).bind(spared).execute().await.map_err(err("killing a stale owner's inserts"))
    }
}

impl Fence for EveryServer {
    fn kill_stale<'a>(&'a self, edge: &'a str, epoch: Epoch) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            for url in &self.urls {
                match Store::connect(url, self.user.as_deref(), self.password.as_deref()).await {
                    Ok(store) => store.kill_stale_inserts(edge, epoch).await.map_err(|e| e.to_string())?,
                    Err(e) if e.is_unreachable() => {
                        tracing::warn!(server = %url, %edge, error = %e, "cannot reach a ClickHouse server to fence a stale lease owner's inserts there: skipped")
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_cannot_be_reached_does_not_fail_the_fence() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let fence = EveryServer { urls: vec![format!("http://127.0.0.1:{port}")], user: None, password: None };
        assert_eq!(fence.kill_stale("edge-1", 7).await, Ok(()));
    }
}
