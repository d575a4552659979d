//! Ingest: from an HTTP request body to accepted, deduplicated clicks.
//!
//! * [`body`] splits a body into raw events (array, object or NDJSON);
//! * [`event`] validates one event into a [`event::Click`];
//! * [`pipeline`] runs dedup and aggregation over a request's clicks under
//!   one lock (sans-IO, deterministic);
//! * [`http`] is the thin hyper shell: routes, auth, status codes.

pub mod body;
pub mod event;
pub mod http;
pub mod pipeline;
