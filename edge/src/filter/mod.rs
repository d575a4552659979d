//! Tenant WebAssembly filters (contract: `wit/filter.wit`).
//!
//! # Design constraints
//! * Fast enough to leave on: batches cross as columns ([`batch`]), one
//!   call per request, one instance per tenant kept warm between calls.
//! * Contained: a filter imports nothing (WASI calls a std guest links are
//!   defined as traps), runs under an epoch deadline and a memory cap, and
//!   any failure — trap, timeout, memory, a verdict list of the wrong
//!   length — costs only its own batch, which follows the tenant's policy.
//!   The instance is rebuilt from its pre-instantiated component; after
//!   [`host::QUARANTINE_AFTER`] failures in a row the plugin is quarantined
//!   (no more calls; the policy applies to every batch) until reloaded.
//! * Compiled once per plugin at start (`Component::from_file`), never from
//!   untrusted precompiled artifacts.

pub mod batch;
pub mod host;
