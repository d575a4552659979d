//! Edge leases: several cores serve one ClickHouse, and each edge's batches
//! are committed by one core at a time (issue 10).
//!
//! The ledger protocol ([`crate::commit`]) assumes one committer per edge:
//! two cores probing and inserting one batch at once would both insert the
//! rows neither saw. So a core commits an edge's batches only while it holds
//! that edge's lease, an ephemeral ZooKeeper node `<root>/leases/<edge>`
//! whose data is the core's id. Its creation zxid is the lease's *epoch*:
//! ZooKeeper's zxids only grow, so each new owner's epoch is higher than
//! every earlier owner's.
//!
//! # Design constraints
//! * Fencing, not timing, where the storage allows it. The lease is checked
//!   before every commit group and again before each of its writes
//!   ([`state::Leases::check`], a cached answer, no round trip;
//!   [`store::LeasedStore`]); losing the ZooKeeper connection forgets every lease at
//!   once, and ZooKeeper's client notices a silent server (two thirds of the
//!   session timeout) before the server may expire the session and give the
//!   edge to another core. Every row INSERT names its `(edge, epoch, seqs)`
//!   in its `query_id` ([`fence::insert_query_id`]); a core that takes a
//!   lease first kills (`SYNC`, by `initial_query_id`, on every server it
//!   knows) every running query of another epoch for that edge ([`fence`],
//!   `deploy/clickhouse/queries/kill_stale_inserts.sql`), then commits. What is left is a stale owner whose INSERT reaches
//!   ClickHouse *after* that kill: a process paused for longer than the
//!   session timeout between its check and its send. On a replicated cluster
//!   that insert is byte-identical to the new owner's (one batch's part per
//!   INSERT) and block deduplication drops it; on one 18.16 server nothing
//!   drops it (ARCHITECTURE.md, known limits).
//! * The decisions are a sans-IO machine ([`state`]) with a model test
//!   (`tests.rs`); [`zk`] is the thin shell around `zookeeper-client`.
//! * No `[zookeeper]` section: no leases, today's single-core behaviour.
//!
//! # Layout in ZooKeeper (under `root`, default `/tally`)
//! * `cores/<core_id>`: ephemeral, this core's QUIC and HTTP addresses.
//! * `leases/<edge>`: ephemeral, data = owner's core id; epoch = czxid.
//! * `leader/finalizer`: ephemeral, data = core id; the billing finalizer
//!   and the rollup healer run only on the core that holds it.
//!
//! Node names are [`fence::node_name`]s of the edge ids (ids that are not
//! plain `[A-Za-z0-9._-]` are hex-encoded), also used in query ids.

pub mod fence;
pub mod state;
pub mod store;
pub mod zk;

#[cfg(test)]
mod tests;
