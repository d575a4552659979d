//! The edge's own key pair, which the core pins to this edge's name
//! (`tally_http::pinned`). Generated on first start in the spool and kept
//! across restarts and upgrades, because the core knows the edge by it.
//!
//! Layout: `<spool_dir>/tls/edge-identity-cert.pem` and
//! `edge-identity-key.pem` (mode 0600). Rotation: move these two files away
//! while the edge is stopped, print the new fingerprint with `tally edge --config edge.toml --print-identity`,
//! list it beside the old one in the core's `[[edges]]`, restart the edge,
//! then drop the old one.

use std::path::Path;

use tally_http::pinned::Fingerprint;
use tally_http::tls::{self, Identity, TlsError};

/// File-name stem of the generated identity in `<spool_dir>/tls/`.
pub const IDENTITY_NAME: &str = "edge-identity";

/// Loads the edge's identity from its spool, generating it on first use.
pub fn load(spool_dir: &Path) -> Result<Identity, TlsError> {
    tls::load_or_create(&spool_dir.join("tls"), IDENTITY_NAME, &["tally-edge".to_string()])
}

/// What the core's `[[edges]]` must list for this identity.
pub fn fingerprint(identity: &Identity) -> Result<Fingerprint, TlsError> {
    let cert = identity.certs.first().ok_or_else(|| TlsError::Config(format!("{} holds no certificate", identity.cert_path.display())))?;
    Ok(Fingerprint::of(cert))
}
