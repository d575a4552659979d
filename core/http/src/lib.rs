//! The HTTP plumbing shared by the edge and the core.
//!
//! * [`serve`]: accept loops over TCP (cleartext or TLS; HTTP/1.1 and
//!   HTTP/2) and, in [`h3`], over QUIC (HTTP/3), one [`serve::Handler`] for all.
//! * [`limits`]: the bounds every listener serves under (timeouts,
//!   connection caps, the budget of bodies being received).
//! * [`tls`]: persistent TLS identities and rustls server configurations.
//! * [`reply`]: JSON and error responses in one shape, bodies read under a
//!   byte limit, Prometheus exposition.
//! * [`reload`]: the SIGHUP loop of reloads without restart.
//! * [`client`]: a minimal hyper client used by the demo traffic generator
//!   and the end-to-end tests.

pub mod client;
pub mod h3;
pub mod limits;
pub mod pinned;
pub mod query;
pub mod reload;
pub mod reply;
pub mod serve;
pub mod tls;

pub use reply::{Body, Response};

/// A request body, whatever the transport it arrived on.
pub type RequestBody = http_body_util::combinators::BoxBody<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>;
