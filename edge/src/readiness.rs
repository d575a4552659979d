//! `GET /readyz`: whether this edge should be sent clicks (liveness is
//! `/healthz`, which answers as long as the process does).
//!
//! Ready means: the spool takes batches (else clicks are answered `503`),
//! the last write-ahead log write succeeded (else they are too), and a core
//! is reachable: connected now, or heard from within [`CONTACT_GRACE_MS`]
//! (a reconnect after a core restart does not flap readiness). Not ready is
//! `503` with one plain line per failing check. The signals are the
//! shipper's and WAL thread's own gauges (`tally_edge_spool_full`,
//! `tally_edge_wal_failing`, `tally_edge_core_connected`,
//! `tally_edge_core_last_contact_ms`), so `/metrics` shows the same.
//!
//! An edge whose core is unreachable still acknowledges clicks durably and
//! spools them; it reports not ready so that a balancer prefers edges that
//! ship, and so an operator sees it.

use http::StatusCode;

use tally_http::{reply, Response};
use tally_model::timestamp::now_ms;

use crate::metrics::Metrics;

/// How long after its last contact a core still counts as reachable.
pub const CONTACT_GRACE_MS: u64 = 10_000;

/// What readiness is judged from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    pub spool_full: bool,
    pub wal_failing: bool,
    pub core_connected: bool,
    /// 0: never.
    pub core_last_contact_ms: u64,
}

impl Signals {
    pub fn read(metrics: &Metrics) -> Signals {
        Signals {
            spool_full: metrics.spool_full.get() != 0,
            wal_failing: metrics.wal_failing.get() != 0,
            core_connected: metrics.core_connected.get() != 0,
            core_last_contact_ms: metrics.core_last_contact_ms.get().max(0) as u64,
        }
    }
}

/// One reason per failing check at `now_ms`; empty: ready.
pub fn failing(s: Signals, now_ms: u64) -> Vec<String> {
    let mut out = Vec::new();
    if s.spool_full {
        out.push("spool: full (spool_max_bytes); clicks are answered 503 until the core takes batches".to_string());
    }
    if s.wal_failing {
        out.push("wal: the last write failed; clicks are answered 503 (check the spool disk: space, permissions, errors in the log)".to_string());
    }
    if !s.core_connected {
        if s.core_last_contact_ms == 0 {
            out.push("core: never reached since start; check [core] addrs, ca_cert and that this edge is enrolled".to_string());
        } else if now_ms.saturating_sub(s.core_last_contact_ms) > CONTACT_GRACE_MS {
            let secs = now_ms.saturating_sub(s.core_last_contact_ms) / 1000;
            out.push(format!("core: unreachable for {secs} s; batches wait in the spool (see the shipper's log)"));
        }
    }
    out
}

pub fn answer(metrics: &Metrics) -> Response {
    let reasons = failing(Signals::read(metrics), now_ms());
    if reasons.is_empty() {
        return reply::with_type(StatusCode::OK, "ready\n".into(), "text/plain");
    }
    reply::with_type(StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{}\n", reasons.join("\n")).into(), "text/plain")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Signals = Signals { spool_full: false, wal_failing: false, core_connected: true, core_last_contact_ms: 1_000 };

    #[test]
    fn ready_when_every_check_passes() {
        assert!(failing(OK, 1_000_000).is_empty());
        // Disconnected a moment ago: still reachable.
        assert!(failing(Signals { core_connected: false, core_last_contact_ms: 995_000, ..OK }, 1_000_000).is_empty());
    }

    #[test]
    fn each_failing_check_gives_its_own_reason() {
        let all = Signals { spool_full: true, wal_failing: true, core_connected: false, core_last_contact_ms: 900_000 };
        let reasons = failing(all, 1_000_000);
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("spool:") && reasons[1].starts_with("wal:") && reasons[2].starts_with("core: unreachable for 100 s"));
        let never = failing(Signals { core_connected: false, core_last_contact_ms: 0, ..OK }, 1_000_000);
        assert_eq!(never.len(), 1);
        assert!(never[0].starts_with("core: never reached"));
    }
}
