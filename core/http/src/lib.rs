//! The HTTP plumbing shared by the edge and the core.
//!
//! * [`serve`]: accept loop over hyper's auto (HTTP/1.1 + HTTP/2 cleartext)
//!   connection builder with graceful shutdown.
//! * [`reply`]: JSON and error responses in one shape, bodies read under a
//!   byte limit, Prometheus exposition.
//! * [`client`]: a minimal hyper client used by the demo traffic generator
//!   and the end-to-end tests.

pub mod client;
pub mod reply;
pub mod serve;

pub use reply::{Body, Response};
