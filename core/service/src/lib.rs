//! The Tally central service.
//!
//! ```text
//!  edges ── QUIC ──► receiver ──► commit::committer ──► ClickHouse landing table
//!   (validate: checksum, bytecheck)   (ledger protocol)        │ materialized views
//!                                                              ▼
//!  dashboards ── HTTP ──► api ◄──────────────── minute / hour / day rollups
//!  tenant admins ── HTTP ──► api ──► registry ◄── HTTP (poll) ── edges
//! ```
//!
//! Start reading at [`run`], then [`commit`] for the exactly-once protocol.

pub mod api;
pub mod billing;
pub mod clickhouse;
pub mod commit;
pub mod config;
pub mod edges;
pub mod heal;
pub mod lease;
pub mod metrics;
pub mod read_plan;
pub mod receiver;
pub mod registry;
pub mod reload;
pub mod resolution;
pub mod retention;
pub mod supervise;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use tally_model::tenant::{LiveTenants, Tenants, TenantsError};

use api::Api;
use clickhouse::{Store, StoreError};
use config::CoreConfig;
use metrics::Metrics;
use receiver::{Receiver, ReceiverError};
use registry::Registry;
use tally_http::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Receiver(#[from] ReceiverError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error("listening on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("core configuration: {0}")]
    Config(String),
}

/// Batches waiting for the committer; past this, receivers wait (and so,
/// through QUIC flow control, do the edges).
const COMMIT_QUEUE: usize = 1024;

/// Test hook for crash tests: `TALLY_FAULT_ABORT_AFTER_INSERTS=N` makes the
/// core abort (as if `kill -9`ed) right after the N-th group commit wrote its
/// rows, before the ledger says committed and before any edge is answered.
fn fault_after_inserts() -> Option<u64> {
    std::env::var("TALLY_FAULT_ABORT_AFTER_INSERTS").ok().and_then(|v| v.parse().ok())
}

