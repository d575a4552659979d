//! A small HTTP/1.1 client over hyper for tools and tests: the demo traffic
//! generator and the end-to-end suite talk to edge and core through it.
//! [`PinnedHttps`] is HTTPS to a server whose certificate the caller pins
//! (an edge polling its core's registry, `tally plugin` reaching the core);
//! [`ApiClient`] picks one of the two by URL.

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
        let builder = with_headers(Request::builder().method(method.clone()).uri(url), bearer, content_type);
        let req = builder.body(body.into()).map_err(|e| ClientError::Request { url: url.into(), message: e.to_string() })?;
        self.request(req).await
    }

    /// Sends a request built by the caller.
    pub async fn request(&self, req: Request<Bytes>) -> Result<Reply, ClientError> {
        let (method, url) = (req.method().clone(), req.uri().to_string());
        let transport = |message: String| ClientError::Transport { method: method.clone(), url: url.clone(), message };
        let resp = self.inner.request(req.map(Full::new)).await.map_err(|e| transport(format!("{e:?}")))?;
        read_reply(resp).await.map_err(transport)
    }

    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, ClientError> {
        self.send(Method::GET, url, bearer, None, Bytes::new()).await
    }

    pub async fn post_json(&self, url: &str, bearer: Option<&str>, body: impl Into<Bytes>) -> Result<Reply, ClientError> {
        self.send(Method::POST, url, bearer, Some("application/json"), body).await
    }
}

/// `Authorization: Bearer <key>` and `Content-Type`, when given.
fn with_headers(mut builder: http::request::Builder, bearer: Option<&str>, content_type: Option<&str>) -> http::request::Builder {
    if let Some(key) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder
}

/// A response, its body read in full.
async fn read_reply(resp: http::Response<hyper::body::Incoming>) -> Result<Reply, String> {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply { status: parts.status, headers: parts.headers, body })
}

/// HTTPS to one server, trusting only the certificates (or CA) given and
/// checking them against `server_name`. One connection per request: its user
/// (the registry poll) asks about once a second, and a TLS 1.3 handshake
/// costs well under a millisecond.
#[derive(Clone)]
pub struct PinnedHttps {
    tls: tokio_rustls::TlsConnector,
    server_name: rustls_pki_types::ServerName<'static>,
}

impl PinnedHttps {
    /// `identity`: a client certificate to present (an edge's pinned key).
    pub fn new(ca_cert: &std::path::Path, server_name: &str, identity: Option<&crate::tls::Identity>) -> Result<PinnedHttps, crate::tls::TlsError> {
        let config = crate::tls::client_config(ca_cert, &[b"http/1.1"], identity)?;
        let server_name = rustls_pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| crate::tls::TlsError::Config(format!("server name {server_name:?}: {e}")))?;
        Ok(PinnedHttps { tls: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)), server_name })
    }

    /// `GET https://host:port/path`; `bearer` becomes `Authorization: Bearer <key>`.
    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, ClientError> {
        self.send(Method::GET, url, bearer, None, Bytes::new()).await
    }

    /// One request to `https://host:port/path`, as [`Client::send`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        let transport = |message: String| ClientError::Transport { method: method.clone(), url: url.into(), message };
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| ClientError::Request { url: url.into(), message: e.to_string() })?;
        let (Some("https"), Some(authority)) = (uri.scheme_str(), uri.authority().cloned()) else {
            return Err(ClientError::Request { url: url.into(), message: "not an https:// URL with a host".into() });
        };
        let tcp = tokio::net::TcpStream::connect((authority.host(), authority.port_u16().unwrap_or(443))).await.map_err(|e| transport(e.to_string()))?;
        tcp.set_nodelay(true).map_err(|e| transport(e.to_string()))?;
        let tls = self.tls.connect(self.server_name.clone(), tcp).await.map_err(|e| transport(format!("TLS: {e}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.map_err(|e| transport(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let builder = Request::builder().method(method.clone()).uri(uri.path_and_query().map_or("/", |p| p.as_str())).header(header::HOST, authority.as_str());
        let builder = with_headers(builder, bearer, content_type);
        let req = builder.body(Full::new(body.into())).map_err(|e| ClientError::Request { url: url.into(), message: e.to_string() })?;
        let result = async {
            let resp = sender.send_request(req).await.map_err(|e| transport(e.to_string()))?;
            read_reply(resp).await.map_err(transport)
        }
        .await;
        driver.abort();
        result
    }
}

/// A client for one of our own APIs by its URL: over `https://` it trusts
/// only the certificate (or CA) given, checked against `server_name`, so a
/// bearer key cannot be read or a reply forged on the way; `http://` is for
/// a server on the same host or behind a TLS-terminating proxy.
#[derive(Clone)]
pub enum ApiClient {
    Plain(Client),
    Pinned(PinnedHttps),
}

impl ApiClient {
    /// `ca_cert` is required for an `https://` URL (there is no system trust
    /// store here: our servers carry their own certificates).
    pub fn for_url(
        url: &str,
        ca_cert: Option<&std::path::Path>,
        server_name: &str,
        identity: Option<&crate::tls::Identity>,
    ) -> Result<ApiClient, crate::tls::TlsError> {
        if !url.starts_with("https://") {
            return Ok(ApiClient::Plain(Client::new()));
        }
        let ca_cert = ca_cert.ok_or_else(|| crate::tls::TlsError::Config(format!("{url} is https: the certificate to trust for it is needed")))?;
        Ok(ApiClient::Pinned(PinnedHttps::new(ca_cert, server_name, identity)?))
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        match self {
            ApiClient::Plain(c) => c.send(method, url, bearer, content_type, body).await,
            ApiClient::Pinned(c) => c.send(method, url, bearer, content_type, body).await,
        }
    }

    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, ClientError> {
        self.send(Method::GET, url, bearer, None, Bytes::new()).await
    }

    pub async fn post_json(&self, url: &str, bearer: Option<&str>, body: impl Into<Bytes>) -> Result<Reply, ClientError> {
        self.send(Method::POST, url, bearer, Some("application/json"), body).await
    }
}
