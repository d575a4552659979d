//! Deduplication of click ids within a horizon, in bounded memory per tenant.
//!
//! Sans-IO: the caller passes the clock, so behaviour is a pure function of
//! the sequence of calls and is tested against a model.
//!
//! # Design
//! Keys are 128-bit hashes of `(tenant, click_id)`. Each tenant has its own
//! table with its own share of keys ([`DedupConfig::share`]), so one
//! tenant sending unique ids fills and evicts only its own table: another
//! tenant's keys, and so its retries, are untouched.
//!
//! A table is a ring and an index over it:
//! * the **ring** holds every key (16 bytes) in filing order, in `share`
//!   positions plus one chunk. It is cut into chunks of up to
//!   [`MAX_CHUNK_KEYS`] keys (256 KiB), allocated when the head enters one
//!   and freed when the tail leaves it, so an idle or young table holds
//!   only what it uses. New keys go in at the head; expiry and eviction pop
//!   the tail, the oldest.
//! * the **index** is open addressing with linear probing over `u64` slots,
//!   `tag << 32 | (ring position + 1)` (0 is empty), at load <= 0.75, grown
//!   incrementally (below) up to the share's size. The tag is the top half
//!   of the key's own low word mixed by one xor and one multiply with
//!   per-table random numbers:
//!   the keys are already hashes (no SipHash), but unkeyed ones of ids
//!   clients choose, so the mix keeps a client from aiming its ids at one
//!   run of slots. The tag gives a slot's home (`tag * slots >> 32`), so a
//!   deletion shifts the following slots back (no tombstones) without
//!   reading the ring, and it filters the probe: a slot's key is read from
//!   the ring only when its tag matches (a false match is one in 2^32, and
//!   the full 128 bits are compared, so a duplicate is exact).
//! * **generations**: the ring is cut into runs of keys first sighted
//!   within `horizon / GENERATIONS` of the run's first key, each with the
//!   newest first sighting in it. A run expires as a whole when its newest
//!   sighting is past the horizon. A key sighted with an older time than
//!   the newest run's start (a replay, a restore out of order) joins that
//!   run: it lives at most that much longer.
//!
//! `first_sighting` is one probe: it stops at the key (a duplicate) or at
//! the empty slot where the key goes. Every piece of upkeep is a bounded
//! step at the tail, never a run or a chunk at once, and nothing on the
//! request path costs time in proportion to the table:
//! * expiry is lazy: a lookup treats a key whose run is past the horizon as
//!   absent (it is filed anew at the head, its old position left stale),
//!   and each insert pops up to [`EXPIRE_PER_INSERT`] expired positions;
//!   [`Dedup::expire`] does the same with a budget off the request path,
//!   for tables that get no inserts;
//! * a table over its share pops the tail until it dropped one held key
//!   (early if its run was not expired yet: counted);
//! * a ring position whose key was forgotten or filed anew since is stale
//!   and skipped when the tail reaches it (each at most once); if stale
//!   positions fill the chunk of slack, the ring pops its tail to make room
//!   (also counted when the key was held and not expired).
//!
//! The index **grows incrementally**. When an insert would pass load 0.75
//! it takes a new set of slots 1.5 times as many (at most the share's
//! size) and keeps the old ones until their keys
//! have moved over: new keys go to the new slots, a lookup that misses them
//! tries the old ones, and each insert moves at least [`MOVE_PER_INSERT`]
//! keys, walking the old slots in order from an empty one and moving a
//! whole cluster (full slots between two empty ones) at a time. Homes are
//! proportional to the tag in both sets of slots, so both are read and
//! written in order: a move costs no cache miss of its own (walking the
//! ring instead cost two random accesses per key). Emptying a whole
//! cluster whose preceding slot is empty leaves every other probe intact,
//! and every slot behind the cursor is empty, so a backward shift after a
//! removal (which stops at an empty slot) never carries a key behind the
//! cursor: the walk reaches every key. It moves more when needed, so that
//! the move ends before the new slots could pass load 0.75. Not a whole
//! rehash: that is a stall in proportion to the
//! table (issue 12 saw ingest stop for seconds at 10M keys). Not allocated
//! at the share up front either: that makes the memory known at start, but
//! a young table's keys are then scattered over the whole share's slots
//! (10.7 bytes per key of share, resident once touched), and measured
//! 3-4x slower inserts for the first 200k keys of a 10M share (page faults
//! and cache misses) than a table sized to its keys.
//!
//! # Prefetch
//! At 10M keys each sighting is a few cache misses: the index slot at the
//! key's home, the ring key a tag match compares, and on a full table the
//! home slot of the tail key it evicts. [`Dedup::prefetch`] hints the
//! first, so a caller holding a batch of keys (admission) asks for a key's
//! slot some keys before it files it; an insert hints the home slot of
//! the key [`EVICT_AHEAD`] positions after the tail, which a later insert
//! is about to pop. The ring key a match compares is not hinted: where it
//! is is known only once the slot is read. Hints only (no state changes):
//! behaviour is the same without them, and they are no-ops off x86_64.
//!
//! Slot arrays of 2 MiB or more are their own mappings, advised to the
//! kernel as transparent huge pages (`zeroed`): a random probe over a
//! table of hundreds of MB then misses the TLB far less often, and its page
//! walk (itself a cache miss) goes with it. A hint only, like the prefetch.
//! The next growth's slots are made, and every page of them touched, by a
//! thread of their own from load 0.7 on, and old slots are unmapped by one:
//! page faults (with the kernel's compaction for huge pages) and unmapping
//! stay off the request path. Only where that work runs changes, not what
//! the table does.
//!
//! # Memory
//! A full table (its share of keys) costs 16 bytes per key in the ring and
//! `8 / 0.75 = 10.7` in the index: 26.7 bytes per key (`cargo bench -p
//! tally-edge --bench dedup` measures it). A table below its share has
//! index slots for 1.33 to 2 times its keys (up to 32 bytes per key), and
//! for a while after a growth began also the old slots (up to 43), and
//! from load 0.7 until it begins, the slots it will take, being made off
//! the request path (`zeroed`; up to 45; given back if the load falls
//! below 0.6 first). A
//! horizon `H` at `R` clicks/s per edge needs a share of `R * H` keys:
//! 200k clicks/s for 1 h is 720M keys, 19.2 GB (about 23 GB while its
//! index last grows); 10k clicks/s for 1 h, 36M keys, 0.96 GB. The default
//! `max_entries` (10M, 267 MB) holds a full hour only up to about 2,700
//! clicks/s per edge (50 s at 200k/s); past that the tenant's covered
//! horizon ([`TenantStats::horizon_ms`], logged when short) is what it
//! really is. [`Dedup::memory_bytes`] counts capacities: every index slot
//! allocated and every ring chunk.
//!
//! # Guarantees
//! * A key seen at `t` is reported as a duplicate at any `t' < t + horizon`,
//!   unless its own tenant's table evicted it early (counted in
//!   `evicted_early`, and visible as a shorter [`TenantStats::horizon_ms`]).
//! * A key is reported as a duplicate only if that exact 128-bit key was
//!   filed and not forgotten.
//! * A key is forgotten by `t + horizon + horizon / GENERATIONS` at the latest.
//! * A tenant's table holds at most its share of keys (one more inside an
//!   insert); its ring at most its share plus one chunk of positions.
//! * Horizon is measured from the first sighting: re-sends do not extend it.
//! * Keys of one tenant never evict another tenant's keys.
//!
//! # Surviving restarts
//! The table is memory only; what it held is rebuilt at start from the
//! dedup snapshot files and the WAL (`spool::dedup_snapshot`): every key of
//! a durable WAL record is in a snapshot file or in a WAL segment still on
//! disk, as segments are deleted only below what the snapshot files cover.
//! [`Dedup::restore`] loads a key with the time of its first sighting.
//! When that memory was lost (a damaged snapshot, memory ack mode),
//! [`Dedup::forgot_before`] records it, so the horizon each tenant is
//! reported to cover is true.

