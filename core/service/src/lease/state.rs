//! Which edges this core may commit for, as a sans-IO state machine over
//! what its ZooKeeper session reports. The shell ([`super::zk`]) feeds it
//! events and carries out what [`Leases::check`] answers; it holds no clock
//! and does no I/O, so `lease/tests.rs` drives it against a model of
//! ZooKeeper through every interleaving the model allows.
//!
//! # Invariants
//! * [`Verdict::Commit`] is answered only for a lease this session created
//!   (or found created by this session), whose stale queries were fenced
//!   since, while the session is connected.
//! * Losing the connection (`Disconnected`, `Expired`, `Closed`) forgets
//!   every lease at once, before the server could expire the session and let
//!   another core take the edge: a commit after that is refused until the
//!   lease is confirmed again on a live session.
//! * A result that belongs to an earlier session (an answer delivered after
//!   a reconnect) is ignored: each result names the session it was got on.

use std::collections::BTreeMap;

/// A ZooKeeper session id.
pub type SessionId = i64;

/// A lease's epoch: the czxid of its node. ZooKeeper's zxids only grow, so
/// every later owner of an edge has a higher epoch than every earlier one.
pub type Epoch = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// Connected (first time, or again) on this session.
    Connected(SessionId),
    /// The connection is gone; the session may or may not survive it.
    Disconnected,
    /// The session is over (expired, closed, refused): its nodes are gone.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Commit, naming this epoch in every insert's query id.
    Commit { epoch: Epoch },
    /// Not known to be ours: try to create the lease on `session`.
    Acquire { session: SessionId },
    /// Ours since `epoch`, but queries of older owners may still run: kill
    /// them first, then report [`Leases::fenced`].
    Fence { session: SessionId, epoch: Epoch },
    /// No ZooKeeper session: nothing may be committed.
    NoSession,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    epoch: Epoch,
    fenced: bool,
}

#[derive(Debug, Default)]
pub struct Leases {
    session: Option<SessionId>,
    held: BTreeMap<String, Lease>,
}

impl Leases {
    pub fn new() -> Leases {
        Leases::default()
    }

    pub fn session(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Connected(id) => {
                if self.session != Some(id) {
                    self.held.clear();
                }
                self.session = Some(id);
            }
            SessionEvent::Disconnected | SessionEvent::Ended => {
                self.session = None;
                self.held.clear();
            }
        }
    }

    /// The lease node `name` exists and was created by `session` at `epoch`
    /// (our create succeeded, or it was ours already).
    pub fn acquired(&mut self, name: &str, session: SessionId, epoch: Epoch) {
        if self.session != Some(session) {
            return;
        }
        let lease = self.held.entry(name.to_string()).or_insert(Lease { epoch, fenced: false });
        if lease.epoch != epoch {
            *lease = Lease { epoch, fenced: false };
        }
    }

    /// Queries of owners before `epoch` are stopped.
    pub fn fenced(&mut self, name: &str, session: SessionId, epoch: Epoch) {
        if self.session != Some(session) {
            return;
        }
        if let Some(lease) = self.held.get_mut(name).filter(|l| l.epoch == epoch) {
            lease.fenced = true;
        }
    }

    /// The node is gone or no longer ours (deleted, released, or another
    /// session's): stop at once.
    pub fn lost(&mut self, name: &str, session: SessionId, epoch: Epoch) {
        if self.session == Some(session) && self.held.get(name).is_some_and(|l| l.epoch == epoch) {
            self.held.remove(name);
        }
    }

    pub fn check(&self, name: &str) -> Verdict {
        let Some(session) = self.session else { return Verdict::NoSession };
        match self.held.get(name) {
            Some(Lease { epoch, fenced: true }) => Verdict::Commit { epoch: *epoch },
            Some(Lease { epoch, fenced: false }) => Verdict::Fence { session, epoch: *epoch },
            None => Verdict::Acquire { session },
        }
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}
