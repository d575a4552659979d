//! Tenant WebAssembly click filters: the host side of `wit/filter.wit`.
//!
//! # Design constraints
//! * Fast enough to leave on: batches cross as columns ([`batch`]; the
//!   contract's types are in [`contract`]), one call per request, and a
//!   tenant's instance of a version is kept warm between calls.
//! * Contained: a filter imports nothing (WASI calls a std guest links are
//!   defined as traps), runs under an epoch deadline and a memory cap, and
//!   its answer is checked against output limits ([`answer`]). Any failure
//!   — trap, timeout, memory, an answer of the wrong shape or size, each a
//!   [`failure::Failure`] — costs only its own batch, which follows the
//!   tenant's policy. The instance is rebuilt from its pre-instantiated
//!   component; after [`host::QUARANTINE_AFTER`] failures in a row that
//!   plugin version is quarantined (no more calls; the policy applies to
//!   every batch).
//! * Compiled once per plugin version and tenant ([`host::Compiled`]; the
//!   edge compiles again only when the tenant's limits change), from the
//!   component's own bytes, never from precompiled
//!   artifacts (deserializing those is unsafe, so a tenant must not supply
//!   them).
//! * The same code validates an upload in the central registry and runs it
//!   at the edge: what the registry accepts, an edge can instantiate.

pub mod answer;
pub mod batch;
pub mod contract;
pub mod failure;
pub mod host;
pub mod manifest;
