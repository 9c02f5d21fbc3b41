//! Invites, contacts and moderation through the C ABI: what a bot or a GUI needs to run a
//! community besides chatting. Users are named by id (events carry sender ids) except where
//! the protocol takes a name (contacts, adding someone to a room).

use std::ffi::c_char;

use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{
    Ban, ContactAction, ContactList, ContactSet, ContactState, InviteCreate, InviteUse, Kick,
    Message, Role, RoleSet, RoomInvite, Unban, VoiceAction, VoiceModerate,
};

use crate::client::{banter_client, client_ref, text};
use crate::status::banter_status::*;
use crate::status::*;

/// Bytes a buffer for an invite code needs, its NUL included.
pub const BANTER_INVITE_CODE_CAPACITY: usize = 33;
/// Bytes of a contact's `username` buffer, its NUL included.
pub const BANTER_USERNAME_CAPACITY: usize = 33;

// (Literals, for cbindgen; held to the protocol's limits here.)
const _: () =
    assert!(BANTER_INVITE_CODE_CAPACITY == banter_protocol::message::max::INVITE_CODE + 1);
const _: () = assert!(BANTER_USERNAME_CAPACITY == banter_protocol::message::max::USERNAME + 1);

/// What banter_client_contact() does (passed as a `uint32_t`: a value outside the enum is
/// BANTER_INVALID_ARGUMENT, never undefined behaviour).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum banter_contact_action {
    /// Ask to be friends (or accept their request).
    BANTER_CONTACT_REQUEST = 0,
    /// Decline or withdraw a request, or end a friendship.
    BANTER_CONTACT_REMOVE = 2,
    /// Block them: no direct messages from them, no presence to them.
    BANTER_CONTACT_BLOCK = 3,
    /// Lift a block.
    BANTER_CONTACT_UNBLOCK = 4,
}

/// How the caller stands with a contact.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum banter_contact_state {
    BANTER_CONTACT_FRIEND = 0,
    /// The caller asked; no answer yet.
    BANTER_CONTACT_OUTGOING = 1,
    /// They asked the caller.
    BANTER_CONTACT_INCOMING = 2,
    BANTER_CONTACT_BLOCKED = 3,
}

/// One contact, as banter_client_contacts() lists them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct banter_contact {
    pub user: u64,
    /// NUL-terminated UTF-8.
    pub username: [c_char; BANTER_USERNAME_CAPACITY],
    pub state: banter_contact_state,
}

/// What a moderator does in a room's voice (passed to banter_client_voice_moderate() as a
/// `uint32_t`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum banter_voice_action {
    BANTER_VOICE_MUTE = 0,
    BANTER_VOICE_UNMUTE = 1,
    /// Let a listener speak on a stage.
    BANTER_VOICE_GRANT_SPEAK = 2,
    /// Make a speaker a listener on a stage.
    BANTER_VOICE_REVOKE_SPEAK = 3,
}

/// Roles for banter_client_set_role().
pub const BANTER_ROLE_MEMBER: u8 = 0;
pub const BANTER_ROLE_MODERATOR: u8 = 1;
pub const BANTER_ROLE_ADMIN: u8 = 2;
/// Hands the room over: the caller steps down.
pub const BANTER_ROLE_OWNER: u8 = 3;

/// Copies `value` and a NUL into `out` of `capacity` bytes.
///
/// # Safety
/// `out` has room for `capacity` bytes.
unsafe fn write_c_string(out: *mut c_char, capacity: usize, value: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
    }
    if value.len() >= capacity {
        return Err(Failure::new(BANTER_INVALID_ARGUMENT, "the buffer is too small"));
    }
    // SAFETY: non-NULL, value.len() + 1 <= capacity bytes, as the caller guarantees.
    unsafe {
        std::ptr::copy_nonoverlapping(value.as_ptr().cast::<c_char>(), out, value.len());
        *out.add(value.len()) = 0;
    }
    Ok(())
}

