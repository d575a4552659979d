//! TLS identities and server configurations.
//!
//! A process without a configured certificate generates a self-signed one
//! on first start and keeps it in its data directory (`<name>-cert.pem`,
//! `<name>-key.pem`, key mode 0600), so it stays the same across restarts:
//! edges can pin the core's, browsers and SDKs can pin an edge's SPKI. A
//! deployment with its own CA points the configuration at its files instead.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("generating a certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_path: PathBuf,
}

fn file_err(path: &Path, message: String) -> TlsError {
    TlsError::File { path: path.into(), message }
}

/// Names a generated certificate is issued for unless configured otherwise:
/// what clients on the same machine dial.
pub const DEFAULT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// File names of a generated identity called `name` in `dir`.
pub fn generated_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}-cert.pem")), dir.join(format!("{name}-key.pem")))
}

/// Loads `dir/<name>-{cert,key}.pem`, generating them first if absent.
pub fn load_or_create(dir: &Path, name: &str, names: &[String]) -> Result<Identity, TlsError> {
    let (cert_path, key_path) = generated_paths(dir, name);
    if !cert_path.exists() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e.to_string()))?;
        let generated = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
        let mut key =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&key_path).map_err(|e| file_err(&key_path, e.to_string()))?;
        std::io::Write::write_all(&mut key, generated.signing_key.serialize_pem().as_bytes()).map_err(|e| file_err(&key_path, e.to_string()))?;
        // The certificate last: its presence means the pair is complete.
        std::fs::write(&cert_path, generated.cert.pem()).map_err(|e| file_err(&cert_path, e.to_string()))?;
        tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate");
    }
    load(&cert_path, &key_path)
}

/// Loads a PEM certificate chain and private key.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| file_err(cert_path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert_path, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| file_err(key_path, e.to_string()))?;
    Ok(Identity { certs, key, cert_path: cert_path.into() })
}

/// A TLS 1.3 client configuration trusting only the certificates (or CA)
/// in `ca_cert`: how an edge reaches its core (QUIC and the registry),
/// presenting `identity` if given (the edge's pinned key, see `pinned`).
pub fn client_config(ca_cert: &Path, alpn: &[&[u8]], identity: Option<&Identity>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_cert).map_err(|e| file_err(ca_cert, e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| file_err(ca_cert, e.to_string()))?;
        roots.add(cert).map_err(|e| file_err(ca_cert, format!("trusting it: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => config.with_client_auth_cert(id.certs.clone(), id.key.clone_key()).map_err(|e| TlsError::Config(e.to_string()))?,
        None => config.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(config)
}

/// A rustls server configuration with ring as the only provider (a second
/// provider compiled in would make rustls's defaults panic).
pub fn server_config(identity: &Identity, alpn: &[&[u8]], tls13_only: bool) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider);
    let builder = if tls13_only { builder.with_protocol_versions(&[&rustls::version::TLS13]) } else { builder.with_safe_default_protocol_versions() }
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config =
        builder.with_no_client_auth().with_single_cert(identity.certs.clone(), identity.key.clone_key()).map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(config))
}
