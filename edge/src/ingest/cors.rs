//! CORS for browser posts (`fetch` from a publisher's page, `sendBeacon`).
//!
//! An origin may post for a tenant if the tenant lists it in
//! `allowed_origins`. Preflights carry no key, so they are answered for an
//! origin any tenant allows; the actual request is then checked against its
//! own tenant. Same-origin pages (the edge's own `/sdk/` files) need none.

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use tally_http::Response;
use tally_model::tenant::Policy;

pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// Adds the CORS headers to a response if `policy` allows `origin`.
pub fn allow(resp: &mut Response, origin: Option<&str>, policy: &Policy) {
    if let Some(origin) = origin.filter(|o| policy.allows_origin(o)) {
        if let Ok(v) = HeaderValue::from_str(origin) {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

/// The answer to a preflight from `origin`, allowed or not.
pub fn preflight(origin: Option<&str>, allowed: bool) -> Response {
    let mut resp = tally_http::reply::with_type(StatusCode::NO_CONTENT, bytes::Bytes::new(), "text/plain");
    if let (Some(origin), true) = (origin, allowed) {
        if let Ok(v) = HeaderValue::from_str(origin) {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type, content-encoding"));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    resp
}
