//! The plugin registry over HTTP.
//!
//! Tenant admins (admin key; the key names the tenant, so one tenant can
//! never touch another's plugins):
//! * `POST /v1/plugins?name=` with the component as the body: validate and
//!   store it as the next version;
//! * `GET /v1/plugins`: versions, active, candidate, policy;
//! * `POST /v1/plugins/rollout` with a JSON action (`activate`, `shadow`,
//!   `canary` with `percent`, `promote`, `rollback`, `policy`, `limits`);
//! * `GET /v1/plugins/comparison?from=&to=`: what the active and candidate
//!   versions answered, per version pair, with agreement.
//!
//! Edges (edge token): `GET /v1/registry/manifest` and
//! `GET /v1/registry/blobs/{sha256}`.

use std::collections::BTreeMap;

use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use tally_http::serve::{Peer, Transport};
use tally_http::{reply, RequestBody, Response};
use tally_model::batch::{CODE_FAILED, MODE_CANARY};
use tally_model::tenant::{Role, TenantId};
use tally_model::timestamp::now_ms;

use super::params::parse_range;
use super::routes::{storage_error, Api};
use crate::clickhouse::filters::VerdictCount;
use crate::registry::state::Action;
use crate::registry::RegistryError;
use crate::resolution::Resolution;
use tally_filter::manifest::sha256_hex;

/// One version pair's rollout, summed over the range.
#[derive(Serialize)]
struct Comparison {
    active_version: u32,
    candidate_version: u32,
    mode: &'static str,
    clicks: u64,
    /// Clicks both versions gave the same code.
    agree: u64,
    /// Clicks whose applied verdict came from the candidate (canary).
    applied_candidate: u64,
    /// Clicks on which a version failed.
    active_failed: u64,
    candidate_failed: u64,
    /// `agree / clicks`.
    agreement: f64,
    /// Every (active code, candidate code) pair seen.
    codes: Vec<CodePair>,
}

#[derive(Serialize)]
struct CodePair {
    active_code: u16,
    candidate_code: u16,
    clicks: u64,
}

fn summarize(rows: &[VerdictCount]) -> Vec<Comparison> {
    let mut pairs: BTreeMap<(u32, u32, u8), Vec<&VerdictCount>> = BTreeMap::new();
    for r in rows {
        pairs.entry((r.active_version, r.candidate_version, r.mode)).or_default().push(r);
    }
    pairs
        .into_iter()
        .map(|((active_version, candidate_version, mode), rows)| {
            let sum = |f: &dyn Fn(&VerdictCount) -> bool| rows.iter().filter(|r| f(r)).map(|r| r.clicks).sum::<u64>();
            let clicks = sum(&|_| true);
            let agree = sum(&|r| r.active_code == r.candidate_code);
            let mut codes: BTreeMap<(u16, u16), u64> = BTreeMap::new();
            for r in &rows {
                *codes.entry((r.active_code, r.candidate_code)).or_default() += r.clicks;
            }
            Comparison {
                active_version,
                candidate_version,
                mode: if mode == MODE_CANARY { "canary" } else { "shadow" },
                clicks,
                agree,
                applied_candidate: sum(&|r| r.applied_candidate != 0),
                active_failed: sum(&|r| r.active_code == CODE_FAILED),
                candidate_failed: sum(&|r| r.candidate_code == CODE_FAILED),
                agreement: if clicks == 0 { 0.0 } else { agree as f64 / clicks as f64 },
                codes: codes.into_iter().map(|((active_code, candidate_code), clicks)| CodePair { active_code, candidate_code, clicks }).collect(),
            }
        })
        .collect()
}

fn registry_error(e: RegistryError) -> Response {
    let status = match &e {
        RegistryError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        RegistryError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
        RegistryError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        RegistryError::Rollout(_) => StatusCode::CONFLICT,
        RegistryError::NoBlob(_) => StatusCode::NOT_FOUND,
        RegistryError::CannotStart { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        RegistryError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        RegistryError::Shared(_) => StatusCode::SERVICE_UNAVAILABLE,
        RegistryError::Conflict(_) => StatusCode::CONFLICT,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "plugin registry");
    }
    reply::error(status, e.to_string())
}

