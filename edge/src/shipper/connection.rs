//! The QUIC connection to the core: TLS with the configured trust roots,
//! reconnecting lazily when the connection is gone.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::QuicClientConfig;
use tokio::sync::Mutex;

use tally_model::reply::{Reply, MAX_REPLY_LEN};

/// ALPN of the batch protocol; bumped with incompatible frame changes.
pub const ALPN: &[u8] = b"tally-batch/1";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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
    pub fn new(addr: SocketAddr, server_name: &str, ca_cert: &Path) -> Result<Connector, ShipError> {
        let tls = tally_http::tls::client_config(ca_cert, &[ALPN]).map_err(|e| ShipError::Tls(e.to_string()))?;
        let quic = QuicClientConfig::try_from(Arc::new(tls)).map_err(|e| ShipError::Tls(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(5)));
        client.transport_config(Arc::new(transport));
        let bind: SocketAddr = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap();
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| ShipError::Connect { addr, message: format!("binding UDP socket: {e}") })?;
        endpoint.set_default_client_config(client);
        Ok(Connector { endpoint, addr, server_name: server_name.into(), current: Arc::new(Mutex::new(None)) })
    }

    async fn connection(&self) -> Result<quinn::Connection, ShipError> {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.as_ref() {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
        }
        let err = |message: String| ShipError::Connect { addr: self.addr, message };
        let connecting = self.endpoint.connect(self.addr, &self.server_name).map_err(|e| err(e.to_string()))?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| err(format!("no handshake within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| err(e.to_string()))?;
        tracing::info!(core = %self.addr, "connected to core");
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Sends one framed batch and waits for the core's reply.
    pub async fn send(&self, frame: Bytes) -> Result<Reply, ShipError> {
        let conn = self.connection().await?;
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| ShipError::Stream(e.to_string()))?;
            send.write_all(&frame).await.map_err(|e| ShipError::Stream(e.to_string()))?;
            send.finish().map_err(|e| ShipError::Stream(e.to_string()))?;
            let bytes = recv.read_to_end(MAX_REPLY_LEN).await.map_err(|e| ShipError::Stream(e.to_string()))?;
            Reply::decode(&bytes).map_err(ShipError::Reply)
        };
        tokio::time::timeout(SEND_TIMEOUT, exchange).await.map_err(|_| ShipError::Stream(format!("no reply within {SEND_TIMEOUT:?}")))?
    }
}
