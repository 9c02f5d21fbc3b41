//! Account and login-session requests (spec §6.2). All go on request streams; REGISTER, LOGIN,
//! KEY_LOGIN and REFRESH are the only requests allowed before the connection is authenticated.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bounded::{Blob, List, Text};
use crate::ids::{SessionId, Timestamp, UserId};
use crate::message::{max, wire};

wire! {
    /// REGISTER: create an account and log in.
    pub struct Register {
        /// 1–32 bytes of `[a-z0-9_.-]`, unique (checked by the server).
        pub username: Text<{ max::USERNAME }>,
        /// The password; the server enforces its own minimum length.
        pub password: Text<{ max::PASSWORD }>,
        /// A name for this login session ("laptop", "bot"), shown in SESSION_LIST.
        pub device_name: Text<{ max::DEVICE_NAME }>,
    }

    /// LOGIN: password login.
    pub struct Login {
        /// The account.
        pub username: Text<{ max::USERNAME }>,
        /// Its password.
        pub password: Text<{ max::PASSWORD }>,
        /// As in REGISTER.
        pub device_name: Text<{ max::DEVICE_NAME }>,
    }

    /// KEY_LOGIN: start an ed25519 key login; the server answers KEY_CHALLENGE on the stream.
    pub struct KeyLogin {
        /// The account.
        pub username: Text<{ max::USERNAME }>,
        /// An ed25519 public key registered with KEY_ADD.
        pub public_key: [u8; 32],
        /// As in REGISTER.
        pub device_name: Text<{ max::DEVICE_NAME }>,
    }

    /// KEY_CHALLENGE: the nonce the client must sign (spec §6.2.3).
    pub struct KeyChallenge {
        /// 32 random bytes, used once.
        pub nonce: [u8; 32],
    }

    /// KEY_PROOF: the signature over the challenge, on the same stream (after KEY_LOGIN or
    /// KEY_ADD).
    pub struct KeyProof {
        /// ed25519 signature of `"banter/1 key-login\0" ‖ nonce ‖ username` (KEY_LOGIN) or
        /// `"banter/1 key-add\0" ‖ nonce ‖ username` (KEY_ADD).
        pub signature: Signature,
    }

    /// AUTH_OK: tokens for a new or refreshed login session.
    pub struct AuthOk {
        /// The account.
        pub user: UserId,
        /// The login session these tokens belong to.
        pub session: SessionId,
        /// Short-lived bearer token for HELLO / RESUME (spec §6.2.5).
        pub access_token: Blob<{ max::TOKEN }>,
        /// When the access token expires.
        pub access_expires: Timestamp,
        /// Long-lived, single-use token for REFRESH.
        pub refresh_token: Blob<{ max::TOKEN }>,
    }

    /// REFRESH: trade a refresh token for new tokens (the old one is spent).
    pub struct Refresh {
        /// The refresh token from the last AUTH_OK.
        pub refresh_token: Blob<{ max::TOKEN }>,
    }

    /// LOGOUT: end this connection's login session (its tokens stop working).
    pub struct Logout {}

    /// SESSION_LIST: the caller's login sessions.
    pub struct SessionList {}

    /// SESSION_LIST_PAGE: the answer to SESSION_LIST.
    pub struct SessionListPage {
        /// The sessions, newest first.
        pub sessions: List<SessionInfo, { max::SESSIONS }>,
    }

    /// One login session as listed.
    pub struct SessionInfo {
        /// Its id, for SESSION_REVOKE.
        pub session: SessionId,
        /// The device name given at login.
        pub device_name: Text<{ max::DEVICE_NAME }>,
        /// When the login happened.
        pub created: Timestamp,
        /// When a connection last authenticated with it.
        pub last_seen: Timestamp,
        /// True for the session of the connection that asked.
        pub current: bool,
    }

    /// SESSION_REVOKE: end one of the caller's login sessions and close its connections.
    pub struct SessionRevoke {
        /// The session to end.
        pub session: SessionId,
    }

    /// KEY_ADD: register an ed25519 public key for KEY_LOGIN to the caller's account. The
    /// server answers KEY_CHALLENGE on the stream; the client proves it holds the key with
    /// KEY_PROOF; then DONE.
    pub struct KeyAdd {
        /// The public key.
        pub public_key: [u8; 32],
    }

    /// KEY_LIST: the keys registered to the caller's account.
    pub struct KeyList {}

    /// KEY_LIST_PAGE: the answer to KEY_LIST.
    pub struct KeyListPage {
        /// The keys, oldest first.
        pub keys: List<KeyInfo, { max::KEYS }>,
    }

    /// One registered key as listed.
    pub struct KeyInfo {
        /// The ed25519 public key.
        pub public_key: [u8; 32],
        /// When it was added.
        pub added: Timestamp,
    }

    /// KEY_REMOVE: unregister one of the caller's keys (it stops logging in at once).
    pub struct KeyRemove {
        /// The public key.
        pub public_key: [u8; 32],
    }

    /// DONE: a request that returns nothing succeeded.
    pub struct Done {}
}

/// An ed25519 signature: 64 raw bytes on the wire (no length prefix).
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

// serde derives arrays only up to 32 elements; 64 is written as a tuple, which postcard
// encodes as the raw bytes, exactly like the 32-byte arrays.
impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SignatureVisitor;
        impl<'de> Visitor<'de> for SignatureVisitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut bytes = [0u8; 64];
                for (i, byte) in bytes.iter_mut().enumerate() {
                    *byte =
                        seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(bytes))
            }
        }
        deserializer.deserialize_tuple(64, SignatureVisitor)
    }
}

/// The bytes a KEY_PROOF signs: a domain-separation label, the nonce and the username, so a
/// signature is useless for any other purpose, account or challenge (spec §6.2.3).
pub fn key_login_signed_bytes(nonce: &[u8; 32], username: &str) -> Vec<u8> {
    signed_bytes(b"banter/1 key-login\0", nonce, username)
}

/// The bytes a KEY_PROOF after KEY_ADD signs: as for KEY_LOGIN under its own label, so that a
/// login proof can never register a key and a registration proof can never log in.
pub fn key_add_signed_bytes(nonce: &[u8; 32], username: &str) -> Vec<u8> {
    signed_bytes(b"banter/1 key-add\0", nonce, username)
}

fn signed_bytes(label: &[u8], nonce: &[u8; 32], username: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(label.len() + 32 + username.len());
    bytes.extend_from_slice(label);
    bytes.extend_from_slice(nonce);
    bytes.extend_from_slice(username.as_bytes());
    bytes
}
