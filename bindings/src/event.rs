//! `banter_event`: one thing that happened, as plain values and NUL-terminated strings.

use std::collections::HashMap;
use std::ffi::{CString, c_char};

use ::banter_client::{ConnectionState, Update};
use banter_protocol::ids::UserId;
use banter_protocol::message::{
    HistoryMessage, MembershipChange, Message, PresenceStatus, TypingState,
};

use crate::status::guard_value;

/// What an event is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum banter_event_type {
    /// A message: room, seq, sender, sender_name, text; target = the message replied to (or 0).
    BANTER_EVENT_MESSAGE = 1,
    /// An edit: target = the message, text = its new text.
    BANTER_EVENT_EDIT = 2,
    /// A deletion: target = the message.
    BANTER_EVENT_DELETE = 3,
    /// A reaction: target = the message, text = the emoji, value = 1 added / 0 removed.
    BANTER_EVENT_REACTION = 4,
    /// A membership change: target = the user, text = their name, value = 0 joined, 1 left,
    /// 2 kicked, 3 banned, 4 unbanned.
    BANTER_EVENT_MEMBERSHIP = 5,
    /// A topic change: text = the topic.
    BANTER_EVENT_TOPIC = 6,
    /// Presence: sender = the user, value = 0 online, 1 away, 2 dnd, 4 offline; text = status.
    BANTER_EVENT_PRESENCE = 7,
    /// Typing: room, sender; value = 1 typing, 0 stopped.
    BANTER_EVENT_TYPING = 8,
    /// A read marker moved: room, sender = whose, seq = up to where.
    BANTER_EVENT_READ_MARKER = 9,
    /// The connection is up (again). Presence and typing known from before are stale: the
    /// PRESENCE events that follow name everyone online; anyone not named is offline.
    BANTER_EVENT_CONNECTED = 10,
    /// The connection is down; text = why. value = 1 when the client gave up for good.
    BANTER_EVENT_DISCONNECTED = 11,
    /// A moderator changed the room's settings: value = slow mode in seconds (0 off),
    /// target = bit 0 locked, bit 1 anonymous posts allowed; text describes it.
    BANTER_EVENT_ROOM_SETTINGS = 12,
    /// A file was shared: seq names it for download, text = its name, value = its size.
    BANTER_EVENT_FILE = 13,
}

use banter_event_type::*;

/// One event. Owned by you when returned by banter_client_poll_event() (free it with
/// banter_event_free()); borrowed when passed to a callback or taken from a history page.
#[derive(Debug)]
pub struct banter_event {
    kind: banter_event_type,
    room: u64,
    seq: u64,
    sender: u64,
    target: u64,
    value: u64,
    ts: u64,
    text: CString,
    sender_name: CString,
}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{fffd}")).unwrap_or_default()
}

impl banter_event {
    fn new(kind: banter_event_type) -> Self {
        Self {
            kind,
            room: 0,
            seq: 0,
            sender: 0,
            target: 0,
            value: 0,
            ts: 0,
            text: CString::default(),
            sender_name: CString::default(),
        }
    }

    /// The event for a client update, if it maps to one.
    pub(crate) fn from_update(update: &Update, names: &HashMap<UserId, String>) -> Option<Self> {
        match update {
            Update::Room(message) | Update::Ephemeral(message) => {
                Self::from_message(message, names)
            }
            Update::Connection(ConnectionState::Connected) => {
                Some(Self::new(BANTER_EVENT_CONNECTED))
            }
            Update::Connection(
                ConnectionState::Connecting { .. } | ConnectionState::Waiting { .. },
            ) => {
                let mut event = Self::new(BANTER_EVENT_DISCONNECTED);
                event.text = c_string("connection lost; reconnecting");
                Some(event)
            }
            Update::Connection(ConnectionState::Stopped(reason)) => {
                let mut event = Self::new(BANTER_EVENT_DISCONNECTED);
                event.text = c_string(reason);
                event.value = 1;
                Some(event)
            }
            _ => None,
        }
    }

