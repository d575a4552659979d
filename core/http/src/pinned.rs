//! Clients authenticated by a pinned certificate: how the core knows which
//! edge is on the other end of a batch connection.
//!
//! Every edge has its own key pair and self-signed certificate, generated on
//! its first start and kept in its spool (`tls/edge-identity-{cert,key}.pem`,
//! key mode 0600). Its *fingerprint* is the SHA-256 of the certificate's DER
//! bytes, written `sha256:<64 hex>`; `tally edge identity` prints it. The
//! core's configuration lists, per edge name, the fingerprints it accepts
//! (`[[edges]]`); a TLS handshake whose client certificate is not listed
//! fails, so nothing an unenrolled process sends is ever read.
//!
//! Rotation: list the new fingerprint beside the old one, restart the core,
//! move the edge to its new key, then drop the old fingerprint. A listed
//! fingerprint names exactly one edge; the name it maps to is the only edge
//! id that connection may ship batches for.
//!
//! Why pins and not a CA: no signing step, no certificate lifetime to expire
//! at 3 am, and revocation is deleting a line. The cost is one line of core
//! configuration per edge key, which the operator writes anyway to name it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ring::digest::{digest, SHA256};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("fingerprint {0:?} is not sha256:<64 hex digits> (print one with `tally edge identity`)")]
    Malformed(String),
    #[error("fingerprint {fingerprint} is listed for both edge {first:?} and edge {second:?}; a key belongs to one edge")]
    Shared { fingerprint: Fingerprint, first: String, second: String },
}

/// SHA-256 of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(cert: &CertificateDer<'_>) -> Fingerprint {
        Fingerprint(digest(&SHA256, cert.as_ref()).as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }

    pub fn parse(text: &str) -> Result<Fingerprint, PinError> {
        let malformed = || PinError::Malformed(text.to_string());
        let hex = text.trim().strip_prefix("sha256:").ok_or_else(malformed)?;
        let bytes = hex::decode(hex).map_err(|_| malformed())?;
        Ok(Fingerprint(bytes.try_into().map_err(|_| malformed())?))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The enrolled clients: fingerprint -> name.
#[derive(Debug)]
pub struct PinnedClients {
    names: HashMap<Fingerprint, String>,
    algorithms: WebPkiSupportedAlgorithms,
    /// Whether a client must present a certificate at all: yes on the batch
    /// port; no on the HTTPS API, where tenants come with keys and only the
    /// registry's edge routes ask for a pinned key.
    mandatory: bool,
}

impl PinnedClients {
    /// `pins`: (name, fingerprints accepted for it).
    pub fn new<'a>(pins: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Result<PinnedClients, PinError> {
        let mut names: HashMap<Fingerprint, String> = HashMap::new();
        for (name, fingerprints) in pins {
            for text in fingerprints {
                let fingerprint = Fingerprint::parse(text)?;
                if let Some(first) = names.insert(fingerprint, name.to_string()).filter(|first| first != name) {
                    return Err(PinError::Shared { fingerprint, first, second: name.to_string() });
                }
            }
        }
        Ok(PinnedClients { names, algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms, mandatory: true })
    }

    /// The same pins, for a listener where clients without a certificate
    /// are served too (a certificate they do present must still be pinned).
    pub fn optional(self) -> PinnedClients {
        PinnedClients { mandatory: false, ..self }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name a verified connection's end-entity certificate is pinned for.
    pub fn name_of(&self, cert: &CertificateDer<'_>) -> Option<&str> {
        self.name_of_fingerprint(&Fingerprint::of(cert))
    }

    pub fn name_of_fingerprint(&self, fingerprint: &Fingerprint) -> Option<&str> {
        self.names.get(fingerprint).map(String::as_str)
    }

    /// The name of a QUIC connection's peer, from the certificates rustls verified.
    pub fn name_of_quic_peer(&self, conn: &quinn::Connection) -> Option<&str> {
        let certs = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
        self.name_of(certs.first()?)
    }
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.name_of(end_entity) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => {
                tracing::warn!(fingerprint = %Fingerprint::of(end_entity), "refused a client certificate that is not enrolled");
                Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
            }
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A server configuration that verifies client certificates against the
/// pins (required unless `clients` is [`PinnedClients::optional`]); TLS 1.3
/// only if `tls13_only` (browsers on the API may still speak 1.2).
pub fn server_config(
    identity: &crate::tls::Identity,
    alpn: &[&[u8]],
    clients: Arc<PinnedClients>,
    tls13_only: bool,
) -> Result<Arc<rustls::ServerConfig>, crate::tls::TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider);
    let mut config = if tls13_only { builder.with_protocol_versions(&[&rustls::version::TLS13]) } else { builder.with_safe_default_protocol_versions() }
        .map_err(|e| crate::tls::TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(clients)
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())
        .map_err(|e| crate::tls::TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str) -> CertificateDer<'static> {
        rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap().cert.der().clone()
    }

    #[test]
    fn pins_name_one_edge_each_and_rotation_lists_both_keys() {
        let (old, new, stranger) = (cert("a"), cert("a"), cert("x"));
        let both = [Fingerprint::of(&old).to_string(), Fingerprint::of(&new).to_string()];
        let pins = PinnedClients::new([("edge-a", &both[..])]).unwrap();
        assert_eq!((pins.name_of(&old), pins.name_of(&new), pins.name_of(&stranger)), (Some("edge-a"), Some("edge-a"), None));
        let now = UnixTime::now();
        assert!(pins.verify_client_cert(&new, &[], now).is_ok());
        assert!(pins.verify_client_cert(&stranger, &[], now).is_err());
        // The old key dropped after the rotation: refused.
        let rotated = PinnedClients::new([("edge-a", &both[1..])]).unwrap();
        assert!(rotated.verify_client_cert(&old, &[], now).is_err());
        assert!(rotated.verify_client_cert(&new, &[], now).is_ok());
    }

    #[test]
    fn a_key_cannot_name_two_edges_and_fingerprints_parse_strictly() {
        let c = cert("a");
        let fp = [Fingerprint::of(&c).to_string()];
        assert!(matches!(PinnedClients::new([("edge-a", &fp[..]), ("edge-b", &fp[..])]), Err(PinError::Shared { .. })));
        assert_eq!(Fingerprint::parse(&fp[0]).unwrap(), Fingerprint::of(&c));
        for bad in ["", "sha256:", "sha256:zz", "md5:00", &fp[0][..70]] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad}");
        }
    }
}
