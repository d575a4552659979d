//! Exactly-once commit of batches into ClickHouse.
//!
//! ClickHouse 18.16 cannot deduplicate a re-sent insert into a plain table,
//! and an INSERT is not atomic across partitions or across a table and its
//! materialized views. So re-sends are made harmless by the protocol itself,
//! using a ledger table (`tally.batches`, highest state wins) and the batch
//! identity carried on every row (`edge`, `batch_seq`, `row_idx`) of each of
//! its parts ([`plan::PARTS`]: landing rows, click records, refused events,
//! dimension rows, rollout verdict counts).
//!
//! # Protocol, per group of batches (one committer, so no two commits race)
//! 1. Read the ledger state of every `(edge, seq)` in the group.
//! 2. `Committed` -> answer `Duplicate`; nothing is written.
//! 3. `Absent` -> write ledger `Started`, then insert all its rows.
//!    `Started` (an earlier attempt died somewhere after step 3's ledger
//!    write) -> probe which `row_idx` of each part ClickHouse holds and
//!    insert only the missing ones.
//! 4. Write ledger `Committed`, then answer `Committed`.
//!
//! # Invariants
//! * A row `(edge, seq, part, idx)` is only ever inserted while the ledger
//!   says `Started` for `(edge, seq)` (step 3 orders the ledger write first),
//!   so a batch the ledger does not know has no rows.
//! * Every attempt inserts exactly the complement of what is present, so
//!   after any sequence of crashes and re-sends each row is present once.
//! * The core answers `Committed` only after step 4, so an acknowledged
//!   batch is entirely in ClickHouse.
//!
//! The rollup tables are derived: they receive exactly what each landing
//! insert carried. If an MV insert fails after its landing part was written,
//! the rollup misses those rows while the landing table is right; a resumed
//! batch reports the hours of the rows it found present, and `crate::heal`
//! repairs that drift from the landing table (and finds any other on its own).
//!
//! [`plan`] holds the decisions as a pure function; [`committer`] is the
//! shell that does the I/O and groups batches; [`rows`] are the rows a batch
//! becomes, which [`row_binary`] writes as INSERT bodies (`key_order`: click
//! records in their table's sort key order, without comparing them).

pub mod batch_store;
pub mod committer;
mod key_order;
pub mod plan;
pub mod row_binary;
pub mod rows;

#[cfg(test)]
mod tests;
