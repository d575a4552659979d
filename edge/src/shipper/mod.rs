//! Shipping sealed batches to the core over QUIC, until each is acknowledged.
//!
//! Every `ship_interval` the shipper seals what the pipeline aggregated into
//! the outbox (durably; an empty batch only every `heartbeat`, to carry the
//! watermark) and lets the WAL drop what is now sealed. What to send and
//! when, and when to (re)connect, is decided by [`schedule::Schedule`], a
//! sans-IO state machine: this module is its shell, which keeps one QUIC
//! connection, sends each batch the schedule names on its own bidirectional
//! stream (the frame goes up, a [`Reply`] comes back), and applies its
//! verdicts to the outbox. A batch leaves the spool only on `Committed` or
//! `Duplicate`; on `Rejected` it is quarantined (an edge bug or disk damage,
//! surfaced in metrics and logs); on `Retry` or any transport error it is sent
//! again. Re-sends are the exact bytes of the first send, which is what lets
//! the core commit each once.
//!
//! With several cores (`[core] addrs`) the shell holds a connector per core
//! and connects to the one the schedule names ([`Schedule::core`]); a
//! `Retry` that says another core serves this edge ([`Reply::is_not_owner`])
//! is [`Event::Moved`], and the connection to that core is closed.

mod backoff;
mod connection;
pub mod identity;
pub mod schedule;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{interval, MissedTickBehavior};

use tally_model::reply::{Reply, Status};
use tally_model::timestamp::now_ms;

pub use connection::{exchange, Connector, ShipError};
use schedule::{Action, Event, Schedule};

use crate::ingest::durable::Command;
use crate::ingest::pipeline::{Pipeline, Sealing};
use crate::metrics::Metrics;
use crate::spool::Outbox;

/// How long shutdown waits for in-flight and pending batches.
const DRAIN: Duration = Duration::from_secs(5);

pub struct Shipper {
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub spool: Outbox,
    /// One per core, in failover order (at least one).
    pub connectors: Vec<Connector>,
    pub metrics: Arc<Metrics>,
    pub interval: Duration,
    pub heartbeat: Duration,
    pub max_in_flight: usize,
    /// The WAL thread, in durable ack mode.
    pub wal: Option<mpsc::Sender<Command>>,
    /// Tells ingest to answer 503 while nothing more can be sealed.
    pub backpressure: Arc<AtomicBool>,
}

/// The sealing side: what the pipeline handed over and the outbox has not
/// taken yet.
struct Sealer {
    /// Taken from the pipeline but not yet sealed (the outbox refused it).
    carry: Option<Sealing>,
    last_seal: Instant,
    evicted_reported: u64,
}

/// The sending side: the schedule and what carries out its actions.
struct Link {
    schedule: Schedule,
    /// The connection the schedule was told is up, until it is lost.
    connection: Option<quinn::Connection>,
    tasks: JoinSet<Done>,
}

/// What a connect or send task came back with.
enum Done {
    Connect(Result<quinn::Connection, ShipError>),
    Send { seq: u64, result: Result<Reply, ShipError>, connection_lost: bool },
}

impl Shipper {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = interval(self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let now = Instant::now();
        let mut sealer = Sealer { carry: None, last_seal: now, evicted_reported: 0 };
        let schedule = Schedule::new(self.spool.pending().map(|b| b.seq), self.max_in_flight, fastrand::Rng::new(), now).with_cores(self.connectors.len());
        let mut link = Link { schedule, connection: None, tasks: JoinSet::new() };
        loop {
            let wake = self.act(&mut link);
            let watched = link.connection.clone();
            tokio::select! {
                _ = tick.tick() => self.seal(&mut sealer, &mut link.schedule),
                Some(done) = link.tasks.join_next() => {
                    if let Ok(done) = done {
                        self.settle(&mut link, done);
                    }
                }
                _ = sleep_until(wake) => {}
                reason = closed(watched) => {
                    tracing::warn!(core = %self.core_addr(&link.schedule), %reason, "connection to core lost; reconnecting");
                    link.connection = None;
                    self.contact(false);
                    link.schedule.handle(Event::Lost, Instant::now());
                }
                _ = tally_http::serve::stopped(&mut shutdown) => break,
            }
        }
        self.drain(&mut sealer, &mut link).await;
    }

