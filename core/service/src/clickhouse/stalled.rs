//! The committer's deadline: a ClickHouse server that keeps its connections
//! open and answers nothing (stopped, swapping, wedged) fails the commit
//! instead of holding it forever, and an INSERT cut off that way is settled
//! before any batch is probed again.
//!
//! # What happens on a deadline
//! The committer's client bounds every query and INSERT by
//! `[clickhouse] commit_timeout_ms` ([`super::deadline`]: silence on the
//! connection for that long fails it). The silent server is marked failed
//! and the client moves to the next one ([`super::failover::Selector::stalled`]);
//! the group is answered `Retry` like any failed commit, and the edges re-send.
//! A timed-out read or ledger row is harmless (a read changes nothing; a late
//! `Started` or `Committed` ledger row is true, and the highest state wins).
//!
//! # Why a timed-out INSERT must be settled first
//! The server may still hold the INSERT's bytes, read or unread, and run it
//! once it resumes. If the next attempt's probe ran before that, it would
//! count those rows missing and insert them again: a double. So the INSERT
//! is never retried blind. Every row INSERT carries a `query_id` (the lease's
//! `(edge, epoch, seqs)` name, epoch 0 without leases), and one that timed
//! out is *unsettled*: before the next ledger read, [`Settling`] sends
//! `KILL QUERY WHERE initial_query_id = ... SYNC` (`kill_timed_out_insert.sql`,
//! by initial id, so a Distributed INSERT's parts on other servers go too)
//! to every configured server, each under the same deadline, and the
//! [`verdict`] decides:
//!
//! * every server answered (the INSERT has finished or is stopped) or cannot
//!   be reached (its process is gone, and the bytes with it): settled, the
//!   probe then sees what landed and the protocol inserts the complement;
//! * a server refused the KILL: not settled, the group is answered `Retry`;
//! * a server is still silent: on one server not settled (nothing can be
//!   probed safely while it may still run the INSERT; the group waits for it to
//!   answer or die); on a Replicated cluster settled, since an INSERT it runs
//!   later is, per shard and partition, the block the retry wrote and block
//!   deduplication drops it (`super::cluster`): there, and only for a server
//!   hung across its own INSERT, block deduplication is the only line.
//!
//! A KILL that finds nothing running is asked once more [`RECHECK`] later:
//! a server that resumes serves the KILL's new connection and the INSERT's
//! old one at the same time, and the INSERT's bytes may not have been read
//! yet when the first KILL looked. Settled means both rounds found it done.
//!
//! A core without edge leases commits at epoch 0 and has no lease to fence
//! an earlier run of itself, so before its first ledger read it stops every
//! Tally INSERT on every server (`kill_every_insert.sql`, the same verdict):
//! a core restarted while an INSERT hung on a stopped server cannot probe
//! past it. With leases, taking a lease fences older epochs (`crate::lease`).
//!
//! The same `query_id` sent again to a server still running the first copy
//! is refused by ClickHouse ("already running"), a retry fails instead of
//! racing it.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tally_model::batch::BatchTotals;

use super::cluster::QUORUM_TIMEOUT_MS;
use super::sql;
use super::store::{err, Store, StoreError};
use crate::commit::batch_store::{BatchStore, PartRows};
use crate::commit::plan::{LedgerEntry, Part};
use crate::commit::rows::LedgerRow;
use crate::lease::fence::insert_query_id;

/// The shortest commit deadline: an idle pooled connection waits on a read
/// until the pool drops it (idle 2 s, reaped up to about as long again),
/// and must not be taken for a silent server.
pub const MIN_DEADLINE_MS: u64 = 5_000;

/// How long after a KILL found nothing it is asked again (module docs).
pub const RECHECK: Duration = Duration::from_secs(2);

/// What a round of KILLs stops.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Kill {
    /// One INSERT that timed out, by its `query_id`.
    One(String),
    /// Every Tally INSERT: a core without leases, before its first probe.
    Every,
}

/// Whether `commit_timeout_ms` can work: at least [`MIN_DEADLINE_MS`], and
/// in cluster mode longer than a quorum INSERT may rightly wait for a
/// replica (which then fails on its own, with the reason).
pub fn check_deadline(commit_timeout_ms: u64, cluster: bool) -> Result<(), String> {
    if commit_timeout_ms < MIN_DEADLINE_MS {
        return Err(format!(
            "{commit_timeout_ms} ms is too short: set at least {MIN_DEADLINE_MS} (default {})",
            crate::config::ClickHouseSection::DEFAULT_COMMIT_TIMEOUT_MS
        ));
    }
    if cluster && commit_timeout_ms <= QUORUM_TIMEOUT_MS {
        return Err(format!(
            "{commit_timeout_ms} ms is within the {QUORUM_TIMEOUT_MS} ms a quorum INSERT waits for a replica that is down; set more than that (default {})",
            crate::config::ClickHouseSection::DEFAULT_COMMIT_TIMEOUT_MS
        ));
    }
    Ok(())
}

