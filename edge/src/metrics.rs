//! The edge's Prometheus metrics (served at `GET /metrics`).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tally_http::serve::{Handler, Peer};
use tally_http::{reply, RequestBody, Response};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabel {
    pub tenant: String,
    pub reason: &'static str,
}

/// A tenant's plugin version in a role (`active` or `candidate`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    pub tenant: String,
    pub role: &'static str,
    pub version: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    pub tenant: String,
    pub role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub code: u16,
    pub transport: &'static str,
}

/// An HTTP route of the edge (latency is per route, whatever the status).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

/// The running binary: always 1.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    pub version: &'static str,
    pub commit: &'static str,
}

/// Latency buckets from 0.1 ms to about 6.5 s (fsyncs and filter calls are
/// sub-millisecond when healthy).
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Per-route [`latency`] histograms (a type of its own so `Metrics` is `Default`).
#[derive(Clone)]
pub struct RouteLatency(pub Family<RouteLabel, Histogram, fn() -> Histogram>);

impl Default for RouteLatency {
    fn default() -> Self {
        RouteLatency(Family::new_with_constructor(latency))
    }
}

/// One [`latency`] histogram.
#[derive(Clone)]
pub struct Latency(pub Histogram);

impl Default for Latency {
    fn default() -> Self {
        Latency(latency())
    }
}

/// `/metrics`, `/healthz` and `/readyz` alone, for `listen_metrics`.
pub struct Endpoint(pub Arc<Metrics>);

impl Handler for Endpoint {
    async fn handle(self: Arc<Self>, req: http::Request<RequestBody>, _peer: Peer) -> Response {
        match (req.method(), req.uri().path()) {
            (&http::Method::GET, "/metrics") => self.0.render(),
            (&http::Method::GET, "/healthz") => reply::with_type(http::StatusCode::OK, "ok\n".into(), "text/plain"),
            (&http::Method::GET, "/readyz") => crate::readiness::answer(&self.0),
            _ => reply::not_found(),
        }
    }
}

/// A reload of the tenants file: `ok` or `refused`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    pub result: &'static str,
}

#[derive(Default)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<StatusLabel, Counter>,
    pub events_accepted: Family<TenantLabel, Counter>,
    pub events_duplicate: Family<TenantLabel, Counter>,
    pub events_rejected: Family<TenantLabel, Counter>,
    pub events_refused: Family<RefusedLabel, Counter>,
    pub wal_fsyncs: Counter,
    pub wal_records: Counter,
    pub wal_segments: Gauge,
    pub wal_damaged: Counter,
    pub watermark_ms: Gauge,
    pub udp_rcvbuf_errors: Gauge,
    pub connections_refused: Counter,
    pub config_reloads: Family<ReloadLabel, Counter>,
    pub redirects_unrecorded: Counter,
    pub filter_calls: Family<TenantLabel, Counter>,
    pub filter_clicks: Family<TenantLabel, Counter>,
    pub filter_failures: Family<TenantLabel, Counter>,
    pub filter_quarantined: Family<TenantLabel, Gauge>,
    pub filter_seconds: Family<TenantLabel, Counter<f64>>,
    pub filter_version_failures: Family<VersionLabel, Counter>,
    pub filter_version: Family<RoleLabel, Gauge>,
    pub filter_tags_ignored: Family<TenantLabel, Counter>,
    pub registry_syncs: Family<ResultLabel, Counter>,
    pub dedup_entries: Gauge,
    pub dedup_memory_bytes: Gauge,
    pub dedup_evicted_early: Counter,
    pub dedup_tenant_entries: Family<TenantLabel, Gauge>,
    pub dedup_tenant_evicted_early: Family<TenantLabel, Counter>,
    pub dedup_horizon_seconds: Family<TenantLabel, Gauge>,
    pub dedup_snapshot_restored: Counter,
    pub dedup_snapshot_damaged: Counter,
    pub dedup_snapshot_failures: Counter,
    pub dedup_snapshot_files: Gauge,
    pub batches_sealed: Counter,
    pub batches_acknowledged: Counter,
    pub batches_resent_duplicate: Counter,
    pub batches_rejected: Counter,
    pub batches_quarantined: Counter,
    pub ship_errors: Counter,
    pub spool_pending_batches: Gauge,
    pub spool_bytes: Gauge,
    /// 1 while the spool takes no more batches (ingest answers 503).
    pub spool_full: Gauge,
    /// `spool_max_bytes`, for alerts on a filling spool.
    pub spool_max_bytes: Gauge,
    /// `[dedup] horizon_secs`, for alerts on a horizon short of it.
    pub dedup_configured_horizon_seconds: Gauge,
    /// 1 after a WAL write failed, until one succeeds.
    pub wal_failing: Gauge,
    /// 1 while a QUIC connection to a core is up.
    pub core_connected: Gauge,
    /// When the shipper last heard from a core (connected, or an answer), ms since the epoch.
    pub core_last_contact_ms: Gauge,
    pub request_seconds: RouteLatency,
    pub wal_fsync_seconds: Latency,
    pub ship_seconds: Latency,
    pub filter_call_seconds: Latency,
    pub build_info: Family<BuildLabel, Gauge>,
}

