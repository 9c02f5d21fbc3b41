//! Server certificate trust (spec §2.2): a pinned SHA-256 fingerprint (trust on first use, as
//! ssh does), or accepting any certificate while recording its fingerprint so the caller can
//! pin it (`--accept-new-cert`). The TLS 1.3 handshake signature is always verified; only the
//! chain-of-trust question is answered by the pin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::ClientSessionMemoryCache;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

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

/// The TLS session tickets servers gave, kept to resume later connections with a shorter
/// handshake: TLS 1.3 resumption with a fresh key exchange, no certificate sent or checked,
/// never 0-RTT data (spec §2.4). Clones of one [`Options`](crate::Options) share them, so a
/// reconnecting client resumes; a new `TlsSessions` starts empty.
///
/// Tickets are kept apart per [`Trust`], each with its own verifier: resumption does not look
/// at the certificate again, so a ticket taken while any certificate was accepted must never
/// resume a connection that demands a pinned one or a CA's. (rustls also resumes only under
/// the very verifier that checked the first certificate.)
#[derive(Clone, Default)]
pub struct TlsSessions(Arc<Mutex<HashMap<[u8; 32], Trusted>>>);

/// A trust's TLS configuration (its verifier and its ticket store inside) and that verifier.
#[derive(Clone)]
struct Trusted {
    verifier: Arc<Verifier>,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let trusts = self.0.lock().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("TlsSessions").field("trusts", &trusts).finish()
    }
}

impl TlsSessions {
    /// Tickets for up to this many server names per trust (rustls keeps 8 per name).
    const TICKETS: usize = 8 * 8;

    /// The TLS configuration for connections checked by `trust`: one per trust, since rustls
    /// resumes a session only under the verifier (and client-certificate resolver) of the
    /// configuration that made it.
    pub(crate) fn tls_config(
        &self,
        trust: &Trust,
    ) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
        let mut trusts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = trust_key(trust);
        if let Some(trusted) = trusts.get(&key) {
            return Ok(trusted.tls.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Verifier::new(trust.clone(), provider.clone())?);
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        tls.alpn_protocols = vec![banter_protocol::ALPN.to_vec()];
        // TLS secrets go to $SSLKEYLOGFILE when it is set (for Wireshark), never otherwise.
        tls.key_log = Arc::new(rustls::KeyLogFile::new());
        tls.resumption = rustls::client::Resumption::store(Arc::new(
            ClientSessionMemoryCache::new(Self::TICKETS),
        ));
        let tls = Arc::new(tls);
        trusts.insert(key, Trusted { verifier, tls: tls.clone() });
        Ok(tls)
    }

    /// How many handshakes made with these sessions checked a server certificate: the full
    /// ones. A resumed handshake checks none.
    pub fn certificates_checked(&self) -> u64 {
        let trusts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        trusts.values().map(|t| t.verifier.checked.load(Ordering::Relaxed)).sum()
    }
}

/// What a connection refused by a [`Trust::Pinned`] says.
pub(crate) const PIN_MISMATCH: &str =
    "the server's certificate does not match the pinned fingerprint";

/// Whether a handshake that failed on this side did so because the server did not prove the
/// identity this client trusts, and why: the TLS alert rustls sends (RFC 8446 §6.2) for a
/// certificate it refuses (bad_certificate through access_denied) or a signature that does
/// not verify (decrypt_error: a chain or handshake signature, or the Finished MAC), carried
/// as a QUIC CRYPTO_ERROR (RFC 9001 §4.8).
pub(crate) fn refused_certificate(error: &quinn::ConnectionError) -> Option<String> {
    const BAD_CERTIFICATE: u64 = 42;
    const ACCESS_DENIED: u64 = 49;
    const DECRYPT_ERROR: u64 = 51;
    let quinn::ConnectionError::TransportError(error) = error else { return None };
    let alert = u64::from(error.code).checked_sub(0x100)?;
    ((BAD_CERTIFICATE..=ACCESS_DENIED).contains(&alert) || alert == DECRYPT_ERROR)
        .then(|| error.reason.clone())
}

/// A digest naming one trust decision exactly (its pin, or its whole CA list).
fn trust_key(trust: &Trust) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    match trust {
        Trust::Pinned(pin) => {
            context.update(b"pinned\0");
            context.update(pin);
        }
        Trust::AcceptAny => context.update(b"any\0"),
        Trust::CustomCa(roots) => {
            context.update(b"ca\0");
            for root in roots {
                context.update(&(root.len() as u64).to_be_bytes());
                context.update(root);
            }
        }
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
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
    /// Certificates checked (full handshakes).
    checked: AtomicU64,
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
        Ok(Self { trust, provider, webpki, checked: AtomicU64::new(0) })
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
        self.checked.fetch_add(1, Ordering::Relaxed);
        match (&self.webpki, &self.trust) {
            (Some(webpki), _) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            (None, Trust::Pinned(pin)) if *pin != fingerprint(end_entity) => Err(
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
            ),
            (None, _) => Ok(ServerCertVerified::assertion()),
        }
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
