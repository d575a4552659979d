//! Deduplication of click ids within a horizon, in bounded memory per tenant.
//!
//! Sans-IO: the caller passes the clock, so behaviour is a pure function of
//! the sequence of calls and is tested against a model.
//!
//! # Design
//! Keys are 128-bit hashes of `(tenant, click_id)`. Each tenant has its own
//! table with its own share of entries ([`DedupConfig::share`]), so one
//! tenant sending unique ids fills and evicts only its own table: another
//! tenant's keys, and so its retries, are untouched.
//!
//! Time is cut into generations of `horizon / GENERATIONS`. A table holds a
//! map key -> generation and a FIFO queue of `(key, generation)` in filing
//! order, generations non-decreasing (a key sighted with an older time than
//! the queue's back, as in a replay, is filed under the back's generation:
//! it lives at most that much longer). Every piece of upkeep is a bounded
//! step at the queue's front, never a whole generation at once:
//! * expiry is lazy: a lookup treats a key whose generation is past the
//!   horizon as absent, and each insert drops up to [`EXPIRE_PER_INSERT`]
//!   expired entries from the front; [`Dedup::expire`] does the same with a
//!   budget off the request path, for tables that get no inserts;
//! * a full table evicts one entry per insert from the front (the oldest),
//!   counted as early only if it was not expired yet;
//! * a queue entry whose key was forgotten or re-filed since is stale and
//!   dropped when it reaches the front (each at most once).
//!
//! # Guarantees
//! * A key seen at `t` is reported as a duplicate at any `t' < t + horizon`,
//!   unless its own tenant's table evicted it early (counted in
//!   `evicted_early`, and visible as a shorter [`TenantStats::horizon_ms`]).
//! * A key is forgotten by `t + horizon + horizon / GENERATIONS` at the latest.
//! * A tenant's table holds at most its share of keys; its queue at most
//!   twice that (stale entries).
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

/// Number of generations a horizon is cut into: more means tighter expiry.
pub const GENERATIONS: u64 = 8;

/// Expired entries an insert drops at most: more than one, so expiry
/// outpaces inserts and the backlog of expired entries only shrinks.
pub const EXPIRE_PER_INSERT: usize = 2;

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

    /// The most keys `tenant`'s table holds.
    pub fn share(&self, tenant: &str) -> usize {
        self.tenant_max_entries.get(tenant).copied().unwrap_or(self.max_entries_per_tenant).max(1)
    }
}

/// The key as two words: a `u128` would align map slots to 16 bytes.
type Key = (u64, u64);

fn split(key: u128) -> Key {
    ((key >> 64) as u64, key as u64)
}

/// Bytes a map slot (key, generation, control byte) and a queue entry take.
const MAP_SLOT_BYTES: usize = std::mem::size_of::<(Key, u64)>() + 1;
const QUEUE_ENTRY_BYTES: usize = std::mem::size_of::<(Key, u64)>();

#[derive(Debug)]
struct Table {
    share: usize,
    /// key -> generation it is filed under
    seen: HashMap<Key, u64>,
    /// Filing order; generations non-decreasing.
    queue: VecDeque<(Key, u64)>,
    evicted_early: u64,
    /// Sightings before this may have been evicted early.
    evicted_before_ms: u64,
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
    tables: HashMap<TenantId, Table>,
    /// Sightings before this may have been lost (see [`Dedup::forgot_before`]).
    lost_before_ms: u64,
}

impl Table {
    fn new(share: usize) -> Table {
        Table { share, seen: HashMap::new(), queue: VecDeque::new(), evicted_early: 0, evicted_before_ms: 0 }
    }

    /// `count` is false while restoring: those evictions were counted when
    /// the edge that wrote the snapshot made them.
    fn insert(&mut self, key: Key, generation: u64, current: u64, generation_ms: u64, count: bool) -> bool {
        self.expire(current, EXPIRE_PER_INSERT);
        let filed = generation.max(self.queue.back().map_or(0, |e| e.1));
        match self.seen.get_mut(&key) {
            Some(g) if !expired(*g, current) => return false,
            // Held but past its horizon: new again, filed anew; its old queue entry is now stale.
            Some(g) => *g = filed,
            None => {
                if self.seen.len() >= self.share {
                    self.evict_one(current, generation_ms, count);
                }
                self.seen.insert(key, filed);
            }
        }
        self.queue.push_back((key, filed));
        true
    }

    /// Drops expired entries from the front, at most `budget` of them.
    fn expire(&mut self, current: u64, budget: usize) -> usize {
        let mut done = 0;
        while done < budget {
            match self.queue.front() {
                Some(&(_, g)) if expired(g, current) => {}
                _ => break,
            }
            let (key, g) = self.queue.pop_front().expect("front checked above");
            if self.seen.get(&key) == Some(&g) {
                self.seen.remove(&key);
            }
            done += 1;
        }
        done
    }