use std::collections::{HashMap, VecDeque};

use tally_model::tenant::TenantId;

use zeroed::{Pending, Zeroed};

mod zeroed;

/// Number of generations a horizon is cut into: more means tighter expiry.
pub const GENERATIONS: u64 = 8;

/// Expired positions an insert pops at most: more than one, so expiry
/// outpaces inserts and the backlog of expired keys only shrinks.
pub const EXPIRE_PER_INSERT: usize = 2;

/// The largest share a table takes: ring positions and index slots are
/// 32-bit (2^31 keys is 57 GB).
pub const MAX_SHARE: usize = 1 << 31;

/// Keys in a ring chunk at most (256 KiB): small enough that a young table
/// is lean, large enough that allocation is rare.
pub const MAX_CHUNK_KEYS: usize = 1 << 14;

/// Keys in a ring chunk at least, for tiny shares.
const MIN_CHUNK_KEYS: usize = 16;

/// Index slots of a new table (at most the share's).
const INITIAL_SLOTS: usize = 64;

/// Ring positions an insert moves on in a growth at least: more makes the
/// growth, and its second probe for new keys, shorter.
pub const MOVE_PER_INSERT: usize = 8;

/// Ring positions after the tail whose key's home slot an insert prefetches
/// (see the module docs): far enough that the slot is in cache when that
/// key is popped a few inserts later, near enough that it stays there.
pub const EVICT_AHEAD: u64 = 8;

