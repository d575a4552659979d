//! Everything that talks to ClickHouse.
//!
//! * [`schema`]: the versioned migrations under `deploy/clickhouse/`, applied
//!   at start-up.
//! * [`store`]: typed access for the commit protocol and the query API. All
//!   SQL lives in `deploy/clickhouse/queries/*.sql` so that
//!   `deploy/clickhouse/check_modern.py` runs the very same text on a modern
//!   engine (chdb) that the service runs on 18.16.
//! * [`cluster`]: cluster mode (Replicated shards behind Distributed tables,
//!   quorum inserts) and its schema under `deploy/clickhouse/cluster/`.
//! * [`deadline`]: the API's bound on every query (a hung server answers
//!   `504`, not never).
//! * [`failover`]: one client over several servers (cluster mode), moving
//!   on when one cannot be reached or goes silent.
//! * [`stalled`]: the committer's deadline, and INSERTs cut off by it
//!   stopped before anything is probed again.
//! * [`private_server`]: a `clickhouse-server` child process on free loopback
//!   ports, for tests and `tally demo`.
//!
//! Compatibility: the `clickhouse` crate is used with validation off (18.16
//! lacks `RowBinaryWithNamesAndTypes`), so every row struct's field order
//! must equal its table's or query's column order.

pub mod batch_store;
pub mod campaigns;
pub mod cluster;
pub mod components;
pub mod deadline;
pub mod edges;
pub mod failover;
pub mod fence;
pub mod filters;
mod operations;
pub mod private_server;
pub mod schema;
mod sql;
pub mod stalled;
pub mod store;
pub mod tenant_series;

pub use store::{Store, StoreError};
