//! Contacts (spec §6.8): friend requests, friends and blocks. A relationship is seen from one
//! side: Ada's view of Bob may be `Friend` while Bob's is `Friend` too, or `Outgoing` on one
//! side and `Incoming` on the other, or `Blocked` on one side and nothing on the other (a
//! block is never shown to the blocked user).

use serde::{Deserialize, Serialize};

use crate::bounded::{List, Text};
use crate::ids::UserId;
use crate::message::{max, wire};

/// How the caller stands with another user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ContactState {
    /// Friends, both ways.
    Friend,
    /// The caller asked; the other has not answered.
    Outgoing,
    /// The other asked the caller.
    Incoming,
    /// The caller blocks them: they cannot open a direct room with or write to the caller, nor
    /// see the caller's presence.
    Blocked,
}

/// What CONTACT_SET does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ContactAction {
    /// Ask to be friends (accepts at once if they asked first).
    Request,
    /// Accept their request.
    Accept,
    /// Decline their request, withdraw one's own, or end a friendship.
    Remove,
    /// Block them (ends any friendship or request).
    Block,
    /// Lift one's block.
    Unblock,
}

/// One contact, as the caller sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ContactEntry {
    /// Who.
    pub user: UserId,
    /// Their name.
    pub username: Text<{ max::USERNAME }>,
    /// How the caller stands with them.
    pub state: ContactState,
}

wire! {
    /// CONTACT_SET: change how the caller stands with a user; answered with DONE.
    pub struct ContactSet {
        /// The other user, by name.
        pub username: Text<{ max::USERNAME }>,
        /// What to do.
        pub action: ContactAction,
    }

    /// CONTACT_LIST: the caller's contacts; answered with CONTACT_LIST_PAGE.
    pub struct ContactList {}

    /// CONTACT_LIST_PAGE: every contact of the caller.
    pub struct ContactListPage {
        /// The contacts, by user id.
        pub contacts: List<ContactEntry, { max::CONTACTS }>,
    }

    /// CONTACT: a relationship of the receiver changed (ephemeral).
    pub struct Contact {
        /// Who.
        pub user: UserId,
        /// Their name.
        pub username: Text<{ max::USERNAME }>,
        /// The receiver's new standing with them; `None` when nothing is left.
        pub state: Option<ContactState>,
    }
}
