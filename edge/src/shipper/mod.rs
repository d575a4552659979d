//! Shipping sealed batches to the core over QUIC, until each is acknowledged.
//!
//! Every `ship_interval` the shipper seals what the pipeline aggregated into
//! the outbox (durably; an empty batch only every `heartbeat`, to carry the
//! watermark), lets the WAL drop what is now sealed, then sends every
//! pending batch it is not already sending, up to `max_in_flight` at once, one bidirectional QUIC stream per
//! batch: the frame goes up, a [`Reply`] comes back. A batch leaves the spool
//! only on `Committed` or `Duplicate`; on `Rejected` it is quarantined (an
//! edge bug or disk damage, surfaced in metrics and logs); on `Retry` or any
//! transport error it is sent again after a backoff. Re-sends are the exact
//! bytes of the first send, which is what lets the core commit each once.

mod connection;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};

use tally_model::reply::{Reply, Status};

pub use connection::{Connector, ShipError};

use crate::ingest::durable::Command;
use crate::ingest::pipeline::{Pipeline, Sealing};
use crate::metrics::Metrics;
use crate::spool::Outbox;
use tally_model::timestamp::now_ms;

const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight and pending batches.
const DRAIN: Duration = Duration::from_secs(5);

pub struct Shipper {
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub spool: Outbox,
    pub connector: Connector,
    pub metrics: Arc<Metrics>,
    pub interval: Duration,
    pub heartbeat: Duration,
    pub max_in_flight: usize,
    /// The WAL thread, in durable ack mode.
    pub wal: Option<mpsc::Sender<Command>>,
    /// Tells ingest to answer 503 while nothing more can be sealed.
    pub backpressure: Arc<AtomicBool>,
}

struct State {
    in_flight: HashSet<u64>,
    /// Taken from the pipeline but not yet sealed (the outbox refused it).
    carry: Option<Sealing>,
    last_seal: Instant,
    evicted_reported: u64,
    backoff: Duration,
    resume_at: Instant,
}

type Sent = (u64, Result<Reply, ShipError>);

impl Shipper {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = interval(self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sends: JoinSet<Sent> = JoinSet::new();
        let mut st = State {
            in_flight: HashSet::new(),
            carry: None,
            last_seal: Instant::now(),
            evicted_reported: 0,
            backoff: Duration::ZERO,
            resume_at: Instant::now(),
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.seal(&mut st);
                    self.dispatch(&mut st, &mut sends);
                }
                Some(done) = sends.join_next() => {
                    if let Ok(sent) = done {
                        self.settle(&mut st, sent);
                    }
                    self.dispatch(&mut st, &mut sends);
                }
                _ = sleep_until(st.resume_at), if !st.backoff.is_zero() && st.in_flight.is_empty() => {
                    self.dispatch(&mut st, &mut sends);
                }
                _ = tally_http::serve::stopped(&mut shutdown) => break,
            }
        }
        self.drain(&mut st, &mut sends).await;
    }

    /// Last seal and a bounded attempt to ship everything before exit;
    /// whatever is left stays in the spool for the next start.
    async fn drain(&mut self, st: &mut State, sends: &mut JoinSet<Sent>) {
        self.seal(st);
        let deadline = Instant::now() + DRAIN;
        st.backoff = Duration::ZERO;
        self.dispatch(st, sends);
        while !st.in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, sends.join_next()).await {
                Ok(Some(Ok(sent))) => {
                    self.settle(st, sent);
                    if st.backoff.is_zero() {
                        self.dispatch(st, sends);
                    }
                }
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        tracing::info!(pending = self.spool.pending_len(), "shipper stopped");
    }

    fn seal(&mut self, st: &mut State) {
        if st.carry.is_none() && !self.spool.is_full() {
            let held = self.spool.pending_min_event_ms();
            let mut pipeline = self.pipeline.lock().expect("pipeline lock poisoned");
            let idle = pipeline.pending_clicks() == 0;
            if !idle || st.last_seal.elapsed() >= self.heartbeat {
                st.carry = Some(pipeline.seal(now_ms(), held));
            }
            let d = pipeline.dedup();
            self.metrics.dedup_entries.set(d.len() as i64);
            self.metrics.dedup_memory_bytes.set(d.memory_bytes() as i64);
            self.metrics.dedup_evicted_early.inc_by(d.evicted_early() - st.evicted_reported);
            st.evicted_reported = d.evicted_early();
            self.metrics.watermark_ms.set(pipeline.watermark_ms() as i64);
        }
        if let Some(sealing) = st.carry.take() {
            match self.spool.seal(sealing, now_ms()) {
                Ok(sealed) => {
                    tracing::debug!(seq = sealed.seq, bytes = sealed.frame.len(), "sealed batch");
                    self.metrics.batches_sealed.inc();
                    st.last_seal = Instant::now();
                    if let Some(wal) = &self.wal {
                        let _ = wal.try_send(Command::Release(self.spool.wal_sealed()));
                    }
                }
                Err((e, sealing)) => {
                    // Kept in memory and retried next tick: nothing is dropped.
                    tracing::warn!(error = %e, "cannot seal batch yet");
                    st.carry = Some(sealing);
                }
            }
        }
        self.backpressure.store(st.carry.is_some() || self.spool.is_full(), Ordering::Relaxed);
        self.update_gauges();
    }

    fn dispatch(&mut self, st: &mut State, sends: &mut JoinSet<Sent>) {
        if Instant::now() < st.resume_at {
            return;
        }
        let ready: Vec<(u64, Bytes)> = self
            .spool
            .pending()
            .filter(|b| !st.in_flight.contains(&b.seq))
            .take(self.max_in_flight.saturating_sub(st.in_flight.len()))
            .map(|b| (b.seq, b.frame.clone()))
            .collect();
        for (seq, frame) in ready {
            st.in_flight.insert(seq);
            let connector = self.connector.clone();
            sends.spawn(async move { (seq, connector.send(frame).await) });
        }
    }

    fn settle(&mut self, st: &mut State, (seq, result): Sent) {
        st.in_flight.remove(&seq);
        let outcome = match result {
            Ok(reply) => match reply.status {
                Status::Committed | Status::Duplicate => {
                    if reply.status == Status::Duplicate {
                        self.metrics.batches_resent_duplicate.inc();
                    }
                    self.metrics.batches_acknowledged.inc();
                    self.spool.acknowledge(seq).map_err(|e| e.to_string())
                }
                Status::Rejected => {
                    tracing::error!(seq, reason = %reply.reason, "core rejected batch; quarantining it");
                    self.metrics.batches_rejected.inc();
                    self.spool.quarantine(seq).map_err(|e| e.to_string())
                }
                Status::Retry => Err(format!("core asked to retry: {}", reply.reason)),
            },
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => st.backoff = Duration::ZERO,
            Err(reason) => {
                self.metrics.ship_errors.inc();
                st.backoff = (st.backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                st.resume_at = Instant::now() + st.backoff;
                tracing::warn!(seq, %reason, backoff_ms = st.backoff.as_millis() as u64, "batch not acknowledged; will re-send");
            }
        }
        self.update_gauges();
    }

    fn update_gauges(&self) {
        self.metrics.spool_pending_batches.set(self.spool.pending_len() as i64);
        self.metrics.spool_bytes.set(self.spool.bytes() as i64);
    }
}