impl Metrics {
    /// The exposition, with the kernel's UDP drop count read first.
    pub fn render(&self) -> Response {
        if let Some(n) = tally_http::h3::udp_rcvbuf_errors() {
            self.udp_rcvbuf_errors.set(n as i64);
        }
        reply::metrics(&self.registry)
    }

    pub fn new() -> Metrics {
        let mut m = Metrics::default();
        let r = &mut m.registry;
        r.register("tally_edge_http_requests", "HTTP requests by status code and transport (tcp, tls, h3)", m.requests.clone());
        r.register(
            "tally_edge_filter_calls",
            "Shared calls of a tenant's filter (requests queued meanwhile share one; it runs the active version and any candidate)",
            m.filter_calls.clone(),
        );
        r.register("tally_edge_filter_clicks", "Clicks run through a tenant filter", m.filter_clicks.clone());
        r.register(
            "tally_edge_filter_failures",
            "Requests their tenant filter gave no answer for (trap, timeout, memory, wrong answer, quarantined, not loaded, no free slot); the policy applied",
            m.filter_failures.clone(),
        );
        r.register("tally_edge_filter_quarantined", "1 while a tenant's filter is quarantined after repeated failures", m.filter_quarantined.clone());
        r.register("tally_edge_filter_seconds", "Time spent in tenant filters", m.filter_seconds.clone());
        r.register(
            "tally_edge_filter_version_failures",
            "Calls per plugin version and role that failed or could not run (quarantined, not loaded, no instance slot free)",
            m.filter_version_failures.clone(),
        );
        r.register("tally_edge_filter_version", "Plugin version running per tenant and role (0: from the config file)", m.filter_version.clone());
        r.register("tally_edge_filter_tags_ignored", "Enrichment tags dropped: dimension not declared by the tenant", m.filter_tags_ignored.clone());
        r.register("tally_edge_registry_syncs", "Registry polls by result (unchanged, applied, error)", m.registry_syncs.clone());
        r.register("tally_edge_redirects_unrecorded", "Click redirects answered although their click could not be recorded", m.redirects_unrecorded.clone());
        r.register(
            "tally_edge_config_reloads",
            "Reloads of the tenants file (SIGHUP) by result: ok, or refused (the previous file stays)",
            m.config_reloads.clone(),
        );
        r.register(
            "tally_edge_connections_refused",
            "Connections closed on accept because a cap was reached (overall or per client address; see [limits])",
            m.connections_refused.clone(),
        );
        r.register(
            "tally_edge_udp_rcvbuf_errors",
            "UDP datagrams the host dropped for a full receive buffer (kernel count, all sockets)",
            m.udp_rcvbuf_errors.clone(),
        );
        r.register("tally_edge_events_accepted", "Clicks accepted (first sighting)", m.events_accepted.clone());
        r.register("tally_edge_events_duplicate", "Clicks dropped as duplicates within the dedup horizon", m.events_duplicate.clone());
        r.register(
            "tally_edge_events_rejected",
            "Events answered as rejected: malformed, refused for their event time, or dropped by the tenant's filter",
            m.events_rejected.clone(),
        );
        r.register(
            "tally_edge_events_refused",
            "Well-formed clicks refused and recorded, by reason: event time too late or in the future, or dropped by the tenant's filter (filtered)",
            m.events_refused.clone(),
        );
        r.register("tally_edge_wal_fsyncs", "Group commits attempted on the write-ahead log (one fsync each; failed ones included)", m.wal_fsyncs.clone());
        r.register("tally_edge_wal_records", "WAL records made durable (one per request with clicks accepted or refused)", m.wal_records.clone());
        r.register("tally_edge_wal_damaged", "WAL segments found damaged at start (readable records kept)", m.wal_damaged.clone());
        r.register("tally_edge_wal_segments", "Write-ahead log segment files on disk", m.wal_segments.clone());
        r.register("tally_edge_watermark_ms", "The edge's event-time watermark (ms since the epoch)", m.watermark_ms.clone());
        r.register("tally_edge_dedup_entries", "Click ids held by the dedup table", m.dedup_entries.clone());
        r.register("tally_edge_dedup_memory_bytes", "Estimated bytes held by the dedup table", m.dedup_memory_bytes.clone());
        r.register(
            "tally_edge_dedup_evicted_early",
            "Click ids forgotten before their horizon because their tenant's share was full",
            m.dedup_evicted_early.clone(),
        );
        r.register("tally_edge_dedup_tenant_entries", "Click ids held by a tenant's dedup table", m.dedup_tenant_entries.clone());
        r.register(
            "tally_edge_dedup_tenant_evicted_early",
            "Click ids of a tenant forgotten before their horizon because its share was full",
            m.dedup_tenant_evicted_early.clone(),
        );
        r.register(
            "tally_edge_dedup_horizon_seconds",
            "How far back every click id of a tenant is still known: the configured horizon, less after early evictions or memory lost over a restart",
            m.dedup_horizon_seconds.clone(),
        );
        r.register("tally_edge_dedup_snapshot_restored", "Click ids read back from dedup snapshots at start", m.dedup_snapshot_restored.clone());
        r.register(
            "tally_edge_dedup_snapshot_damaged",
            "Dedup snapshot files found damaged (moved to quarantine) or missing at start",
            m.dedup_snapshot_damaged.clone(),
        );
        r.register(
            "tally_edge_dedup_snapshot_failures",
            "Dedup snapshot writes that failed (retried; WAL segments kept meanwhile)",
            m.dedup_snapshot_failures.clone(),
        );
        r.register("tally_edge_dedup_snapshot_files", "Dedup snapshot files on disk", m.dedup_snapshot_files.clone());
        r.register("tally_edge_batches_sealed", "Batches sealed into the spool", m.batches_sealed.clone());
        r.register(
            "tally_edge_batches_acknowledged",
            "Batches the core acknowledged: committed now, or before (resent duplicates included)",
            m.batches_acknowledged.clone(),
        );
        r.register("tally_edge_batches_resent_duplicate", "Re-sent batches the core had already committed", m.batches_resent_duplicate.clone());
        r.register("tally_edge_batches_rejected", "Batches the core refused as invalid", m.batches_rejected.clone());
        r.register(
            "tally_edge_batches_quarantined",
            "Spool files found damaged at start and moved aside (batches the core rejected count as rejected)",
            m.batches_quarantined.clone(),
        );
        r.register(
            "tally_edge_ship_errors",
            "Batch sends that did not settle (transport error, Retry answer, or failing to remove the batch from the spool); retried",
            m.ship_errors.clone(),
        );
        r.register("tally_edge_spool_pending_batches", "Batches in the spool awaiting acknowledgement", m.spool_pending_batches.clone());
        r.register("tally_edge_spool_bytes", "Bytes of batches in the spool", m.spool_bytes.clone());
        r.register("tally_edge_spool_full", "1 while the spool takes no more batches and new clicks are answered 503", m.spool_full.clone());
        r.register("tally_edge_spool_max_bytes", "The spool's configured bound (spool_max_bytes)", m.spool_max_bytes.clone());
        r.register(
            "tally_edge_dedup_configured_horizon_seconds",
            "The configured dedup horizon ([dedup] horizon_secs); tally_edge_dedup_horizon_seconds is what each tenant's table covers",
            m.dedup_configured_horizon_seconds.clone(),
        );
        r.register("tally_edge_wal_failing", "1 after a write-ahead log write failed (requests answered 503), until one succeeds", m.wal_failing.clone());
        r.register("tally_edge_core_connected", "1 while a QUIC connection to a core is up", m.core_connected.clone());
        r.register(
            "tally_edge_core_last_contact_ms",
            "When the shipper last heard from a core: a connection made, or an answer (ms since the epoch; 0: never)",
            m.core_last_contact_ms.clone(),
        );
        r.register("tally_edge_http_request_seconds", "Time to answer an HTTP request, by route (WAL fsync included for clicks)", m.request_seconds.0.clone());
        r.register("tally_edge_wal_fsync_seconds", "Duration of a WAL group commit (append and fsync)", m.wal_fsync_seconds.0.clone());
        r.register("tally_edge_ship_seconds", "Round trip of a batch to the core and its answer", m.ship_seconds.0.clone());
        r.register("tally_edge_filter_call_seconds", "Duration of a shared tenant filter call (active and candidate)", m.filter_call_seconds.0.clone());
        r.register("tally_edge_build_info", "The running binary's version and commit (always 1)", m.build_info.clone());
        m.build_info.get_or_create(&BuildLabel { version: env!("CARGO_PKG_VERSION"), commit: option_env!("TALLY_BUILD_COMMIT").unwrap_or("unknown") }).set(1);
        m
    }

    pub fn tenant(tenant: &str) -> TenantLabel {
        TenantLabel { tenant: tenant.to_string() }
    }
}
