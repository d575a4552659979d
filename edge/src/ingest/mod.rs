//! Ingest: from an HTTP request body to accepted, deduplicated clicks.
//!
//! * [`scan`] reads a body's events (array, object or NDJSON) in one pass,
//!   each validated by [`event`] into a [`event::Click`]; [`body`] (framing)
//!   and [`event::parse_click`] are the reference it answers like, and
//!   what it defers to for anything unusual;
//! * [`pipeline`] runs dedup and aggregation over a request's clicks under
//!   one lock (sans-IO, deterministic), each request leaving one
//!   [`record::WalRecord`] and [`durable::Command`] asking the WAL thread to
//!   make it durable;
//! * [`encoding`] undoes gzip/zstd, [`limits`] rate-limits tenants,
//!   [`cors`] answers browsers, [`redirect`] verifies signed click links;
//! * [`http`] is the thin shell: routes, auth, status codes.

pub mod body;
pub mod cors;
pub mod durable;
pub mod encoding;
pub mod event;
pub mod http;
pub mod limits;
pub mod pipeline;
pub mod record;
pub mod redirect;
pub mod scan;