/// Hints the CPU to bring the cache line holding `value` into all levels.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint that never faults and reads nothing
    // observable; `value` is a valid reference anyway.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[derive(Debug, Clone)]
pub struct DedupConfig {
    pub horizon_ms: u64,
    /// Keys a tenant's table holds at most, unless `tenant_max_entries` names it.
    pub max_entries_per_tenant: usize,
    pub tenant_max_entries: HashMap<String, usize>,
}

impl DedupConfig {
    /// Every tenant with the same share.
    pub fn new(horizon_ms: u64, max_entries_per_tenant: usize) -> DedupConfig {
        DedupConfig { horizon_ms, max_entries_per_tenant, tenant_max_entries: HashMap::new() }
    }

    /// The most keys `tenant`'s table holds (at most [`MAX_SHARE`]).
    pub fn share(&self, tenant: &str) -> usize {
        self.tenant_max_entries.get(tenant).copied().unwrap_or(self.max_entries_per_tenant).clamp(1, MAX_SHARE)
    }
}

/// `[hi, lo]`: two words align ring entries to 8 bytes, not 16.
type Key = [u64; 2];

fn split(key: u128) -> Key {
    [(key >> 64) as u64, key as u64]
}

/// Keys sighted within a generation of `first_ms`, from ring position
/// `from` (absolute) to the next run's.
#[derive(Debug, Clone, Copy)]
struct Run {
    from: u64,
    first_ms: u64,
    newest_ms: u64,
}

impl Run {
    fn expired(&self, now_ms: u64, horizon_ms: u64) -> bool {
        now_ms.saturating_sub(self.newest_ms) >= horizon_ms
    }
}

/// Keys in filing order; see the module docs.
#[derive(Debug)]
struct Ring {
    chunks: Vec<Option<Box<[Key]>>>,
    chunk_shift: u32,
    allocated: usize,
    /// Absolute positions `tail..head` are in use; `tail_at` and `head_at`
    /// are where they are in `chunks` (absolute modulo the capacity).
    tail: u64,
    head: u64,
    tail_at: usize,
    head_at: usize,
}

impl Ring {
    fn new(share: usize) -> Ring {
        let chunk_keys = (share / GENERATIONS as usize).next_power_of_two().clamp(MIN_CHUNK_KEYS, MAX_CHUNK_KEYS);
        let chunks = share.div_ceil(chunk_keys) + 1;
        Ring { chunks: (0..chunks).map(|_| None).collect(), chunk_shift: chunk_keys.trailing_zeros(), allocated: 0, tail: 0, head: 0, tail_at: 0, head_at: 0 }
    }

    fn chunk_keys(&self) -> usize {
        1 << self.chunk_shift
    }

    fn capacity(&self) -> usize {
        self.chunks.len() << self.chunk_shift
    }

    fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    fn is_full(&self) -> bool {
        self.head - self.tail == self.capacity() as u64
    }

    fn wrap(&self, at: usize) -> usize {
        if at + 1 == self.capacity() {
            0
        } else {
            at + 1
        }
    }

    fn key(&self, at: usize) -> Key {
        self.chunks[at >> self.chunk_shift].as_deref().expect("a position in use is in an allocated chunk")[at & (self.chunk_keys() - 1)]
    }

    /// Where absolute position `absolute` (in use) is.
    fn physical(&self, absolute: u64) -> usize {
        let at = self.tail_at + (absolute - self.tail) as usize;
        if at >= self.capacity() {
            at - self.capacity()
        } else {
            at
        }
    }

    /// The absolute position of `at`, which is in use.
    fn absolute(&self, at: usize) -> u64 {
        let offset = if at >= self.tail_at { at - self.tail_at } else { at + self.capacity() - self.tail_at };
        self.tail + offset as u64
    }

    /// Files `key` at the head (not full) and returns its position.
    fn push(&mut self, key: Key) -> usize {
        let at = self.head_at;
        let (chunk_keys, chunk) = (self.chunk_keys(), &mut self.chunks[at >> self.chunk_shift]);
        let keys = match chunk {
            Some(keys) => keys,
            None => {
                self.allocated += 1;
                chunk.insert(vec![[0; 2]; chunk_keys].into_boxed_slice())
            }
        };
        keys[at & (chunk_keys - 1)] = key;
        self.head += 1;
        self.head_at = self.wrap(at);
        at
    }

