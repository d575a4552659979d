//! The edge's HTTP routes, the same on every transport:
//! * `POST /v1/clicks` (key in `Authorization`), `POST /v1/beacon/{ingest_key}`
//!   (for `navigator.sendBeacon`, which cannot set headers), `OPTIONS` on
//!   both for CORS preflights;
//! * `GET /c/{tenant}/{ad_id}?url=&sig=...`: record a click, `302` to the
//!   signed landing URL (see [`super::redirect`]);
//! * `GET /sdk/{name}`, `GET /openapi.json`, `GET /healthz`, `GET /readyz`
//!   (see [`crate::readiness`]), `GET /metrics`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::{header, HeaderValue, Method, StatusCode};
use tokio::sync::mpsc::Permit;
use tokio::sync::{oneshot, watch};

use tally_http::serve::{Handler, Peer, Transport};
use tally_http::{reply, RequestBody, Response};
use tally_model::tenant::{LiveTenants, Role, TenantId, FILTER_DIMENSION, FILTER_FAILED_OPEN};
use tally_model::timestamp::now_ms;

use super::body::Format;
use super::durable::{Command, WalHandle};
use super::event::{click_key, Click};
use super::limits::{OverRate, RateLimits};
use super::pipeline::{Admitted, FirstSightings, Outcome, Pipeline};
use super::{cors, encoding, redirect, scan};
use tally_filter::batch::{ClickView, Columns};
use tally_filter::host::FailurePolicy;

use crate::filter::rollout::Rollout;
use crate::filter::run::judge;
use crate::filter::slot::{Filters, TenantFilter};
use crate::metrics::{Metrics, RefusedLabel, RouteLabel, StatusLabel};

/// What a client is told to wait before retrying when the edge is saturated.
const RETRY_AFTER_SECS: &str = "5";
const SHUTTING_DOWN: &str = "the edge is shutting down";
pub const OPENAPI: &str = include_str!("../../../deploy/openapi/edge.json");

pub struct Ingest {
    /// As last (re)loaded: SIGHUP replaces them (`crate::reload`). A request
    /// reads them once and keeps that set to its end.
    pub tenants: Arc<LiveTenants>,
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// Reloaded on SIGHUP (`crate::reload`).
    pub max_events_per_request: Arc<AtomicUsize>,
    /// `Some` in durable ack mode: the WAL thread.
    pub wal: Option<WalHandle>,
    /// Set by the shipper while the spool cannot take more batches.
    pub backpressure: Arc<AtomicBool>,
    /// `Alt-Svc` value advertising HTTP/3 on TCP responses, if it is served.
    pub alt_svc: Option<HeaderValue>,
    pub static_dir: Option<std::path::PathBuf>,
    pub rate_limits: Mutex<RateLimits>,
    /// Tenants' filters, swapped by the registry sync between requests.
    pub filters: Arc<Filters>,
    /// Whether `/metrics` is served here (not when it has its own listener).
    pub serves_metrics: bool,
}