/// Runs a core until `shutdown` turns true. `config_file` (where `config`
/// was read) is read again on SIGHUP (`reload`).
pub async fn run(config: CoreConfig, config_file: std::path::PathBuf, shutdown: watch::Receiver<bool>) -> Result<(), CoreError> {
    let tenants = Arc::new(LiveTenants::new(Tenants::load(&config.tenants_file)?));
    let metrics = Arc::new(Metrics::new());
    let ch = &config.clickhouse;
    // Every configured server serves every query: the clients move to another
    // when theirs cannot be reached (`clickhouse::failover`).
    let urls: Vec<String> = std::iter::once(&ch.url).chain(&ch.servers).cloned().collect();
    let store = Store::connect_any(&urls, ch.user.as_deref(), ch.password.as_deref()).await?.in_cluster_with(ch.cluster.as_deref(), ch.insert_quorum).await?;
    // The committer's own client: a hung ClickHouse fails the commit after
    // commit_timeout_ms, and what it may still do is settled (`clickhouse::stalled`).
    let commit_deadline = std::time::Duration::from_millis(ch.commit_timeout_ms);
    let commit_store = Store::connect_bounded(&urls, ch.user.as_deref(), ch.password.as_deref(), commit_deadline)
        .await?
        .in_cluster_with(ch.cluster.as_deref(), ch.insert_quorum)
        .await?;
    let commit_store =
        clickhouse::stalled::Settling::new(commit_store, urls.clone(), ch.user.clone(), ch.password.clone(), commit_deadline, config.zookeeper.is_some());
    // The API's own client: a hung ClickHouse makes a query fail, not wait.
    let deadline = std::time::Duration::from_millis(ch.query_timeout_ms);
    let api_store = Store::connect_bounded(&urls, ch.user.as_deref(), ch.password.as_deref(), deadline)
        .await?
        .in_cluster_with(ch.cluster.as_deref(), ch.insert_quorum)
        .await?;
    let applied = match &ch.cluster {
        Some(cluster) => clickhouse::cluster::migrate_every_server(&urls, ch.user.as_deref(), ch.password.as_deref(), cluster).await.map(|()| Vec::new())?,
        None => store.migrate().await?,
    };
    tracing::info!(server = store.server_version(), ?applied, "ClickHouse schema is current");
    // Retired edges are known before the first batch is received.
    let roster = Arc::new(edges::Roster::new(config.edges.iter().map(|e| e.id.clone()).collect()));
    roster.refresh(&store, &metrics).await?;

    let identity = tls::load_or_create(&config.data_dir, "core", &config.tls_names)?;
    let cert = identity.cert_path.clone();
    let (jobs_tx, jobs_rx) = mpsc::channel(COMMIT_QUEUE);
    let edges = Arc::new(config.pinned_edges().map_err(|e| CoreError::Config(format!("[[edges]]: {e}")))?);
    let api_edges = edges.clone();
    let known = receiver::Known { tenants: tenants.clone(), edges: roster.clone() };
    let receiver = Receiver::bind(config.listen_quic, &identity, edges, known, config.max_batch_bytes, jobs_tx, metrics.clone())?;
    tracing::info!(addr = %config.listen_quic, cert = %cert.display(), "receiving batches over QUIC");
    let leases = match &config.zookeeper {
        None => None,
        Some(zk) => {
            // A stale owner's inserts are fenced on every server it may have used.
            let fence = clickhouse::fence::EveryServer { urls: urls.clone(), user: ch.user.clone(), password: ch.password.clone() };
            let core_id = zk.core_id.clone().unwrap_or_else(|| lease::zk::default_core_id(config.listen_quic));
            let about = format!("quic={} http={}", config.listen_quic, config.listen_http);
            tracing::info!(%core_id, hosts = %zk.hosts, root = %zk.root, "edge leases in ZooKeeper: this core commits only the edges it holds");
            let fence = Arc::new(fence);
            Some(lease::zk::Keeper::start(zk, core_id, about, fence, metrics.clone()))
        }
    };
    let receiver = match &leases {
        Some(keeper) => receiver.with_leases(keeper.clone()),
        None => receiver,
    };
    // GET /v1/edges names the core holding each lease; retire goes through it.
    if let Some(keeper) = &leases {
        roster.read_leases(keeper.clone());
    }
    let gate = tally_http::limits::Gate::new(config.limits.clone());
    gate.count_refusals_in(metrics.connections_refused.clone());
    let listener = TcpListener::bind(config.listen_http).await.map_err(|source| CoreError::Listen { addr: config.listen_http, source })?;
    tracing::info!(addr = %config.listen_http, "serving the query API and dashboard");
    let https = match config.listen_https {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|source| CoreError::Listen { addr, source })?;
            // Edges present their pinned key for the registry; tenants and browsers present none.
            let api_pins = Arc::new(config.pinned_edges().map_err(|e| CoreError::Config(format!("[[edges]]: {e}")))?.optional());
            let tls = tally_http::pinned::server_config(&identity, &[b"h2", b"http/1.1"], api_pins, false)?;
            tracing::info!(%addr, "serving the query API, dashboard and registry over HTTPS");
            Some((listener, tokio_rustls::TlsAcceptor::from(tls)))
        }
        None => None,
    };

    // Rollups heal where billing is finalized: one core per ClickHouse, or
    // with leases the core holding the finalizer leader node.
    let heal = config.billing.finalize.then(|| Arc::new(heal::Requests::default()));
    let committer = match &leases {
        // Every write of a group checks the lease again.
        Some(keeper) => {
            let leased = lease::store::LeasedStore::new(commit_store, keeper.clone());
            tokio::spawn(commit::committer::run(leased, metrics.clone(), jobs_rx, fault_after_inserts(), heal.clone(), leases.clone()))
        }
        None => tokio::spawn(commit::committer::run(commit_store, metrics.clone(), jobs_rx, fault_after_inserts(), heal.clone(), None)),
    };
    if let (Some(requests), Some(keeper)) = (heal.clone(), leases.clone()) {
        let (store, metrics, billing) = (store.clone(), metrics.clone(), config.billing.clone());
        let (kept, clickhouse) = (config.retention.clone(), ch.clone());
        tokio::spawn(lease::zk::lead(keeper, shutdown.clone(), move |stop| {
            let finalize = billing::finalizer::run(
                store.clone(),
                metrics.clone(),
                std::time::Duration::from_millis(billing.finalize_interval_ms),
                billing.lookback_hours,
                stop.clone(),
            );
            // Retention too runs on one core at a time.
            let prune = retention::run(store.clone(), clickhouse.clone(), metrics.clone(), kept.clone(), billing.lookback_hours, stop.clone());
            let heal = heal::run(store.clone(), metrics.clone(), requests.clone(), std::time::Duration::from_millis(billing.rollup_heal_interval_ms), stop);
            async move {
                tokio::join!(finalize, heal, prune);
            }
        }));
    } else if let Some(requests) = heal {
        let interval = std::time::Duration::from_millis(config.billing.finalize_interval_ms);
        tokio::spawn(billing::finalizer::run(store.clone(), metrics.clone(), interval, config.billing.lookback_hours, shutdown.clone()));
        let interval = std::time::Duration::from_millis(config.billing.rollup_heal_interval_ms);
        tokio::spawn(heal::run(store.clone(), metrics.clone(), requests, interval, shutdown.clone()));
        tokio::spawn(retention::run(store.clone(), ch.clone(), metrics.clone(), config.retention.clone(), config.billing.lookback_hours, shutdown.clone()));
    }
    let interval = std::time::Duration::from_millis(config.billing.finalize_interval_ms);
    tokio::spawn(edges::run(store.clone(), roster.clone(), metrics.clone(), interval, shutdown.clone()));
    let tenants_file = config.tenants_file.clone();
    let files = tally_http::reload::Files { config_file, tenants_file, tenants: tenants.clone(), gate: gate.clone(), started: config.clone() };
    let reload = reload::CoreReload { files, metrics: metrics.clone() };
    tokio::spawn(tally_http::reload::on_sighup(reload, shutdown.clone()));
    let registry_dir = config.registry.dir.clone().unwrap_or_else(|| config.data_dir.join("registry"));
    let registry = Registry::open(&registry_dir, config.registry.max_plugin_bytes.unwrap_or(config::RegistrySection::DEFAULT_MAX_PLUGIN_BYTES))?;
    // Several cores serve one registry: its state in ZooKeeper, components in ClickHouse.
    let registry = match &config.zookeeper {
        Some(zk) => {
            let registry = Arc::new(registry.shared_through(registry::shared::Shared::new(zk, store.clone())));
            tokio::spawn(registry.clone().follow(shutdown.clone()));
            registry
        }
        None => Arc::new(registry),
    };
    let receiving = tokio::spawn(receiver.run(shutdown.clone()));
    let api = Arc::new(Api {
        tenants,
        store: api_store,
        metrics,
        registry,
        edge_token: config.registry.edge_token.clone(),
        edges: api_edges,
        roster,
        ops_token: config.ops.token.clone(),
    });
    let (https_api, https_gate, https_shutdown) = (api.clone(), gate.clone(), shutdown.clone());
    let serve_https = async move {
        if let Some((listener, acceptor)) = https {
            tally_http::serve::serve(listener, Some(acceptor), https_api, https_gate, https_shutdown).await;
        }
    };
    tokio::join!(tally_http::serve::serve(listener, None, api, gate, shutdown), serve_https);
    // The receiver owns the job sender: once it stops, the committer drains
    // what is queued and ends.
    let _ = receiving.await;
    let _ = committer.await;
    // Nothing commits any more: give the leases up at once.
    if let Some(keeper) = &leases {
        keeper.close().await;
    }
    Ok(())
}