/// Makes an invite code for `room` (moderators; a private room's way in): `max_uses` 0 for
/// any number, `expires_in_s` 0 for never. The code goes into `code_out`, NUL-terminated;
/// it needs BANTER_INVITE_CODE_CAPACITY bytes.
///
/// # Safety
/// `client` is a live client; `code_out` has room for `capacity` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_invite_create(
    client: *const banter_client,
    room: u64,
    max_uses: u32,
    expires_in_s: u64,
    code_out: *mut c_char,
    capacity: usize,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // Checked before the invite is made, so a failure leaves nothing behind.
        if code_out.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        if capacity < BANTER_INVITE_CODE_CAPACITY {
            return Err(Failure::new(BANTER_INVALID_ARGUMENT, "the buffer is too small"));
        }
        let request = InviteCreate {
            room: RoomId(room),
            max_uses: (max_uses > 0).then_some(max_uses),
            expires_in_s: (expires_in_s > 0).then_some(expires_in_s),
        };
        match client.request_one(request)? {
            // SAFETY: forwarded caller contract.
            Message::Invite(invite) => unsafe { write_c_string(code_out, capacity, &invite.code) },
            _ => Err(Failure::new(BANTER_INTERNAL, "unexpected answer")),
        }
    })
}

/// Joins the room of an invite code; its id in `*room_out`.
///
/// # Safety
/// `client` is a live client; `code` is (pointer, length); `room_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_invite_use(
    client: *const banter_client,
    code: *const c_char,
    code_len: usize,
    room_out: *mut u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let code = unsafe { str_arg(code, code_len) }?;
        if room_out.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        match client.request_one(InviteUse { code: text(code)? })? {
            // SAFETY: forwarded caller contract.
            Message::RoomInfo(info) => unsafe { write_out(room_out, info.room.room.0) },
            _ => Err(Failure::new(BANTER_INTERNAL, "unexpected answer")),
        }
    })
}

/// Adds the user called `username` to `room` (moderators, or anyone for a friend in a public
/// room).
///
/// # Safety
/// `client` is a live client; `username` is (pointer, length).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_room_add(
    client: *const banter_client,
    room: u64,
    username: *const c_char,
    username_len: usize,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let username = unsafe { str_arg(username, username_len) }?;
        client.request_one(RoomInvite { room: RoomId(room), username: text(username)? })?;
        Ok(())
    })
}

/// Changes how the caller stands with the user called `username`; `action` is a
/// banter_contact_action value.
///
/// # Safety
/// `client` is a live client; `username` is (pointer, length).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_contact(
    client: *const banter_client,
    username: *const c_char,
    username_len: usize,
    action: u32,
) -> banter_status {
    use banter_contact_action::*;
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let username = unsafe { str_arg(username, username_len) }?;
        let action = match action {
            a if a == BANTER_CONTACT_REQUEST as u32 => ContactAction::Request,
            a if a == BANTER_CONTACT_REMOVE as u32 => ContactAction::Remove,
            a if a == BANTER_CONTACT_BLOCK as u32 => ContactAction::Block,
            a if a == BANTER_CONTACT_UNBLOCK as u32 => ContactAction::Unblock,
            _ => return Err(Failure::new(BANTER_INVALID_ARGUMENT, "unknown contact action")),
        };
        client.request_one(ContactSet { username: text(username)?, action })?;
        Ok(())
    })
}