pub(super) fn unauthorized(what: &str) -> Response {
    let mut resp = reply::error(StatusCode::UNAUTHORIZED, format!("missing or unknown {what} (Authorization: Bearer <key>)"));
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

impl Api {
    fn admin(&self, req: &http::Request<RequestBody>) -> Result<TenantId, Response> {
        self.tenants.current().authenticate_bearer(reply::authorization(req.headers()), Role::Admin).cloned().ok_or_else(|| unauthorized("admin key"))
    }

    /// An edge reading the registry: the edge token, and over TLS the
    /// edge's enrolled key (the identity the batch port knows it by). In
    /// clear (`listen_http`, same host) the token alone.
    fn edge(&self, req: &http::Request<RequestBody>, peer: &Peer) -> Result<(), Response> {
        if peer.transport == Transport::Tls && peer.client_cert.as_ref().and_then(|fp| self.edges.name_of_fingerprint(fp)).is_none() {
            return Err(reply::error(
                StatusCode::UNAUTHORIZED,
                "the registry serves edges over HTTPS only with their enrolled key (the core's [[edges]]); present it as the client certificate",
            ));
        }
        let given = reply::authorization(req.headers()).and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
        match (&self.edge_token, given) {
            // Digests compared, so the time taken says nothing about the token.
            (Some(token), Some(given)) if sha256_hex(token.as_bytes()) == sha256_hex(given.as_bytes()) => Ok(()),
            (None, _) => Err(reply::error(StatusCode::NOT_FOUND, "this core has no registry.edge_token: edges cannot use its registry")),
            _ => Err(unauthorized("edge token")),
        }
    }

    #[tracing::instrument(name = "plugin_push", skip_all, fields(tenant))]
    pub(super) async fn push_plugin(&self, req: http::Request<RequestBody>) -> Response {
        let tenant = match self.admin(&req) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        tracing::Span::current().record("tenant", tenant.as_str());
        let name = tally_http::query::get(req.uri().query(), "name").unwrap_or_else(|| "plugin.wasm".into());
        let (_, bytes) = match reply::read_body(req, self.registry.max_bytes()).await {
            Ok(read) => read,
            Err(e) => return e.into_response(),
        };
        match self.registry.push(tenant.as_str(), &name, bytes.to_vec(), now_ms()).await {
            Ok(pushed) => {
                tracing::info!(version = pushed.version, sha256 = %pushed.sha256, created = pushed.created, "plugin uploaded");
                reply::json(if pushed.created { StatusCode::CREATED } else { StatusCode::OK }, &pushed)
            }
            Err(e) => registry_error(e),
        }
    }

    pub(super) fn plugin_state(&self, req: &http::Request<RequestBody>) -> Response {
        match self.admin(req) {
            Ok(tenant) => reply::json(StatusCode::OK, &self.registry.state(tenant.as_str())),
            Err(resp) => resp,
        }
    }

    #[tracing::instrument(name = "plugin_rollout", skip_all, fields(tenant))]
    pub(super) async fn rollout(&self, req: http::Request<RequestBody>) -> Response {
        let tenant = match self.admin(&req) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        tracing::Span::current().record("tenant", tenant.as_str());
        let (_, body) = match reply::read_body(req, 4096).await {
            Ok(read) => read,
            Err(e) => return e.into_response(),
        };
        let action: Action = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => return reply::error(StatusCode::BAD_REQUEST, format!("not a rollout action: {e}")),
        };
        match self.registry.apply(tenant.as_str(), action).await {
            Ok(state) => {
                tracing::info!(?action, "plugin rollout");
                reply::json(StatusCode::OK, &state)
            }
            Err(e) => registry_error(e),
        }
    }

    pub(super) async fn comparison(&self, req: &http::Request<RequestBody>) -> Response {
        let tenant = match self.admin(req) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        let range = match parse_range(req.uri().query(), Resolution::Minute, now_ms()) {
            Ok(r) => r,
            Err(reason) => return reply::error(StatusCode::BAD_REQUEST, reason),
        };
        match self.store.plugin_comparison(tenant.as_str(), range.from, range.to).await {
            Ok(rows) => reply::json(
                StatusCode::OK,
                &serde_json::json!({ "from": range.from as u64 * 1000, "to": range.to as u64 * 1000, "versions": summarize(&rows) }),
            ),
            Err(e) => storage_error(e),
        }
    }

    pub(super) fn manifest(&self, req: &http::Request<RequestBody>, peer: &Peer) -> Response {
        match self.edge(req, peer) {
            Ok(()) => reply::json(StatusCode::OK, &self.registry.manifest()),
            Err(resp) => resp,
        }
    }

    pub(super) async fn blob(&self, req: &http::Request<RequestBody>, peer: &Peer, sha256: &str) -> Response {
        if let Err(resp) = self.edge(req, peer) {
            return resp;
        }
        match self.registry.blob(sha256).await {
            Ok(bytes) => reply::with_type(StatusCode::OK, bytes.into(), "application/wasm"),
            Err(e) => registry_error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_agreement_per_version_pair() {
        let row = |mode, applied, a, c, clicks| VerdictCount {
            active_version: 1,
            candidate_version: 2,
            mode,
            applied_candidate: applied,
            active_code: a,
            candidate_code: c,
            clicks,
        };
        let rows = [row(MODE_CANARY, 0, 0, 0, 80), row(MODE_CANARY, 1, 0, 0, 10), row(MODE_CANARY, 1, 0, 3, 5), row(MODE_CANARY, 0, 0, CODE_FAILED, 5)];
        let s = summarize(&rows);
        assert_eq!(s.len(), 1);
        let c = &s[0];
        assert_eq!((c.clicks, c.agree, c.applied_candidate, c.candidate_failed, c.active_failed), (100, 90, 15, 5, 0));
        assert_eq!(c.mode, "canary");
        assert!((c.agreement - 0.9).abs() < 1e-9);
        assert_eq!(c.codes.len(), 3);
    }
}