    /// Takes the key at the tail (not empty) and its position.
    fn pop(&mut self) -> (Key, usize) {
        let at = self.tail_at;
        let key = self.key(at);
        self.tail += 1;
        self.tail_at = self.wrap(at);
        let chunk = at >> self.chunk_shift;
        // Leaving a chunk frees it, unless the head is filling it on its next lap.
        if self.tail_at & (self.chunk_keys() - 1) == 0 && self.head_at >> self.chunk_shift != chunk {
            self.chunks[chunk] = None;
            self.allocated -= 1;
        }
        (key, at)
    }

    fn memory_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Option<Box<[Key]>>>() + self.allocated * self.chunk_keys() * std::mem::size_of::<Key>()
    }
}

/// The keyed mix that makes a key's tag; see the module docs.
#[derive(Debug, Clone, Copy)]
struct Mix {
    seed: u64,
    multiplier: u64,
}

impl Mix {
    fn tag(&self, key: &Key) -> u32 {
        ((key[1] ^ self.seed).wrapping_mul(self.multiplier) >> 32) as u32
    }
}

/// Open addressing over ring positions: a slot is `tag << 32 | (position
/// + 1)`, 0 when empty; see the module docs.
#[derive(Debug)]
struct Slots {
    slots: Zeroed<u64>,
    len: usize,
}

impl Slots {
    fn new(slots: usize) -> Slots {
        Slots::over(Zeroed::new(slots))
    }

    fn over(slots: Zeroed<u64>) -> Slots {
        Slots { slots, len: 0 }
    }

    fn value(tag: u32, at: usize) -> u64 {
        (tag as u64) << 32 | (at as u64 + 1)
    }

    fn tag_of(value: u64) -> u32 {
        (value >> 32) as u32
    }

    fn position(value: u64) -> usize {
        (value as u32 - 1) as usize
    }

    fn home(&self, tag: u32) -> usize {
        ((tag as u64 * self.slots.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Hints the cache line of `tag`'s home slot.
    fn prefetch_home(&self, tag: u32) {
        prefetch(&self.slots[self.home(tag)]);
    }

    /// Steps from slot `from` forward to slot `to`.
    fn distance(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + self.slots.len() - from
        }
    }

    /// The slot holding `key` (and its ring position), or the empty slot
    /// where it goes. The load stays <= 0.75, so the probe ends.
    fn probe(&self, key: &Key, tag: u32, ring: &Ring) -> Result<(usize, usize), usize> {
        let mut i = self.home(tag);
        loop {
            let v = self.slots[i];
            if v == 0 {
                return Err(i);
            }
            if Self::tag_of(v) == tag && ring.key(Self::position(v)) == *key {
                return Ok((i, Self::position(v)));
            }
            i = self.next(i);
        }
    }

    /// The slot holding `value`, if any.
    fn find(&self, value: u64) -> Option<usize> {
        let mut i = self.home(Self::tag_of(value));
        loop {
            match self.slots[i] {
                0 => return None,
                v if v == value => return Some(i),
                _ => i = self.next(i),
            }
        }
    }

    fn set(&mut self, slot: usize, value: u64) {
        self.len += (self.slots[slot] == 0) as usize;
        self.slots[slot] = value;
    }

    /// Puts a value whose key is not here in the first empty slot of its probe.
    fn place(&mut self, value: u64) {
        let mut i = self.home(Self::tag_of(value));
        while self.slots[i] != 0 {
            i = self.next(i);
        }
        self.set(i, value);
    }

    /// Empties `slot`, shifting back the slots after it that may fill it,
    /// so every probe still meets its key before an empty slot.
    fn remove(&mut self, mut hole: usize) {
        self.len -= 1;
        let mut j = hole;
        loop {
            j = self.next(j);
            let v = self.slots[j];
            if v == 0 {
                break;
            }
            if self.distance(self.home(Self::tag_of(v)), j) >= self.distance(hole, j) {
                self.slots[hole] = v;
                hole = j;
            }
        }
        self.slots[hole] = 0;
    }

    /// Whether one more key keeps the load <= 0.75.
    fn has_room(&self) -> bool {
        (self.len + 1) * 4 <= self.slots.len() * 3
    }

    fn memory_bytes(&self) -> usize {
        self.slots.memory_bytes()
    }
}

/// A growth under way: the keys still in `from`, the index before, are in
/// its slots from `cursor` on (cyclically) up to `start`, an empty slot;
/// the slots behind the cursor are all empty. See the module docs.
#[derive(Debug)]
struct Growth {
    from: Slots,
    /// Read only by the tests' invariant check (the walk itself is bounded
    /// by `walked`).
    #[cfg_attr(not(test), allow(dead_code))]
    start: usize,
    cursor: usize,
    /// Slots walked so far, from the one after `start`.
    walked: usize,
}

impl Growth {
    fn new(from: Slots) -> Growth {
        let start = from.slots.iter().position(|&v| v == 0).expect("a load <= 0.75 leaves an empty slot");
        Growth { cursor: from.next(start), from, start, walked: 0 }
    }
}

/// Where a key is in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Current(usize),
    Before(usize),
}

/// The index: slots, and during a growth the ones before.
#[derive(Debug)]
struct Index {
    mix: Mix,
    current: Slots,
    growth: Option<Growth>,
    /// The slots of the next growth, being made ahead of it off the
    /// request path (`zeroed`): asked for at load 0.7, taken at 0.75.
    next: Option<Pending<u64>>,
    /// The most slots it grows to: room for the share (and the one key
    /// more inside an insert) at load 0.75.
    max_slots: usize,
}

impl Index {
    fn new(share: usize) -> Index {
        let max_slots = (share + 1).div_ceil(3) * 4;
        Index {
            mix: Mix { seed: fastrand::u64(..), multiplier: fastrand::u64(..) | 1 },
            current: Slots::new(max_slots.min(INITIAL_SLOTS)),
            growth: None,
            next: None,
            max_slots,
        }
    }

