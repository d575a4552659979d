//! The bounds every listener of edge and core serves under, so that a client
//! that is slow, lying or merely numerous costs a bounded share of the process
//! and never stops other clients from being served.
//!
//! | bound | protects against | default, and why |
//! |---|---|---|
//! | `header_read_timeout` | slowloris: a head sent a byte at a time holds a connection forever | 10 s: a head is one packet for any real client, even on a bad mobile link |
//! | `body_timeout` | a body that stops (a lying `Content-Length`, a stalled chunked upload) | 10 s without a body byte: a live client always has one in flight |
//! | `request_timeout` | a body that trickles forever (endless chunked); also the whole HTTP/3 request | 30 s from head to last body byte: an 8 MiB body at 2 Mbit/s fits |
//! | `keep_alive_timeout` | idle connections (HTTP/1.1 between requests, HTTP/2, HTTP/3, a TCP connection that never sends) | 15 s: clients reconnect cheaply; a held descriptor is not cheap |
//! | `tls_handshake_timeout` | a TLS or QUIC handshake that never finishes | 10 s |
//! | `max_connections` | descriptor exhaustion: new clients time out once `accept` fails | 4096 per process (all listeners together), and always below `RLIMIT_NOFILE` |
//! | `max_connections_per_ip` | one address (or IPv6 /64) taking every connection slot | 256: generous for carrier NAT, small against the global cap |
//! | `max_streams_per_connection` | one HTTP/2 or HTTP/3 connection multiplying the above | 100 concurrent requests |
//! | `body_budget_bytes` | memory: request bodies being received, over all connections | 256 MiB; past it a request is answered `503` instead of growing the process |
//!
//! HTTP/1.1 connections waiting for their next request are also bounded by
//! `header_read_timeout`: hyper starts that clock as soon as a connection
//! waits for a head, so the shorter of the two applies.
//!
//! [`ConnTable`] is the sans-IO bookkeeping of connection slots; [`Gate`]
//! shares it (and the body budget) between all listeners of a process.
//!
//! `max_connections` is always kept [`FD_RESERVE`] below the process's
//! descriptor limit, at start and on every reload ([`ConnectionCap`] says
//! which cap is in force and why), so `accept` never fails for want of
//! descriptors.
//!
//! On a reload ([`Gate::reload`]) only the connection caps change: a new
//! cap applies to the next connection accepted, and connections already
//! open over a lowered cap stay until they close. The timeouts and the
//! stream cap are built into each listener's protocol settings and the body
//! budget is one semaphore sized at start, so those take a restart
//! ([`ServerLimits::restart_only_changes`] names them for the log).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(15);
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_CONNECTIONS: usize = 4096;
pub const MAX_CONNECTIONS_PER_IP: usize = 256;
pub const MAX_STREAMS_PER_CONNECTION: u32 = 100;
pub const BODY_BUDGET_BYTES: usize = 256 << 20;
/// Descriptors kept free of connections: spool and WAL files, ClickHouse and
/// core connections, the registry's blobs.
pub const FD_RESERVE: usize = 256;

/// The configurable bounds (the `[limits]` section of edge and core
/// configs); durations are written in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    #[serde(rename = "header_read_timeout_ms", with = "millis")]
    pub header_read_timeout: Duration,
    #[serde(rename = "body_timeout_ms", with = "millis")]
    pub body_timeout: Duration,
    #[serde(rename = "request_timeout_ms", with = "millis")]
    pub request_timeout: Duration,
    #[serde(rename = "keep_alive_timeout_ms", with = "millis")]
    pub keep_alive_timeout: Duration,
    #[serde(rename = "tls_handshake_timeout_ms", with = "millis")]
    pub tls_handshake_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_streams_per_connection: u32,
    pub body_budget_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            keep_alive_timeout: KEEP_ALIVE_TIMEOUT,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            max_streams_per_connection: MAX_STREAMS_PER_CONNECTION,
            body_budget_bytes: BODY_BUDGET_BYTES,
        }
    }
}