    /// The event for a log entry, soft-state frame or history message.
    pub(crate) fn from_message(message: &Message, names: &HashMap<UserId, String>) -> Option<Self> {
        // Sender 0 is an anonymous post's (spec §6.4.1).
        let name = |user: UserId| {
            c_string(
                names.get(&user).map_or(if user.0 == 0 { "anonymous" } else { "" }, String::as_str),
            )
        };
        let mut event;
        let meta = match message {
            Message::Posted(m) => {
                event = Self::new(BANTER_EVENT_MESSAGE);
                event.text = c_string(&m.text);
                event.target = m.reply_to.unwrap_or(0);
                &m.meta
            }
            Message::HistoryMessage(HistoryMessage { meta, text, reply_to, .. }) => {
                event = Self::new(BANTER_EVENT_MESSAGE);
                event.text = c_string(text);
                event.target = reply_to.unwrap_or(0);
                meta
            }
            Message::Edited(m) => {
                event = Self::new(BANTER_EVENT_EDIT);
                event.text = c_string(&m.text);
                event.target = m.target;
                &m.meta
            }
            Message::Deleted(m) => {
                event = Self::new(BANTER_EVENT_DELETE);
                event.target = m.target;
                &m.meta
            }
            Message::Reacted(m) => {
                event = Self::new(BANTER_EVENT_REACTION);
                event.text = c_string(&m.emoji);
                event.target = m.target;
                event.value = u64::from(m.on);
                &m.meta
            }
            Message::Membership(m) => {
                event = Self::new(BANTER_EVENT_MEMBERSHIP);
                event.text = c_string(&m.username);
                event.target = m.user.0;
                event.value = match m.change {
                    MembershipChange::Joined => 0,
                    MembershipChange::Left => 1,
                    MembershipChange::Kicked => 2,
                    MembershipChange::Banned => 3,
                    MembershipChange::Unbanned => 4,
                };
                &m.meta
            }
            Message::TopicChanged(m) => {
                event = Self::new(BANTER_EVENT_TOPIC);
                event.text = c_string(&m.topic);
                &m.meta
            }
            Message::FileShared(m) => {
                event = Self::new(BANTER_EVENT_FILE);
                event.text = c_string(&m.name);
                event.value = m.size;
                &m.meta
            }
            Message::RoomConfigured(m) => {
                event = Self::new(BANTER_EVENT_ROOM_SETTINGS);
                event.value = u64::from(m.slow_mode_s);
                event.target = u64::from(m.locked) | u64::from(m.anonymous) << 1;
                event.text = c_string(&::banter_client::room_settings_text(m));
                &m.meta
            }
            Message::Presence(p) => {
                let mut event = Self::new(BANTER_EVENT_PRESENCE);
                event.sender = p.user.0;
                event.sender_name = name(p.user);
                event.text = c_string(&p.text);
                event.value = match p.status {
                    PresenceStatus::Online => 0,
                    PresenceStatus::Away => 1,
                    PresenceStatus::Dnd => 2,
                    PresenceStatus::Invisible | PresenceStatus::Offline => 4,
                };
                return Some(event);
            }
            Message::Typing(t) => {
                let mut event = Self::new(BANTER_EVENT_TYPING);
                event.room = t.room.0;
                event.sender = t.user.0;
                event.sender_name = name(t.user);
                event.value = u64::from(t.state != TypingState::Stopped);
                return Some(event);
            }
            Message::ReadUpTo(r) => {
                let mut event = Self::new(BANTER_EVENT_READ_MARKER);
                event.room = r.room.0;
                event.sender = r.user.0;
                event.sender_name = name(r.user);
                event.seq = r.seq;
                return Some(event);
            }
            _ => return None,
        };
        event.room = meta.room.0;
        event.seq = meta.seq;
        event.sender = meta.sender.0;
        event.ts = meta.ts.0;
        event.sender_name = name(meta.sender);
        Some(event)
    }
}

fn field<T: Copy>(
    event: *const banter_event,
    fallback: T,
    get: impl FnOnce(&banter_event) -> T,
) -> T {
    // SAFETY: the accessors' contract: NULL or a live event.
    match unsafe { event.as_ref() } {
        Some(event) => guard_value(fallback, || get(event)),
        None => fallback,
    }
}