    fn len(&self) -> usize {
        self.current.len + self.growth.as_ref().map_or(0, |g| g.from.len)
    }

    /// The key's slot and ring position, or the empty slot of `current`
    /// where it goes.
    fn probe(&self, key: &Key, tag: u32, ring: &Ring) -> Result<(Held, usize), usize> {
        match self.current.probe(key, tag, ring) {
            Ok((slot, at)) => Ok((Held::Current(slot), at)),
            Err(vacant) => match self.growth.as_ref().map(|g| g.from.probe(key, tag, ring)) {
                Some(Ok((slot, at))) => Ok((Held::Before(slot), at)),
                _ => Err(vacant),
            },
        }
    }

    /// Hints the home slots of `tag`, in the slots before a growth too.
    fn prefetch_home(&self, tag: u32) {
        self.current.prefetch_home(tag);
        if let Some(g) = &self.growth {
            g.from.prefetch_home(tag);
        }
    }

    /// The slot pointing at ring position `at`, whose key is `key`: none if
    /// the key was forgotten or filed anew since.
    fn slot_of(&self, key: &Key, at: usize) -> Option<Held> {
        let value = Slots::value(self.mix.tag(key), at);
        match self.current.find(value) {
            Some(slot) => Some(Held::Current(slot)),
            None => self.growth.as_ref().and_then(|g| g.from.find(value)).map(Held::Before),
        }
    }

    fn remove(&mut self, held: Held) {
        match held {
            Held::Current(slot) => self.current.remove(slot),
            Held::Before(slot) => self.growth.as_mut().expect("a slot before is in a growth").from.remove(slot),
        }
    }

    /// Points a held key at its new ring position `at`, in `current`.
    fn refile(&mut self, held: Held, tag: u32, at: usize) {
        match held {
            Held::Current(slot) => self.current.slots[slot] = Slots::value(tag, at),
            Held::Before(slot) => {
                self.growth.as_mut().expect("a slot before is in a growth").from.remove(slot);
                self.current.place(Slots::value(tag, at));
            }
        }
    }

    /// Upkeep before an insert: starts a growth when `current` is at load
    /// 0.75, or moves the keys of a few ring positions on: enough that the
    /// growth ends before `current` could pass load 0.75.
    fn grow(&mut self) {
        if let Some(g) = self.growth.as_mut() {
            Self::move_on(g, &mut self.current);
            if g.from.len == 0 {
                if let Some(done) = self.growth.take() {
                    done.from.slots.drop_off_path();
                }
            }
        }
        if self.growth.is_some() || self.current.slots.len() >= self.max_slots {
            return;
        }
        let slots = (self.current.slots.len() / 2 * 3).min(self.max_slots);
        let load_tenths = self.current.len * 10 / self.current.slots.len();
        if !self.current.has_room() {
            let next = match self.next.take() {
                Some(pending) => {
                    debug_assert_eq!(pending.len(), slots, "the slots were prepared for this growth");
                    pending.take()
                }
                None => Zeroed::new(slots),
            };
            let from = std::mem::replace(&mut self.current, Slots::over(next));
            self.growth = Some(Growth::new(from));
        } else if self.next.is_none() && load_tenths >= 7 {
            self.next = Some(Zeroed::prepare(slots));
        } else if load_tenths < 6 {
            // Keys expired before the growth came: the prepared slots (all
            // resident) wait for the load to climb back to 0.7.
            if let Some(pending) = self.next.take() {
                pending.drop_off_path();
            }
        }
    }