impl Handler for Ingest {
    async fn handle(self: Arc<Self>, req: http::Request<RequestBody>, peer: Peer) -> Response {
        let started = std::time::Instant::now();
        // A clone shares the URI's bytes: no copy, and `req` can move on.
        let uri = req.uri().clone();
        let path = uri.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (route, mut resp) = match (req.method(), segments.as_slice()) {
            (&Method::POST, ["v1", "clicks"]) => {
                let key = bearer(req.headers()).map(str::to_owned);
                ("clicks", self.post(req, key.as_deref()).await)
            }
            (&Method::POST, ["v1", "beacon", key]) => {
                let key = key.to_string();
                ("beacon", self.post(req, Some(&key)).await)
            }
            (&Method::OPTIONS, ["v1", "clicks"]) => {
                let origin = cors::origin(req.headers());
                ("clicks", cors::preflight(origin, origin.is_some_and(|o| self.tenants.current().any_allows_origin(o))))
            }
            (&Method::OPTIONS, ["v1", "beacon", key]) => {
                let origin = cors::origin(req.headers());
                let tenants = self.tenants.current();
                let allowed = tenants.authenticate(key, Role::Ingest).map(|t| tenants.policy(t));
                ("beacon", cors::preflight(origin, allowed.is_some_and(|p| origin.is_some_and(|o| p.allows_origin(o)))))
            }
            (_, ["v1", "clicks"] | ["v1", "beacon", _]) => ("other", reply::method_not_allowed("POST, OPTIONS")),
            (&Method::GET, ["c", tenant, ad]) => ("redirect", self.redirect(&req, tenant, ad, peer).await),
            (&Method::GET, ["sdk", name]) => ("sdk", crate::site::serve(self.static_dir.as_deref(), name).await),
            (&Method::GET, ["openapi.json"]) => ("openapi", reply::with_type(StatusCode::OK, OPENAPI.into(), "application/json")),
            (&Method::GET, ["healthz"]) => ("healthz", reply::with_type(StatusCode::OK, "ok\n".into(), "text/plain")),
            (&Method::GET, ["readyz"]) => ("readyz", crate::readiness::answer(&self.metrics)),
            (&Method::GET, ["metrics"]) if self.serves_metrics => ("metrics", self.metrics.render()),
            (_, ["metrics"]) if !self.serves_metrics => ("other", reply::not_found()),
            (_, ["c", _, _] | ["sdk", _] | ["openapi.json"] | ["healthz"] | ["readyz"] | ["metrics"]) => ("other", reply::method_not_allowed("GET")),
            _ => ("other", reply::not_found()),
        };
        if let (Some(alt_svc), Transport::Tcp | Transport::Tls) = (&self.alt_svc, peer.transport) {
            resp.headers_mut().insert(header::ALT_SVC, alt_svc.clone());
        }
        self.count(&resp, peer);
        self.metrics.request_seconds.0.get_or_create(&RouteLabel { route }).observe(started.elapsed().as_secs_f64());
        resp
    }

    /// The ingest routes' key, checked from the head alone (before HTTP/3
    /// receives the body); `post` checks the same on every transport.
    fn authorize(&self, head: &http::request::Parts, peer: Peer) -> Option<Response> {
        let segments: Vec<&str> = head.uri.path().trim_start_matches('/').split('/').collect();
        let key = match (&head.method, segments.as_slice()) {
            (&Method::POST, ["v1", "clicks"]) => bearer(&head.headers),
            (&Method::POST, ["v1", "beacon", key]) => Some(*key),
            _ => return None,
        };
        let tenants = self.tenants.current();
        if key.and_then(|k| tenants.authenticate(k.trim(), Role::Ingest)).is_some() {
            return None;
        }
        let resp = unauthorized();
        self.count(&resp, peer);
        Some(resp)
    }
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    reply::authorization(headers).and_then(|h| h.strip_prefix("Bearer "))
}

