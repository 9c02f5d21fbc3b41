//! Identifiers and timestamps. Newtypes so that a room id is never passed where a user id
//! belongs; on the wire each is its inner integer (postcard varint) or fixed byte array.

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub struct $name(pub $inner);
    };
}

id!(
    /// A user account, assigned by the server; never reused.
    UserId(u64)
);
id!(
    /// A room (channel or direct-message room), assigned by the server; never reused.
    RoomId(u64)
);
id!(
    /// A login session: one successful login on one device, with its refresh-token chain.
    /// Listed and revoked with SESSION_LIST / SESSION_REVOKE.
    SessionId(u64)
);
id!(
    /// The identity of a connection's events stream, for RESUME (spec §7.3). Random, 128 bits,
    /// unguessable; it names the replay buffer and is useless without the access token.
    ResumeId([u8; 16])
);
id!(
    /// A voice source: the server-assigned id that stamps a speaker's datagrams (spec §8).
    SourceId(u32)
);
id!(
    /// Milliseconds since the Unix epoch, UTC, as the server's clock read them. Display only:
    /// ordering always uses sequence numbers (spec §7.5).
    Timestamp(u64)
);
