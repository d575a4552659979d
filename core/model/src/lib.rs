//! Tally's shared model: what crosses a process boundary.
//!
//! * [`batch`]: the per-second rows an edge ships to the core, and their
//!   framed, checksummed rkyv encoding ([`batch::frame`]).
//! * [`money`]: the per-click cost bound that keeps every spend sum exact.
//! * [`reply`]: the core's answer to one shipped batch.
//! * [`tenant`]: tenants and their API keys, shared by edge and core.
//! * [`timestamp`]: the two timestamp spellings the public API accepts.
//! * [`config_file`]: reading the TOML files edge, core and tenants use.
//! * [`durable_file`]: replacing a small file atomically and durably.
//!
//! Both sides depend on this crate and nothing else of each other, so the
//! wire contract lives in exactly one place.

pub mod batch;
pub mod config_file;
pub mod durable_file;
pub mod money;
pub mod reply;
pub mod tenant;
pub mod timestamp;
