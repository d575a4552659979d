//! Files served from the edge's own origin: `GET /sdk/tally.js`, the click
//! tag compiled into the binary (`sdk/tally.js`; it always matches this
//! edge's routes, whatever `static_dir` holds), and `GET /sdk/{name}` from
//! `static_dir` (test or landing pages). Same-origin pages can post with
//! `fetch` and `sendBeacon` without CORS. Names are single path segments of
//! `[A-Za-z0-9._-]`, never starting with a dot, so nothing outside the
//! directory can be named.

use std::path::Path;

use http::{header, HeaderValue, StatusCode};

use tally_http::{reply, Response};

const TALLY_JS: &str = include_str!("sdk/tally.js");

pub async fn serve(dir: Option<&Path>, name: &str) -> Response {
    if name == "tally.js" {
        let mut resp = reply::with_type(StatusCode::OK, TALLY_JS.into(), content_type(name));
        // Pages embed it by this name, so browsers may keep it only briefly.
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        return resp;
    }
    let ok_name = !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let Some(dir) = dir.filter(|_| ok_name) else { return reply::not_found() };
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => reply::with_type(StatusCode::OK, bytes.into(), content_type(name)),
        Err(_) => reply::not_found(),
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}