fn unauthorized() -> Response {
    let mut resp = reply::error(StatusCode::UNAUTHORIZED, "missing or unknown ingest key (Authorization: Bearer <key>)");
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn unavailable(status: StatusCode, retry_after: &str, reason: impl Into<String>) -> Response {
    let mut resp = reply::error(status, reason);
    if let Ok(v) = HeaderValue::from_str(retry_after) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

impl Ingest {
    fn count(&self, resp: &Response, peer: Peer) {
        let label = StatusLabel { code: resp.status().as_u16(), transport: peer.transport.as_str() };
        self.metrics.requests.get_or_create(&label).inc();
    }

    /// `POST /v1/clicks` and `POST /v1/beacon/{key}`: the same batch ingest.
    // At debug level: a span costs a slab slot and a few locks per request,
    // a tenth of a one-event request's CPU; operators rarely want it.
    #[tracing::instrument(name = "post_clicks", level = "debug", skip_all, fields(tenant, events))]
    async fn post(&self, req: http::Request<RequestBody>, key: Option<&str>) -> Response {
        let tenants = self.tenants.current();
        let Some(tenant) = key.and_then(|k| tenants.authenticate(k.trim(), Role::Ingest)).cloned() else { return unauthorized() };
        tracing::Span::current().record("tenant", tenant.as_str());
        let origin = cors::origin(req.headers()).map(str::to_owned);
        let mut resp = self.ingest(&tenant, req).await;
        cors::allow(&mut resp, origin.as_deref(), tenants.policy(&tenant));
        resp
    }

    async fn ingest(&self, tenant: &TenantId, req: http::Request<RequestBody>) -> Response {
        if self.backpressure.load(Ordering::Relaxed) {
            return unavailable(StatusCode::SERVICE_UNAVAILABLE, RETRY_AFTER_SECS, "the edge's spool is full while the core catches up; retry later");
        }
        let (parts, bytes) = match reply::read_body(req, self.max_body_bytes).await {
            Ok(read) => read,
            Err(e) => return e.into_response(),
        };
        let content_encoding = parts.headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
        let bytes = match encoding::decode(content_encoding, bytes, self.max_body_bytes) {
            Ok(b) => b,
            Err(e @ encoding::DecodeError::TooLarge(_)) => return reply::error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            Err(e @ encoding::DecodeError::Unsupported(_)) => return reply::error(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
            Err(e) => return reply::error(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let format = Format::from_content_type(parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()));
        // Read and validated outside the lock; only admission needs it.
        let filter = self.filters.get(tenant);
        // Reserved up front (a third cheaper than growing), for events of
        // about 128 bytes; past a few thousand clicks the columns grow as
        // they go rather than guess.
        let mut columns = filter.as_ref().map(|_| Columns::with_capacity((bytes.len() / 128 + 1).min(4096)));
        let mut clicks = ClickBuffer::take();
        if let Err(reason) = scan::read_clicks(&bytes, format, tenant, now_ms(), columns.as_mut(), &mut clicks) {
            return reply::error(StatusCode::BAD_REQUEST, reason);
        }
        let max_events = self.max_events_per_request.load(Ordering::Relaxed);
        if clicks.len() > max_events {
            return reply::error(StatusCode::PAYLOAD_TOO_LARGE, format!("{} events in one request; at most {max_events} are accepted", clicks.len()));
        }
        tracing::Span::current().record("events", clicks.len());
        // Over its rate, a tenant's clicks go no further (its filter's state
        // included).
        if let Err(resp) = self.rate_limit(tenant, clicks.len()) {
            return resp;
        }
        let mut rollout = None;
        if let (Some(filter), Some(columns)) = (filter, columns) {
            match self.apply_filter(tenant, filter, columns, &mut clicks).await {
                Ok(r) => rollout = r,
                Err(resp) => return resp,
            }
        }
        match self.accept(tenant, &mut clicks, rollout).await {
            Ok(outcome) => reply::json(StatusCode::OK, &outcome),
            Err(resp) => resp,
        }
    }

    /// Runs the tenant's filter over the request's valid clicks and writes
    /// the verdicts, declared tags and rollout comparisons into them; on
    /// failure the tenant's policy decides. Returns which versions were
    /// compared, if a candidate is in rollout.
    async fn apply_filter(
        &self,
        tenant: &TenantId,
        filter: Arc<TenantFilter>,
        columns: Columns,
        clicks: &mut [Result<Click, String>],
    ) -> Result<Option<Rollout>, Response> {
        if columns.is_empty() {
            return Ok(None);
        }
        let keys: Vec<u128> = clicks.iter().filter_map(|c| c.as_ref().ok()).map(|c| c.key).collect();
        let policy = filter.policy;
        let judged = judge(tenant, filter, columns, keys, &self.metrics).await;
        let mut valid: Vec<&mut Click> = clicks.iter_mut().filter_map(|c| c.as_mut().ok()).collect();
        let rollout = judged.rollout.map(|(rollout, compared)| {
            for (click, c) in valid.iter_mut().zip(compared) {
                click.compared = Some(c);
            }
            rollout
        });
        match judged.answer {
            Ok(answer) => {
                for (click, code) in valid.iter_mut().zip(&answer.codes) {
                    click.verdict = *code;
                }
                // A tenant removed by a reload meanwhile declares nothing.
                let tenants = self.tenants.current();
                let declared: &[String] = tenants.get(tenant.as_str()).map_or(&[], |(_, p)| &p.dimensions);
                let mut ignored = 0u64;
                for tag in answer.tags.iter() {
                    if declared.iter().any(|d| d == tag.key) {
                        valid[tag.click as usize].tags.push((tag.key.to_owned(), tag.value.to_owned()));
                    } else {
                        ignored += 1;
                    }
                }
                if ignored > 0 {
                    self.metrics.filter_tags_ignored.get_or_create(&Metrics::tenant(tenant.as_str())).inc_by(ignored);
                }
                Ok(rollout)
            }
            Err(reason) => {
                self.metrics.filter_failures.get_or_create(&Metrics::tenant(tenant.as_str())).inc();
                tracing::warn!(%tenant, %reason, ?policy, "tenant filter failed");
                match policy {
                    // Kept, and tagged so they can be told apart (and counted) downstream.
                    FailurePolicy::Open => {
                        for click in valid {
                            click.tags.push((FILTER_DIMENSION.to_string(), FILTER_FAILED_OPEN.to_string()));
                        }
                        Ok(rollout)
                    }
                    FailurePolicy::Closed => {
                        Err(unavailable(StatusCode::SERVICE_UNAVAILABLE, RETRY_AFTER_SECS, format!("the tenant's filter failed; retry later ({reason})")))
                    }
                }
            }
        }
    }

    /// `429` with `Retry-After` if `events` more would put the tenant over its
    /// rate; `413` if the request alone is more than a second's worth.
    fn rate_limit(&self, tenant: &TenantId, events: usize) -> Result<(), Response> {
        let Some(rate) = self.tenants.current().get(tenant.as_str()).and_then(|(_, p)| p.max_events_per_sec) else { return Ok(()) };
        let taken = self.rate_limits.lock().expect("rate limit lock poisoned").take(tenant, rate, events as u64, now_ms());
        taken.map_err(|over| match over {
            OverRate::RetryIn(wait) => {
                unavailable(StatusCode::TOO_MANY_REQUESTS, &wait.to_string(), format!("tenant {tenant} is limited to {rate} events/s; retry later"))
            }
            OverRate::NeverFits => reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("this request has {events} events, but tenant {tenant} is limited to {rate} events/s: send at most {rate} per request"),
            ),
        })
    }

    /// Admission, durability and metrics for a request's clicks.
    async fn accept(&self, tenant: &TenantId, clicks: &mut Vec<Result<Click, String>>, rollout: Option<Rollout>) -> Result<Outcome, Response> {
        let not_acknowledged =
            |reason: String| unavailable(StatusCode::SERVICE_UNAVAILABLE, RETRY_AFTER_SECS, format!("clicks not acknowledged, retry: {reason}"));
        // The WAL's queue slot is taken before admission, so no await (where
        // the request could be dropped) lies between admitting clicks and
        // handing them over: every admission gets settled.
        let slot = match &self.wal {
            Some(wal) => Some(wal.commands.reserve().await.map_err(|_| not_acknowledged(SHUTTING_DOWN.into()))?),
            None => None,
        };
        let (outcome, admitted, settled) = {
            let mut pipeline = self.pipeline.lock().expect("pipeline lock poisoned");
            let (outcome, admitted) = pipeline.admit(tenant, clicks.drain(..), rollout, now_ms());
            // Subscribed under the lock, so no settling after this admission goes unseen.
            let settled = self.wal.as_ref().filter(|_| !outcome.awaits.is_empty()).map(|wal| {
                let mut settled = wal.settled.clone();
                settled.mark_unchanged();
                settled
            });
            (outcome, admitted, settled)
        };
        if let Some(admitted) = admitted {
            let refused = count_refused(&admitted);
            self.make_durable(admitted, slot).await.map_err(not_acknowledged)?;
            for (reason, n) in refused {
                self.metrics.events_refused.get_or_create(&RefusedLabel { tenant: tenant.to_string(), reason }).inc_by(n);
            }
        }
        if let Some(settled) = settled {
            self.await_first_sightings(&outcome.awaits, settled).await.map_err(not_acknowledged)?;
        }
        let label = Metrics::tenant(tenant.as_str());
        let m = &self.metrics;
        m.events_accepted.get_or_create(&label).inc_by(outcome.accepted);
        m.events_duplicate.get_or_create(&label).inc_by(outcome.duplicates);
        m.events_rejected.get_or_create(&label).inc_by(outcome.rejected.len() as u64);
        Ok(outcome)
    }

    /// Durable mode: a request repeating clicks still in flight is answered
    /// only once their first sightings are durable, and fails if they were
    /// not (see `pipeline`).
    async fn await_first_sightings(&self, keys: &[u128], mut settled: watch::Receiver<()>) -> Result<(), String> {
        loop {
            match self.pipeline.lock().expect("pipeline lock poisoned").first_sightings(keys) {
                FirstSightings::Durable => return Ok(()),
                FirstSightings::Lost => return Err("the clicks this request repeats could not be made durable".into()),
                FirstSightings::Pending => {}
            }
            settled.changed().await.map_err(|_| SHUTTING_DOWN.to_string())?;
        }
    }

    /// `GET /c/{tenant}/{ad_id}`: one click from the signed link, then `302`
    /// to its landing URL. The visitor's IP and User-Agent come from the
    /// connection; the tenant's filter sees them like any other click's.
    #[tracing::instrument(name = "redirect", level = "debug", skip_all, fields(tenant))]
    async fn redirect(&self, req: &http::Request<RequestBody>, tenant: &str, ad: &str, peer: Peer) -> Response {
        let tenants = self.tenants.current();
        let Some((tenant, policy)) = tenants.get(tenant) else { return reply::not_found() };
        let Some(secret) = &policy.redirect_secret else {
            return reply::error(StatusCode::NOT_FOUND, "this tenant has no signed redirects (no redirect_secret)");
        };
        let link = match redirect::verify(secret, tenant.as_str(), ad, req.uri().query()) {
            Ok(link) => link,
            Err(reason) => return reply::error(StatusCode::FORBIDDEN, format!("not a valid signed link: {reason}")),
        };
        let click_id = link.click_id.clone().unwrap_or_else(|| format!("r-{:032x}", fastrand::u128(..)));
        let click = Click {
            key: click_key(tenant, &click_id),
            ad_id: link.ad_id,
            campaign_id: link.campaign_id.unwrap_or(0),
            ts_ms: now_ms(),
            cost_micros: link.cost_micros.unwrap_or(0),
            user_hash: None,
            verdict: 0,
            tags: Vec::new(),
            compared: None,
        };
        let mut clicks = vec![Ok(click)];
        let mut recorded = self.rate_limit(tenant, 1).map(|()| None);
        if let (Ok(_), Some(filter)) = (&recorded, self.filters.get(tenant)) {
            let mut columns = Columns::with_capacity(1);
            let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
            let ip = peer.addr.ip().to_string();
            let c = clicks[0].as_ref().expect("built above");
            let view = ClickView {
                ad_id: c.ad_id,
                campaign_id: c.campaign_id,
                ts_ms: c.ts_ms,
                cost_micros: c.cost_micros,
                click_id: &click_id,
                ip: &ip,
                user_agent,
                ..ClickView::default()
            };
            columns.push(&view, []);
            recorded = self.apply_filter(tenant, filter, columns, &mut clicks).await;
        }
        // The visitor goes on even if recording failed: that is counted
        // (503s in the request metrics would hide it), never silent.
        if let Err(resp) = match recorded {
            Ok(rollout) => self.accept(tenant, &mut clicks, rollout).await.map(|_| ()),
            Err(resp) => Err(resp),
        } {
            tracing::warn!(status = %resp.status(), "redirect click not recorded");
            self.metrics.redirects_unrecorded.inc();
        }
        let mut resp = reply::with_type(StatusCode::FOUND, bytes::Bytes::new(), "text/plain");
        match HeaderValue::from_str(&link.url) {
            Ok(v) => {
                resp.headers_mut().insert(header::LOCATION, v);
                resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
            Err(_) => reply::error(StatusCode::BAD_REQUEST, "url is not a valid header value"),
        }
    }

    /// Durable mode: hand over to the WAL thread in the slot reserved, wait
    /// for its fsync. Memory mode: apply now.
    async fn make_durable(&self, mut admitted: Admitted, slot: Option<Permit<'_, Command>>) -> Result<(), String> {
        match slot {
            Some(slot) => {
                let (done, answer) = oneshot::channel();
                slot.send(Command::Append { admitted, done });
                answer.await.map_err(|_| SHUTTING_DOWN.to_string())?
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

/// A request's clicks, in a buffer that goes back to a per-thread slot
/// when the request is done, for the next request on that thread: batches
/// of a thousand clicks take no allocation of their own.
struct ClickBuffer(Vec<Result<Click, String>>);

/// Buffers larger than this many clicks are freed, not kept.
const KEPT_CLICK_BUFFER: usize = 16 << 10;

thread_local! {
    static SPARE_CLICKS: std::cell::Cell<Vec<Result<Click, String>>> = const { std::cell::Cell::new(Vec::new()) };
}

impl ClickBuffer {
    fn take() -> ClickBuffer {
        ClickBuffer(SPARE_CLICKS.try_with(std::cell::Cell::take).unwrap_or_default())
    }
}

impl std::ops::Deref for ClickBuffer {
    type Target = Vec<Result<Click, String>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ClickBuffer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ClickBuffer {
    fn drop(&mut self) {
        let mut clicks = std::mem::take(&mut self.0);
        if clicks.capacity() <= KEPT_CLICK_BUFFER {
            clicks.clear();
            // Gone at thread exit: then the buffer is simply freed.
            let _ = SPARE_CLICKS.try_with(|spare| spare.set(clicks));
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
