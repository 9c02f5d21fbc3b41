//! The server's identity on disk: the ed25519 key that signs access tokens, and the TLS
//! certificate. Created on first start (self-signed), reused after; key files are mode 0600.

use std::fs;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::durable;

/// Loaded identity.
#[derive(Debug)]
pub struct Identity {
    /// Signs access tokens.
    pub signing_key: SigningKey,
    /// The key it replaced (`banterd rotate-key`), which still verifies what it signed.
    pub previous_signing_keys: Vec<SigningKey>,
    /// The certificate chain presented in TLS.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    pub cert_key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf certificate, as colon-separated hex (what clients pin).
    pub fingerprint: String,
}

const SIGNING_KEY: &str = "server.key";
const PREVIOUS_SIGNING_KEY: &str = "server.key.previous";
const CERT: &str = "cert.pem";
const CERT_KEY: &str = "cert-key.pem";
/// The identity files of a data dir (what a backup copies, where they exist).
pub(crate) const FILES: [&str; 4] = [SIGNING_KEY, PREVIOUS_SIGNING_KEY, CERT, CERT_KEY];

/// A signing key file: the 32-byte ed25519 seed.
fn read_signing_key(path: &Path) -> std::io::Result<SigningKey> {
    let bytes = fs::read(path)?;
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| std::io::Error::other(format!("{} is not a 32-byte key", path.display())))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn random_seed() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    Ok(seed)
}

/// Replaces `path` with a private file holding `bytes` (written aside, synced, renamed).
fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let aside = path.with_extension("new");
    let _ = fs::remove_file(&aside);
    write_private(&aside, bytes)?;
    fs::rename(&aside, path)
}

/// Rotates the token-signing key of the data dir `dir` (`banterd rotate-key`): the current
/// key becomes `server.key.previous` (replacing the one before), and a new `server.key` is
/// drawn. The running server takes it at its next start. Returns the new key.
pub fn rotate_signing_key(dir: &Path) -> std::io::Result<SigningKey> {
    let key_path = dir.join(SIGNING_KEY);
    let current = read_signing_key(&key_path)?;
    replace_private(&dir.join(PREVIOUS_SIGNING_KEY), &current.to_bytes())?;
    let seed = random_seed()?;
    replace_private(&key_path, &seed)?;
    durable::sync_dir(dir)?;
    Ok(SigningKey::from_bytes(&seed))
}

impl Identity {
    /// Loads the identity from `dir`, creating what is missing.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        let key_path = dir.join(SIGNING_KEY);
        let signing_key = if key_path.exists() {
            // Written by an earlier start that may have died before syncing it.
            durable::sync_file(&key_path)?;
            read_signing_key(&key_path)?
        } else {
            let seed = random_seed()?;
            write_private(&key_path, &seed)?;
            SigningKey::from_bytes(&seed)
        };
        let previous_path = dir.join(PREVIOUS_SIGNING_KEY);
        let previous_signing_keys = if previous_path.exists() {
            vec![read_signing_key(&previous_path)?]
        } else {
            Vec::new()
        };

        let (cert_path, cert_key_path) = (dir.join(CERT), dir.join(CERT_KEY));
        if cert_path.exists() && cert_key_path.exists() {
            durable::sync_file(&cert_key_path)?;
            durable::sync_file(&cert_path)?;
        } else {
            let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
            let certified =
                rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
            // A pair half left by an interrupted first start is replaced whole.
            let _ = fs::remove_file(&cert_key_path);
            let _ = fs::remove_file(&cert_path);
            write_private(&cert_key_path, certified.signing_key.serialize_pem().as_bytes())?;
            durable::write_new(&cert_path, certified.cert.pem().as_bytes(), 0o644)?;
        }
        let cert_chain = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| std::io::Error::other(format!("{}: {e}", cert_path.display())))?;
        let cert_key = PrivateKeyDer::from_pem_file(&cert_key_path)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", cert_key_path.display())))?;
        let leaf = cert_chain.first().ok_or_else(|| std::io::Error::other("empty certificate"))?;
        let fingerprint = fingerprint(leaf);
        Ok(Self { signing_key, previous_signing_keys, fingerprint, cert_chain, cert_key })
    }
}

/// SHA-256 of a certificate, colon-separated upper-case hex (as `openssl x509 -fingerprint`).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Creates a new file that only its owner can read (mode 0600); fails if it exists.
pub(crate) fn create_private(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes a new private file (mode 0600), durably: the file, then the directory naming it.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    durable::write_new(path, bytes, 0o600)
}

/// Creates `dir` (and its parents) accessible to its owner only (mode 0700) from the start,
/// with no window in which the umask's mode applies, and durably; an existing directory is
/// tightened to 0700. The data dir and backups hold keys, the database and the admin socket.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    durable::create_dir_all(dir, 0o700)?;
    if fs::metadata(dir)?.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_reloaded_with_private_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path()).unwrap();
        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(first.signing_key.to_bytes(), again.signing_key.to_bytes());
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        #[cfg(unix)]
        for name in [SIGNING_KEY, CERT_KEY] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn security_data_dirs_are_private_from_creation_and_tightened_when_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a/b/data");
        create_private_dir(&fresh).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o700);
        let loose = dir.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700);
    }
}
