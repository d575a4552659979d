//! What the core knows of each edge, and the decisions taken on it, without
//! I/O: the status `GET /v1/edges` answers, whether a retirement may go
//! ahead, and which edges hold an hour back from being final.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clickhouse::store::EdgeWatermark;
use crate::lease::fence::node_name;

/// An edge as the ledger knows it (`edge_ledger.sql`).
#[derive(Debug, Clone, clickhouse::Row, Deserialize, PartialEq, Eq)]
pub struct LedgerEdge {
    pub edge: String,
    /// Highest committed seq; 0 before the first commit.
    pub last_seq: u64,
    /// When the latest commit was recorded, seconds.
    pub last_at: u32,
    /// Highest low watermark of its committed batches, ms.
    pub watermark_ms: u64,
    /// Batches started (ledger `Started`) but not committed.
    pub uncommitted: u64,
}

/// The latest retirement decision on an edge (`edge_retirements.sql`).
#[derive(Debug, Clone, clickhouse::Row, Deserialize, PartialEq, Eq)]
pub struct Retirement {
    pub edge: String,
    pub is_retired: u8,
    pub changed_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastBatch {
    pub seq: u64,
    pub committed_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EdgeStatus {
    pub edge: String,
    /// Listed in this core's `[[edges]]` (may connect).
    pub enrolled: bool,
    pub last_batch: Option<LastBatch>,
    /// Committed low watermark: the edge will add no click before it.
    pub watermark_ms: Option<u64>,
    /// Now minus the watermark, seconds.
    pub lag_seconds: Option<u64>,
    /// Batches the ledger shows started and not committed: the edge holds
    /// them and will re-send them. Batches it never sent are not known here.
    pub uncommitted_batches: u64,
    /// It holds a batch connection to this core now.
    pub connected: bool,
    /// The core holding its lease when several cores share the cluster
    /// (`[zookeeper]`); `None` on a single core, or while no core holds it.
    pub owning_core: Option<String>,
    pub retired: bool,
    pub retired_at_ms: Option<u64>,
    /// Its watermark counts for billing finality: it committed a batch and
    /// is not retired.
    pub holds_finality: bool,
}

/// Every edge that is enrolled, has shipped or was ever retired, by name.
/// `owners`: lease node name ([`node_name`] of the edge) -> the core holding it.
pub fn statuses(
    enrolled: &[String],
    ledger: &[LedgerEdge],
    retirements: &[Retirement],
    connected: impl Fn(&str) -> bool,
    owners: &BTreeMap<String, String>,
    now_ms: u64,
) -> Vec<EdgeStatus> {
    let mut names: Vec<&str> =
        enrolled.iter().map(String::as_str).chain(ledger.iter().map(|l| l.edge.as_str())).chain(retirements.iter().map(|r| r.edge.as_str())).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|edge| {
            let committed = ledger.iter().find(|l| l.edge == edge && l.last_seq > 0);
            let retirement = retirements.iter().find(|r| r.edge == edge && r.is_retired == 1);
            let watermark_ms = committed.map(|l| l.watermark_ms);
            EdgeStatus {
                edge: edge.to_string(),
                enrolled: enrolled.iter().any(|e| e == edge),
                last_batch: committed.map(|l| LastBatch { seq: l.last_seq, committed_at_ms: l.last_at as u64 * 1000 }),
                watermark_ms,
                lag_seconds: watermark_ms.map(|w| now_ms.saturating_sub(w) / 1000),
                uncommitted_batches: ledger.iter().find(|l| l.edge == edge).map_or(0, |l| l.uncommitted),
                connected: connected(edge),
                owning_core: owners.get(&node_name(edge)).cloned(),
                retired: retirement.is_some(),
                retired_at_ms: retirement.map(|r| r.changed_at_ms),
                holds_finality: committed.is_some() && retirement.is_none(),
            }
        })
        .collect()
}

/// Why a retirement is refused (unless forced, for the last two).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetireRefusal {
    #[error("no edge {0:?}: it is not enrolled in this core's [[edges]] and never shipped a batch")]
    Unknown(String),
    #[error(
        "edge {0:?} is connected to this core and still ships: stop it first (it ships what it holds as it stops), then retire it; --force (force=true) retires it anyway and its later batches are refused until it is reinstated"
    )]
    Connected(String),
    #[error(
        "edge {edge:?} is served by core {core}, which holds its lease (cores keep an edge's lease while they run): retire it through that core, which knows whether the edge is still connected; --force (force=true) retires it anyway and its later batches are refused until it is reinstated"
    )]
    Served { edge: String, core: String },
    #[error(
        "edge {edge:?} has {count} batch(es) started but not committed: start it again so it re-sends them, then stop and retire it; --force (force=true) retires it anyway (they stay on its disk, refused until it is reinstated)"
    )]
    Uncommitted { edge: String, count: u64 },
}

