//! The core's Prometheus metrics (served at `GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
    pub code: u16,
}

/// An API route (latency is per route, whatever the status).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnlyLabel {
    pub route: &'static str,
}

/// The kinds of [`QueryKindLabel`].
pub const QUERY_KINDS: [&str; 4] = ["billing", "heal", "readiness", "retention"];

/// What ClickHouse work was for (one of [`QUERY_KINDS`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryKindLabel {
    pub kind: &'static str,
}

/// The running binary: always 1.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    pub version: &'static str,
    pub commit: &'static str,
}

/// The version this binary was built as, and its commit when the build set
/// `TALLY_BUILD_COMMIT` (else `unknown`).
pub fn build_label() -> BuildLabel {
    BuildLabel { version: env!("CARGO_PKG_VERSION"), commit: option_env!("TALLY_BUILD_COMMIT").unwrap_or("unknown") }
}

type Latency<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to about 65 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// A rollup the healer repaired: its family and step (`1m`, `1h`, `1d`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollupLabel {
    pub family: &'static str,
    pub step: &'static str,
}

/// An enrolled edge (the config bounds how many there are).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeLabel {
    pub edge: String,
}

/// A reload of the tenants file: `ok` or `refused`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    pub result: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    pub batches_received: Counter,
    pub batches_committed: Counter,
    pub batches_duplicate: Counter,
    pub batches_rejected: Counter,
    pub batches_unreadable_version: Counter,
    pub batches_conflicting: Counter,
    pub batches_refused_identity: Counter,
    pub connections_unauthenticated: Counter,
    pub ledger_unreadable: Counter,
    pub clicks_committed: Counter,
    pub commit_groups: Counter,
    pub commit_errors: Counter,
    pub connections_refused: Counter,
    pub commit_seconds: Histogram,
    pub http_requests: Family<RouteLabel, Counter>,
    pub billing_hours_finalized: Counter,
    pub billing_adjustments: Counter,
    pub billing_hours_recomputed: Counter,
    pub rollup_repairs: Family<RollupLabel, Counter>,
    pub rollup_drift_clicks: Family<RollupLabel, Counter>,
    pub rollup_heal_failures: Counter,
    pub http_request_seconds: Latency<RouteOnlyLabel>,
    pub clickhouse_query_seconds: Latency<QueryKindLabel>,
    pub clickhouse_query_failures: Family<QueryKindLabel, Counter>,
    pub retention_partitions_dropped: Counter,
    pub retention_failures: Counter,
    pub build_info: Family<BuildLabel, Gauge>,
    pub edge_watermark_lag: Family<EdgeLabel, Gauge>,
    pub edge_retired: Family<EdgeLabel, Gauge>,
    pub batches_refused_retired: Counter,
    pub config_reloads: Family<ReloadLabel, Counter>,
    pub leases_held: Gauge,
    pub lease_takeovers: Counter,
    pub lease_refusals: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            batches_received: Counter::default(),
            batches_committed: Counter::default(),
            batches_duplicate: Counter::default(),
            batches_rejected: Counter::default(),
            batches_unreadable_version: Counter::default(),
            batches_conflicting: Counter::default(),
            batches_refused_identity: Counter::default(),
            connections_unauthenticated: Counter::default(),
            ledger_unreadable: Counter::default(),
            clicks_committed: Counter::default(),
            commit_groups: Counter::default(),
            commit_errors: Counter::default(),
            connections_refused: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            http_requests: Family::default(),
            billing_hours_finalized: Counter::default(),
            billing_adjustments: Counter::default(),
            billing_hours_recomputed: Counter::default(),
            rollup_repairs: Family::default(),
            rollup_drift_clicks: Family::default(),
            rollup_heal_failures: Counter::default(),
            http_request_seconds: Family::new_with_constructor(latency),
            clickhouse_query_seconds: Family::new_with_constructor(latency),
            clickhouse_query_failures: Family::default(),
            retention_partitions_dropped: Counter::default(),
            retention_failures: Counter::default(),
            build_info: Family::default(),
            edge_watermark_lag: Family::default(),
            edge_retired: Family::default(),
            batches_refused_retired: Counter::default(),
            config_reloads: Family::default(),
            leases_held: Gauge::default(),
            lease_takeovers: Counter::default(),
            lease_refusals: Counter::default(),
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register(
            "tally_core_batches_received",
            "Batch streams opened by edges (before reading or validation; broken-off streams included)",
            m.batches_received.clone(),
        );
        r.register("tally_core_batches_committed", "Batches committed to ClickHouse", m.batches_committed.clone());
        r.register(
            "tally_core_batches_duplicate",
            "Batches answered Duplicate: already committed, or a copy queued behind its first in the same group",
            m.batches_duplicate.clone(),
        );
        r.register("tally_core_batches_rejected", "Batches refused as corrupt, invalid or larger than max_batch_bytes", m.batches_rejected.clone());
        r.register(
            "tally_core_batches_unreadable_version",
            "Batches in a frame version this core does not read, left with their edge (retry)",
            m.batches_unreadable_version.clone(),
        );
        r.register(
            "tally_core_batches_conflicting",
            "Batches refused because their (edge, seq) was recorded with other content (checksum); nothing written",
            m.batches_conflicting.clone(),
        );
        r.register(
            "tally_core_batches_refused_identity",
            "Batches refused because they claim another edge than their connection's key, or a tenant the core does not know",
            m.batches_refused_identity.clone(),
        );
        r.register(
            "tally_core_connections_unauthenticated",
            "Batch connections refused: failed handshakes, mostly clients without an enrolled edge key",
            m.connections_unauthenticated.clone(),
        );
        r.register(
            "tally_core_ledger_unreadable",
            "Batches whose ledger entry holds a state this core does not know (answered Retry, nothing written)",
            m.ledger_unreadable.clone(),
        );
        r.register(
            "tally_core_clicks_committed",
            "Clicks counted in the per-second rows of committed batches (duplicates not included)",
            m.clicks_committed.clone(),
        );
        r.register("tally_core_leases_held", "Edge leases (and the finalizer's) this core holds in ZooKeeper", m.leases_held.clone());
        r.register("tally_core_lease_takeovers", "Leases this core created: a new epoch for an edge (or the finalizer)", m.lease_takeovers.clone());
        r.register("tally_core_lease_refusals", "Batches answered Retry because another live core holds their edge's lease", m.lease_refusals.clone());
        r.register("tally_core_commit_groups", "Group commits attempted", m.commit_groups.clone());
        r.register("tally_core_commit_errors", "Group commits that failed (batches answered Retry)", m.commit_errors.clone());
        r.register(
            "tally_core_connections_refused",
            "HTTP(S) connections closed on accept because a cap was reached (overall or per client address; see [limits])",
            m.connections_refused.clone(),
        );
        r.register("tally_core_commit_seconds", "Duration of a group commit", m.commit_seconds.clone());
        r.register("tally_core_billing_hours_finalized", "Hours marked final for billing", m.billing_hours_finalized.clone());
        r.register(
            "tally_core_billing_adjustments",
            "Adjustment rows written for clicks that arrived after their hour was final",
            m.billing_adjustments.clone(),
        );
        r.register(
            "tally_core_billing_hours_recomputed",
            "Hours the billing finalizer billed again from the click records (becoming final, new batches in them, or a new finalizer's first pass)",
            m.billing_hours_recomputed.clone(),
        );
        r.register(
            "tally_core_rollup_repairs",
            "Rollup buckets (tenant, hour or day) the healer found short of their landing table and repaired",
            m.rollup_repairs.clone(),
        );
        r.register(
            "tally_core_rollup_drift_clicks",
            "Clicks (refused clicks, dimension clicks) the healer added to rollups that lacked them",
            m.rollup_drift_clicks.clone(),
        );
        r.register("tally_core_rollup_heal_failures", "Rollup healing passes that failed (retried on the next tick)", m.rollup_heal_failures.clone());
        r.register(
            "tally_core_edge_watermark_lag_seconds",
            "Now minus the committed low watermark of each enrolled edge that holds billing finality (not retired, has committed)",
            m.edge_watermark_lag.clone(),
        );
        r.register("tally_core_edge_retired", "1 for an enrolled edge that is retired (no longer holds finality back)", m.edge_retired.clone());
        r.register(
            "tally_core_batches_refused_retired",
            "Batches of a retired edge answered Retry (kept on the edge until it is reinstated)",
            m.batches_refused_retired.clone(),
        );
        r.register(
            "tally_core_config_reloads",
            "Reloads of the tenants file (SIGHUP) by result: ok, or refused (the previous file stays)",
            m.config_reloads.clone(),
        );
        r.register("tally_core_http_requests", "HTTP requests by route and status", m.http_requests.clone());
        r.register(
            "tally_core_http_request_seconds",
            "Time to answer an HTTP request, by route (deadline-bounded ClickHouse reads included)",
            m.http_request_seconds.clone(),
        );
        r.register(
            "tally_core_clickhouse_query_seconds",
            "Duration of ClickHouse work by kind: billing (a finalizer pass), heal (a healer pass), readiness (a /readyz probe), retention (a pass); group commits are tally_core_commit_seconds, API reads tally_core_http_request_seconds",
            m.clickhouse_query_seconds.clone(),
        );
        r.register(
            "tally_core_clickhouse_query_failures",
            "ClickHouse work that failed, by kind (as in tally_core_clickhouse_query_seconds)",
            m.clickhouse_query_failures.clone(),
        );
        r.register(
            "tally_core_retention_partitions_dropped",
            "Monthly partitions dropped past their family's [retention]",
            m.retention_partitions_dropped.clone(),
        );
        r.register("tally_core_retention_failures", "Retention passes that failed (retried an hour later)", m.retention_failures.clone());
        r.register("tally_core_build_info", "The running binary's version and commit (always 1)", m.build_info.clone());
        m.build_info.get_or_create(&build_label()).set(1);
        // Exposed at 0 from the start, so a rate over them means something at once.
        for kind in QUERY_KINDS {
            let _ = m.clickhouse_query_seconds.get_or_create(&QueryKindLabel { kind });
            let _ = m.clickhouse_query_failures.get_or_create(&QueryKindLabel { kind });
        }
        m
    }
}

impl Metrics {
    /// Runs `work` timed (and counted if it fails) as ClickHouse work of `kind`.
    pub async fn clickhouse<T, E>(&self, kind: &'static str, work: impl std::future::Future<Output = Result<T, E>>) -> Result<T, E> {
        let started = std::time::Instant::now();
        let result = work.await;
        let label = QueryKindLabel { kind };
        self.clickhouse_query_seconds.get_or_create(&label).observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.clickhouse_query_failures.get_or_create(&label).inc();
        }
        result
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
