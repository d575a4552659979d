//! Ingest: from an HTTP request body to accepted, deduplicated clicks.
//!
//! * [`body`] splits a body into raw events (array, object or NDJSON);
//! * [`event`] validates one event into a [`event::Click`];
//! * [`pipeline`] runs dedup and aggregation over a request's clicks under
//!   one lock (sans-IO, deterministic);
//! * [`encoding`] undoes gzip/zstd, [`limits`] rate-limits tenants,
//!   [`cors`] answers browsers, [`redirect`] verifies signed click links;
//! * [`http`] is the thin shell: routes, auth, status codes.

pub mod body;
pub mod cors;
pub mod encoding;
pub mod event;
pub mod http;
pub mod limits;
pub mod pipeline;
pub mod redirect;