impl ServerLimits {
    /// Refuses bounds that would serve nothing (a zero timeout or cap).
    pub fn check(&self) -> Result<(), String> {
        let timeouts = [
            ("header_read_timeout_ms", self.header_read_timeout),
            ("body_timeout_ms", self.body_timeout),
            ("request_timeout_ms", self.request_timeout),
            ("keep_alive_timeout_ms", self.keep_alive_timeout),
            ("tls_handshake_timeout_ms", self.tls_handshake_timeout),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{name} must be more than 0; a zero timeout would cut off every client"));
        }
        let caps = [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("max_streams_per_connection", self.max_streams_per_connection as usize),
            ("body_budget_bytes", self.body_budget_bytes),
        ];
        if let Some((name, _)) = caps.iter().find(|(_, n)| *n == 0) {
            return Err(format!("{name} must be more than 0; a zero cap would serve no one"));
        }
        Ok(())
    }

    /// The bounds that differ in `new` and apply only after a restart.
    pub fn restart_only_changes(&self, new: &ServerLimits) -> Vec<&'static str> {
        let changed = [
            ("header_read_timeout_ms", self.header_read_timeout != new.header_read_timeout),
            ("body_timeout_ms", self.body_timeout != new.body_timeout),
            ("request_timeout_ms", self.request_timeout != new.request_timeout),
            ("keep_alive_timeout_ms", self.keep_alive_timeout != new.keep_alive_timeout),
            ("tls_handshake_timeout_ms", self.tls_handshake_timeout != new.tls_handshake_timeout),
            ("max_streams_per_connection", self.max_streams_per_connection != new.max_streams_per_connection),
            ("body_budget_bytes", self.body_budget_bytes != new.body_budget_bytes),
        ];
        changed.into_iter().filter(|(_, c)| *c).map(|(name, _)| name).collect()
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Why a connection was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("at the cap of {0} concurrent connections")]
    Total(usize),
    #[error("this client address is at its cap of {0} concurrent connections")]
    PerIp(usize),
}

/// Connection slots, overall and per client address (sans-IO). IPv6 clients
/// are counted per /64, the block one subscriber usually holds.
#[derive(Debug)]
pub struct ConnTable {
    max_total: usize,
    max_per_ip: usize,
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnTable {
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnTable {
        ConnTable { max_total, max_per_ip, total: 0, per_ip: HashMap::new() }
    }

    /// New caps for the connections admitted from now on; open ones stay.
    pub fn set_caps(&mut self, max_total: usize, max_per_ip: usize) {
        (self.max_total, self.max_per_ip) = (max_total, max_per_ip);
    }

    pub fn try_admit(&mut self, ip: IpAddr) -> Result<(), Refused> {
        if self.total >= self.max_total {
            return Err(Refused::Total(self.max_total));
        }
        let n = self.per_ip.entry(client_key(ip)).or_default();
        if *n >= self.max_per_ip {
            return Err(Refused::PerIp(self.max_per_ip));
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// Gives back a slot [`try_admit`](Self::try_admit) handed out.
    pub fn release(&mut self, ip: IpAddr) {
        let key = client_key(ip);
        if let Some(n) = self.per_ip.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                // Forgotten at zero, so the table is as large as the open connections.
                self.per_ip.remove(&key);
            }
            self.total -= 1;
        }
    }

    pub fn open(&self) -> usize {
        self.total
    }

    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&client_key(ip)).copied().unwrap_or(0)
    }
}

fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// What a reload of `[limits]` ([`Gate::reload`]) put in force, and what
/// waits for a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub max_connections: ConnectionCap,
    pub max_connections_per_ip: usize,
    /// The bounds that differ from the start's ([`ServerLimits::restart_only_changes`]).
    pub restart_only: Vec<&'static str>,
}

/// `max_connections` as in force: the configured cap, or less where the
/// descriptor limit leaves no room for it. Displayed as the cap in force,
/// with the configured one and the reason when they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCap {
    pub configured: usize,
    pub in_force: usize,
    /// The descriptor limit (soft `RLIMIT_NOFILE`) that lowered the cap, if it did.
    pub capped_by_nofile: Option<u64>,
}

