//! A small HTTP/1.1 client over hyper for tools and tests: the demo traffic
//! generator and the end-to-end suite talk to edge and core through it.

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("building request to {url}: {message}")]
    Request { url: String, message: String },
    #[error("{method} {url}: {message}")]
    Transport { method: Method, url: String, message: String },
}

/// Small requests must not wait for Nagle and delayed ACKs (40 ms).
fn connector() -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c
}

#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

/// A response read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client { inner: HyperClient::builder(TokioExecutor::new()).build(connector()) }
    }

    /// HTTP/2 over cleartext TCP (prior knowledge, no upgrade).
    pub fn http2_prior_knowledge() -> Client {
        Client { inner: HyperClient::builder(TokioExecutor::new()).http2_only(true).build(connector()) }
    }

    /// Sends one request; `bearer` becomes `Authorization: Bearer <key>`.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        let mut builder = Request::builder().method(method.clone()).uri(url);
        if let Some(key) = bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let req = builder.body(body.into()).map_err(|e| ClientError::Request { url: url.into(), message: e.to_string() })?;
        self.request(req).await
    }

    /// Sends a request built by the caller.
    pub async fn request(&self, req: Request<Bytes>) -> Result<Reply, ClientError> {
        let (method, url) = (req.method().clone(), req.uri().to_string());
        let transport = |message: String| ClientError::Transport { method: method.clone(), url: url.clone(), message };
        let resp = self.inner.request(req.map(Full::new)).await.map_err(|e| transport(format!("{e:?}")))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| transport(e.to_string()))?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }

    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, ClientError> {
        self.send(Method::GET, url, bearer, None, Bytes::new()).await
    }

    pub async fn post_json(&self, url: &str, bearer: Option<&str>, body: impl Into<Bytes>) -> Result<Reply, ClientError> {
        self.send(Method::POST, url, bearer, Some("application/json"), body).await
    }
}
