//! Billing: exact per-hour, per-ad counts, final once no edge can add to
//! them, and never silently restated.
//!
//! * Source: `tally.click_records`, committed exactly once per shipped
//!   record by the ledger protocol; a click is counted once per
//!   `(tenant, 128-bit id)` whichever edges and batches carried it (the copy
//!   accepted first gives its ad and cost).
//! * Final: an hour is final when every edge's watermark (the highest low
//!   watermark of its committed batches) is past the hour's end, i.e. no
//!   edge will accept another click for it. Edges that never committed a
//!   batch are not waited for, nor are retired ones (`crate::edges`); the
//!   billing API and `reconcile` name the edges holding a non-final hour
//!   back.
//! * Statements: when an hour becomes final the [`finalizer`] writes its
//!   totals as `final` rows in `tally.billing_statements`, then marks the
//!   hour in `tally.billing_final_hours`. Afterwards, any difference between
//!   the records and the statements (a click that reached the core after
//!   finalization, e.g. through an edge that was not known yet) is written
//!   as an `adjustment` row with the delta. Each pass writes only deltas, so
//!   re-running it (after a crash, or on a second core) adds nothing.
//! * Cost: a pass reads the click records (its whole lookback, in one
//!   query) only when an hour is becoming final or holds batches committed
//!   or open since its last pass ([`plan::hours_to_bill`]); a pass with
//!   nothing new reads only the ledger.
//! * [`reconcile`] compares, per hour, billing with the dashboard rollups,
//!   the landing table and the batches' own manifests.
//!
//! [`plan`] holds the decisions as pure functions.

pub mod figures;
pub mod finalizer;
pub mod plan;
pub mod reconcile;
