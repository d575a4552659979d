//! The Tally edge collector.
//!
//! ```text
//!  HTTP POST /v1/clicks ──► ingest::body ──► ingest::event ──► ingest::pipeline
//!                                  (split)       (validate)     (dedup + aggregate)
//!                                                                     │ every ship_interval
//!                                                                     ▼
//!                          core ◄── QUIC ── shipper ◄── spool (sealed batch, fsynced)
//! ```
//!
//! Start reading at [`run`], then [`ingest::pipeline`] for what happens to a
//! click and [`spool`] for what survives a crash.

pub mod aggregate;
pub mod config;
pub mod dedup;
pub mod ingest;
pub mod metrics;
pub mod shipper;
pub mod spool;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use tally_model::tenant::{Tenants, TenantsError};

use config::EdgeConfig;
use dedup::DedupConfig;
use ingest::http::Ingest;
use ingest::pipeline::Pipeline;
use metrics::Metrics;
use shipper::{Connector, ShipError, Shipper};
use spool::{Spool, SpoolError};

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
}

/// Runs an edge until `shutdown` turns true; then stops taking requests,
/// seals what it holds and gives the shipper a moment to deliver it.
pub async fn run(config: EdgeConfig, shutdown: watch::Receiver<bool>) -> Result<(), EdgeError> {
    let tenants = Tenants::load(&config.tenants_file)?;
    let metrics = Arc::new(Metrics::new());
    let (spool, quarantined) = Spool::open(&config.spool_dir, &config.edge_id, config.spool_max_bytes)?;
    for q in &quarantined {
        tracing::error!(file = %q.file.display(), reason = %q.reason, "damaged spool file moved to quarantine");
    }
    metrics.batches_quarantined.inc_by(quarantined.len() as u64);
    tracing::info!(edge = %config.edge_id, pending = spool.pending_len(), next_seq = spool.next_seq(), "spool opened");

    let pipeline = Arc::new(Mutex::new(Pipeline::new(DedupConfig {
        horizon_ms: config.dedup.horizon_secs * 1000,
        max_entries: config.dedup.max_entries,
    })));
    let connector = Connector::new(config.core.addr, &config.core.server_name, &config.core.ca_cert)?;
    let listener = TcpListener::bind(config.listen_http)
        .await
        .map_err(|source| EdgeError::Listen { addr: config.listen_http, source })?;
    tracing::info!(addr = %config.listen_http, "edge accepting clicks over HTTP/1.1 and HTTP/2");

    let ingest = Arc::new(Ingest {
        tenants,
        pipeline: pipeline.clone(),
        metrics: metrics.clone(),
        max_body_bytes: config.max_body_bytes,
    });
    let shipper = Shipper {
        pipeline,
        spool,
        connector,
        metrics,
        interval: Duration::from_millis(config.ship_interval_ms),
        max_in_flight: config.core.max_in_flight,
    };
    // The shipper stops only after the HTTP side drained, so clicks accepted
    // during the drain are still sealed.
    let (ship_stop_tx, ship_stop_rx) = watch::channel(false);
    let shipping = tokio::spawn(shipper.run(ship_stop_rx));
    tally_http::serve::serve(listener, ingest, shutdown).await;
    let _ = ship_stop_tx.send(true);
    let _ = shipping.await;
    Ok(())
}