    /// Moves at least [`MOVE_PER_INSERT`] keys (more if the growth needs
    /// them to end in time) from `g.from` to `current`, a whole cluster
    /// (a run of full slots between empty ones) at a time; see the module docs.
    fn move_on(g: &mut Growth, current: &mut Slots) {
        let free = (current.slots.len() * 3 / 4).saturating_sub(current.len + g.from.len + 1).max(1);
        let mut budget = g.from.len.div_ceil(free).max(MOVE_PER_INSERT);
        let n = g.from.slots.len();
        while budget > 0 && g.from.len > 0 && g.walked < n {
            let v = g.from.slots[g.cursor];
            if v == 0 {
                g.cursor = g.from.next(g.cursor);
                g.walked += 1;
                continue;
            }
            // The slot before the cursor is empty, so every key of this
            // cluster has its home in it: emptying the whole cluster leaves
            // every other probe as it was.
            while g.from.slots[g.cursor] != 0 {
                current.place(std::mem::replace(&mut g.from.slots[g.cursor], 0));
                g.from.len -= 1;
                budget = budget.saturating_sub(1);
                g.cursor = g.from.next(g.cursor);
                g.walked += 1;
            }
        }
    }

    fn memory_bytes(&self) -> usize {
        self.current.memory_bytes()
            + self.growth.as_ref().map_or(0, |g| g.from.memory_bytes())
            + self.next.as_ref().map_or(0, Pending::memory_bytes)
    }
}

#[derive(Debug)]
struct Table {
    share: usize,
    index: Index,
    ring: Ring,
    /// Runs of the positions in use, oldest first; the first one holds the
    /// tail. Empty with the ring.
    runs: VecDeque<Run>,
    evicted_early: u64,
    /// Sightings before this may have been evicted early.
    evicted_before_ms: u64,
}

/// The clock of one call.
#[derive(Debug, Clone, Copy)]
struct Clock {
    now_ms: u64,
    horizon_ms: u64,
    generation_ms: u64,
}

impl Table {
    fn new(share: usize) -> Table {
        Table { share, index: Index::new(share), ring: Ring::new(share), runs: VecDeque::new(), evicted_early: 0, evicted_before_ms: 0 }
    }

    /// Records a key first sighted at `at_ms`: new, or where it is held. `count`
    /// is false while restoring: evictions it causes were counted when the
    /// edge that wrote the snapshot made them.
    fn insert(&mut self, key: Key, at_ms: u64, clock: Clock, count: bool) -> Sighting {
        self.expire(clock, EXPIRE_PER_INSERT);
        self.index.grow();
        self.prefetch_tail();
        let tag = self.index.mix.tag(&key);
        match self.index.probe(&key, tag, &self.ring) {
            Ok((held, at)) => {
                if !self.run_of(at).expired(clock.now_ms, clock.horizon_ms) {
                    return Sighting::Duplicate { filed_at: self.ring.absolute(at) };
                }
                // Held but past its horizon: new again, filed anew; its old position is now stale.
                let at = self.file(key, at_ms, clock);
                self.index.refile(held, tag, at);
            }
            Err(vacant) => {
                let at = self.file(key, at_ms, clock);
                self.index.current.set(vacant, Slots::value(tag, at));
            }
        }
        while self.index.len() > self.share {
            self.evict(clock, count);
        }
        if self.ring.is_full() {
            self.evict(clock, count);
        }
        Sighting::New
    }

    /// Hints the home slot of the key [`EVICT_AHEAD`] after the tail when
    /// the tail is about to be popped: the table is at its share (every
    /// insert evicts) or the ring is near full of stale positions. That
    /// ring key is read in order, so it is usually cached already.
    fn prefetch_tail(&self) {
        let popping = self.index.len() >= self.share || self.ring.head - self.ring.tail >= self.ring.capacity() as u64 - EVICT_AHEAD;
        if popping && self.ring.head - self.ring.tail > EVICT_AHEAD {
            let key = self.ring.key(self.ring.physical(self.ring.tail + EVICT_AHEAD));
            self.index.prefetch_home(self.index.mix.tag(&key));
        }
    }

    /// Hints the cache line of `key`'s home slot.
    fn prefetch(&self, key: &Key) {
        self.index.prefetch_home(self.index.mix.tag(key));
    }

    /// Puts `key` at the ring's head, in the newest run or a new one. A run
    /// also ends after one chunk's worth of keys: an early eviction reports
    /// its whole run as forgotten, so a run as long as a generation made a
    /// table that covers less than one generation report a horizon near 0.
    fn file(&mut self, key: Key, at_ms: u64, clock: Clock) -> usize {
        let run_keys = 1u64 << self.ring.chunk_shift;
        match self.runs.back_mut() {
            Some(run) if at_ms < run.first_ms.saturating_add(clock.generation_ms) && self.ring.head - run.from < run_keys => {
                run.newest_ms = run.newest_ms.max(at_ms)
            }
            _ => self.runs.push_back(Run { from: self.ring.head, first_ms: at_ms, newest_ms: at_ms }),
        }
        self.ring.push(key)
    }

