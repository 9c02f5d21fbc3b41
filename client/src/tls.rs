//! Server certificate trust (spec §2.2): a pinned SHA-256 fingerprint (trust on first use, as
//! ssh does), or accepting any certificate while recording its fingerprint so the caller can
//! pin it (`--accept-new-cert`). The TLS 1.3 handshake signature is always verified; only the
//! chain-of-trust question is answered by the pin.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How to decide whether to trust the server's certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only a certificate with this SHA-256 fingerprint.
    Pinned([u8; 32]),
    /// Any certificate; its fingerprint is recorded in [`Connection::fingerprint`](crate::Connection::fingerprint).
    AcceptAny,
    /// A certificate chain to one of these CA certificates (DER), checked the usual way
    /// (name, validity, chain) for servers with CA-issued certificates.
    CustomCa(Vec<Vec<u8>>),
}

/// SHA-256 of a DER certificate.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Reads the certificates of a PEM file (for [`Trust::CustomCa`]).
pub fn load_pem_certificates(path: &std::path::Path) -> std::io::Result<Vec<Vec<u8>>> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.map(|c| c.map(|c| c.to_vec())).collect())
        .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(std::io::Error::other(format!("{}: no certificates", path.display())));
    }
    Ok(certs)
}

/// Parses `AB:CD:...` (or plain hex) into a fingerprint.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[derive(Debug)]
pub(crate) struct Verifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    /// For [`Trust::CustomCa`]: rustls's own WebPKI verifier over those roots.
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    pub(crate) seen: Mutex<Option<[u8; 32]>>,
    /// Why the certificate was refused, when it was: the handshake error that reaches the
    /// caller no longer says that it was a trust decision.
    pub(crate) refused: Mutex<Option<String>>,
}

impl Verifier {
    pub(crate) fn new(trust: Trust, provider: Arc<CryptoProvider>) -> Result<Self, rustls::Error> {
        let webpki = match &trust {
            Trust::CustomCa(roots) => {
                let mut store = rustls::RootCertStore::empty();
                for root in roots {
                    store.add(CertificateDer::from(root.clone()))?;
                }
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(store),
                    provider.clone(),
                )
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
                Some(verifier)
            }
            _ => None,
        };
        Ok(Self { trust, provider, webpki, seen: Mutex::new(None), refused: Mutex::new(None) })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
        let verdict = match (&self.webpki, &self.trust) {
            (Some(webpki), _) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            (None, Trust::Pinned(pin)) if *pin != seen => Err(rustls::Error::General(
                "the server's certificate does not match the pinned fingerprint".into(),
            )),
            (None, _) => Ok(ServerCertVerified::assertion()),
        };
        if let Err(error) = &verdict {
            *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
