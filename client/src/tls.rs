//! Server certificate trust (spec §2.2): a pinned SHA-256 fingerprint (trust on first use, as
//! ssh does), or accepting any certificate while recording its fingerprint so the caller can
//! pin it (`--accept-new-cert`). The TLS 1.3 handshake signature is always verified; only the
//! chain-of-trust question is answered by the pin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::ClientSessionMemoryCache;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// How to decide whether to trust the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
pub struct TlsSessions(Arc<Sessions>);

#[derive(Default)]
struct Sessions {
    trusts: Mutex<HashMap<Trust, Trusted>>,
    /// Certificates checked by the verifiers of these sessions (full handshakes).
    checked: Arc<AtomicU64>,
}

/// A trust's TLS configuration (its verifier and its ticket store inside), and when it was
/// made.
struct Trusted {
    tls: Arc<rustls::ClientConfig>,
    made: Instant,
}

impl std::fmt::Debug for TlsSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let trusts = self.0.trusts.lock().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("TlsSessions").field("trusts", &trusts).finish()
    }
}

impl TlsSessions {
    /// Tickets kept per trust: rustls keeps up to 8 per server name, so 8 server names.
    const TICKETS: usize = 8 * 8;
    /// Trusts kept; past this, the oldest one's tickets go.
    const TRUSTS: usize = 8;
    /// Each resumption hands out new tickets that carry the first certificate on, so a
    /// client reconnecting often would never check a certificate again (RFC 8446 §4.6.1):
    /// after this long, a trust starts over with a full handshake.
    const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

    /// The TLS configuration for connections checked by `trust`: one per trust, since rustls
    /// resumes a session only under the verifier (and client-certificate resolver) of the
    /// configuration that made it. A new configuration therefore never resumes an older
    /// one's sessions.
    pub(crate) fn tls_config(
        &self,
        trust: &Trust,
    ) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
        let mut trusts = self.0.trusts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(trusted) = trusts.get(trust).filter(|t| t.made.elapsed() < Self::MAX_AGE) {
            return Ok(trusted.tls.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Verifier::new(trust.clone(), provider.clone(), self.0.checked.clone())?;
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        tls.alpn_protocols = vec![banter_protocol::ALPN.to_vec()];
        // TLS secrets go to $SSLKEYLOGFILE when it is set (for Wireshark), never otherwise.
        tls.key_log = Arc::new(rustls::KeyLogFile::new());
        tls.resumption = rustls::client::Resumption::store(Arc::new(
            ClientSessionMemoryCache::new(Self::TICKETS),
        ));
        let tls = Arc::new(tls);
        trusts.insert(trust.clone(), Trusted { tls: tls.clone(), made: Instant::now() });
        if trusts.len() > Self::TRUSTS {
            let oldest = trusts.iter().min_by_key(|(_, t)| t.made).map(|(key, _)| key.clone());
            trusts.retain(|key, _| Some(key) != oldest.as_ref());
        }
        Ok(tls)
    }

    /// How many handshakes made with these sessions checked a server certificate: the full
    /// ones. A resumed handshake checks none.
    pub fn certificates_checked(&self) -> u64 {
        self.0.checked.load(Ordering::Relaxed)
    }
}

/// What a connection refused by a [`Trust::Pinned`] says.
pub(crate) const PIN_MISMATCH: &str =
    "the server's certificate does not match the pinned fingerprint";

/// A handshake that failed on this side because the server did not prove the identity this
/// client trusts: the TLS alert rustls sent (RFC 8446 §6.2), carried as a QUIC CRYPTO_ERROR
/// (RFC 9001 §4.8), is one of those its certificate errors map to.
pub(crate) struct Refused {
    /// rustls's reason.
    pub(crate) reason: String,
    /// access_denied: what [`Verifier`] answers a certificate that is not the pinned one.
    pub(crate) pin_mismatch: bool,
}

/// Whether `error` is a [`Refused`] certificate (not a protocol error, a timeout or an alert
/// from the server, which arrives as a close instead).
pub(crate) fn refused_certificate(error: &quinn::ConnectionError) -> Option<Refused> {
    /// bad_certificate, unsupported_certificate, certificate_revoked, certificate_expired,
    /// certificate_unknown, unknown_ca, access_denied, decrypt_error (a chain or handshake
    /// signature that does not verify).
    const CERTIFICATE_ALERTS: [u64; 8] = [42, 43, 44, 45, 46, 48, 49, 51];
    const ACCESS_DENIED: u64 = 49;
    let quinn::ConnectionError::TransportError(error) = error else { return None };
    let alert = u64::from(error.code).checked_sub(0x100)?;
    CERTIFICATE_ALERTS
        .contains(&alert)
        .then(|| Refused { reason: error.reason.clone(), pin_mismatch: alert == ACCESS_DENIED })
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
    /// Certificates checked (full handshakes), counted for the [`TlsSessions`] it serves.
    checked: Arc<AtomicU64>,
}

impl Verifier {
    pub(crate) fn new(
        trust: Trust,
        provider: Arc<CryptoProvider>,
        checked: Arc<AtomicU64>,
    ) -> Result<Self, rustls::Error> {
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
        Ok(Self { trust, provider, webpki, checked })
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
