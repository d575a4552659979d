//! The core's HTTP API: dashboard and query routes.
//!
//! * `GET /v1/ads/{ad_id}/clicks?from=&to=&step=1s|1m|1h|1d` (read key)
//! * `GET /v1/ads?from=&to=&limit=`: top ads by clicks (read key)
//! * `GET /v1/clicks?from=&to=&step=`: the tenant's series across all ads
//!   (read key), see [`tenant_series`]
//! * `GET /v1/billing?from=&to=`: exact hourly billing per ad, with `final`
//!   per hour (read key)
//! * `GET /v1/dimensions/{name}?from=&to=&step=&limit=`: clicks per value of
//!   an enrichment dimension (read key)
//! * campaigns (top campaigns, series, ads, billing), see [`campaigns`]
//! * the plugin registry, see [`plugins`]
//! * `GET /v1/edges`, retire and reinstate an edge (ops token), see [`edges`]
//! * `GET /` the dashboard (`dashboard/index.html`) and its scripts, styles
//!   and the vendored uPlot at `GET /static/{name}` ([`assets`]),
//!   `GET /healthz`, `GET /metrics`
//!
//! * `GET /readyz`: ClickHouse answers and the schema is current ([`readiness`])
//!
//! Every ClickHouse query runs under `[clickhouse] query_timeout_ms`
//! (`clickhouse::deadline`): past it a route answers `504`, and `503` when
//! ClickHouse is unreachable, both with the reason, logged with the route.
//!
//! Steps of a minute or more read the rollup tables, never the per-second
//! landing table. [`params`] parses and checks query strings (pure).

mod assets;
mod campaign_billing;
mod campaigns;
mod dense_series;
mod edges;
pub mod params;
mod plugins;
mod readiness;
mod routes;
mod tenant_series;

pub use routes::Api;