/// What one server answered to the KILL of a timed-out INSERT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillAnswer {
    /// The INSERT is not running there (finished, stopped, or never arrived
    /// while the server was answering).
    Done,
    /// No connection: the server's process is gone.
    Unreachable,
    /// Still nothing within the deadline.
    Silent,
    /// The server answered with an error.
    Refused(String),
}

/// Whether a timed-out INSERT is settled (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Settled,
    Wait(String),
}

/// `answers` are `(server, answer)` for every configured server;
/// `replicated`: a cluster whose block deduplication drops a late INSERT.
pub fn verdict(answers: &[(String, KillAnswer)], replicated: bool) -> Verdict {
    if let Some((server, KillAnswer::Refused(e))) = answers.iter().find(|(_, a)| matches!(a, KillAnswer::Refused(_))) {
        return Verdict::Wait(format!(
            "ClickHouse at {server} refused to stop an INSERT that timed out ({e}); no edge's batches commit until it does: give the core's ClickHouse user the KILL QUERY grant or fix the error; retrying"
        ));
    }
    match answers.iter().find(|(_, a)| *a == KillAnswer::Silent) {
        Some((server, _)) if !replicated => Verdict::Wait(format!(
            "ClickHouse at {server} answers nothing: an INSERT that timed out there may still land, so no edge's batches commit until that server answers or its process is gone (restart it, or kill it); edges keep their batches meanwhile"
        )),
        _ => Verdict::Settled,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettlingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unsettled(String),
}

/// The committer's [`BatchStore`]: a [`Store`] whose client is bounded by the
/// commit deadline, which settles timed-out INSERTs before reading the
/// ledger again.
pub struct Settling {
    store: Store,
    /// Every configured server (`[clickhouse] url` and `servers`).
    servers: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    deadline: Duration,
    /// INSERTs to stop before the next ledger read, not yet settled.
    unsettled: Mutex<BTreeSet<Kill>>,
}

impl Settling {
    /// `leased`: the core commits under edge leases, which fence its
    /// earlier runs; without them every Tally INSERT is stopped first.
    pub fn new(store: Store, servers: Vec<String>, user: Option<String>, password: Option<String>, deadline: Duration, leased: bool) -> Settling {
        let unsettled = if leased { BTreeSet::new() } else { BTreeSet::from([Kill::Every]) };
        Settling { store, servers, user, password, deadline, unsettled: Mutex::new(unsettled) }
    }

    fn unsettled(&self) -> std::sync::MutexGuard<'_, BTreeSet<Kill>> {
        self.unsettled.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn kill_on(&self, server: &str, kill: &Kill) -> KillAnswer {
        let killed = async {
            let store = Store::connect_bounded(&[server.to_string()], self.user.as_deref(), self.password.as_deref(), self.deadline).await?;
            let query = match kill {
                Kill::One(query_id) => store.server.query(sql::KILL_TIMED_OUT_INSERT).bind(query_id.as_str()),
                Kill::Every => store.server.query(sql::KILL_EVERY_INSERT),
            };
            query.execute().await.map_err(err("stopping an INSERT that timed out"))
        };
        match killed.await {
            Ok(()) => KillAnswer::Done,
            Err(e) if e.is_deadline() => KillAnswer::Silent,
            Err(e) if e.is_unreachable() => KillAnswer::Unreachable,
            Err(e) => KillAnswer::Refused(e.to_string()),
        }
    }

    async fn kill_round(&self, kill: &Kill) -> Verdict {
        let mut answers = Vec::with_capacity(self.servers.len());
        for server in &self.servers {
            answers.push((server.clone(), self.kill_on(server, kill).await));
        }
        let v = verdict(&answers, self.store.cluster().is_some());
        tracing::debug!(?kill, ?answers, ?v, "KILL round");
        v
    }

    /// Settles every unsettled INSERT, or says why not.
    async fn settle(&self) -> Result<(), SettlingError> {
        let pending: Vec<Kill> = self.unsettled().iter().cloned().collect();
        for kill in pending {
            let mut v = self.kill_round(&kill).await;
            if v == Verdict::Settled {
                tokio::time::sleep(RECHECK).await;
                v = self.kill_round(&kill).await;
            }
            match v {
                Verdict::Settled => {
                    match &kill {
                        Kill::One(query_id) => tracing::info!(%query_id, "an INSERT that timed out is settled: the next probe sees what it wrote"),
                        Kill::Every => tracing::info!("no Tally INSERT of an earlier run is left on any ClickHouse server: committing"),
                    }
                    self.unsettled().remove(&kill);
                }
                Verdict::Wait(why) => return Err(SettlingError::Unsettled(why)),
            }
        }
        Ok(())
    }
}

impl BatchStore for Settling {
    type Error = SettlingError;

    async fn ledger(&self, edge: &str, lo: u64, hi: u64) -> Result<Vec<(u64, LedgerEntry)>, SettlingError> {
        self.settle().await?;
        Ok(self.store.ledger(edge, lo, hi).await?)
    }

    async fn rows_present(&self, edge: &str, seq: u64, totals: &BatchTotals) -> Result<Vec<(Part, u32)>, SettlingError> {
        Ok(self.store.rows_present(edge, seq, totals).await?)
    }

    async fn append_ledger(&self, rows: &[LedgerRow]) -> Result<(), SettlingError> {
        Ok(self.store.append_ledger(rows).await?)
    }

    async fn insert(&self, rows: &PartRows<'_>, token: &str) -> Result<(), SettlingError> {
        let mut named = rows.clone();
        let query_id = named.query_id.get_or_insert_with(|| insert_query_id(rows.part as u8, rows.rows.iter().map(|(edge, seq, _)| (*edge, 0, *seq)))).clone();
        match self.store.insert(&named, token).await {
            Err(e) if e.is_deadline() => {
                tracing::warn!(%query_id, error = %e, "an INSERT got no answer within commit_timeout_ms: it is stopped before any batch is probed again");
                self.unsettled().insert(Kill::One(query_id));
                Err(e.into())
            }
            done => Ok(done?),
        }
    }

    fn one_batch_per_insert(&self) -> bool {
        self.store.one_batch_per_insert()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[KillAnswer]) -> Vec<(String, KillAnswer)> {
        list.iter().enumerate().map(|(i, a)| (format!("http://ch{i}:8123"), a.clone())).collect()
    }

    #[test]
    fn settled_once_every_server_has_stopped_it_or_is_gone() {
        use KillAnswer::*;
        for replicated in [false, true] {
            assert_eq!(verdict(&answers(&[Done]), replicated), Verdict::Settled);
            assert_eq!(verdict(&answers(&[Done, Unreachable, Done]), replicated), Verdict::Settled);
            assert_eq!(verdict(&answers(&[Unreachable]), replicated), Verdict::Settled, "a dead server runs nothing later");
        }
    }

    #[test]
    fn a_refusal_always_waits_and_names_the_server() {
        let v = verdict(&answers(&[KillAnswer::Done, KillAnswer::Refused("Code: 497, not enough privileges".into())]), true);
        let Verdict::Wait(why) = v else { panic!("{v:?}") };
        assert!(why.contains("http://ch1:8123") && why.contains("Code: 497"), "{why}");
    }

    /// One server: a silent one may still run the INSERT, nothing is probed.
    /// A Replicated cluster: its late block is the retry's and is dropped.
    #[test]
    fn a_silent_server_holds_back_one_server_but_not_a_replicated_cluster() {
        let silent = answers(&[KillAnswer::Silent]);
        let Verdict::Wait(why) = verdict(&silent, false) else { panic!("one silent server must not be probed past") };
        assert!(why.contains("http://ch0:8123") && why.contains("answers nothing"), "{why}");
        assert_eq!(verdict(&answers(&[KillAnswer::Silent, KillAnswer::Done, KillAnswer::Done]), true), Verdict::Settled);
    }

    #[test]
    fn the_deadline_is_positive_and_outlasts_the_quorum_wait_on_a_cluster() {
        assert!(check_deadline(0, false).unwrap_err().contains("at least 5000"));
        assert!(check_deadline(MIN_DEADLINE_MS - 1, false).unwrap_err().contains("too short"));
        assert_eq!(check_deadline(MIN_DEADLINE_MS, false), Ok(()));
        assert!(check_deadline(QUORUM_TIMEOUT_MS, true).unwrap_err().contains("quorum INSERT waits"));
        assert_eq!(check_deadline(QUORUM_TIMEOUT_MS + 1, true), Ok(()));
        assert_eq!(check_deadline(crate::config::ClickHouseSection::DEFAULT_COMMIT_TIMEOUT_MS, true), Ok(()));
    }
}
