//! Dedup table cost at the default share, one core, no I/O.
//!
//! `cargo bench -p tally-edge --bench dedup`
//!
//! One tenant with a 10M-key share and a 1 h horizon, keys arriving at
//! 150k/s of clock (so nothing expires, as in the soak run of issue 12):
//! * `fill`: 10M new keys into an empty table; mean per key and the slowest
//!   batch of 1000 (a whole-table rehash or eviction stall shows there);
//! * then, with the table full (every new key evicts the oldest), best of
//!   3 runs of 1M sightings each: all new, all duplicates (of keys still
//!   held), and half and half in random order;
//! * the same three, batched as admission does it: 1000 keys per request
//!   in a buffer, one clock per request, first without prefetch, then each
//!   key's slot prefetched (`Dedup::prefetch`) 8 keys before its
//!   `first_sighting`;
//! * bytes per key: `memory_bytes() / len()` of the full table, right
//!   after the fill (the index's last growth may still hold its old slots)
//!   and after the runs.
//!
//! Times are the thread's CPU time (`/proc/thread-self/schedstat`, so a
//! busy shared machine preempting the bench does not count), wall time
//! beside them.

use std::time::{Duration, Instant};

use tally_edge::dedup::{Dedup, DedupConfig};
use tally_model::tenant::TenantId;

const SHARE: usize = 10_000_000;
const HORIZON_MS: u64 = 3_600_000;
const KEYS_PER_MS: u64 = 150;
const RUN: usize = 1_000_000;
const BATCH: usize = 1000;

/// The i-th distinct key: splitmix64 of i in each half, like the 128-bit
/// hashes the ingest path computes.
fn key(i: u64) -> u128 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    ((mix(i) as u128) << 64) | mix(i ^ 0x5555_5555_5555_5555) as u128
}

struct Feed {
    dedup: Dedup,
    tenant: TenantId,
    /// Keys `0..next` were sent; the last `SHARE` of them are held.
    next: u64,
    start_ms: u64,
}

impl Feed {
    fn now(&self) -> u64 {
        self.start_ms + self.next / KEYS_PER_MS
    }

    fn send_new(&mut self) -> bool {
        let now = self.now();
        self.next += 1;
        self.dedup.first_sighting(&self.tenant, key(self.next - 1), now)
    }

    /// A duplicate of a key sent at most `SHARE / 2` keys ago (so still held).
    fn send_dup(&mut self, rng: &mut fastrand::Rng) -> bool {
        let back = rng.u64(1..=(SHARE as u64 / 2).min(self.next));
        let now = self.now();
        self.dedup.first_sighting(&self.tenant, key(self.next - back), now)
    }
}

/// Keys ahead whose slot the batched runs prefetch, as admission does.
const PREFETCH_AHEAD: usize = 8;

impl Feed {
    /// The sightings of one request of `BATCH` keys, each either new or a
    /// held duplicate as `pick_new` says, prefetched `PREFETCH_AHEAD`
    /// keys ahead; returns how many were new.
    fn send_batch(&mut self, rng: &mut fastrand::Rng, prefetch: bool, mut pick_new: impl FnMut() -> bool) -> usize {
        let mut keys = Vec::with_capacity(BATCH);
        let mut next = self.next;
        for _ in 0..BATCH {
            if pick_new() {
                next += 1;
                keys.push(key(next - 1));
            } else {
                keys.push(key(next - rng.u64(1..=(SHARE as u64 / 2).min(next))));
            }
        }
        // One clock per request, as admission has.
        let now = self.now();
        let mut new = 0;
        for i in 0..keys.len() {
            if let Some(&ahead) = keys.get(i + PREFETCH_AHEAD).filter(|_| prefetch) {
                self.dedup.prefetch(&self.tenant, ahead);
            }
            new += self.dedup.first_sighting(&self.tenant, keys[i], now) as usize;
        }
        self.next = next;
        new
    }
}

/// Best (cpu, wall) ns per sighting over 3 runs of `RUN / BATCH` requests,
/// and the new keys of the last.
fn best_of_3_batched(feed: &mut Feed, mut request: impl FnMut(&mut Feed) -> usize) -> ((f64, f64), usize) {
    let (mut best, mut new) = ((f64::MAX, f64::MAX), 0);
    for _ in 0..3 {
        new = 0;
        let watch = Stopwatch::start();
        for _ in 0..RUN / BATCH {
            new += request(feed);
        }
        let (cpu, wall) = watch.elapsed();
        best = (best.0.min(ns_per(cpu, RUN)), best.1.min(ns_per(wall, RUN)));
    }
    (best, new)
}

