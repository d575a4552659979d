//! When to connect to the core and which batch to send: the shipper's
//! decisions as a deterministic, sans-IO state machine. The QUIC code in
//! [`super`] is a thin shell: it feeds [`Event`]s in, with the time, and does
//! what [`Schedule::poll`] answers.
//!
//! # Design constraints
//! * No I/O, no tokio, no clock of its own: every call takes `now`, and the
//!   jitter comes from a generator the caller seeds, so a test replays a
//!   run exactly (`schedule/tests.rs` simulates a core that dies, restarts
//!   and stalls).
//! * A dead core is the common failure, and its return must be noticed at
//!   once: the shell's QUIC transport notices silence within about a second
//!   ([`Event::Lost`]), the schedule then reconnects with capped exponential
//!   backoff with jitter ([`RECONNECT`]), reset when a connection is made, so
//!   edges reconnect within about a second of the core answering again.
//! * A core that answers but cannot commit (`Retry`, e.g. ClickHouse is
//!   down) or a stream that breaks on a live connection pauses every send
//!   for a backoff ([`RETRY`]), reset when the core settles a batch: the
//!   connection is fine, the core must not be hammered.
//! * Several cores (`[core] addrs`): the edge talks to one at a time
//!   ([`Schedule::core`]). A failed connection attempt or a lost connection
//!   moves it to the next core in the list, with the reconnect backoff; a
//!   core that answers that another core serves this edge ([`Event::Moved`],
//!   edge leases) moves it at once, and only a whole round of such answers
//!   pauses for the retry backoff, so an edge finds the core holding its
//!   lease (or the one that can take it) within one round.
//!
//! # Invariants
//! * A batch leaves the schedule only on the core's answer: it is deleted
//!   ([`Action::Delete`]) only on `Committed` or `Duplicate` and quarantined
//!   ([`Action::Quarantine`]) only on `Rejected`; on `Retry` or any transport
//!   error it stays pending and is sent again. The shell sends the bytes of
//!   the outbox file, which is never rebuilt, so every send of a batch is
//!   byte-identical, across restarts too: a new schedule starts from the
//!   outbox's pending batches.
//! * A batch is in flight at most once, at most `max_in_flight` are, and a
//!   batch is sent only on a connection the shell reported made.
//! * At most one connection attempt at a time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use tally_model::reply::Status;

use super::backoff::Backoff;

/// Reconnecting: a connection attempt is cheap, and the core must be found
/// again as soon as it is back.
pub const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), RECONNECT_CAP);
pub const RECONNECT_CAP: Duration = Duration::from_secs(1);
/// Pausing sends after `Retry` or a broken stream.
pub const RETRY: Backoff = Backoff::new(Duration::from_millis(100), RETRY_CAP);
pub const RETRY_CAP: Duration = Duration::from_secs(10);

/// What happened, as the shell saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Batch `seq` is in the outbox, ready to send.
    Sealed {
        seq: u64,
    },
    /// The connection attempt succeeded.
    Connected,
    ConnectFailed,
    /// The current connection is gone (closed, or the core fell silent).
    Lost,
    /// The core answered batch `seq`.
    Answered {
        seq: u64,
        status: Status,
    },
    /// The core answered batch `seq` that it does not serve this edge
    /// (another core holds its lease): try the next core.
    Moved {
        seq: u64,
    },
    /// Batch `seq` got no answer: its stream broke, or its connection
    /// (`connection_lost`: the connection it was sent on is closed).
    SendFailed {
        seq: u64,
        connection_lost: bool,
    },
}