/// The event's type (a banter_event_type value); 0 for NULL.
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_get_type(event: *const banter_event) -> u32 {
    field(event, 0, |e| e.kind as u32)
}

/// The room (0 when the event has none).
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_room(event: *const banter_event) -> u64 {
    field(event, 0, |e| e.room)
}

/// The room_seq of the entry (or the marker position for READ_MARKER).
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_seq(event: *const banter_event) -> u64 {
    field(event, 0, |e| e.seq)
}

/// The user who caused the event.
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_sender(event: *const banter_event) -> u64 {
    field(event, 0, |e| e.sender)
}

/// The message (or user) the event refers to; see banter_event_type for each kind.
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_target(event: *const banter_event) -> u64 {
    field(event, 0, |e| e.target)
}

/// The kind-specific value; see banter_event_type.
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_value(event: *const banter_event) -> u64 {
    field(event, 0, |e| e.value)
}

/// Server time of a log entry, ms since the Unix epoch.
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_timestamp(event: *const banter_event) -> u64 {
    field(event, 0, |e| e.ts)
}

/// The event's text (message, emoji, topic, name, reason), NUL-terminated UTF-8 owned by the
/// event; "" for none and for NULL. Other users' text may contain anything: escape it before
/// printing to a terminal.
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_text(event: *const banter_event) -> *const c_char {
    field(event, c"".as_ptr(), |e| e.text.as_ptr())
}

/// The sender's name when known, else "". Owned by the event.
///
/// # Safety
/// `event` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_sender_name(event: *const banter_event) -> *const c_char {
    field(event, c"".as_ptr(), |e| e.sender_name.as_ptr())
}

/// Frees an event returned by banter_client_poll_event(). NULL is ignored.
///
/// # Safety
/// `event` is NULL or an event you own, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_event_free(event: *mut banter_event) {
    if !event.is_null() {
        // SAFETY: owned events come from Box::into_raw in banter_client_poll_event.
        drop(unsafe { Box::from_raw(event) });
    }
}

#[cfg(test)]
mod tests {
    use banter_protocol::bounded::Text;
    use banter_protocol::ids::{RoomId, Timestamp};
    use banter_protocol::message::{EventMeta, FileShared, Posted, RoomConfigured};

    use super::*;

    fn meta(sender: u64) -> EventMeta {
        EventMeta { room: RoomId(7), seq: 42, ts: Timestamp(1), sender: UserId(sender) }
    }

    #[test]
    fn settings_files_and_anonymous_senders_become_c_events() {
        let names = HashMap::from([(UserId(3), "ada".to_owned())]);
        let settings = RoomConfigured {
            event_seq: 1,
            meta: meta(3),
            slow_mode_s: 30,
            locked: true,
            anonymous: true,
            stage: false,
        };
        let event = banter_event::from_message(&settings.into(), &names).unwrap();
        assert_eq!((event.kind, event.value, event.target), (BANTER_EVENT_ROOM_SETTINGS, 30, 0b11));
        assert_eq!(event.text.to_str().unwrap(), "slow mode 30 s, locked, anonymous posts allowed");

        let file = FileShared {
            event_seq: 2,
            meta: meta(3),
            name: Text::new("notes.txt").unwrap(),
            size: 1234,
            sha256: [0; 32],
        };
        let event = banter_event::from_message(&file.into(), &names).unwrap();
        assert_eq!((event.kind, event.seq, event.value), (BANTER_EVENT_FILE, 42, 1234));
        assert_eq!(event.text.to_str().unwrap(), "notes.txt");

        let anonymous = Posted {
            event_seq: 3,
            meta: meta(0),
            client_msg_id: None,
            reply_to: None,
            text: Text::new("guess who").unwrap(),
        };
        let event = banter_event::from_message(&anonymous.into(), &names).unwrap();
        assert_eq!(event.sender_name.to_str().unwrap(), "anonymous");
    }
}