    /// The run ring position `at` (in use) is in.
    fn run_of(&self, at: usize) -> Run {
        let absolute = self.ring.absolute(at);
        self.runs[self.runs.partition_point(|r| r.from <= absolute) - 1]
    }

    /// Pops the tail position; true if its key was held (not stale). The
    /// run it was in is `self.runs[0]` before the call.
    fn pop(&mut self) -> bool {
        let (key, at) = self.ring.pop();
        let held = self.index.slot_of(&key, at).inspect(|&held| self.index.remove(held)).is_some();
        if self.ring.is_empty() {
            self.runs.clear();
        } else if self.runs.get(1).is_some_and(|r| r.from <= self.ring.tail) {
            self.runs.pop_front();
        }
        held
    }

    /// Pops the tail to make room; a held key not yet expired is evicted early.
    fn evict(&mut self, clock: Clock, count: bool) {
        let run = self.runs[0];
        if self.pop() && !run.expired(clock.now_ms, clock.horizon_ms) {
            self.evicted_early += count as u64;
            self.evicted_before_ms = self.evicted_before_ms.max(run.newest_ms + 1);
        }
    }

    /// Pops expired positions from the tail, at most `budget` of them.
    fn expire(&mut self, clock: Clock, budget: usize) -> usize {
        let mut done = 0;
        while done < budget && self.runs.front().is_some_and(|r| r.expired(clock.now_ms, clock.horizon_ms)) {
            self.pop();
            done += 1;
        }
        done
    }

    fn forget(&mut self, key: Key) {
        if let Ok((held, _)) = self.index.probe(&key, self.index.mix.tag(&key), &self.ring) {
            self.index.remove(held);
        }
    }

    /// The ring position (absolute) of `key`, if held.
    fn filed_at(&self, key: Key) -> Option<u64> {
        self.index.probe(&key, self.index.mix.tag(&key), &self.ring).ok().map(|(_, at)| self.ring.absolute(at))
    }

    fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() + self.ring.memory_bytes() + self.runs.capacity() * std::mem::size_of::<Run>()
    }
}

/// What [`Dedup::sight`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Filed now, at the table's [`Dedup::next_position`] before the call.
    New,
    /// Held within the horizon, filed at this position of its tenant's table.
    Duplicate { filed_at: u64 },
}

/// Where a key is filed: its tenant's table and the ring position
/// (absolute) in it. Positions only grow, so a key filed anew (after it
/// expired, or was forgotten) has another position than before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub table: usize,
    pub at: u64,
}

/// What one tenant's table holds and how far back it remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStats {
    pub tenant: TenantId,
    pub entries: usize,
    pub evicted_early: u64,
    /// How far back every key is still known: the configured horizon unless
    /// keys were evicted early or lost over a restart.
    pub horizon_ms: u64,
}

#[derive(Debug)]
pub struct Dedup {
    config: DedupConfig,
    generation_ms: u64,
    tables: Vec<(TenantId, Table)>,
    /// Where each tenant's table is in `tables`.
    by_tenant: HashMap<TenantId, usize>,
    /// The table used last: a request's clicks are one tenant's, so this
    /// spares a map lookup per click.
    last: usize,
    /// Sightings before this may have been lost (see [`Dedup::forgot_before`]).
    lost_before_ms: u64,
}

impl Dedup {
    pub fn new(config: DedupConfig) -> Dedup {
        Dedup { generation_ms: (config.horizon_ms / GENERATIONS).max(1), config, tables: Vec::new(), by_tenant: HashMap::new(), last: 0, lost_before_ms: 0 }
    }

    fn clock(&self, now_ms: u64) -> Clock {
        Clock { now_ms, horizon_ms: self.config.horizon_ms, generation_ms: self.generation_ms }
    }

    fn table(&mut self, tenant: &TenantId) -> &mut Table {
        if self.tables.get(self.last).is_none_or(|(t, _)| t != tenant) {
            self.last = match self.by_tenant.get(tenant) {
                Some(&i) => i,
                None => {
                    self.tables.push((tenant.clone(), Table::new(self.config.share(tenant.as_str()))));
                    self.by_tenant.insert(tenant.clone(), self.tables.len() - 1);
                    self.tables.len() - 1
                }
            };
        }
        &mut self.tables[self.last].1
    }

    /// Records a sighting; true if the key is new (count it), false if it is
    /// a duplicate within the horizon.
    pub fn first_sighting(&mut self, tenant: &TenantId, key: u128, now_ms: u64) -> bool {
        self.sight(tenant, key, now_ms) == Sighting::New
    }