/// The caller's contacts (friends, requests both ways, blocks): up to `capacity` into `out`,
/// and how many there are into `*count_out` (more than `capacity` means `out` was too small).
///
/// # Safety
/// `client` is a live client; `out` has room for `capacity` contacts (NULL if 0);
/// `count_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_contacts(
    client: *const banter_client,
    out: *mut banter_contact,
    capacity: usize,
    count_out: *mut usize,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        if count_out.is_null() || (out.is_null() && capacity > 0) {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        let Message::ContactListPage(page) = client.request_one(ContactList {})? else {
            return Err(Failure::new(BANTER_INTERNAL, "unexpected answer"));
        };
        for (i, contact) in page.contacts.iter().take(capacity).enumerate() {
            let mut entry = banter_contact {
                user: contact.user.0,
                username: [0; BANTER_USERNAME_CAPACITY],
                state: match contact.state {
                    ContactState::Friend => banter_contact_state::BANTER_CONTACT_FRIEND,
                    ContactState::Outgoing => banter_contact_state::BANTER_CONTACT_OUTGOING,
                    ContactState::Incoming => banter_contact_state::BANTER_CONTACT_INCOMING,
                    ContactState::Blocked => banter_contact_state::BANTER_CONTACT_BLOCKED,
                },
            };
            let name = contact.username.as_bytes();
            let fits = name.len().min(BANTER_USERNAME_CAPACITY - 1);
            for (slot, byte) in entry.username.iter_mut().zip(&name[..fits]) {
                *slot = *byte as c_char;
            }
            // SAFETY: i < capacity, and the caller guarantees room for capacity contacts.
            unsafe { out.add(i).write(entry) };
        }
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { write_out(count_out, page.contacts.len()) }
    })
}

/// Removes `user` from `room` (moderators); `reason` may be empty.
///
/// # Safety
/// `client` is a live client; `reason` is (pointer, length).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_kick(
    client: *const banter_client,
    room: u64,
    user: u64,
    reason: *const c_char,
    reason_len: usize,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let reason = unsafe { str_arg(reason, reason_len) }?;
        let kick = Kick { room: RoomId(room), user: UserId(user), reason: text(reason)? };
        client.request_one(kick)?;
        Ok(())
    })
}

/// Removes `user` from `room` and keeps them out (moderators): for `seconds`, or until
/// lifted when 0.
///
/// # Safety
/// `client` is a live client; `reason` is (pointer, length).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_ban(
    client: *const banter_client,
    room: u64,
    user: u64,
    reason: *const c_char,
    reason_len: usize,
    seconds: u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let reason = unsafe { str_arg(reason, reason_len) }?;
        let until = (seconds > 0).then(|| {
            let now = ::banter_client::wall_clock().0;
            Timestamp(now.saturating_add(seconds.saturating_mul(1000)))
        });
        let ban = Ban { room: RoomId(room), user: UserId(user), reason: text(reason)?, until };
        client.request_one(ban)?;
        Ok(())
    })
}

/// Lifts a ban (moderators).
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_unban(
    client: *const banter_client,
    room: u64,
    user: u64,
) -> banter_status {
    guard(|| {
        client_ref(client)?.request_one(Unban { room: RoomId(room), user: UserId(user) })?;
        Ok(())
    })
}

/// Mutes or unmutes `user` in `room`'s voice, or grants or revokes speech on a stage
/// (moderators; the user must be in the voice); `action` is a banter_voice_action value.
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_voice_moderate(
    client: *const banter_client,
    room: u64,
    user: u64,
    action: u32,
) -> banter_status {
    use banter_voice_action::*;
    guard(|| {
        let action = match action {
            a if a == BANTER_VOICE_MUTE as u32 => VoiceAction::ServerMute,
            a if a == BANTER_VOICE_UNMUTE as u32 => VoiceAction::ServerUnmute,
            a if a == BANTER_VOICE_GRANT_SPEAK as u32 => VoiceAction::GrantSpeak,
            a if a == BANTER_VOICE_REVOKE_SPEAK as u32 => VoiceAction::RevokeSpeak,
            _ => return Err(Failure::new(BANTER_INVALID_ARGUMENT, "unknown voice action")),
        };
        let moderate = VoiceModerate { room: RoomId(room), user: UserId(user), action };
        client_ref(client)?.request_one(moderate)?;
        Ok(())
    })
}

/// Gives `user` a role in `room` (BANTER_ROLE_*; room 0: the server-wide role, for admins).
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_set_role(
    client: *const banter_client,
    room: u64,
    user: u64,
    role: u8,
) -> banter_status {
    guard(|| {
        if role > BANTER_ROLE_OWNER {
            return Err(Failure::new(BANTER_INVALID_ARGUMENT, "no such role"));
        }
        let room = (room > 0).then_some(RoomId(room));
        client_ref(client)?.request_one(RoleSet { room, user: UserId(user), role: Role(role) })?;
        Ok(())
    })
}