/// This thread's time on a CPU so far, if the kernel tells it.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
}

/// CPU and wall time since it started.
struct Stopwatch(Option<Duration>, Instant);

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch(cpu_time(), Instant::now())
    }

    /// (cpu, wall); cpu is wall where the kernel does not tell it.
    fn elapsed(&self) -> (Duration, Duration) {
        let wall = self.1.elapsed();
        (self.0.zip(cpu_time()).map_or(wall, |(a, b)| b - a), wall)
    }
}

fn ns_per(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

/// Best (cpu, wall) ns per op over 3 runs, and the new keys of the last.
fn best_of_3(feed: &mut Feed, mut op: impl FnMut(&mut Feed) -> bool) -> ((f64, f64), usize) {
    let (mut best, mut new) = ((f64::MAX, f64::MAX), 0);
    for _ in 0..3 {
        new = 0;
        let watch = Stopwatch::start();
        for _ in 0..RUN {
            new += op(feed) as usize;
        }
        let (cpu, wall) = watch.elapsed();
        best = (best.0.min(ns_per(cpu, RUN)), best.1.min(ns_per(wall, RUN)));
    }
    (best, new)
}

fn main() {
    let tenant = TenantId::parse("bench").unwrap();
    let mut feed = Feed { dedup: Dedup::new(DedupConfig::new(HORIZON_MS, SHARE)), tenant, next: 0, start_ms: 1_700_000_000_000 };

    let (mut slowest, fill) = (Duration::ZERO, Stopwatch::start());
    for _ in 0..SHARE / BATCH {
        let batch = Stopwatch::start();
        for _ in 0..BATCH {
            std::hint::black_box(feed.send_new());
        }
        slowest = slowest.max(batch.elapsed().0);
    }
    let (fill_cpu, fill_wall) = fill.elapsed();
    let (len, bytes) = (feed.dedup.len(), feed.dedup.memory_bytes());
    println!(
        "fill {SHARE} keys: {:.0} ns/key cpu ({:.0} wall), slowest {BATCH}-key batch {:.2} ms cpu",
        ns_per(fill_cpu, SHARE),
        ns_per(fill_wall, SHARE),
        slowest.as_secs_f64() * 1e3
    );
    println!("full table: {len} keys, {bytes} bytes, {:.1} bytes/key", bytes as f64 / len as f64);

    let mut rng = fastrand::Rng::with_seed(7);
    let (new_ns, _) = best_of_3(&mut feed, Feed::send_new);
    let (dup_ns, new) = best_of_3(&mut feed, |f| f.send_dup(&mut rng));
    assert_eq!(new, 0, "a duplicate of a held key was reported new");
    let mut coin = fastrand::Rng::with_seed(8);
    let (mixed_ns, _) = best_of_3(&mut feed, |f| if coin.bool() { f.send_new() } else { f.send_dup(&mut rng) });
    println!("first_sighting on a full table, ns (best of 3 x {RUN}):  cpu     wall");
    for (name, (cpu, wall)) in [("new (evicts the oldest)", new_ns), ("duplicate", dup_ns), ("half new, half duplicate", mixed_ns)] {
        println!("  {name:<26} {cpu:>7.1}  {wall:>7.1}");
    }
    for prefetch in [false, true] {
        let (new_b, _) = best_of_3_batched(&mut feed, |f| f.send_batch(&mut rng, prefetch, || true));
        let (dup_b, new) = best_of_3_batched(&mut feed, |f| f.send_batch(&mut rng, prefetch, || false));
        assert_eq!(new, 0, "a duplicate of a held key was reported new");
        let (mixed_b, _) = best_of_3_batched(&mut feed, |f| f.send_batch(&mut rng, prefetch, || coin.bool()));
        let how = if prefetch { format!("prefetched {PREFETCH_AHEAD} ahead") } else { "no prefetch".to_string() };
        println!("the same in requests of {BATCH} keys, {how}:");
        for (name, (cpu, wall)) in [("new (evicts the oldest)", new_b), ("duplicate", dup_b), ("half new, half duplicate", mixed_b)] {
            println!("  {name:<26} {cpu:>7.1}  {wall:>7.1}");
        }
    }
    let (len, bytes) = (feed.dedup.len(), feed.dedup.memory_bytes());
    println!("after the runs (index growth done): {len} keys, {bytes} bytes, {:.1} bytes/key", bytes as f64 / len as f64);
    println!("evicted early: {}", feed.dedup.evicted_early());
}
