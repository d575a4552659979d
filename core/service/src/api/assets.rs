//! The dashboard's static files, compiled into the binary and served at
//! `GET /static/{name}`: no build step, no files to install next to the core.
//!
//! uPlot (MIT, `dashboard/uplot-LICENSE.txt`) is vendored from npm as
//! published; its names carry its version, so browsers may keep it for a
//! year (`immutable`). The dashboard's own files change with each release
//! under the same names, so browsers revalidate them (`no-cache`).

use http::{header, HeaderValue, StatusCode};

use tally_http::{reply, Response};

/// (name, content type, body, versioned).
const FILES: &[(&str, &str, &str, bool)] = &[
    ("dashboard.js", "text/javascript; charset=utf-8", include_str!("dashboard/dashboard.js"), false),
    ("range.js", "text/javascript; charset=utf-8", include_str!("dashboard/range.js"), false),
    ("dashboard.css", "text/css; charset=utf-8", include_str!("dashboard/dashboard.css"), false),
    ("uplot-1.6.32.min.js", "text/javascript; charset=utf-8", include_str!("dashboard/uplot-1.6.32.min.js"), true),
    ("uplot-1.6.32.min.css", "text/css; charset=utf-8", include_str!("dashboard/uplot-1.6.32.min.css"), true),
    ("uplot-LICENSE.txt", "text/plain; charset=utf-8", include_str!("dashboard/uplot-LICENSE.txt"), true),
];

pub fn serve(name: &str) -> Response {
    let Some(&(_, content_type, body, versioned)) = FILES.iter().find(|(n, ..)| *n == name) else { return reply::not_found() };
    let mut resp = reply::with_type(StatusCode::OK, body.into(), content_type);
    let cache = if versioned { "public, max-age=31536000, immutable" } else { "no-cache" };
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_known_files_with_cache_headers() {
        let lib = serve("uplot-1.6.32.min.js");
        assert_eq!(lib.status(), StatusCode::OK);
        assert_eq!(lib.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(serve("dashboard.js").headers()[header::CACHE_CONTROL], "no-cache");
        for name in ["", "../routes.rs", "index.html", "dashboard.js/"] {
            assert_eq!(serve(name).status(), StatusCode::NOT_FOUND, "{name}");
        }
    }
}
