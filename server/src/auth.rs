//! Credentials: argon2id password hashing on a bounded blocking pool, and the server-signed
//! access tokens and rotating refresh tokens (spec §6.2, §12.3).

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use banter_protocol::ids::{SessionId, UserId};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use tokio::sync::Semaphore;

/// Hashes and verifies passwords off the async executor, at most `concurrency` at a time, so
/// that a login flood queues instead of exhausting memory (each hash takes `memory_kib`).
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password with the current parameters: unknown users are verified
    /// against it, so they cost the same time as wrong passwords (spec §12.4).
    dummy: Arc<str>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").field("params", &self.params).finish_non_exhaustive()
    }
}

/// The outcome of a password check.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password (or unknown user).
    No,
    /// Right password.
    Yes,
    /// Right password, stored with weaker parameters: store this new hash.
    YesRehash(String),
}

impl Passwords {
    /// argon2id with `memory_kib`, `iterations`, parallelism 1.
    pub fn new(memory_kib: u32, iterations: u32, concurrency: usize) -> Result<Self, String> {
        let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| e.to_string())?;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut random = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .map_err(|_| "no system randomness".to_owned())?;
        let dummy = hasher.hash_password(&random).map_err(|e| e.to_string())?.to_string();
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            concurrency
        };
        Ok(Self { params, permits: Arc::new(Semaphore::new(concurrency)), dummy: dummy.into() })
    }

    fn hasher(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let hasher = self.hasher();
        tokio::task::spawn_blocking(move || {
            hasher
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Checks `password` against `stored` (or, for an unknown user, against the dummy hash so
    /// the answer takes as long).
    pub async fn verify(&self, password: String, stored: Option<String>) -> Verified {
        let Ok(_permit) = self.permits.acquire().await else { return Verified::No };
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.to_string());
        let hasher = self.hasher();
        let params = self.params.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            if hasher.verify_password(password.as_bytes(), stored.as_str()).is_err() {
                return Verified::No;
            }
            let current = PasswordHash::new(&stored)
                .ok()
                .and_then(|hash| Params::try_from(&hash).ok())
                .is_some_and(|p| p.m_cost() >= params.m_cost() && p.t_cost() >= params.t_cost());
            if current {
                return Verified::Yes;
            }
            match hasher.hash_password(password.as_bytes()) {
                Ok(hash) => Verified::YesRehash(hash.to_string()),
                Err(_) => Verified::Yes,
            }
        })
        .await
        .unwrap_or(Verified::No);
        if known { outcome } else { Verified::No }
    }
}

/// What a valid access token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user.
    pub user: UserId,
    /// The login session.
    pub session: SessionId,
    /// Expiry, ms since the epoch.
    pub expires: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Wrong length, version, key or signature.
    Invalid,
    /// Valid but expired.
    Expired,
}

const ACCESS_VERSION: u8 = 1;
const ACCESS_LABEL: &[u8] = b"banter/1 access-token\0";
const ACCESS_BODY: usize = 1 + 8 + 8 + 8 + 8 + 8;

/// Signs and verifies access tokens with the server's ed25519 key (spec §12.3).
///
/// Layout: `version (1) = 1 | key id (8) | user (8) | session (8) | issued ms (8) | expires ms
/// (8) | signature (64)`, integers big-endian; the signature covers
/// `"banter/1 access-token\0" ‖ the first 41 bytes`. The key id is the first 8 bytes of the
/// SHA-256 of the public key, so keys can rotate (a verifier keeps old public keys).
///
/// Refresh-token secrets are derived, not drawn: generation `g` of login session `s` created
/// at `c` has the secret `HMAC-SHA256(K, "banter/1 refresh-token\0" ‖ s ‖ c ‖ g)`, where `K`
/// is an HMAC of the signing key. So the server can prove that a token of any earlier
/// generation is genuine (reuse) without storing its hash, and can give the same current
/// token again to a client whose REFRESH answer was lost; the database alone (a stolen
/// backup) does not let anyone mint them.
///
/// Rotation (`banterd rotate-key`): the new key signs and derives from then on; the previous
/// one still verifies the access tokens it signed (until they expire) and still proves the
/// refresh tokens it derived genuine. A current refresh token is checked against its stored
/// hash, so it stays valid across any number of rotations.
pub struct TokenKeys {
    current: SigningKeys,
    previous: Vec<SigningKeys>,
}

