//! The edges over HTTP (see `crate::edges`):
//!
//! * `GET /v1/edges`, `GET /v1/edges/{id}`: every known edge's status (ops
//!   token or any tenant's admin key: edges are shared, the answer holds no
//!   tenant's data);
//! * `POST /v1/edges/{id}/retire[?force=true]`, `POST /v1/edges/{id}/reinstate`
//!   (ops token only: retiring changes every tenant's billing finality).

use http::StatusCode;
use serde::Serialize;

use tally_filter::manifest::sha256_hex;
use tally_http::{reply, RequestBody, Response};
use tally_model::tenant::Role;
use tally_model::timestamp::now_ms;

use super::plugins::unauthorized;
use super::routes::{storage_error, Api};
use crate::billing::plan::final_before;
use crate::edges::status::{retire_check, EdgeStatus};

#[derive(Serialize)]
struct Edges {
    now_ms: u64,
    /// Every hour ending at or before this is final (or about to be, at the
    /// finalizer's next pass); `None` while no unretired edge has committed.
    final_before_ms: Option<u64>,
    edges: Vec<EdgeStatus>,
}

impl Api {
    fn ops(&self, req: &http::Request<RequestBody>) -> Result<(), Response> {
        let given = reply::authorization(req.headers()).and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
        match (&self.ops_token, given) {
            // Digests compared, so the time taken says nothing about the token.
            (Some(token), Some(given)) if sha256_hex(token.as_bytes()) == sha256_hex(given.as_bytes()) => Ok(()),
            (None, _) => Err(reply::error(StatusCode::FORBIDDEN, "this core has no [ops] token: set one in its config to retire or reinstate edges")),
            _ => Err(unauthorized("ops token")),
        }
    }

    fn ops_or_admin(&self, req: &http::Request<RequestBody>) -> Result<(), Response> {
        let admin = self.tenants.current().authenticate_bearer(reply::authorization(req.headers()), Role::Admin).is_some();
        if admin || self.ops(req).is_ok() {
            return Ok(());
        }
        Err(unauthorized("ops token or tenant admin key"))
    }

    pub(super) async fn edges(&self, req: &http::Request<RequestBody>) -> Response {
        if let Err(resp) = self.ops_or_admin(req) {
            return resp;
        }
        let now = now_ms();
        match self.roster.statuses(&self.store, now).await {
            Ok(edges) => {
                let watermarks: Vec<u64> = edges.iter().filter(|e| e.holds_finality).filter_map(|e| e.watermark_ms).collect();
                let final_before_ms = final_before(&watermarks).map(|s| s as u64 * 1000);
                reply::json(StatusCode::OK, &Edges { now_ms: now, final_before_ms, edges })
            }
            Err(e) => storage_error(e),
        }
    }

    pub(super) async fn edge_status(&self, req: &http::Request<RequestBody>, id: &str) -> Response {
        if let Err(resp) = self.ops_or_admin(req) {
            return resp;
        }
        match self.status_of(id).await {
            Ok(Some(status)) => reply::json(StatusCode::OK, &status),
            Ok(None) => reply::error(StatusCode::NOT_FOUND, format!("no edge {id:?}: it is not enrolled in this core's [[edges]] and never shipped a batch")),
            Err(resp) => resp,
        }
    }

    /// The committed watermarks billing finality waits for (retired edges left out).
    pub(super) async fn unretired_watermarks(&self) -> Result<Vec<crate::clickhouse::store::EdgeWatermark>, Response> {
        let (watermarks, retirements) = tokio::try_join!(self.store.edge_watermarks(), self.store.edge_retirements()).map_err(storage_error)?;
        Ok(crate::edges::status::unretired(watermarks, &retirements))
    }

    async fn status_of(&self, id: &str) -> Result<Option<EdgeStatus>, Response> {
        let all = self.roster.statuses(&self.store, now_ms()).await.map_err(storage_error)?;
        Ok(all.into_iter().find(|s| s.edge == id))
    }

    /// Retires a drained edge (or any known edge with `force=true`);
    /// retiring a retired edge changes nothing.
    #[tracing::instrument(name = "edge_retire", skip(self, req))]
    pub(super) async fn retire(&self, req: &http::Request<RequestBody>, id: &str) -> Response {
        if let Err(resp) = self.ops(req) {
            return resp;
        }
        let force = tally_http::query::get(req.uri().query(), "force").is_some_and(|v| v == "true" || v == "1");
        // Whether another core serves the edge must be known, not guessed.
        if let (false, Err(e)) = (force, self.roster.lease_owners().await) {
            let why = format!("cannot tell whether another core serves edge {id:?}: the edge leases in ZooKeeper cannot be read ({e}); try again when ZooKeeper answers, or retire with --force (force=true)");
            return reply::error(StatusCode::SERVICE_UNAVAILABLE, why);
        }
        let status = match self.status_of(id).await {
            Ok(status) => status,
            Err(resp) => return resp,
        };
        if let Err(refusal) = retire_check(id, status.as_ref(), self.roster.core_id(), force) {
            let code = if refusal.is_unknown() { StatusCode::NOT_FOUND } else { StatusCode::CONFLICT };
            return reply::error(code, refusal.to_string());
        }
        if !status.as_ref().is_some_and(|s| s.retired) {
            let reason = if force { "retired with force" } else { "retired drained" };
            if let Err(e) = self.store.set_edge_retired(id, true, now_ms(), reason).await {
                return storage_error(e);
            }
            self.roster.set_retired(id, true);
            tracing::info!(edge = id, force, "edge retired: it no longer holds billing finality back");
        }
        self.changed(id).await
    }

    /// Undoes a retirement: the edge holds finality back again from its
    /// committed watermark, and its batches commit.
    #[tracing::instrument(name = "edge_reinstate", skip(self, req))]
    pub(super) async fn reinstate(&self, req: &http::Request<RequestBody>, id: &str) -> Response {
        if let Err(resp) = self.ops(req) {
            return resp;
        }
        match self.status_of(id).await {
            Ok(Some(s)) if s.retired => {
                if let Err(e) = self.store.set_edge_retired(id, false, now_ms(), "reinstated").await {
                    return storage_error(e);
                }
                self.roster.set_retired(id, false);
                tracing::info!(edge = id, "edge reinstated: it holds billing finality back again");
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return reply::error(StatusCode::NOT_FOUND, format!("no edge {id:?}: it is not enrolled in this core's [[edges]] and never shipped a batch"))
            }
            Err(resp) => return resp,
        }
        self.changed(id).await
    }

    async fn changed(&self, id: &str) -> Response {
        match self.status_of(id).await {
            Ok(Some(status)) => reply::json(StatusCode::OK, &status),
            Ok(None) => reply::error(StatusCode::NOT_FOUND, format!("no edge {id:?}")),
            Err(resp) => resp,
        }
    }
}
