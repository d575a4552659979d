//! Response helpers: every error is JSON `{"error": "<reason>"}`.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::limits::{BodyBudget, BodyCharge};
use crate::serve::BodyTimeout;

pub type Body = Full<Bytes>;
pub type Response = http::Response<Body>;

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("serializing plain data to JSON cannot fail");
    with_type(status, body.into(), "application/json")
}

pub fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Error {
        error: String,
    }
    json(status, &Error { error: reason.into() })
}

pub fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response {
    let mut resp = http::Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, format!("method not allowed; use {allow}"));
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

/// Prometheus text exposition of a registry.
pub fn metrics(registry: &Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => with_type(StatusCode::OK, text.into(), "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("reading request body: {0}")]
    Read(String),
    #[error("{0}; send the whole request promptly")]
    Timeout(crate::serve::BodyTimeout),
    #[error(transparent)]
    Busy(#[from] crate::limits::OverBudget),
}

impl BodyError {
    pub fn into_response(self) -> Response {
        let status = match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
            BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut resp = error(status, self.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        // The rest of the body is never read, so the connection cannot carry another request.
        if status == StatusCode::REQUEST_TIMEOUT {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Past the limit, a body is still read and discarded up to this many
/// bytes, so that the client (still writing) gets to read our 413 instead
/// of a broken pipe. Beyond it the connection is simply closed.
const DRAIN_CAP: u64 = 64 << 20;

/// Reads a whole request body, refusing more than `limit` bytes. What it
/// keeps is charged to the listener's [`BodyBudget`] (if the request carries
/// one) until the body is read: the memory a slow client can make the
/// process hold is bounded, whatever the number of clients.
pub async fn read_body(req: http::Request<crate::RequestBody>, limit: usize) -> Result<(http::request::Parts, Bytes), BodyError> {
    let (parts, mut body) = req.into_parts();
    let budget = parts.extensions.get::<BodyBudget>().cloned();
    let mut charge = BodyCharge::default();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP) {
        return Err(BodyError::TooLarge(limit));
    }
    // A declared length is a hint, not a promise: memory grows with bytes that arrive.
    let mut buf = BodyBytes::expecting(declared.map(|n| n.min(limit as u64) as usize));
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e.downcast::<BodyTimeout>() {
            Ok(timeout) => BodyError::Timeout(*timeout),
            Err(e) => BodyError::Read(e.to_string()),
        })?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > DRAIN_CAP {
            break;
        }
        if seen <= limit as u64 {
            if let Some(budget) = &budget {
                budget.charge(&mut charge, data.len())?;
            }
            buf.push(data);
        }
    }
    if seen > limit as u64 {
        return Err(BodyError::TooLarge(limit));
    }
    Ok((parts, buf.freeze()))
}

/// A body's bytes as they arrive. The first chunk is kept as it came, not
/// copied (over HTTP/3, and for most small bodies, it is the whole body);
/// later ones are copied into one buffer, so a slow client's trickle never
/// pins the transport's read buffers. The buffer is sized for the whole
/// declared body once at least half of it has arrived (no more than
/// doubling would take), so an honest client's body is not moved again by
/// the last doubling; before that, it grows with what arrives.
pub struct BodyBytes {
    first: Option<Bytes>,
    rest: bytes::BytesMut,
    declared: usize,
}

impl BodyBytes {
    /// `declared`: the length the request says its body has, if any.
    pub fn expecting(declared: Option<usize>) -> BodyBytes {
        BodyBytes { first: None, rest: bytes::BytesMut::new(), declared: declared.unwrap_or(0) }
    }

    pub fn len(&self) -> usize {
        self.first.as_ref().map_or(self.rest.len(), Bytes::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, chunk: Bytes) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(chunk);
            return;
        }
        let need = self.len() + chunk.len();
        let want = if (need..=need.saturating_mul(2)).contains(&self.declared) { self.declared } else { need };
        if let Some(first) = self.first.take() {
            self.rest.reserve(want);
            self.rest.extend_from_slice(&first);
        } else if self.rest.capacity() < need {
            self.rest.reserve(want - self.rest.len());
        }
        self.rest.extend_from_slice(&chunk);
    }

    pub fn freeze(self) -> Bytes {
        self.first.unwrap_or_else(|| self.rest.freeze())
    }
}

/// The value of the `Authorization` header, if it is valid text.
pub fn authorization(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_bytes_keep_a_lone_chunk_and_join_several() {
        let lone = Bytes::from_static(b"[1,2]");
        let mut body = BodyBytes::expecting(Some(5));
        body.push(lone.clone());
        let got = body.freeze();
        assert_eq!((got.as_ptr(), got.len()), (lone.as_ptr(), lone.len()), "not copied");
        let mut body = BodyBytes::expecting(None);
        for chunk in ["", "ab", "", "c", "de"] {
            body.push(Bytes::from_static(chunk.as_bytes()));
        }
        assert_eq!(body.len(), 5);
        assert_eq!(&body.freeze()[..], b"abcde");
        // Sized for the declared body once half of it is here.
        let mut body = BodyBytes::expecting(Some(1000));
        body.push(Bytes::from(vec![1; 300]));
        body.push(Bytes::from(vec![2; 200]));
        assert!(body.rest.capacity() >= 1000);
        body.push(Bytes::from(vec![3; 500]));
        assert_eq!(body.freeze().len(), 1000);
        // A trickle with a large declared length grows with what arrives.
        let mut body = BodyBytes::expecting(Some(1 << 30));
        body.push(Bytes::from_static(b"a"));
        body.push(Bytes::from_static(b"b"));
        assert!(body.rest.capacity() < 1 << 20);
        assert!(BodyBytes::expecting(None).freeze().is_empty());
    }
}
