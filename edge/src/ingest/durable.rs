//! What a request asks of the WAL thread (`spool::group_commit`), which
//! makes admitted clicks durable before the request is answered. Named here,
//! in ingest's vocabulary, so that ingest needs nothing of the spool.

use tokio::sync::{mpsc, oneshot, watch};

use super::pipeline::Admitted;

pub enum Command {
    /// Make these clicks durable, then answer.
    Append { admitted: Admitted, done: oneshot::Sender<Result<(), String>> },
    /// Records below this lsn are sealed in batches: their segments may go.
    Release(u64),
}

/// Ingest's side of the WAL thread (durable ack mode).
#[derive(Clone)]
pub struct WalHandle {
    pub commands: mpsc::Sender<Command>,
    /// Changes after every group commit settled its records in the pipeline
    /// (applied or aborted): duplicates of clicks in flight look again then.
    pub settled: watch::Receiver<()>,
}