/// One signing key and what is derived from it.
struct SigningKeys {
    signing: SigningKey,
    verifying: VerifyingKey,
    key_id: [u8; 8],
    refresh: ring::hmac::Key,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let previous: Vec<[u8; 8]> = self.previous.iter().map(|k| k.key_id).collect();
        f.debug_struct("TokenKeys")
            .field("key_id", &self.current.key_id)
            .field("previous", &previous)
            .finish_non_exhaustive()
    }
}

const REFRESH_KEY_LABEL: &[u8] = b"banter/1 refresh-key";
const REFRESH_LABEL: &[u8] = b"banter/1 refresh-token\0";

impl SigningKeys {
    fn new(signing: SigningKey) -> Self {
        let verifying = signing.verifying_key();
        let digest = ring::digest::digest(&ring::digest::SHA256, verifying.as_bytes());
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&digest.as_ref()[..8]);
        let master = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &signing.to_bytes());
        let derived = ring::hmac::sign(&master, REFRESH_KEY_LABEL);
        let refresh = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref());
        Self { signing, verifying, key_id, refresh }
    }

    fn refresh_token(&self, session: SessionId, created_ms: u64, generation: u32) -> RefreshToken {
        let mut input = Vec::with_capacity(REFRESH_LABEL.len() + 20);
        input.extend_from_slice(REFRESH_LABEL);
        input.extend_from_slice(&session.0.to_be_bytes());
        input.extend_from_slice(&created_ms.to_be_bytes());
        input.extend_from_slice(&generation.to_be_bytes());
        let tag = ring::hmac::sign(&self.refresh, &input);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(tag.as_ref());
        RefreshToken { session, generation, secret }
    }
}

impl TokenKeys {
    /// Keys from the server's signing key.
    pub fn new(signing: SigningKey) -> Self {
        Self::rotated(signing, Vec::new())
    }

    /// Keys from the server's signing key and the keys it replaced (newest first).
    pub fn rotated(signing: SigningKey, previous: Vec<SigningKey>) -> Self {
        let previous = previous.into_iter().map(SigningKeys::new).collect();
        Self { current: SigningKeys::new(signing), previous }
    }

    /// The refresh token of `generation` for the login session `session` created at
    /// `created_ms`, derived from the current key (see the type's docs).
    pub fn refresh_token(
        &self,
        session: SessionId,
        created_ms: u64,
        generation: u32,
    ) -> RefreshToken {
        self.current.refresh_token(session, created_ms, generation)
    }

    /// That token as each key derives it, the current key first: one of them is the genuine
    /// token if it was issued before a rotation.
    pub fn refresh_tokens(
        &self,
        session: SessionId,
        created_ms: u64,
        generation: u32,
    ) -> Vec<RefreshToken> {
        let keys = std::iter::once(&self.current).chain(&self.previous);
        keys.map(|k| k.refresh_token(session, created_ms, generation)).collect()
    }