    /// Removes the oldest held key. Stale entries on the way are dropped;
    /// each is passed once, so this is O(1) amortized.
    fn evict_one(&mut self, current: u64, generation_ms: u64, count: bool) {
        while let Some((key, g)) = self.queue.pop_front() {
            if self.seen.get(&key) != Some(&g) {
                continue;
            }
            self.seen.remove(&key);
            if !expired(g, current) {
                self.evicted_early += count as u64;
                self.evicted_before_ms = self.evicted_before_ms.max((g + 1) * generation_ms);
            }
            return;
        }
    }

    fn memory_bytes(&self) -> usize {
        self.seen.capacity() * MAP_SLOT_BYTES + self.queue.capacity() * QUEUE_ENTRY_BYTES
    }
}

/// A key filed under `g` is past its horizon in generation `current`.
fn expired(g: u64, current: u64) -> bool {
    g + GENERATIONS < current
}

impl Dedup {
    pub fn new(config: DedupConfig) -> Dedup {
        Dedup { generation_ms: (config.horizon_ms / GENERATIONS).max(1), config, tables: HashMap::new(), lost_before_ms: 0 }
    }

    fn table(&mut self, tenant: &TenantId) -> &mut Table {
        if !self.tables.contains_key(tenant) {
            self.tables.insert(tenant.clone(), Table::new(self.config.share(tenant.as_str())));
        }
        self.tables.get_mut(tenant).expect("inserted above")
    }

    /// Records a sighting; true if the key is new (count it), false if it is
    /// a duplicate within the horizon.
    pub fn first_sighting(&mut self, tenant: &TenantId, key: u128, now_ms: u64) -> bool {
        let (generation, generation_ms) = (now_ms / self.generation_ms, self.generation_ms);
        self.table(tenant).insert(split(key), generation, generation, generation_ms, true)
    }

    /// At start: a key first sighted at `at_ms` (from a snapshot), unless it
    /// is past its horizon by `now_ms`. Evictions it causes are not counted
    /// again, but they do shorten the tenant's reported horizon.
    pub fn restore(&mut self, tenant: &TenantId, key: u128, at_ms: u64, now_ms: u64) {
        let (g, current) = (at_ms / self.generation_ms, now_ms / self.generation_ms);
        if !expired(g, current) {
            let generation_ms = self.generation_ms;
            self.table(tenant).insert(split(key), g, current, generation_ms, false);
        }
    }

    /// Forgets a key recorded by `first_sighting`, for a click whose
    /// acceptance was rolled back (it was never acknowledged).
    pub fn forget(&mut self, tenant: &TenantId, key: u128) {
        if let Some(t) = self.tables.get_mut(tenant) {
            t.seen.remove(&split(key));
        }
    }

    /// Whether the key is held by any tenant's table (keys hash the tenant
    /// in, so they never collide across tenants; the tables are few). A
    /// sighting past its horizon may still be held until it is expired.
    pub fn contains(&self, key: u128) -> bool {
        let key = split(key);
        self.tables.values().any(|t| t.seen.contains_key(&key))
    }

    /// Upkeep off the request path: drops up to `budget` expired entries
    /// over all tables, so idle tenants' memory is freed too. Returns how
    /// many it dropped.
    pub fn expire(&mut self, now_ms: u64, budget: usize) -> usize {
        let current = now_ms / self.generation_ms;
        let mut done = 0;
        for t in self.tables.values_mut() {
            done += t.expire(current, budget - done);
        }
        done
    }

    /// Sightings before `at_ms` may have been lost (a restart without their
    /// snapshot): every tenant's reported horizon starts from there.
    pub fn forgot_before(&mut self, at_ms: u64) {
        self.lost_before_ms = self.lost_before_ms.max(at_ms);
    }

    /// Per tenant, in no particular order.
    pub fn stats(&self, now_ms: u64) -> Vec<TenantStats> {
        let horizon = self.config.horizon_ms;
        self.tables
            .iter()
            .map(|(tenant, t)| TenantStats {
                tenant: tenant.clone(),
                entries: t.seen.len(),
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
        self.tables.values().map(|t| t.seen.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by maps and queues, from their capacities.
    pub fn memory_bytes(&self) -> usize {
        self.tables.values().map(Table::memory_bytes).sum()
    }

    /// Keys dropped before their horizon because their tenant's share was
    /// reached, over all tenants.
    pub fn evicted_early(&self) -> u64 {
        self.tables.values().map(|t| t.evicted_early).sum()
    }
}

#[cfg(test)]
mod tests;