/// What the shell must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a connection attempt; answer with `Connected` or `ConnectFailed`.
    Connect,
    /// Send batch `seq` on the connection; answer with `Answered` or `SendFailed`.
    Send { seq: u64 },
    /// The core has batch `seq`: remove it from the outbox.
    Delete { seq: u64 },
    /// The core refused batch `seq` for good: move it to quarantine.
    Quarantine { seq: u64 },
    /// Nothing until an event arrives, or until `until` passes.
    Wait { until: Option<Instant> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down {
        retry_at: Instant,
    },
    Connecting,
    /// Connection number `n` (counted from 1) is up.
    Up(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    Off,
    /// Shutting down: send what is pending once, without backoff.
    On,
    /// Shutting down and something failed: no more attempts.
    Halted,
}

pub struct Schedule {
    max_in_flight: usize,
    /// Sealed and not yet settled by the core.
    pending: BTreeSet<u64>,
    /// Batch -> the connection it was sent on.
    in_flight: BTreeMap<u64, u64>,
    link: Link,
    connections: u64,
    reconnect: Backoff,
    retry: Backoff,
    /// No sends before this.
    paused_until: Option<Instant>,
    /// Deletes and quarantines not yet handed to the shell.
    settled: VecDeque<Action>,
    drain: Drain,
    rng: fastrand::Rng,
    /// How many cores the edge may ship to, and which one it uses now.
    cores: usize,
    core: usize,
    /// Moves since a batch last settled: a whole round of them pauses.
    moves: usize,
}

impl Schedule {
    /// A schedule for the outbox's `pending` batches, connecting at once.
    pub fn new(pending: impl IntoIterator<Item = u64>, max_in_flight: usize, rng: fastrand::Rng, now: Instant) -> Schedule {
        Schedule {
            max_in_flight,
            pending: pending.into_iter().collect(),
            in_flight: BTreeMap::new(),
            link: Link::Down { retry_at: now },
            connections: 0,
            reconnect: RECONNECT,
            retry: RETRY,
            paused_until: None,
            settled: VecDeque::new(),
            drain: Drain::Off,
            rng,
            cores: 1,
            core: 0,
            moves: 0,
        }
    }

    /// The edge may ship to `cores` cores (at least one), starting with the first.
    pub fn with_cores(mut self, cores: usize) -> Schedule {
        self.cores = cores.max(1);
        self
    }

    /// The core to connect to, as an index into the edge's list.
    pub fn core(&self) -> usize {
        self.core
    }

    /// A connection the schedule sends on is up.
    pub fn is_up(&self) -> bool {
        matches!(self.link, Link::Up(_))
    }

    pub fn handle(&mut self, event: Event, now: Instant) {
        match event {
            Event::Sealed { seq } => {
                self.pending.insert(seq);
            }
            Event::Connected => {
                self.connections += 1;
                self.link = Link::Up(self.connections);
                self.reconnect.succeed();
            }
            Event::ConnectFailed => self.link_down(now),
            Event::Lost => {
                if matches!(self.link, Link::Up(_)) {
                    self.link_down(now);
                }
            }
            Event::Answered { seq, status } => {
                if self.in_flight.remove(&seq).is_none() {
                    return;
                }
                match status {
                    Status::Committed | Status::Duplicate => self.settle(seq, Action::Delete { seq }),
                    Status::Rejected => self.settle(seq, Action::Quarantine { seq }),
                    Status::Retry => self.pause(now),
                }
            }
            Event::Moved { seq } => {
                let Some(sent_on) = self.in_flight.remove(&seq) else { return };
                // Only the current connection's answer moves the edge; later
                // answers from a core it already left change nothing.
                if self.link == Link::Up(sent_on) {
                    self.move_on(now);
                }
            }
            Event::SendFailed { seq, connection_lost } => {
                let Some(sent_on) = self.in_flight.remove(&seq) else { return };
                if !connection_lost {
                    self.pause(now);
                } else if self.link == Link::Up(sent_on) {
                    self.link_down(now);
                }
                // A loss of an older connection changes nothing: the batch
                // goes on the current one.
            }
        }
    }

    /// The next thing to do; call until it is [`Action::Wait`].
    pub fn poll(&mut self, now: Instant) -> Action {
        if let Some(action) = self.settled.pop_front() {
            return action;
        }
        if self.drain == Drain::Halted {
            return Action::Wait { until: None };
        }
        match self.link {
            // While draining, only for something to send.
            Link::Down { .. } if self.drain == Drain::On && self.pending.is_empty() => Action::Wait { until: None },
            Link::Down { retry_at } if now < retry_at => Action::Wait { until: Some(retry_at) },
            Link::Down { .. } => {
                self.link = Link::Connecting;
                Action::Connect
            }
            Link::Connecting => Action::Wait { until: None },
            Link::Up(connection) => {
                if self.in_flight.len() >= self.max_in_flight {
                    return Action::Wait { until: None };
                }
                let Some(seq) = self.pending.iter().copied().find(|seq| !self.in_flight.contains_key(seq)) else {
                    return Action::Wait { until: None };
                };
                match self.paused_until {
                    Some(t) if now < t => Action::Wait { until: Some(t) },
                    _ => {
                        self.paused_until = None;
                        self.in_flight.insert(seq, connection);
                        Action::Send { seq }
                    }
                }
            }
        }
    }

    /// Shutting down: one more try for what is pending, now, without
    /// backoff; the first failure ends it.
    pub fn drain(&mut self, now: Instant) {
        self.drain = Drain::On;
        self.paused_until = None;
        if let Link::Down { .. } = self.link {
            self.link = Link::Down { retry_at: now };
        }
    }

    /// A connection attempt or a send is under way: an event will come.
    pub fn outstanding(&self) -> bool {
        self.link == Link::Connecting || !self.in_flight.is_empty()
    }

    /// Sends are paused until then (after `Retry` or a broken stream).
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Connection attempts that failed since the last one succeeded.
    pub fn connect_failures(&self) -> u32 {
        self.reconnect.failures()
    }

    fn link_down(&mut self, now: Instant) {
        self.link = Link::Down { retry_at: now + self.reconnect.fail(&mut self.rng) };
        self.core = (self.core + 1) % self.cores;
        self.halt_drain();
    }

    /// The core does not serve this edge: the next one, at once within a
    /// round, after the retry backoff once every core said so.
    fn move_on(&mut self, now: Instant) {
        self.core = (self.core + 1) % self.cores;
        self.moves += 1;
        let wait = if self.moves.is_multiple_of(self.cores) { self.retry.fail(&mut self.rng) } else { Duration::ZERO };
        self.link = Link::Down { retry_at: now + wait };
        self.halt_drain();
    }

    fn pause(&mut self, now: Instant) {
        self.paused_until = Some(now + self.retry.fail(&mut self.rng));
        self.halt_drain();
    }

    /// The core took care of `seq`: it is working, so sends resume at once.
    fn settle(&mut self, seq: u64, action: Action) {
        self.pending.remove(&seq);
        self.settled.push_back(action);
        self.moves = 0;
        self.retry.succeed();
        self.paused_until = None;
    }

    fn halt_drain(&mut self) {
        if self.drain == Drain::On {
            self.drain = Drain::Halted;
        }
    }
}

#[cfg(test)]
mod tests;