    /// A token for (user, session), valid from `now_ms` for `ttl_ms`.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        now_ms: u64,
        ttl_ms: u64,
    ) -> (Vec<u8>, u64) {
        let expires = now_ms.saturating_add(ttl_ms);
        let mut token = Vec::with_capacity(ACCESS_BODY + 64);
        token.push(ACCESS_VERSION);
        token.extend_from_slice(&self.current.key_id);
        for value in [user.0, session.0, now_ms, expires] {
            token.extend_from_slice(&value.to_be_bytes());
        }
        let signature = self.current.signing.sign(&signed_bytes(&token));
        token.extend_from_slice(&signature.to_bytes());
        (token, expires)
    }

    /// Checks a token's signature and expiry. No database read: the caller checks that the
    /// login session still exists.
    pub fn verify(&self, token: &[u8], now_ms: u64) -> Result<AccessClaims, TokenError> {
        if token.len() != ACCESS_BODY + 64 || token[0] != ACCESS_VERSION {
            return Err(TokenError::Invalid);
        }
        let (body, signature) = token.split_at(ACCESS_BODY);
        // The key that signed it, current or replaced.
        let keys = std::iter::once(&self.current).chain(&self.previous);
        let Some(key) = keys.into_iter().find(|k| body[1..9] == k.key_id) else {
            return Err(TokenError::Invalid);
        };
        let signature = Signature::from_slice(signature).map_err(|_| TokenError::Invalid)?;
        key.verifying
            .verify_strict(&signed_bytes(body), &signature)
            .map_err(|_| TokenError::Invalid)?;
        let field = |i: usize| {
            u64::from_be_bytes(body[9 + 8 * i..17 + 8 * i].try_into().unwrap_or_default())
        };
        let claims = AccessClaims {
            user: UserId(field(0)),
            session: SessionId(field(1)),
            expires: field(3),
        };
        if now_ms >= claims.expires {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn signed_bytes(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ACCESS_LABEL.len() + body.len());
    bytes.extend_from_slice(ACCESS_LABEL);
    bytes.extend_from_slice(body);
    bytes
}

/// A refresh token: `version (1) = 1 | session (8) | generation (4) | secret (32)`. Only the
/// SHA-256 of the current secret is stored; secrets are derived by [`TokenKeys::refresh_token`],
/// so an older generation is recognised as genuine (reuse) only when its secret is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The login session.
    pub session: SessionId,
    /// Which rotation this is.
    pub generation: u32,
    /// The random secret.
    pub secret: [u8; 32],
}

