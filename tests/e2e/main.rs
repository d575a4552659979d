//! End-to-end tests across real processes: a private ClickHouse 18.16, a
//! `tally core` and a `tally edge`, driven over HTTP and QUIC, with results
//! compared against exact ground truth.

mod harness;
mod ingest;
mod shipping;
mod demo;
mod sql;
mod crash;
mod billing;
mod transports;
mod browser_features;
mod browser;
mod openapi;
mod filters;
mod registry;
