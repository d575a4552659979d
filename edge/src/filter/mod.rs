//! Tenant filters at the edge: which plugin versions run for a tenant
//! ([`slot`]), how an active version and a candidate in rollout combine
//! ([`rollout`], sans-IO), running them off the async workers ([`run`]), one
//! call for the requests that queue meanwhile ([`coalesce`], sans-IO), and
//! keeping the versions in step with the central registry ([`registry`]).
//! A request without an answer says why in a [`failure::NoAnswer`].
//!
//! # Invariants
//! * A request sees one [`slot::TenantFilter`] from start to end: a swap
//!   replaces the slot between requests, never inside one, so a click is
//!   judged by exactly one set of versions.
//! * A swap touches nothing but the filters: dedup, the WAL and the
//!   aggregator carry on, so hot swapping loses and doubles nothing.
//! * Nothing from the registry runs before its sha256 matched the manifest.

pub mod coalesce;
pub mod failure;
pub mod registry;
pub mod rollout;
pub mod run;
pub mod slot;
