//! The edge's HTTP routes: `POST /v1/clicks`, `GET /healthz`, `GET /metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Method, StatusCode};
use tokio::sync::{mpsc, oneshot};

use tally_http::serve::{Handler, Peer, Transport};
use tally_http::{reply, RequestBody, Response};
use tally_model::tenant::{Role, Tenants};

use super::body::{self, Format};
use super::event::parse_click;
use super::pipeline::{Admitted, Pipeline};
use crate::metrics::{Metrics, RefusedLabel, StatusLabel};
use crate::spool::group_commit::Command;

/// What a client is told to wait before retrying when the edge is saturated.
const RETRY_AFTER_SECS: &str = "5";

pub struct Ingest {
    pub tenants: Tenants,
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// `Some` in durable ack mode: the WAL thread.
    pub wal: Option<mpsc::Sender<Command>>,
    /// Set by the shipper while the spool cannot take more batches.
    pub backpressure: Arc<AtomicBool>,
    /// `Alt-Svc` value advertising HTTP/3 on TCP responses, if it is served.
    pub alt_svc: Option<HeaderValue>,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Handler for Ingest {
    async fn handle(self: Arc<Self>, req: http::Request<RequestBody>, peer: Peer) -> Response {
        let mut resp = match (req.method(), req.uri().path()) {
            (&Method::POST, "/v1/clicks") => self.post_clicks(req).await,
            (_, "/v1/clicks") => reply::method_not_allowed("POST"),
            (&Method::GET, "/healthz") => reply::with_type(StatusCode::OK, "ok\n".into(), "text/plain"),
            (&Method::GET, "/metrics") => {
                if let Some(n) = tally_http::h3::udp_rcvbuf_errors() {
                    self.metrics.udp_rcvbuf_errors.set(n as i64);
                }
                reply::metrics(&self.metrics.registry)
            }
            (_, "/healthz" | "/metrics") => reply::method_not_allowed("GET"),
            _ => reply::not_found(),
        };
        if let (Some(alt_svc), Transport::Tcp | Transport::Tls) = (&self.alt_svc, peer.transport) {
            resp.headers_mut().insert(header::ALT_SVC, alt_svc.clone());
        }
        let label = StatusLabel { code: resp.status().as_u16(), transport: peer.transport.as_str() };
        self.metrics.requests.get_or_create(&label).inc();
        resp
    }
}

fn unavailable(reason: impl Into<String>) -> Response {
    let mut resp = reply::error(StatusCode::SERVICE_UNAVAILABLE, reason);
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    resp
}

impl Ingest {
    #[tracing::instrument(name = "post_clicks", skip_all, fields(tenant, events))]
    async fn post_clicks(&self, req: http::Request<RequestBody>) -> Response {
        let Some(tenant) = self.tenants.authenticate_bearer(reply::authorization(req.headers()), Role::Ingest).cloned() else {
            let mut resp = reply::error(StatusCode::UNAUTHORIZED, "missing or unknown ingest key (Authorization: Bearer <key>)");
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        };
        tracing::Span::current().record("tenant", tenant.as_str());
        if self.backpressure.load(Ordering::Relaxed) {
            return unavailable("the edge's spool is full while the core catches up; retry later");
        }
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
        // Validate outside the lock; only admission needs it.
        let clicks: Vec<_> = raw.into_iter().map(|r| r.and_then(|raw| parse_click(&tenant, raw))).collect();
        let (outcome, admitted) = self.pipeline.lock().expect("pipeline lock poisoned").admit(&tenant, clicks, now_ms());
        if let Some(admitted) = admitted {
            let refused = count_refused(&admitted);
            if let Err(reason) = self.make_durable(admitted).await {
                return unavailable(format!("clicks not acknowledged, retry: {reason}"));
            }
            for (reason, n) in refused {
                self.metrics.events_refused.get_or_create(&RefusedLabel { tenant: tenant.to_string(), reason }).inc_by(n);
            }
        }
        let label = Metrics::tenant(tenant.as_str());
        let m = &self.metrics;
        m.events_accepted.get_or_create(&label).inc_by(outcome.accepted);
        m.events_duplicate.get_or_create(&label).inc_by(outcome.duplicates);
        m.events_rejected.get_or_create(&label).inc_by(outcome.rejected.len() as u64);
        reply::json(StatusCode::OK, &outcome)
    }

    /// Durable mode: wait for the WAL thread's fsync. Memory mode: apply now.
    async fn make_durable(&self, mut admitted: Admitted) -> Result<(), String> {
        match &self.wal {
            Some(wal) => {
                let (done, answer) = oneshot::channel();
                wal.send(Command::Append { admitted, done }).await.map_err(|_| "the edge is shutting down".to_string())?;
                answer.await.map_err(|_| "the edge is shutting down".to_string())?
            }
            None => {
                let mut pipeline = self.pipeline.lock().expect("pipeline lock poisoned");
                admitted.record.lsn = pipeline.applied_to();
                pipeline.apply(&admitted);
                Ok(())
            }
        }
    }
}

fn count_refused(admitted: &Admitted) -> Vec<(&'static str, u64)> {
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    for r in &admitted.record.refused {
        match counts.iter_mut().find(|(k, _)| *k == r.reason.as_str()) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.reason.as_str(), 1)),
        }
    }
    counts
}
