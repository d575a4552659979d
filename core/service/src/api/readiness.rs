//! `GET /readyz`: whether this core can serve its API (liveness is
//! `/healthz`, which answers as long as the process does).
//!
//! Ready means ClickHouse answers within the query deadline and has every
//! migration this binary knows recorded. Not ready is `503` with one plain
//! line per failing check, for a load balancer and the operator reading it.

use http::StatusCode;

use tally_http::{reply, Response};

use super::Api;

impl Api {
    pub(super) async fn readiness(&self) -> Response {
        let failing = match self.metrics.clickhouse("readiness", self.store.pending_migrations()).await {
            Ok(pending) if pending.is_empty() => None,
            Ok(pending) => Some(format!(
                "schema: migrations {} are not applied; a core applies them at start, so restart one (its log says why they failed)",
                pending.iter().map(|v| format!("{v:04}")).collect::<Vec<_>>().join(", ")
            )),
            Err(e) if e.is_deadline() => Some(format!("clickhouse: no answer within the query deadline ({e}); check its load and logs")),
            Err(e) => Some(format!("clickhouse: unreachable ({e}); check that it runs and [clickhouse] url")),
        };
        match failing {
            None => reply::with_type(StatusCode::OK, "ready\n".into(), "text/plain"),
            Some(reason) => reply::with_type(StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{reason}\n").into(), "text/plain"),
        }
    }
}