impl RetireRefusal {
    /// Nothing to retire, whatever `force` says.
    pub fn is_unknown(&self) -> bool {
        matches!(self, RetireRefusal::Unknown(_))
    }
}

/// Whether `edge` may be retired now: drained means not connected to this
/// core (`this_core`, its id with several cores), no other core holding its
/// lease (that core serves it, and only it knows whether the edge is still
/// connected) and no batch half committed. `force` overrides these, never an
/// unknown name.
pub fn retire_check(edge: &str, status: Option<&EdgeStatus>, this_core: Option<&str>, force: bool) -> Result<(), RetireRefusal> {
    let Some(status) = status else { return Err(RetireRefusal::Unknown(edge.to_string())) };
    if force || status.retired {
        return Ok(());
    }
    if status.connected {
        return Err(RetireRefusal::Connected(edge.to_string()));
    }
    if let Some(core) = status.owning_core.as_ref().filter(|&c| Some(c.as_str()) != this_core) {
        return Err(RetireRefusal::Served { edge: edge.to_string(), core: core.clone() });
    }
    if status.uncommitted_batches > 0 {
        return Err(RetireRefusal::Uncommitted { edge: edge.to_string(), count: status.uncommitted_batches });
    }
    Ok(())
}

/// The watermarks billing finality waits for: retired edges left out.
pub fn unretired(watermarks: Vec<EdgeWatermark>, retirements: &[Retirement]) -> Vec<EdgeWatermark> {
    watermarks.into_iter().filter(|w| !retirements.iter().any(|r| r.edge == w.edge && r.is_retired == 1)).collect()
}