impl ConnectionCap {
    /// `configured`, lowered to [`FD_RESERVE`] below `nofile` if it is above.
    pub fn within(configured: usize, nofile: u64) -> ConnectionCap {
        let room = nofile.saturating_sub(FD_RESERVE as u64).max(1);
        if configured as u64 <= room {
            ConnectionCap { configured, in_force: configured, capped_by_nofile: None }
        } else {
            ConnectionCap { configured, in_force: room as usize, capped_by_nofile: Some(nofile) }
        }
    }
}

impl std::fmt::Display for ConnectionCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.in_force)?;
        if let Some(nofile) = self.capped_by_nofile {
            write!(
                f,
                " (the file says {}; capped by the open-files limit {nofile}, less {FD_RESERVE} descriptors kept for files and outgoing connections; raise `ulimit -n`, LimitNOFILE= in systemd, to serve more)",
                self.configured
            )?;
        }
        Ok(())
    }
}

/// What every listener of one process shares: the limits, the connection
/// slots and the body budget.
#[derive(Debug)]
pub struct Gate {
    /// The limits as at start: a reload changes only the connection caps,
    /// which the connection table holds.
    pub limits: ServerLimits,
    conns: Mutex<ConnTable>,
    body_budget: BodyBudget,
    refusals: Mutex<Refusals>,
    /// The process's counter of refused connections, if it has one.
    refused_total: std::sync::OnceLock<prometheus_client::metrics::counter::Counter>,
}

#[derive(Debug)]
struct Refusals {
    since_report: u64,
    reported: Option<Instant>,
}

/// Refusals are logged at most this often: under attack, one line per
/// refused connection would be a second attack, on the disk.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(10);

impl Gate {
    /// Raises the process's descriptor limit to its hard limit, and keeps
    /// `max_connections` [`FD_RESERVE`] below it, so accepting never fails
    /// for want of descriptors.
    pub fn new(mut limits: ServerLimits) -> Arc<Gate> {
        let cap = ConnectionCap::within(limits.max_connections, raise_nofile_limit());
        if cap.capped_by_nofile.is_some() {
            tracing::warn!("max_connections {cap}");
        }
        limits.max_connections = cap.in_force;
        let conns = Mutex::new(ConnTable::new(limits.max_connections, limits.max_connections_per_ip));
        let body_budget = BodyBudget::new(limits.body_budget_bytes);
        Arc::new(Gate { limits, conns, body_budget, refusals: Mutex::new(Refusals { since_report: 0, reported: None }), refused_total: Default::default() })
    }

    /// Applies `new`'s connection caps (kept below the descriptor limit as
    /// at start) and says what is in force now and which of `new`'s bounds
    /// differ from the start's and wait for a restart.
    pub fn reload(&self, new: &ServerLimits) -> Reloaded {
        let max_connections = ConnectionCap::within(new.max_connections, raise_nofile_limit());
        self.conns.lock().expect("connection table lock poisoned").set_caps(max_connections.in_force, new.max_connections_per_ip);
        Reloaded { max_connections, max_connections_per_ip: new.max_connections_per_ip, restart_only: self.limits.restart_only_changes(new) }
    }

    /// A connection slot for a client at `ip`, held until the guard drops.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, listener: &'static str) -> Option<ConnGuard> {
        let admitted = self.conns.lock().expect("connection table lock poisoned").try_admit(ip);
        match admitted {
            Ok(()) => Some(ConnGuard { gate: self.clone(), ip }),
            Err(why) => {
                self.report_refusal(ip, listener, why);
                None
            }
        }
    }

    fn report_refusal(&self, ip: IpAddr, listener: &'static str, why: Refused) {
        if let Some(counter) = self.refused_total.get() {
            counter.inc();
        }
        let mut r = self.refusals.lock().expect("refusal counter lock poisoned");
        r.since_report += 1;
        if r.reported.is_none_or(|at| at.elapsed() >= REFUSAL_REPORT_EVERY) {
            tracing::warn!(%ip, listener, reason = %why, refused = r.since_report, "refusing connections (count since the last such line)");
            r.since_report = 0;
            r.reported = Some(Instant::now());
        }
    }

    pub fn body_budget(&self) -> BodyBudget {
        self.body_budget.clone()
    }

    /// Counts every refused connection in `counter` (a process metric) from now on.
    pub fn count_refusals_in(&self, counter: prometheus_client::metrics::counter::Counter) {
        let _ = self.refused_total.set(counter);
    }
}

