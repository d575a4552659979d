//! The core's TLS identity for the QUIC batch endpoint.
//!
//! On first start a self-signed certificate is generated and kept in
//! `data_dir` (`core-cert.pem`, `core-key.pem`, key mode 0600), so it stays
//! the same across restarts and edges can pin it as their trust root. A
//! deployment with its own CA puts its files there instead.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub const CERT_FILE: &str = "core-cert.pem";
pub const KEY_FILE: &str = "core-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("generating a certificate: {0}")]
    Generate(String),
}

pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_path: PathBuf,
}

pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Identity, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let file_err = |path: &Path, message: String| TlsError::File { path: path.into(), message };
    if !cert_path.exists() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e.to_string()))?;
        let generated = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
        let mut key = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(|e| file_err(&key_path, e.to_string()))?;
        std::io::Write::write_all(&mut key, generated.signing_key.serialize_pem().as_bytes())
            .map_err(|e| file_err(&key_path, e.to_string()))?;
        // The certificate last: its presence means the pair is complete.
        std::fs::write(&cert_path, generated.cert.pem()).map_err(|e| file_err(&cert_path, e.to_string()))?;
        tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate");
    }
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_err(&cert_path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(&cert_path, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, e.to_string()))?;
    Ok(Identity { certs, key, cert_path })
}