/// The edges whose watermark has not passed the end of the hour starting at
/// `hour` (seconds): each of them may still add clicks to it.
pub fn held_back_by(hour: u32, watermarks: &[EdgeWatermark]) -> Vec<String> {
    let end_ms = (hour as u64 + crate::billing::plan::HOUR_SECS as u64) * 1000;
    watermarks.iter().filter(|w| w.watermark_ms < end_ms).map(|w| w.edge.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::plan::final_before;

    fn ledger(edge: &str, last_seq: u64, watermark_ms: u64, uncommitted: u64) -> LedgerEdge {
        LedgerEdge { edge: edge.into(), last_seq, last_at: 100, watermark_ms, uncommitted }
    }

    fn retired(edge: &str, is_retired: u8) -> Retirement {
        Retirement { edge: edge.into(), is_retired, changed_at_ms: 5_000 }
    }

    #[test]
    fn every_known_edge_once_with_what_holds_finality() {
        let enrolled = vec!["a".to_string(), "b".to_string(), "new".to_string()];
        let got = statuses(
            &enrolled,
            &[ledger("a", 4, 7_200_000, 0), ledger("b", 9, 3_000_000, 1), ledger("gone", 2, 10, 0)],
            &[retired("gone", 1), retired("b", 0)],
            |e| e == "a",
            &BTreeMap::from([("b".to_string(), "core-2".to_string())]),
            10_000_000,
        );
        let names: Vec<&str> = got.iter().map(|s| s.edge.as_str()).collect();
        assert_eq!(names, ["a", "b", "gone", "new"]);
        assert_eq!(got[0].last_batch, Some(LastBatch { seq: 4, committed_at_ms: 100_000 }));
        assert_eq!((got[0].lag_seconds, got[0].connected, got[0].holds_finality), (Some(2_800), true, true));
        assert_eq!((got[1].retired, got[1].uncommitted_batches, got[1].holds_finality), (false, 1, true), "reinstated");
        assert_eq!((got[0].owning_core.as_deref(), got[1].owning_core.as_deref()), (None, Some("core-2")), "the lease names the core");
        assert_eq!((got[2].enrolled, got[2].retired, got[2].retired_at_ms, got[2].holds_finality), (false, true, Some(5_000), false));
        assert_eq!((got[3].last_batch.clone(), got[3].watermark_ms, got[3].holds_finality), (None, None, false), "never shipped");
        // Started, never committed: known, but no watermark yet.
        let got = statuses(&[], &[ledger("c", 0, 0, 2)], &[], |_| false, &BTreeMap::new(), 1);
        assert_eq!((got[0].watermark_ms, got[0].uncommitted_batches, got[0].holds_finality), (None, 2, false));
    }

    #[test]
    fn retirement_waits_for_a_drained_edge_unless_forced() {
        let s = |connected, uncommitted| statuses(&[], &[ledger("e", 3, 1, uncommitted)], &[], |_| connected, &BTreeMap::new(), 2).remove(0);
        assert_eq!(retire_check("e", Some(&s(false, 0)), None, false), Ok(()));
        assert_eq!(retire_check("e", Some(&s(true, 0)), None, false), Err(RetireRefusal::Connected("e".into())));
        assert_eq!(retire_check("e", Some(&s(false, 2)), None, false), Err(RetireRefusal::Uncommitted { edge: "e".into(), count: 2 }));
        assert_eq!(retire_check("e", Some(&s(true, 2)), None, true), Ok(()));
        assert!(retire_check("x", None, None, true).unwrap_err().is_unknown(), "force never invents an edge");
        // A live lease on another core: that core serves the edge. Its own
        // lease: whether the edge is connected here decides.
        let mut served = s(false, 0);
        served.owning_core = Some("core-2".into());
        assert_eq!(retire_check("e", Some(&served), Some("core-1"), false), Err(RetireRefusal::Served { edge: "e".into(), core: "core-2".into() }));
        assert_eq!(retire_check("e", Some(&served), Some("core-1"), true), Ok(()));
        assert_eq!(retire_check("e", Some(&served), Some("core-2"), false), Ok(()));
        served.connected = true;
        assert_eq!(retire_check("e", Some(&served), Some("core-2"), false), Err(RetireRefusal::Connected("e".into())));
        // Edge ids that are no plain node names are looked up encoded.
        let owners = BTreeMap::from([(node_name("edge/7"), "core-1".to_string())]);
        assert_eq!(statuses(&[], &[ledger("edge/7", 3, 1, 0)], &[], |_| false, &owners, 2)[0].owning_core.as_deref(), Some("core-1"));
    }

    #[test]
    fn a_retired_edge_no_longer_holds_an_hour_back() {
        let wm = |edge: &str, watermark_ms| EdgeWatermark { edge: edge.into(), watermark_ms };
        let all = vec![wm("a", 7_300_000), wm("stopped", 3_700_000)];
        assert_eq!(held_back_by(0, &all), Vec::<String>::new());
        assert_eq!(held_back_by(3_600, &all), vec!["stopped".to_string()]);
        assert_eq!(held_back_by(7_200, &all), vec!["a".to_string(), "stopped".to_string()]);
        assert_eq!(final_before(&all.iter().map(|w| w.watermark_ms).collect::<Vec<_>>()), Some(3_600));
        let left = unretired(all, &[retired("stopped", 1), retired("a", 0)]);
        assert_eq!(left, vec![wm("a", 7_300_000)]);
        assert_eq!(final_before(&left.iter().map(|w| w.watermark_ms).collect::<Vec<_>>()), Some(7_200));
        // Exactly at the hour's end the edge has passed it.
        assert!(held_back_by(0, &[wm("x", 3_600_000)]).is_empty());
        assert_eq!(held_back_by(0, &[wm("x", 3_599_999)]), vec!["x".to_string()]);
    }
}
