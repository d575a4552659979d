//! The lease machine against a model of ZooKeeper: sessions that connect,
//! disconnect, expire and crash, ephemeral nodes with creation zxids, and
//! answers delivered late (after a disconnect, after a new session).
//!
//! What the model allows is what ZooKeeper and its client promise: a
//! server expires a session only after its client has stopped hearing from
//! it (the client's read timeout, two thirds of the session timeout, runs
//! out first, so `Disconnected` comes before the expiry), or when the core
//! is dead. Under that, the property is: whenever a core's machine answers
//! `Commit` for an edge, that edge's node exists, created by that core's
//! session at that epoch; so no two cores may commit one edge at once, and
//! epochs only grow.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::state::{Epoch, Leases, SessionEvent, SessionId, Verdict};

#[test]
fn a_lost_session_stops_commits_at_once() {
    let mut l = Leases::new();
    l.session(SessionEvent::Connected(7));
    assert_eq!(l.check("e1"), Verdict::Acquire { session: 7 });
    l.acquired("e1", 7, 100);
    assert_eq!(l.check("e1"), Verdict::Fence { session: 7, epoch: 100 });
    l.fenced("e1", 7, 100);
    assert_eq!(l.check("e1"), Verdict::Commit { epoch: 100 });
    l.session(SessionEvent::Disconnected);
    assert_eq!(l.check("e1"), Verdict::NoSession);
    // The same session back: the lease must be confirmed (and fenced) again.
    l.session(SessionEvent::Connected(7));
    assert_eq!(l.check("e1"), Verdict::Acquire { session: 7 });
}

#[test]
fn answers_of_an_earlier_session_are_ignored() {
    let mut l = Leases::new();
    l.session(SessionEvent::Connected(1));
    l.session(SessionEvent::Ended);
    l.session(SessionEvent::Connected(2));
    l.acquired("e1", 1, 5);
    l.fenced("e1", 1, 5);
    assert_eq!(l.check("e1"), Verdict::Acquire { session: 2 });
}

#[test]
fn a_new_epoch_is_fenced_again_and_a_lost_node_stops_commits() {
    let mut l = Leases::new();
    l.session(SessionEvent::Connected(1));
    l.acquired("e1", 1, 5);
    l.fenced("e1", 1, 5);
    l.acquired("e1", 1, 9);
    assert_eq!(l.check("e1"), Verdict::Fence { session: 1, epoch: 9 });
    l.fenced("e1", 1, 5);
    assert_eq!(l.check("e1"), Verdict::Fence { session: 1, epoch: 9 }, "a fence of another epoch does not count");
    l.fenced("e1", 1, 9);
    l.lost("e1", 1, 5);
    assert_eq!(l.check("e1"), Verdict::Commit { epoch: 9 }, "news of an older node is not news of this one");
    l.lost("e1", 1, 9);
    assert_eq!(l.check("e1"), Verdict::Acquire { session: 1 });
    assert_eq!(l.held(), 0);
}

const CORES: usize = 3;
const EDGES: [&str; 2] = ["e1", "e2"];

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    Disconnect(usize),
    Expire(usize),
    Crash(usize),
    Acquire(usize, usize),
    Fence(usize, usize),
    Deliver(usize),
    Close(usize),
    Commit(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let core = 0..CORES;
    let edge = 0..EDGES.len();
    prop_oneof![
        core.clone().prop_map(Op::Connect),
        core.clone().prop_map(Op::Disconnect),
        core.clone().prop_map(Op::Expire),
        core.clone().prop_map(Op::Crash),
        (core.clone(), edge.clone()).prop_map(|(c, e)| Op::Acquire(c, e)),
        (core.clone(), edge.clone()).prop_map(|(c, e)| Op::Fence(c, e)),
        core.clone().prop_map(Op::Deliver),
        core.clone().prop_map(Op::Deliver),
        core.clone().prop_map(Op::Close),
        (core, edge).prop_map(|(c, e)| Op::Commit(c, e)),
    ]
}

/// What the shell hears back, possibly much later.
#[derive(Debug)]
enum Answer {
    Acquired { edge: usize, session: SessionId, epoch: Epoch },
    Fenced { edge: usize, session: SessionId, epoch: Epoch },
}

#[derive(Default)]
struct Server {
    zxid: i64,
    next_session: SessionId,
    alive: BTreeMap<SessionId, bool>,
    /// Sessions of crashed cores: they expire whenever the server decides.
    orphans: Vec<SessionId>,
    /// Edge -> (owner session, czxid).
    nodes: BTreeMap<usize, (SessionId, Epoch)>,
}

struct Core {
    leases: Leases,
    /// The session its client holds, and whether it is connected.
    session: Option<SessionId>,
    connected: bool,
    inbox: VecDeque<Answer>,
}

