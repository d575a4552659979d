//! The edge's HTTP routes: `POST /v1/clicks`, `GET /healthz`, `GET /metrics`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Method, StatusCode};
use hyper::body::Incoming;

use tally_http::{reply, serve::Handler, Response};
use tally_model::tenant::{Role, Tenants};

use super::body::{self, Format};
use super::event::parse_click;
use super::pipeline::Pipeline;
use crate::metrics::{Metrics, StatusLabel};

pub struct Ingest {
    pub tenants: Tenants,
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Handler for Ingest {
    async fn handle(self: Arc<Self>, req: http::Request<Incoming>, _peer: SocketAddr) -> Response {
        let resp = match (req.method(), req.uri().path()) {
            (&Method::POST, "/v1/clicks") => self.post_clicks(req).await,
            (_, "/v1/clicks") => reply::method_not_allowed("POST"),
            (&Method::GET, "/healthz") => reply::with_type(StatusCode::OK, "ok\n".into(), "text/plain"),
            (&Method::GET, "/metrics") => reply::metrics(&self.metrics.registry),
            (_, "/healthz" | "/metrics") => reply::method_not_allowed("GET"),
            _ => reply::not_found(),
        };
        self.metrics.requests.get_or_create(&StatusLabel { code: resp.status().as_u16() }).inc();
        resp
    }
}

impl Ingest {
    #[tracing::instrument(name = "post_clicks", skip_all, fields(tenant, events))]
    async fn post_clicks(&self, req: http::Request<Incoming>) -> Response {
        let Some(tenant) = self.tenants.authenticate_bearer(reply::authorization(req.headers()), Role::Ingest).cloned() else {
            let mut resp = reply::error(StatusCode::UNAUTHORIZED, "missing or unknown ingest key (Authorization: Bearer <key>)");
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        };
        tracing::Span::current().record("tenant", tenant.as_str());
        let (parts, bytes) = match reply::read_body(req, self.max_body_bytes).await {
            Ok(read) => read,
            Err(e) => return e.into_response(),
        };
        let format = Format::from_content_type(parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()));
        let raw = match body::split(&bytes, format) {
            Ok(raw) => raw,
            Err(reason) => return reply::error(StatusCode::BAD_REQUEST, reason),
        };
        tracing::Span::current().record("events", raw.len());
        // Validate outside the lock; only dedup and aggregation need it.
        let clicks: Vec<_> = raw.into_iter().map(|r| r.and_then(|raw| parse_click(&tenant, raw))).collect();
        let (outcome, dedup_len, dedup_bytes, evicted) = {
            let mut pipeline = self.pipeline.lock().expect("pipeline lock poisoned");
            let evicted_before = pipeline.dedup().evicted_early();
            let outcome = pipeline.ingest(&tenant, clicks, now_ms());
            let d = pipeline.dedup();
            (outcome, d.len(), d.memory_bytes(), d.evicted_early() - evicted_before)
        };
        let label = Metrics::tenant(tenant.as_str());
        let m = &self.metrics;
        m.events_accepted.get_or_create(&label).inc_by(outcome.accepted);
        m.events_duplicate.get_or_create(&label).inc_by(outcome.duplicates);
        m.events_rejected.get_or_create(&label).inc_by(outcome.rejected.len() as u64);
        m.dedup_entries.set(dedup_len as i64);
        m.dedup_memory_bytes.set(dedup_bytes as i64);
        m.dedup_evicted_early.inc_by(evicted);
        reply::json(StatusCode::OK, &outcome)
    }
}