/// A held connection slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnGuard {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.gate.conns.lock().expect("connection table lock poisoned").release(self.ip);
    }
}

/// The bytes of request bodies a process may hold while receiving them.
/// Listeners attach it to every request's extensions; `reply::read_body`
/// charges what it keeps and gives it back when the body is read.
#[derive(Debug, Clone)]
pub struct BodyBudget(Arc<Semaphore>);

/// Bytes charged to a [`BodyBudget`], given back on drop.
#[derive(Debug, Default)]
pub struct BodyCharge(Option<OwnedSemaphorePermit>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is receiving as many request bodies as it can hold; retry shortly")]
pub struct OverBudget;

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Adds `bytes` to `charge`, or refuses if the budget has not that much left.
    pub fn charge(&self, charge: &mut BodyCharge, bytes: usize) -> Result<(), OverBudget> {
        let Ok(n) = u32::try_from(bytes) else { return Err(OverBudget) };
        let permit = self.0.clone().try_acquire_many_owned(n).map_err(|_| OverBudget)?;
        match &mut charge.0 {
            Some(held) => held.merge(permit),
            None => charge.0 = Some(permit),
        }
        Ok(())
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit
/// in force afterwards.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_per_address_and_in_total() {
        let mut t = ConnTable::new(3, 2);
        assert_eq!(t.try_admit(ip("10.0.0.1")), Ok(()));
        assert_eq!(t.try_admit(ip("10.0.0.1")), Ok(()));
        assert_eq!(t.try_admit(ip("10.0.0.1")), Err(Refused::PerIp(2)));
        assert_eq!(t.try_admit(ip("10.0.0.2")), Ok(()));
        assert_eq!(t.try_admit(ip("10.0.0.3")), Err(Refused::Total(3)));
        t.release(ip("10.0.0.1"));
        assert_eq!(t.open(), 2);
        assert_eq!(t.try_admit(ip("10.0.0.3")), Ok(()));
        assert_eq!(t.try_admit(ip("10.0.0.1")), Err(Refused::Total(3)));
    }

    #[test]
    fn release_forgets_empty_addresses_and_ignores_unknown_ones() {
        let mut t = ConnTable::new(10, 10);
        t.try_admit(ip("10.0.0.1")).unwrap();
        t.release(ip("10.0.0.1"));
        t.release(ip("10.0.0.1"));
        t.release(ip("10.9.9.9"));
        assert_eq!((t.open(), t.per_ip.len()), (0, 0));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut t = ConnTable::new(10, 1);
        t.try_admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(t.try_admit(ip("2001:db8:1:2:ffff::9")), Err(Refused::PerIp(1)));
        assert_eq!(t.try_admit(ip("2001:db8:1:3::1")), Ok(()));
        t.try_admit(ip("192.0.2.7")).unwrap();
        assert_eq!(t.try_admit(ip("::ffff:192.0.2.7")), Err(Refused::PerIp(1)));
        assert_eq!(t.open_from(ip("2001:db8:1:2::42")), 1);
    }

    #[test]
    fn guards_give_their_slot_back_on_drop() {
        let gate = Gate::new(ServerLimits { max_connections: 2, max_connections_per_ip: 1, ..ServerLimits::default() });
        let a = gate.admit(ip("10.0.0.1"), "test").expect("a free slot");
        assert!(gate.admit(ip("10.0.0.1"), "test").is_none());
        let b = gate.admit(ip("10.0.0.2"), "test").expect("another address");
        assert!(gate.admit(ip("10.0.0.3"), "test").is_none());
        drop(a);
        assert!(gate.admit(ip("10.0.0.1"), "test").is_some());
        drop(b);
        assert_eq!(gate.conns.lock().unwrap().open(), 0);
    }

    #[test]
    fn a_reload_changes_the_caps_of_the_next_connections_only() {
        let start = ServerLimits { max_connections: 10, max_connections_per_ip: 2, ..ServerLimits::default() };
        let gate = Gate::new(start.clone());
        let held: Vec<_> = (0..2).map(|_| gate.admit(ip("10.0.0.1"), "test").expect("under the cap")).collect();
        assert!(gate.admit(ip("10.0.0.1"), "test").is_none());
        let raised = ServerLimits { max_connections_per_ip: 3, header_read_timeout: Duration::from_secs(1), ..start.clone() };
        assert_eq!(gate.reload(&raised).restart_only, vec!["header_read_timeout_ms"], "only the timeout waits for a restart");
        let third = gate.admit(ip("10.0.0.1"), "test").expect("the raised cap applies at once");
        // Lowered below what is open: the open ones stay, no new one until they close.
        assert_eq!(gate.reload(&ServerLimits { max_connections_per_ip: 1, ..start.clone() }).restart_only, Vec::<&str>::new());
        assert!(gate.admit(ip("10.0.0.1"), "test").is_none());
        drop((held, third));
        assert!(gate.admit(ip("10.0.0.1"), "test").is_some());
    }

    #[test]
    fn restart_only_changes_name_each_changed_listener_bound() {
        let a = ServerLimits::default();
        assert!(a.restart_only_changes(&a).is_empty());
        let b = ServerLimits { max_connections: 1, max_connections_per_ip: 1, max_streams_per_connection: 7, body_budget_bytes: 1, ..a.clone() };
        assert_eq!(a.restart_only_changes(&b), vec!["max_streams_per_connection", "body_budget_bytes"]);
    }

    #[test]
    fn the_connection_cap_stays_below_the_descriptor_limit() {
        let gate = Gate::new(ServerLimits { max_connections: usize::MAX, ..ServerLimits::default() });
        let nofile = raise_nofile_limit();
        assert!((gate.limits.max_connections as u64) < nofile);
        let reloaded = gate.reload(&ServerLimits { max_connections: usize::MAX, ..ServerLimits::default() });
        assert_eq!(reloaded.max_connections, ConnectionCap { configured: usize::MAX, in_force: gate.limits.max_connections, capped_by_nofile: Some(nofile) });
    }

    #[test]
    fn a_capped_connection_cap_says_what_is_in_force_and_why() {
        let under = ConnectionCap::within(1000, 1024);
        assert_eq!((under.in_force, under.to_string()), (768, "768 (the file says 1000; capped by the open-files limit 1024, less 256 descriptors kept for files and outgoing connections; raise `ulimit -n`, LimitNOFILE= in systemd, to serve more)".to_string()));
        assert_eq!(ConnectionCap::within(768, 1024).to_string(), "768", "at the limit, nothing is capped");
        assert_eq!(ConnectionCap::within(5, 100).in_force, 1, "a tiny descriptor limit still leaves one connection");
    }

    #[test]
    fn body_charges_are_bounded_and_given_back() {
        let budget = BodyBudget::new(100);
        let mut a = BodyCharge::default();
        budget.charge(&mut a, 60).unwrap();
        budget.charge(&mut a, 30).unwrap();
        let mut b = BodyCharge::default();
        assert_eq!(budget.charge(&mut b, 20), Err(OverBudget));
        drop(a);
        assert_eq!(budget.charge(&mut b, 100), Ok(()));
    }

    #[test]
    fn limits_read_from_a_partial_section() {
        let limits: ServerLimits = serde_json::from_str(r#"{"header_read_timeout_ms": 500, "max_connections_per_ip": 8}"#).unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_millis(500));
        assert_eq!(limits.max_connections_per_ip, 8);
        assert_eq!(limits.request_timeout, REQUEST_TIMEOUT);
        let round: ServerLimits = serde_json::from_value(serde_json::to_value(&limits).unwrap()).unwrap();
        assert_eq!(round, limits);
        assert_eq!(limits.check(), Ok(()));
        let zero = ServerLimits { body_timeout: Duration::ZERO, ..limits };
        assert!(zero.check().unwrap_err().starts_with("body_timeout_ms"));
    }
}