impl RefreshToken {
    /// The wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![1];
        bytes.extend_from_slice(&self.session.0.to_be_bytes());
        bytes.extend_from_slice(&self.generation.to_be_bytes());
        bytes.extend_from_slice(&self.secret);
        bytes
    }

    /// Parses the wire bytes.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 45 || bytes[0] != 1 {
            return None;
        }
        Some(Self {
            session: SessionId(u64::from_be_bytes(bytes[1..9].try_into().ok()?)),
            generation: u32::from_be_bytes(bytes[9..13].try_into().ok()?),
            secret: bytes[13..45].try_into().ok()?,
        })
    }

    /// SHA-256 of the secret, as stored.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.secret)
    }
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Constant-time equality for secrets.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fuzzing oracle for the token parsers (the `token` target in fuzz/ and the regression replay
/// in `server/tests/fuzz_regressions.rs`). The first byte picks what `data` is:
///
/// - even: an access token as a client might send it: verifying it never panics, and it
///   verifies only if it is, byte for byte, a token this key issued (signatures cannot be
///   forged or bent: a changed byte must fail);
/// - odd: a refresh token: parsing never panics, and what parses writes back to the same
///   bytes.
pub fn fuzz_tokens(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    if selector % 2 == 0 {
        let keys = TokenKeys::new(SigningKey::from_bytes(&[7; 32]));
        let (issued, _) = keys.issue(UserId(3), SessionId(4), 1_000, 60_000);
        // Flip the bytes `rest` names in an issued token: only an unchanged token verifies.
        let mut token = issued.clone();
        for pair in rest.chunks(2) {
            if let [index, mask] = pair {
                if let Some(byte) = token.get_mut(usize::from(*index)) {
                    *byte ^= mask;
                }
            }
        }
        let verified = keys.verify(&token, 2_000);
        assert_eq!(verified.is_ok(), token == issued, "a changed token verified");
        // And arbitrary bytes never panic.
        let _ = keys.verify(rest, 2_000);
    } else if let Some(parsed) = RefreshToken::parse(rest) {
        assert_eq!(parsed.to_bytes(), rest, "refresh token round trip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_verify_and_expire_and_reject_tampering() {
        let keys = TokenKeys::new(SigningKey::from_bytes(&[7; 32]));
        let (token, expires) = keys.issue(UserId(5), SessionId(9), 1000, 500);
        assert_eq!(expires, 1500);
        let claims = keys.verify(&token, 1499).unwrap();
        assert_eq!((claims.user, claims.session), (UserId(5), SessionId(9)));
        assert_eq!(keys.verify(&token, 1500), Err(TokenError::Expired));
        for i in 0..token.len() {
            let mut bad = token.clone();
            bad[i] ^= 1;
            assert!(keys.verify(&bad, 1000).is_err(), "flipped byte {i} still verified");
        }
        let other = TokenKeys::new(SigningKey::from_bytes(&[8; 32]));
        assert_eq!(other.verify(&token, 1000), Err(TokenError::Invalid));
        assert_eq!(keys.verify(&token[..10], 1000), Err(TokenError::Invalid));
    }

    #[test]
    fn a_rotated_key_still_verifies_and_proves_what_it_signed_and_derived() {
        let old = TokenKeys::new(SigningKey::from_bytes(&[7; 32]));
        let (token, _) = old.issue(UserId(5), SessionId(9), 1000, 500);
        let refresh = old.refresh_token(SessionId(9), 1000, 3);
        let new = SigningKey::from_bytes(&[8; 32]);
        let rotated = TokenKeys::rotated(new.clone(), vec![SigningKey::from_bytes(&[7; 32])]);
        assert_eq!(rotated.verify(&token, 1200).unwrap().user, UserId(5));
        let (fresh, _) = rotated.issue(UserId(5), SessionId(9), 1000, 500);
        assert_ne!(fresh[1..9], token[1..9], "new tokens name the new key");
        assert!(old.verify(&fresh, 1200).is_err(), "the old key does not verify the new");
        let derived = rotated.refresh_tokens(SessionId(9), 1000, 3);
        assert_eq!(derived.len(), 2);
        assert!(derived.contains(&refresh), "the old key's refresh token is recognised");
        assert_ne!(rotated.refresh_token(SessionId(9), 1000, 3), refresh, "new ones differ");
        let forgotten = TokenKeys::new(new);
        assert_eq!(forgotten.verify(&token, 1200), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_round_trip() {
        let keys = TokenKeys::new(SigningKey::from_bytes(&[7; 32]));
        let token = keys.refresh_token(SessionId(3), 1000, 4);
        assert_eq!(RefreshToken::parse(&token.to_bytes()), Some(token.clone()));
        assert_eq!(RefreshToken::parse(&token.to_bytes()[1..]), None);
    }

    #[test]
    fn refresh_secrets_are_derived_per_session_creation_and_generation_and_key() {
        let keys = TokenKeys::new(SigningKey::from_bytes(&[7; 32]));
        let token = keys.refresh_token(SessionId(3), 1000, 4);
        assert_eq!(keys.refresh_token(SessionId(3), 1000, 4), token, "deterministic");
        for other in [
            keys.refresh_token(SessionId(4), 1000, 4),
            keys.refresh_token(SessionId(3), 1001, 4),
            keys.refresh_token(SessionId(3), 1000, 5),
            TokenKeys::new(SigningKey::from_bytes(&[8; 32])).refresh_token(SessionId(3), 1000, 4),
        ] {
            assert_ne!(other.secret, token.secret);
        }
    }

    #[tokio::test]
    async fn passwords_verify_rehash_and_hide_unknown_users() {
        let weak = Passwords::new(64, 1, 1).unwrap();
        let strong = Passwords::new(128, 1, 1).unwrap();
        let hash = weak.hash("correct horse".into()).await.unwrap();
        assert_eq!(weak.verify("correct horse".into(), Some(hash.clone())).await, Verified::Yes);
        assert_eq!(weak.verify("wrong".into(), Some(hash.clone())).await, Verified::No);
        assert_eq!(weak.verify("correct horse".into(), None).await, Verified::No);
        let Verified::YesRehash(rehashed) = strong.verify("correct horse".into(), Some(hash)).await
        else {
            panic!("weaker parameters must be rehashed")
        };
        assert!(rehashed.contains("m=128"));
    }
}
