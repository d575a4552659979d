//! QUIC connections to the core: TLS with the configured trust roots, and a
//! transport that notices a dead core within about a second.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::QuicClientConfig;
use tokio::sync::Mutex;

use tally_http::tls::Identity;
use tally_model::reply::{Reply, MAX_REPLY_LEN};

/// ALPN of the batch protocol; bumped with incompatible frame changes.
pub const ALPN: &[u8] = b"tally-batch/1";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Silence after which a connection is dead. The idle timeout in effect is
/// the smaller of both sides' (the core's receiver uses the same), so a
/// killed core is noticed within about a second, not QUIC's default 30 s.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pings while idle, a few per `IDLE_TIMEOUT`, so a live but quiet
/// connection (the core busy committing) is never taken for a dead one, and
/// one lost ping is not enough to drop it.
const KEEP_ALIVE: Duration = Duration::from_millis(300);
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("connecting to core {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    #[error("sending batch: {0}")]
    Stream(String),
    #[error("bad reply from core: {0}")]
    Reply(String),
}

#[derive(Clone)]
pub struct Connector {
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    server_name: String,
    current: Arc<Mutex<Option<quinn::Connection>>>,
}

impl Connector {
    /// `identity`: the edge's own key, pinned in the core's `[[edges]]`
    /// (a core refuses a connection without one; `None` is for tests of that).
    pub fn new(addr: SocketAddr, server_name: &str, ca_cert: &Path, identity: Option<&Identity>) -> Result<Connector, ShipError> {
        let tls = tally_http::tls::client_config(ca_cert, &[ALPN], identity).map_err(|e| ShipError::Tls(e.to_string()))?;
        let quic = QuicClientConfig::try_from(Arc::new(tls)).map_err(|e| ShipError::Tls(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        transport.max_idle_timeout(Some(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("a second fits a QUIC varint")));
        client.transport_config(Arc::new(transport));
        let bind: SocketAddr = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap();
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| ShipError::Connect { addr, message: format!("binding UDP socket: {e}") })?;
        endpoint.set_default_client_config(client);
        Ok(Connector { endpoint, addr, server_name: server_name.into(), current: Arc::new(Mutex::new(None)) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new connection to the core.
    pub async fn connect(&self) -> Result<quinn::Connection, ShipError> {
        let err = |message: String| ShipError::Connect { addr: self.addr, message };
        let connecting = self.endpoint.connect(self.addr, &self.server_name).map_err(|e| err(e.to_string()))?;
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| err(format!("no handshake within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| err(e.to_string()))
    }

    /// Sends one framed batch on the connection this connector holds (made
    /// first if there is none, or it is closed) and waits for the reply: for
    /// tools and tests that send a few batches. The shipper manages its own
    /// connections ([`Connector::connect`], [`exchange`]).
    pub async fn send(&self, frame: Bytes) -> Result<Reply, ShipError> {
        let conn = {
            let mut current = self.current.lock().await;
            match current.as_ref().filter(|c| c.close_reason().is_none()) {
                Some(conn) => conn.clone(),
                None => current.insert(self.connect().await?).clone(),
            }
        };
        exchange(&conn, frame).await
    }
}

/// Sends one framed batch on its own bidirectional stream of `conn` and
/// waits for the core's reply.
pub async fn exchange(conn: &quinn::Connection, frame: Bytes) -> Result<Reply, ShipError> {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| ShipError::Stream(e.to_string()))?;
        send.write_all(&frame).await.map_err(|e| ShipError::Stream(e.to_string()))?;
        send.finish().map_err(|e| ShipError::Stream(e.to_string()))?;
        let bytes = recv.read_to_end(MAX_REPLY_LEN).await.map_err(|e| ShipError::Stream(e.to_string()))?;
        Reply::decode(&bytes).map_err(ShipError::Reply)
    };
    tokio::time::timeout(SEND_TIMEOUT, exchange).await.map_err(|_| ShipError::Stream(format!("no reply within {SEND_TIMEOUT:?}")))?
}