impl Core {
    fn new() -> Core {
        Core { leases: Leases::new(), session: None, connected: false, inbox: VecDeque::new() }
    }
}

struct World {
    server: Server,
    cores: Vec<Core>,
    committed: BTreeMap<usize, Epoch>,
}

impl World {
    fn step(&mut self, op: Op) {
        let s = &mut self.server;
        match op {
            Op::Connect(c) => {
                let core = &mut self.cores[c];
                if core.connected {
                    return;
                }
                match core.session {
                    Some(id) if s.alive[&id] => core.leases.session(SessionEvent::Connected(id)),
                    _ => {
                        if core.session.is_some() {
                            core.leases.session(SessionEvent::Ended);
                        }
                        s.next_session += 1;
                        let id = s.next_session;
                        s.alive.insert(id, true);
                        core.session = Some(id);
                        core.leases.session(SessionEvent::Connected(id));
                    }
                }
                core.connected = true;
            }
            Op::Disconnect(c) => {
                let core = &mut self.cores[c];
                if core.connected {
                    core.connected = false;
                    core.leases.session(SessionEvent::Disconnected);
                }
            }
            Op::Expire(c) => {
                let core = &mut self.cores[c];
                // Only once the client stopped hearing from the server.
                let mut expired: Vec<SessionId> = s.orphans.drain(..).collect();
                expired.extend(core.session.filter(|_| !core.connected));
                for id in expired {
                    s.alive.insert(id, false);
                    s.nodes.retain(|_, (owner, _)| *owner != id);
                }
            }
            Op::Crash(c) => {
                // The process is gone; its session lives on until expired.
                s.orphans.extend(self.cores[c].session);
                self.cores[c] = Core::new();
            }
            Op::Acquire(c, e) => {
                let core = &mut self.cores[c];
                let Verdict::Acquire { session } = core.leases.check(EDGES[e]) else { return };
                if !core.connected || core.session != Some(session) {
                    return;
                }
                match s.nodes.get(&e).copied() {
                    None => {
                        s.zxid += 1;
                        s.nodes.insert(e, (session, s.zxid));
                        core.inbox.push_back(Answer::Acquired { edge: e, session, epoch: s.zxid });
                    }
                    Some((owner, epoch)) if owner == session => core.inbox.push_back(Answer::Acquired { edge: e, session, epoch }),
                    Some(_) => {}
                }
            }
            Op::Fence(c, e) => {
                let core = &mut self.cores[c];
                if let Verdict::Fence { session, epoch } = core.leases.check(EDGES[e]) {
                    core.inbox.push_back(Answer::Fenced { edge: e, session, epoch });
                }
            }
            Op::Close(c) => {
                // Shutdown: the client closes its session, which deletes its
                // nodes; answers still on their way belong to that session.
                let core = &mut self.cores[c];
                let Some(id) = core.session.filter(|_| core.connected) else { return };
                core.leases.session(SessionEvent::Ended);
                core.connected = false;
                core.session = None;
                s.alive.insert(id, false);
                s.nodes.retain(|_, (owner, _)| *owner != id);
            }
            Op::Deliver(c) => {
                let core = &mut self.cores[c];
                match core.inbox.pop_front() {
                    Some(Answer::Acquired { edge, session, epoch }) => core.leases.acquired(EDGES[edge], session, epoch),
                    Some(Answer::Fenced { edge, session, epoch }) => core.leases.fenced(EDGES[edge], session, epoch),
                    None => {}
                }
            }
            Op::Commit(c, e) => {
                if let Verdict::Commit { epoch } = self.cores[c].leases.check(EDGES[e]) {
                    let last = self.committed.insert(e, epoch).unwrap_or(0);
                    assert!(epoch >= last, "edge {e} committed at epoch {epoch} after epoch {last}");
                }
            }
        }
    }

    /// No core may commit an edge whose node is not its own, at its epoch.
    fn check(&self) {
        for (c, core) in self.cores.iter().enumerate() {
            for (e, edge) in EDGES.iter().enumerate() {
                if let Verdict::Commit { epoch } = core.leases.check(edge) {
                    let node = self.server.nodes.get(&e);
                    assert_eq!(node, Some(&(core.session.unwrap(), epoch)), "core {c} may commit {edge} at epoch {epoch}, but the node is {node:?}");
                    assert!(core.connected);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn never_two_owners_commit_one_edge(ops in proptest::collection::vec(op(), 1..120)) {
        let mut world = World { server: Server::default(), cores: (0..CORES).map(|_| Core::new()).collect(), committed: BTreeMap::new() };
        for op in ops {
            world.step(op);
            world.check();
        }
    }
}