    /// Last seal and a bounded attempt to ship everything before exit;
    /// whatever is left stays in the spool for the next start.
    async fn drain(&mut self, sealer: &mut Sealer, link: &mut Link) {
        self.seal(sealer, &mut link.schedule);
        let deadline = tokio::time::Instant::now() + DRAIN;
        link.schedule.drain(Instant::now());
        loop {
            self.act(link);
            if !link.schedule.outstanding() {
                break;
            }
            match tokio::time::timeout_at(deadline, link.tasks.join_next()).await {
                Ok(Some(Ok(done))) => self.settle(link, done),
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        tracing::info!(pending = self.spool.pending_len(), "shipper stopped");
    }

    fn seal(&mut self, sealer: &mut Sealer, schedule: &mut Schedule) {
        if sealer.carry.is_none() && !self.spool.is_full() {
            let held = self.spool.pending_min_event_ms();
            let mut pipeline = self.pipeline.lock().expect("pipeline lock poisoned");
            let idle = pipeline.pending_clicks() == 0;
            if !idle || sealer.last_seal.elapsed() >= self.heartbeat {
                sealer.carry = Some(pipeline.seal(now_ms(), held));
            }
            let d = pipeline.dedup();
            self.metrics.dedup_entries.set(d.len() as i64);
            self.metrics.dedup_memory_bytes.set(d.memory_bytes() as i64);
            self.metrics.dedup_evicted_early.inc_by(d.evicted_early() - sealer.evicted_reported);
            sealer.evicted_reported = d.evicted_early();
            self.metrics.watermark_ms.set(pipeline.watermark_ms() as i64);
        }
        if let Some(sealing) = sealer.carry.take() {
            match self.spool.seal(sealing, now_ms()) {
                Ok(sealed) => {
                    tracing::debug!(seq = sealed.seq, bytes = sealed.frame.len(), "sealed batch");
                    self.metrics.batches_sealed.inc();
                    sealer.last_seal = Instant::now();
                    schedule.handle(Event::Sealed { seq: sealed.seq }, Instant::now());
                    if let Some(wal) = &self.wal {
                        let _ = wal.try_send(Command::Release(self.spool.wal_sealed()));
                    }
                }
                Err((e, sealing)) => {
                    // Kept in memory and retried next tick: nothing is dropped.
                    tracing::warn!(error = %e, "cannot seal batch yet");
                    sealer.carry = Some(sealing);
                }
            }
        }
        let full = sealer.carry.is_some() || self.spool.is_full();
        self.backpressure.store(full, Ordering::Relaxed);
        self.metrics.spool_full.set(full as i64);
        self.update_gauges();
    }

    /// Does what the schedule asks until it says wait; returns until when.
    fn act(&mut self, link: &mut Link) -> Option<Instant> {
        loop {
            match link.schedule.poll(Instant::now()) {
                Action::Connect => {
                    link.connection = None;
                    let connector = self.connectors[link.schedule.core()].clone();
                    link.tasks.spawn(async move { Done::Connect(connector.connect().await) });
                }
                Action::Send { seq } => {
                    let conn = link.connection.clone().expect("the schedule sends only on a connection it was told is up");
                    let frame = self.spool.frame(seq).expect("the schedule sends only batches in the outbox");
                    let ship_seconds = self.metrics.ship_seconds.0.clone();
                    link.tasks.spawn(async move {
                        let started = Instant::now();
                        let result = exchange(&conn, frame).await;
                        if result.is_ok() {
                            ship_seconds.observe(started.elapsed().as_secs_f64());
                        }
                        let connection_lost = result.is_err() && conn.close_reason().is_some();
                        Done::Send { seq, result, connection_lost }
                    });
                }
                Action::Delete { seq } => {
                    // The core has it either way: a batch left behind is re-sent
                    // after a restart and answered `Duplicate`.
                    if let Err(e) = self.spool.acknowledge(seq) {
                        self.metrics.ship_errors.inc();
                        tracing::warn!(seq, error = %e, "acknowledged batch not deleted from the outbox");
                    }
                    self.update_gauges();
                }
                Action::Quarantine { seq } => {
                    if let Err(e) = self.spool.quarantine(seq) {
                        self.metrics.ship_errors.inc();
                        tracing::warn!(seq, error = %e, "rejected batch not moved to quarantine");
                    }
                    self.update_gauges();
                }
                Action::Wait { until } => return until,
            }
        }
    }

    fn settle(&mut self, link: &mut Link, done: Done) {
        let now = Instant::now();
        match done {
            Done::Connect(Ok(conn)) => {
                tracing::info!(core = %self.core_addr(&link.schedule), "connected to core");
                link.connection = Some(conn);
                self.contact(true);
                link.schedule.handle(Event::Connected, now);
            }
            Done::Connect(Err(e)) => {
                self.metrics.ship_errors.inc();
                // Said once per outage; the attempts that follow, at debug.
                if link.schedule.connect_failures() == 0 {
                    tracing::warn!(error = %e, "cannot connect to core; retrying");
                } else {
                    tracing::debug!(error = %e, "cannot connect to core; retrying");
                }
                link.schedule.handle(Event::ConnectFailed, now);
            }
            Done::Send { seq, result: Ok(reply), .. } => {
                self.contact(link.connection.is_some());
                match reply.status {
                    Status::Committed | Status::Duplicate => {
                        if reply.status == Status::Duplicate {
                            self.metrics.batches_resent_duplicate.inc();
                        }
                        self.metrics.batches_acknowledged.inc();
                    }
                    Status::Rejected => {
                        tracing::error!(seq, reason = %reply.reason, "core rejected batch; quarantining it");
                        self.metrics.batches_rejected.inc();
                    }
                    Status::Retry => {
                        self.metrics.ship_errors.inc();
                    }
                }
                if reply.is_not_owner() {
                    let (from, was_up) = (self.core_addr(&link.schedule), link.schedule.is_up());
                    link.schedule.handle(Event::Moved { seq }, now);
                    // Only the answer that moved the edge (later ones came from a core it left).
                    if was_up && !link.schedule.is_up() {
                        if let Some(conn) = link.connection.take() {
                            conn.close(0u32.into(), b"moving to another core");
                            self.contact(false);
                        }
                        tracing::warn!(seq, core = %from, reason = %reply.reason, next = %self.core_addr(&link.schedule), "core does not serve this edge; moving on");
                    }
                    return;
                }
                link.schedule.handle(Event::Answered { seq, status: reply.status }, now);
                if reply.status == Status::Retry {
                    let reason = format!("core asked to retry: {}", reply.reason);
                    tracing::warn!(seq, %reason, backoff_ms = paused_ms(&link.schedule, now), "batch not acknowledged; will re-send");
                }
            }
            Done::Send { seq, result: Err(e), connection_lost } => {
                self.metrics.ship_errors.inc();
                link.schedule.handle(Event::SendFailed { seq, connection_lost }, now);
                tracing::warn!(seq, reason = %e, connection_lost, backoff_ms = paused_ms(&link.schedule, now), "batch not acknowledged; will re-send");
            }
        }
    }

    fn core_addr(&self, schedule: &Schedule) -> std::net::SocketAddr {
        self.connectors[schedule.core()].addr()
    }

    /// A core was heard from just now (for `/readyz`); `connected`: a
    /// connection is up.
    fn contact(&self, connected: bool) {
        self.metrics.core_connected.set(connected as i64);
        self.metrics.core_last_contact_ms.set(now_ms() as i64);
    }

    fn update_gauges(&self) {
        self.metrics.spool_pending_batches.set(self.spool.pending_len() as i64);
        self.metrics.spool_bytes.set(self.spool.bytes() as i64);
    }
}

fn paused_ms(schedule: &Schedule, now: Instant) -> u64 {
    schedule.paused_until().map_or(0, |t| t.saturating_duration_since(now).as_millis() as u64)
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Resolves when `conn` closes, with why; never without a connection.
async fn closed(conn: Option<quinn::Connection>) -> quinn::ConnectionError {
    match conn {
        Some(conn) => conn.closed().await,
        None => std::future::pending().await,
    }
}