    /// [`Dedup::first_sighting`], saying where a duplicate was filed.
    pub fn sight(&mut self, tenant: &TenantId, key: u128, now_ms: u64) -> Sighting {
        let clock = self.clock(now_ms);
        self.table(tenant).insert(split(key), now_ms, clock, true)
    }

    /// The position the tenant's next new key is filed at: the keys a run
    /// of sightings files are at the positions from this one before it to
    /// this one after it (exclusive), in the same table.
    pub fn next_position(&mut self, tenant: &TenantId) -> Position {
        let at = self.table(tenant).ring.head;
        Position { table: self.last, at }
    }

    /// Hints the CPU to fetch what a `first_sighting` of `key` reads first
    /// (its home slot), for a caller with a batch of keys to call this some
    /// keys ahead; see the module docs. Only the table used last (a
    /// request's tenant) is looked at; changes nothing.
    pub fn prefetch(&self, tenant: &TenantId, key: u128) {
        if let Some((t, table)) = self.tables.get(self.last) {
            if t == tenant {
                table.prefetch(&split(key));
            }
        }
    }

    /// At start: a key first sighted at `at_ms` (from a snapshot), unless it
    /// is past its horizon by `now_ms`. Evictions it causes are not counted
    /// again, but they do shorten the tenant's reported horizon.
    pub fn restore(&mut self, tenant: &TenantId, key: u128, at_ms: u64, now_ms: u64) {
        if now_ms.saturating_sub(at_ms) < self.config.horizon_ms {
            let clock = self.clock(now_ms);
            self.table(tenant).insert(split(key), at_ms, clock, false);
        }
    }

    /// Forgets a key recorded by `first_sighting`, for a click whose
    /// acceptance was rolled back (it was never acknowledged).
    pub fn forget(&mut self, tenant: &TenantId, key: u128) {
        if let Some(&i) = self.by_tenant.get(tenant) {
            self.tables[i].1.forget(split(key));
        }
    }

    /// Whether the key is held by any tenant's table (keys hash the tenant
    /// in, so they never collide across tenants; the tables are few). A
    /// sighting past its horizon may still be held until it is expired.
    pub fn contains(&self, key: u128) -> bool {
        self.position(key).is_some()
    }

    /// Where the key is filed, if any table holds it (see [`Dedup::contains`]).
    pub fn position(&self, key: u128) -> Option<Position> {
        self.tables.iter().enumerate().find_map(|(table, (_, t))| t.filed_at(split(key)).map(|at| Position { table, at }))
    }

    /// Upkeep off the request path: pops up to `budget` expired positions
    /// over all tables, so idle tenants' memory is freed too. Returns how
    /// many it popped.
    pub fn expire(&mut self, now_ms: u64, budget: usize) -> usize {
        let clock = self.clock(now_ms);
        let mut done = 0;
        for (_, t) in &mut self.tables {
            done += t.expire(clock, budget - done);
        }
        done
    }

    /// Sightings before `at_ms` may have been lost (a restart without their
    /// snapshot): every tenant's reported horizon starts from there.
    pub fn forgot_before(&mut self, at_ms: u64) {
        self.lost_before_ms = self.lost_before_ms.max(at_ms);
    }

    /// Per tenant, in the order tenants were first seen.
    pub fn stats(&self, now_ms: u64) -> Vec<TenantStats> {
        let horizon = self.config.horizon_ms;
        self.tables
            .iter()
            .map(|(tenant, t)| TenantStats {
                tenant: tenant.clone(),
                entries: t.index.len(),
                evicted_early: t.evicted_early,
                horizon_ms: now_ms.saturating_sub(t.evicted_before_ms.max(self.lost_before_ms)).min(horizon),
            })
            .collect()
    }

    pub fn horizon_ms(&self) -> u64 {
        self.config.horizon_ms
    }

    /// Keys held over all tenants.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|(_, t)| t.index.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the tables, from capacities: each index whole,
    /// ring chunks as allocated.
    pub fn memory_bytes(&self) -> usize {
        let map = self.by_tenant.capacity() * std::mem::size_of::<(TenantId, usize)>() + self.tables.capacity() * std::mem::size_of::<(TenantId, Table)>();
        map + self.tables.iter().map(|(_, t)| t.memory_bytes()).sum::<usize>()
    }

    /// Keys dropped before their horizon because their tenant's share was
    /// reached, over all tenants.
    pub fn evicted_early(&self) -> u64 {
        self.tables.iter().map(|(_, t)| t.evicted_early).sum()
    }
}

#[cfg(test)]
mod tests;
