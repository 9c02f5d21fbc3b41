//! Login key files for `banter key-add`: an ed25519 private key (its 32-byte seed, in hex) in a
//! file only its owner can read. A bot logs in with the same file through the SDK or libbanter.

use std::io::Write as _;
use std::path::Path;

use ed25519_dalek::SigningKey;

use crate::profile::{hex, unhex};

/// The key in `path`, or (when there is no such file) a new one written there, mode 0600.
/// Returns the key and whether it was made now.
pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<(SigningKey, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let seed: [u8; 32] =
                unhex(text.trim()).and_then(|bytes| bytes.try_into().ok()).ok_or_else(|| {
                    anyhow::anyhow!("{}: not a key file (64 hex digits)", path.display())
                })?;
            Ok((SigningKey::from_bytes(&seed), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                .map_err(|_| anyhow::anyhow!("no randomness for a new key"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            file.write_all(format!("{}\n", hex(&seed)).as_bytes())?;
            file.sync_all()?;
            Ok((SigningKey::from_bytes(&seed), true))
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// A public key as the CLI shows and takes it: 64 hex digits.
pub(crate) fn public_hex(public_key: &[u8; 32]) -> String {
    hex(public_key)
}

/// Parses [`public_hex`]'s form.
pub(crate) fn parse_public(text: &str) -> Option<[u8; 32]> {
    unhex(text.trim())?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_private_and_loads_back_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.key");
        let (made, new) = load_or_create(&path).unwrap();
        assert!(new);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (loaded, new) = load_or_create(&path).unwrap();
        assert!(!new);
        assert_eq!(loaded.to_bytes(), made.to_bytes());
        let public = made.verifying_key().to_bytes();
        assert_eq!(parse_public(&public_hex(&public)), Some(public));
        std::fs::write(&path, "not hex").unwrap();
        assert!(load_or_create(&path).is_err());
    }
}
