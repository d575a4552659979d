//! The Tally edge collector.
//!
//! ```text
//!  HTTP POST /v1/clicks ──► ingest::scan (one pass: ──► ingest::pipeline::admit
//!                           frame + ingest::event validate)  (time policy + dedup)
//!                                                                     │
//!                     spool::group_commit: WAL append + one fsync, then pipeline::apply
//!                                  (aggregate), then the HTTP answer
//!                                                                     │ every ship_interval
//!                                                                     ▼
//!                  core ◄── QUIC ── shipper ◄── spool outbox (sealed batch, fsynced)
//! ```
//!
//! Start reading at [`run`], then [`ingest::pipeline`] for what happens to a
//! click and [`spool`] for what survives a crash.

pub mod aggregate;
pub mod config;
pub mod dedup;
pub mod filter;
pub mod ingest;
pub mod map_hash;
pub mod metrics;
pub mod readiness;
pub mod reload;
pub mod shipper;
pub mod site;
pub mod spool;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tally_http::tls;
use tokio::net::TcpListener;
use tokio::sync::watch;

use tally_model::tenant::{LiveTenants, TenantId, Tenants, TenantsError};
use tally_model::timestamp::now_ms;

use filter::registry::RegistrySync;
use filter::slot::Filters;

use config::{AckMode, EdgeConfig};
use ingest::http::Ingest;
use ingest::pipeline::{Pipeline, TimePolicy};
use metrics::Metrics;
use shipper::{Connector, ShipError, Shipper};
use spool::dedup_snapshot::{self, Chunk, Snapshots};
use spool::wal::Wal;
use spool::{group_commit, Outbox, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Ship(#[from] ShipError),
    #[error("listening on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] tally_http::tls::TlsError),
    #[error(transparent)]
    H3(#[from] tally_http::h3::H3Error),
    #[error(transparent)]
    Filter(#[from] tally_filter::host::FilterError),
}

/// Test hook for crash tests: `TALLY_FAULT_ABORT_BEFORE_WAL_WRITE=N` makes
/// the edge abort (as if `kill -9`ed) right before its N-th group commit
/// writes the WAL, once a duplicate of a click in flight has arrived.
fn fault_abort_before_wal_write() -> Option<u64> {
    std::env::var("TALLY_FAULT_ABORT_BEFORE_WAL_WRITE").ok().and_then(|v| v.parse().ok())
}

/// Runs an edge until `shutdown` turns true; then stops taking requests,
/// seals what it holds and gives the shipper a moment to deliver it.
/// `config_file` (where `config` was read) is read again on SIGHUP
/// (`reload`).
pub async fn run(config: EdgeConfig, config_file: PathBuf, shutdown: watch::Receiver<bool>) -> Result<(), EdgeError> {
    let tenants = Arc::new(LiveTenants::new(Tenants::load(&config.tenants_file)?));
    let metrics = Arc::new(Metrics::new());
    metrics.spool_max_bytes.set(config.spool_max_bytes.min(i64::MAX as u64) as i64);
    metrics.dedup_configured_horizon_seconds.set(config.dedup.horizon_secs.min(i64::MAX as u64) as i64);
    let (mut outbox, quarantined) = Outbox::open(&config.spool_dir, &config.edge_id, config.spool_max_bytes)?;
    outbox.archive_acknowledged(config.spool_archive_acknowledged)?;
    for q in &quarantined {
        tracing::error!(file = %q.file.display(), reason = %q.reason, "damaged spool file moved to quarantine");
    }
    metrics.batches_quarantined.inc_by(quarantined.len() as u64);

    let policy = TimePolicy {
        allowed_lateness_ms: config.time.allowed_lateness_secs * 1000,
        max_future_ms: config.time.max_future_secs * 1000,
        idle_lag_ms: config.time.idle_lag_secs * 1000,
    };
    let dedup = config.dedup.dedup_config(tenants.current().ids().len());
    let (mut wal, records, damage) = Wal::open(&config.spool_dir.join("wal"), outbox.wal_sealed())?;
    for d in &damage {
        tracing::error!(file = %d.file.display(), offset = d.offset, reason = %d.reason, "damaged WAL segment; kept what was readable");
    }
    metrics.wal_damaged.inc_by(damage.len() as u64);
    let mut pipeline = Pipeline::new(dedup, policy, outbox.wal_sealed());
    // The dedup memory comes back from the snapshot files (older keys), then
    // from the WAL (see `spool::dedup_snapshot`).
    let started_ms = now_ms();
    let wal_start = records.first().map_or(wal.next_lsn(), |r| r.lsn);
    let (snapshots, restored, problems) = Snapshots::open(&config.spool_dir, pipeline.dedup_mut(), wal_start, started_ms)?;
    for p in &problems {
        tracing::error!(file = %p.file.display(), reason = %p.reason, "dedup snapshot damaged or missing; retries of clicks it held may count again");
    }
    metrics.dedup_snapshot_damaged.inc_by(problems.len() as u64);
    metrics.dedup_snapshot_restored.inc_by(restored as u64);
    // In memory ack mode nothing admitted reaches the WAL, so a restart forgets it.
    let memory_lost = config.ack.mode == AckMode::Memory && outbox.next_seq() > 1;
    if !problems.is_empty() || memory_lost {
        pipeline.dedup_mut().forgot_before(started_ms);
    }
    // Every WAL record is replayed: sealed ones into dedup only, the rest
    // also into the aggregator, so nothing acknowledged is lost or doubled.
    // Those the snapshots do not cover go into the next snapshot.
    let covered = snapshots.covered();
    let mut uncovered = Chunk { from: covered, to: covered, ..Chunk::default() };
    let mut replayed = 0;
    for record in &records {
        match TenantId::parse(&record.tenant) {
            Ok(tenant) => {
                pipeline.replay(&tenant, record);
                replayed += (record.lsn >= outbox.wal_sealed()) as usize;
                if record.lsn >= covered {
                    uncovered.add(tenant.as_str(), record);
                }
            }
            Err(e) => tracing::error!(lsn = record.lsn, error = %e, "WAL record with an invalid tenant; skipped"),
        }
    }
    wal.release(outbox.wal_sealed().min(covered))?;
    tracing::info!(
        edge = %config.edge_id,
        pending_batches = outbox.pending_len(),
        next_seq = outbox.next_seq(),
        wal_records = records.len(),
        replayed,
        dedup_restored = restored,
        ack = ?config.ack.mode,
        "spool opened"
    );
    let pipeline = Arc::new(Mutex::new(pipeline));
    let snapshot_interval = Duration::from_secs(config.dedup.snapshot_interval_secs);
    let (snapshot, snapshot_thread) = dedup_snapshot::start(snapshots, uncovered, pipeline.clone(), metrics.clone(), snapshot_interval);
    let (wal_handle, wal_thread) = match config.ack.mode {
        AckMode::Durable => {
            let linger = Duration::from_millis(config.ack.group_commit_ms);
            let (wal, thread) = group_commit::start(wal, pipeline.clone(), metrics.clone(), snapshot.clone(), linger, fault_abort_before_wal_write());
            (Some(wal), Some(thread))
        }
        AckMode::Memory => (None, None),
    };

    let edge_identity = shipper::identity::load(&config.spool_dir)?;
    tracing::info!(edge = %config.edge_id, fingerprint = %shipper::identity::fingerprint(&edge_identity)?, "edge identity (the core's [[edges]] must list it)");
    let connectors = config
        .core
        .cores()
        .into_iter()
        .map(|addr| Connector::new(addr, &config.core.server_name, &config.core.ca_cert, Some(&edge_identity)))
        .collect::<Result<Vec<_>, _>>()?;
    let gate = tally_http::limits::Gate::new(config.limits.clone());
    gate.count_refusals_in(metrics.connections_refused.clone());
    let listener = TcpListener::bind(config.listen_http).await.map_err(|source| EdgeError::Listen { addr: config.listen_http, source })?;
    tracing::info!(addr = %config.listen_http, "edge accepting clicks over HTTP/1.1 and HTTP/2");

    let identity = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) => tls::load(cert, key)?,
        _ => tls::load_or_create(&config.spool_dir.join("tls"), "edge", &config.tls.names)?,
    };
    let https = match config.listen_https {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|source| EdgeError::Listen { addr, source })?;
            let tls_config = tls::server_config(&identity, &[b"h2", b"http/1.1"], false)?;
            tracing::info!(%addr, "edge accepting clicks over HTTPS (HTTP/1.1 and HTTP/2)");
            Some((listener, tokio_rustls::TlsAcceptor::from(tls_config)))
        }
        None => None,
    };
    let h3 = match config.listen_h3 {
        Some(addr) => {
            let endpoint = tally_http::h3::bind(addr, tls::server_config(&identity, &[tally_http::h3::ALPN], true)?, &gate.limits)?;
            tracing::info!(%addr, "edge accepting clicks over HTTP/3");
            Some(endpoint)
        }
        None => None,
    };
    let alt_svc = config.listen_h3.and_then(|a| http::HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", a.port())).ok());
    let filters = Arc::new(Filters::default());
    let mut registry = None;
    if !config.filters.is_empty() || config.registry.is_some() {
        let engine = tally_filter::host::FilterEngine::new(config.filter_instances)?;
        filter::slot::load_config(&config, &engine, &tenants.current(), &metrics, &filters);
        if let Some(r) = &config.registry {
            let limits = tally_filter::host::Limits::new(r.memory_mb << 20, Duration::from_millis(r.timeout_ms));
            let poll = Duration::from_millis(r.poll_ms);
            let cache = config.spool_dir.join("plugins");
            let client = tally_http::client::ApiClient::for_url(&r.url, Some(&config.core.ca_cert), &config.core.server_name, Some(&edge_identity))?;
            let mut sync = RegistrySync::new(&r.url, client, &r.token, poll, cache, limits, engine, tenants.clone(), filters.clone(), metrics.clone());
            sync.apply_cached().await;
            registry = Some(sync);
        }
    }
    let registry = registry.map(|sync| tokio::spawn(sync.run(shutdown.clone())));
    let backpressure = Arc::new(AtomicBool::new(false));
    let max_events_per_request = Arc::new(AtomicUsize::new(config.max_events_per_request));
    let tenants_file = config.tenants_file.clone();
    let files = tally_http::reload::Files { config_file, tenants_file, tenants: tenants.clone(), gate: gate.clone(), started: config.clone() };
    let reload = reload::EdgeReload { files, max_events_per_request: max_events_per_request.clone(), metrics: metrics.clone() };
    tokio::spawn(tally_http::reload::on_sighup(reload, shutdown.clone()));
    let ingest = Arc::new(Ingest {
        tenants,
        pipeline: pipeline.clone(),
        metrics: metrics.clone(),
        max_body_bytes: config.max_body_bytes,
        wal: wal_handle.clone(),
        backpressure: backpressure.clone(),
        alt_svc,
        static_dir: config.static_dir.clone(),
        rate_limits: Default::default(),
        filters,
        max_events_per_request,
        serves_metrics: config.listen_metrics.is_none(),
    });
    let shipper = Shipper {
        pipeline,
        spool: outbox,
        connectors,
        metrics,
        interval: Duration::from_millis(config.ship_interval_ms),
        heartbeat: Duration::from_millis(config.heartbeat_ms),
        max_in_flight: config.core.max_in_flight,
        wal: wal_handle.map(|w| w.commands),
        backpressure,
    };
    // The shipper stops only after the HTTP side drained, so clicks accepted
    // during the drain are still sealed.
    let (ship_stop_tx, ship_stop_rx) = watch::channel(false);
    let shipping = tokio::spawn(shipper.run(ship_stop_rx));
    let mut servers = tokio::task::JoinSet::new();
    if let Some(addr) = config.listen_metrics {
        let listener = TcpListener::bind(addr).await.map_err(|source| EdgeError::Listen { addr, source })?;
        tracing::info!(%addr, "serving /metrics on its own listener (not on the ingest ports)");
        servers.spawn(tally_http::serve::serve(listener, None, Arc::new(metrics::Endpoint(ingest.metrics.clone())), gate.clone(), shutdown.clone()));
    }
    if let Some((listener, acceptor)) = https {
        servers.spawn(tally_http::serve::serve(listener, Some(acceptor), ingest.clone(), gate.clone(), shutdown.clone()));
    }
    if let Some(endpoint) = h3 {
        servers.spawn(tally_http::h3::serve(endpoint, ingest.clone(), config.max_body_bytes, gate.clone(), shutdown.clone()));
    }
    servers.spawn(tally_http::serve::serve(listener, None, ingest, gate, shutdown));
    while servers.join_next().await.is_some() {}
    if let Some(sync) = registry {
        let _ = sync.await;
    }
    let _ = ship_stop_tx.send(true);
    let _ = shipping.await;
    // Every sender is gone with the shipper and the handlers: the WAL thread ends.
    if let Some(handle) = wal_thread {
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
    // The last handle: the snapshot thread writes what it holds and ends.
    drop(snapshot);
    let _ = tokio::task::spawn_blocking(move || snapshot_thread.join()).await;
    Ok(())
}
