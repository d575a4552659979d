//! Group commit: the thread that owns the WAL.
//!
//! Requests hand their admitted clicks over a channel; the thread takes
//! everything that queued up (optionally lingering a moment to gather more),
//! appends it with a single fsync, then applies it to the pipeline in WAL
//! order and answers every request at once. If the write fails, the
//! admissions are undone and every request is answered with the error, so
//! nothing unacknowledged is counted and nothing acknowledged is lost. After
//! each group it announces `settled`, which requests holding duplicates of
//! that group's clicks wait on (see `ingest::pipeline`), and hands the
//! group's dedup keys to the snapshot thread (`dedup_snapshot`). Sealed
//! segments are deleted only as far as the dedup snapshots cover them.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::dedup_snapshot::{Chunk, SnapshotHandle};
use super::wal::Wal;
use crate::ingest::durable::{Command, WalHandle};
use crate::ingest::pipeline::Pipeline;
use crate::metrics::Metrics;

/// Most requests folded into one fsync.
const MAX_GROUP: usize = 4096;

/// Starts the WAL thread. `abort_before_write` is the crash tests' fault
/// hook (`TALLY_FAULT_ABORT_BEFORE_WAL_WRITE`): the process aborts before
/// the N-th group is written, once a duplicate waits on a click in flight.
pub fn start(
    mut wal: Wal,
    pipeline: Arc<Mutex<Pipeline>>,
    metrics: Arc<Metrics>,
    snapshot: SnapshotHandle,
    linger: Duration,
    abort_before_write: Option<u64>,
) -> (WalHandle, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Command>(MAX_GROUP);
    let (settled_tx, settled) = watch::channel(());
    let handle = std::thread::Builder::new()
        .name("tally-wal".into())
        .spawn(move || {
            let mut groups = 0u64;
            while let Some(first) = rx.blocking_recv() {
                if !linger.is_zero() {
                    std::thread::sleep(linger);
                }
                let mut appends = Vec::new();
                let mut release = None;
                let mut next = Some(first);
                while let Some(command) = next.take() {
                    match command {
                        Command::Append { admitted, done } => appends.push((admitted, done)),
                        Command::Release(lsn) => release = release.max(Some(lsn)),
                    }
                    if appends.len() < MAX_GROUP {
                        next = rx.try_recv().ok();
                    }
                }
                if !appends.is_empty() {
                    groups += 1;
                    if abort_before_write == Some(groups) {
                        abort_once_awaited(&pipeline);
                    }
                    let started = std::time::Instant::now();
                    let result = wal.append(appends.iter_mut().map(|(a, _)| &mut a.record));
                    metrics.wal_fsync_seconds.0.observe(started.elapsed().as_secs_f64());
                    metrics.wal_fsyncs.inc();
                    metrics.wal_failing.set(result.is_err() as i64);
                    let mut p = pipeline.lock().expect("pipeline lock poisoned");
                    for (admitted, _) in &appends {
                        match &result {
                            Ok(()) => p.apply(admitted),
                            Err(_) => p.abort(admitted),
                        }
                    }
                    drop(p);
                    settled_tx.send_replace(());
                    if result.is_ok() {
                        let mut keys = Chunk::default();
                        for (admitted, _) in &appends {
                            keys.add(admitted.tenant.as_str(), &admitted.record);
                        }
                        snapshot.durable(keys);
                    }
                    let answer = result.map_err(|e| e.to_string());
                    if let Err(e) = &answer {
                        tracing::error!(error = %e, requests = appends.len(), "WAL write failed; requests answered 503");
                    } else {
                        metrics.wal_records.inc_by(appends.len() as u64);
                    }
                    for (_, done) in appends {
                        let _ = done.send(answer.clone());
                    }
                }
                if let Some(lsn) = release {
                    // A key is always in a WAL segment or a dedup snapshot.
                    if let Err(e) = wal.release(lsn.min(snapshot.covered())) {
                        tracing::warn!(error = %e, "could not delete sealed WAL segments");
                    }
                    metrics.wal_segments.set(wal.segments() as i64);
                }
            }
        })
        .expect("spawning the WAL thread");
    (WalHandle { commands: tx, settled }, handle)
}

/// The fault hook: a crash while this group is unwritten and a request
/// waits on it, so no fsync ever covers what that request was told. Polls,
/// as the waiting request tells this thread nothing; tests only.
fn abort_once_awaited(pipeline: &Mutex<Pipeline>) -> ! {
    while pipeline.lock().expect("pipeline lock poisoned").awaited() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    tracing::error!("fault injection: aborting before the WAL write, a duplicate waiting on it");
    std::process::abort()
}
