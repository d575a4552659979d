//! End-to-end tests across real processes: a private ClickHouse 18.16, a
//! `tally core` and a `tally edge`, driven over HTTP and QUIC, with results
//! compared against exact ground truth.

mod architecture;
mod billing;
mod browser;
mod browser_features;
mod campaigns;
mod click_tag;
mod cluster;
mod commit_deadline;
mod cores;
mod crash;
mod dashboard;
mod dedup;
mod edges;
mod demo;
mod filters;
mod harness;
mod ingest;
mod limits;
mod operations;
mod load;
mod openapi;
mod playwright;
mod quorum;
mod readme;
mod registry;
mod registry_shared;
mod reload;
mod retention_cluster;
mod shipping;
mod sql;
mod tenant_series;
mod transports;
