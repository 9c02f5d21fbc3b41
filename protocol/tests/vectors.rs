//! The golden vectors in `spec/vectors/` against the code (spec §11).
//!
//! - `frames.vectors`: one valid frame of every registered type. Encoding the value gives
//!   exactly the bytes; decoding the bytes gives back the value.
//! - `invalid.vectors`: malformed frames and the error each must produce.
//! - `datagrams.vectors`: voice datagrams, valid and invalid.
//! - `tunnel.vectors`: voice tunnel streams (spec §8.4) and the datagrams they carry.
//!
//! Each has a language-neutral twin, `*.json` (spec §11): the same vectors, values in JSON
//! (see `vectors/json.rs` for the conventions), for implementers in other languages.
//!
//! The files are written from the values below by `BANTER_BLESS=1 cargo test -p
//! banter-protocol --test vectors`. Without it the test fails on any difference, so a change
//! to a released encoding cannot go unnoticed. Changing a vector is a breaking change.

#[path = "vectors/json.rs"]
mod json;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use banter_protocol::bounded::{Blob, List, Text};
use banter_protocol::datagram::{Context, Kind, TunnelReader, VoiceHeader, encode_tunnel_record};
use banter_protocol::frame::{self, DEFAULT_MAX_FRAME_SIZE, FrameDecoder};
use banter_protocol::ids::*;
use banter_protocol::message::*;
use banter_protocol::settings::{
    FEATURE_POST_STREAMS, FEATURE_VOICE_DATAGRAMS, Limits, RateLimit, SettingId, Settings,
};
use banter_protocol::{DecodeError, ErrorCode, FrameType};

fn text<const N: usize>(s: &str) -> Text<N> {
    Text::new(s).unwrap()
}

fn blob<const N: usize>(b: &[u8]) -> Blob<N> {
    Blob::new(b.to_vec()).unwrap()
}

fn meta(seq: u64) -> EventMeta {
    EventMeta { room: RoomId(7), seq, ts: Timestamp(1_790_000_000_000), sender: UserId(3) }
}

fn summary() -> RoomSummary {
    RoomSummary {
        room: RoomId(7),
        kind: RoomKind::Channel,
        name: text("general"),
        topic: text("Say hi"),
        category: text("Lobby"),
        visibility: Visibility::Public,
        voice: true,
        members: 12,
        last_seq: 340,
        joined: true,
        read_seq: 338,
        role: Role::MODERATOR,
        slow_mode_s: 30,
        locked: false,
        anonymous: true,
        stage: false,
    }
}

fn voice_state() -> VoiceState {
    VoiceState {
        self_mute: false,
        self_deaf: false,
        server_mute: false,
        suppressed: true,
        requested_to_speak: Some(Timestamp(1_790_000_000_500)),
    }
}

/// One value of every registered type. The match in `covers` keeps this list exhaustive.
fn frame_vectors() -> Vec<Message> {
    let mut settings = Limits {
        voice_codecs: vec!["opus".into()],
        rate_limits: vec![RateLimit { class: text("message"), burst: 5, per_minute: 60 }],
        server_name: Some("banter".into()),
        features: FEATURE_VOICE_DATAGRAMS | FEATURE_POST_STREAMS,
        ..Limits::default()
    }
    .to_settings();
    settings.set_int(SettingId(0x40), 0).unwrap(); // a GREASE setting
    let token: Blob<1024> = blob(b"v1.example-access-token");
    vec![
        settings.into(),
        Ping { t: 1_500_000, ack_event_seq: 41 }.into(),
        Pong { t: 1_500_000 }.into(),
        GoAway { reconnect_hint: text("chat.example.org:4443"), drain_ms: 5000 }.into(),
        Hello { access_token: token.clone(), interests: Hello::INTEREST_ALL }.into(),
        Resume {
            access_token: token.clone(),
            resume_id: ResumeId([0xab; 16]),
            last_event_seq: 41,
            interests: Hello::INTEREST_PRESENCE | Hello::INTEREST_TYPING,
        }
        .into(),
        Welcome {
            resume_id: ResumeId([0xab; 16]),
            user: UserId(3),
            username: text("ada"),
            server_time: Timestamp(1_790_000_000_000),
        }
        .into(),
        Resumed { replay_from: 42, server_time: Timestamp(1_790_000_000_000) }.into(),
        Error {
            code: ErrorCode::RATE_LIMITED,
            retry_after_ms: Some(1500),
            message: text("slow down"),
        }
        .into(),
        Register {
            username: text("ada"),
            password: text("correct horse"),
            device_name: text("laptop"),
        }
        .into(),
        Login {
            username: text("ada"),
            password: text("correct horse"),
            device_name: text("phone"),
        }
        .into(),
        KeyLogin { username: text("bot"), public_key: [0x11; 32], device_name: text("ci") }.into(),
        KeyChallenge { nonce: [0x22; 32] }.into(),
        KeyProof { signature: Signature([0x33; 64]) }.into(),
        AuthOk {
            user: UserId(3),
            session: SessionId(9),
            access_token: token,
            access_expires: Timestamp(1_790_000_900_000),
            refresh_token: blob(b"refresh"),
        }
        .into(),
        Refresh { refresh_token: blob(b"refresh") }.into(),
        Logout {}.into(),
        SessionList {}.into(),
        SessionListPage {
            sessions: List::new(vec![SessionInfo {
                session: SessionId(9),
                device_name: text("laptop"),
                created: Timestamp(1_789_000_000_000),
                last_seen: Timestamp(1_790_000_000_000),
                current: true,
            }])
            .unwrap(),
        }
        .into(),
        SessionRevoke { session: SessionId(8) }.into(),
        KeyAdd { public_key: [0x11; 32] }.into(),
        Done {}.into(),
        KeyList {}.into(),
        KeyListPage {
            keys: List::new(vec![KeyInfo {
                public_key: [0x11; 32],
                added: Timestamp(1_789_000_000_000),
            }])
            .unwrap(),
        }
        .into(),
        KeyRemove { public_key: [0x11; 32] }.into(),
        RoomCreate {
            name: text("general"),
            topic: text("Say hi"),
            category: text("Lobby"),
            visibility: Visibility::Public,
            voice: true,
        }
        .into(),
        RoomInfo { room: summary() }.into(),
        RoomList { scope: ListScope::Joined, after: None, limit: 50 }.into(),
        RoomListPage { rooms: List::new(vec![summary()]).unwrap(), more: false }.into(),
        RoomJoin { room: RoomId(7) }.into(),
        RoomLeave { room: RoomId(7) }.into(),
        RoomSetTopic { room: RoomId(7), topic: text("Release day") }.into(),
        DmOpen { username: text("grace") }.into(),
        RoomConfigure {
            room: RoomId(7),
            slow_mode_s: Some(30),
            locked: None,
            anonymous: Some(true),
            stage: None,
        }
        .into(),
        InviteCreate { room: RoomId(7), max_uses: Some(5), expires_in_s: Some(86_400) }.into(),
        Invite {
            code: text("k7q2m9xw4h"),
            room: RoomId(7),
            max_uses: Some(5),
            expires: Some(Timestamp(1_790_086_400_000)),
        }
        .into(),
        InviteUse { code: text("k7q2m9xw4h") }.into(),
        RoomInvite { room: RoomId(7), username: text("grace") }.into(),
        Members { room: RoomId(7), after: Some(UserId(2)), limit: 100 }.into(),
        MembersPage {
            members: List::new(vec![Member {
                user: UserId(3),
                username: text("ada"),
                role: Role::OWNER,
            }])
            .unwrap(),
            more: true,
        }
        .into(),
        Post {
            room: RoomId(7),
            client_msg_id: 0x0192_0000_0000_7000_8000_0000_0000_0001,
            text: text("hello, world"),
            reply_to: Some(339),
            anonymous: false,
        }
        .into(),
        EventAck { room: RoomId(7), seq: 341, ts: Timestamp(1_790_000_000_000) }.into(),
        Edit { room: RoomId(7), target: 341, text: text("hello, world!") }.into(),
        Delete { room: RoomId(7), target: 341 }.into(),
        React { room: RoomId(7), target: 341, emoji: text("👍"), on: true }.into(),
        History { room: RoomId(7), before: Some(300), limit: 50 }.into(),
        CatchUp { room: RoomId(7), after: 338, limit: 100 }.into(),
        PageEnd { room: RoomId(7), next: Some(250) }.into(),
        RevealAuthor { room: RoomId(7), seq: 341 }.into(),
        FileShared {
            event_seq: 50,
            meta: meta(348),
            name: text("notes.txt"),
            size: 12,
            sha256: [0xab; 32],
        }
        .into(),
        Author { room: RoomId(7), seq: 341, user: UserId(3) }.into(),
        Posted {
            event_seq: 42,
            meta: meta(341),
            client_msg_id: Some(0x0192_0000_0000_7000_8000_0000_0000_0001),
            reply_to: Some(339),
            text: text("hello, world"),
        }
        .into(),
        Edited { event_seq: 43, meta: meta(342), target: 341, text: text("hello, world!") }.into(),
        Deleted { event_seq: 44, meta: meta(343), target: 341 }.into(),
        Reacted { event_seq: 45, meta: meta(344), target: 341, emoji: text("👍"), on: false }
            .into(),
        Membership {
            event_seq: 46,
            meta: meta(345),
            user: UserId(5),
            username: text("mallory"),
            change: MembershipChange::Banned,
            reason: text("spam"),
        }
        .into(),
        TopicChanged { event_seq: 47, meta: meta(346), topic: text("Release day") }.into(),
        HistoryMessage {
            meta: meta(341),
            reply_to: None,
            text: text("hello, world!"),
            edited: Some((342, Timestamp(1_790_000_001_000))),
            deleted_by: None,
            reactions: List::new(vec![ReactionCount { emoji: text("👍"), count: 2, me: true }])
                .unwrap(),
        }
        .into(),
        LivePaused { event_seq: 48, room: RoomId(7), delivered_seq: 346 }.into(),
        RoomConfigured {
            event_seq: 49,
            meta: meta(347),
            slow_mode_s: 30,
            locked: true,
            anonymous: false,
            stage: true,
        }
        .into(),
        MarkRead { room: RoomId(7), seq: 346, private: false }.into(),
        MarkDelivered { room: RoomId(7), seq: 346 }.into(),
        MarkerOk { room: RoomId(7), seq: 346 }.into(),
        TypingSet { room: RoomId(7), state: TypingState::Active }.into(),
        PresenceSet { status: PresenceStatus::Dnd, text: text("focusing") }.into(),
        Presence { user: UserId(3), status: PresenceStatus::Away, text: text("") }.into(),
        Typing { room: RoomId(7), user: UserId(3), state: TypingState::Paused }.into(),
        ReadUpTo { room: RoomId(7), user: UserId(3), seq: 346 }.into(),
        DeliveredUpTo { room: RoomId(7), user: UserId(4), seq: 346 }.into(),
        VoiceJoin { room: RoomId(7) }.into(),
        VoiceJoined {
            room: RoomId(7),
            source: SourceId(2),
            codec: CodecParams {
                codec: text("opus"),
                sample_rate: 48_000,
                channels: 1,
                frame_ms: 20,
                max_bitrate: 64_000,
            },
            roster: List::new(vec![VoiceParticipant {
                user: UserId(3),
                source: SourceId(2),
                state: voice_state(),
            }])
            .unwrap(),
        }
        .into(),
        VoiceLeave { room: RoomId(7) }.into(),
        VoiceSelf { room: RoomId(7), mute: true, deaf: false }.into(),
        VoiceRequestSpeak { room: RoomId(7), raise: true }.into(),
        VoiceModerate { room: RoomId(7), user: UserId(5), action: VoiceAction::GrantSpeak }.into(),
        VoiceStateChanged {
            room: RoomId(7),
            participant: VoiceParticipant {
                user: UserId(5),
                source: SourceId(3),
                state: voice_state(),
            },
            present: true,
            actor: UserId(5),
        }
        .into(),
        Speaking { room: RoomId(7), source: SourceId(3), on: true }.into(),
        RoleSet { room: Some(RoomId(7)), user: UserId(5), role: Role::MODERATOR }.into(),
        Kick { room: RoomId(7), user: UserId(5), reason: text("off topic") }.into(),
        Ban {
            room: RoomId(7),
            user: UserId(5),
            reason: text("spam"),
            until: Some(Timestamp(1_790_086_400_000)),
        }
        .into(),
        Unban { room: RoomId(7), user: UserId(5) }.into(),
        AuditQuery { room: Some(RoomId(7)), before: None, limit: 20 }.into(),
        AuditPage {
            entries: List::new(vec![AuditEntry {
                id: 17,
                ts: Timestamp(1_790_000_000_000),
                actor: UserId(3),
                action: AuditAction::BAN,
                room: Some(RoomId(7)),
                target: Some(UserId(5)),
                reason: text("spam"),
            }])
            .unwrap(),
            more: false,
        }
        .into(),
        ContactSet { username: text("grace"), action: ContactAction::Request }.into(),
        ContactList {}.into(),
        ContactListPage {
            contacts: List::new(vec![
                ContactEntry {
                    user: UserId(4),
                    username: text("grace"),
                    state: ContactState::Friend,
                },
                ContactEntry {
                    user: UserId(5),
                    username: text("mallory"),
                    state: ContactState::Blocked,
                },
            ])
            .unwrap(),
        }
        .into(),
        Contact { user: UserId(4), username: text("grace"), state: Some(ContactState::Incoming) }
            .into(),
        Upload { room: RoomId(7), name: text("notes.txt"), size: 12, sha256: [0xab; 32] }.into(),
        UploadReady { offset: 4 }.into(),
        FileChunk { data: blob(b"hello, world") }.into(),
        Download { room: RoomId(7), seq: 348, offset: 0 }.into(),
        FileInfo { name: text("notes.txt"), size: 12, sha256: [0xab; 32] }.into(),
        Search {
            query: text("cafe \"lunch plan\" -pizza from:ada"),
            room: Some(RoomId(7)),
            sender: None,
            after: Some(Timestamp(1_789_000_000_000)),
            before: None,
            limit: 20,
            cursor: Some(SearchCursor {
                ts: Timestamp(1_789_000_100_000),
                room: RoomId(7),
                seq: 300,
            }),
        }
        .into(),
        SearchHit {
            room: RoomId(7),
            seq: 290,
            sender: UserId(3),
            ts: Timestamp(1_789_000_050_000),
            file: false,
            snippet: text("Café at noon for the lunch plan?"),
            highlights: List::new(vec![
                Highlight { start: 0, end: 5 },
                Highlight { start: 22, end: 32 },
            ])
            .unwrap(),
        }
        .into(),
        SearchEnd {
            next: Some(SearchCursor {
                ts: Timestamp(1_789_000_050_000),
                room: RoomId(7),
                seq: 290,
            }),
        }
        .into(),
    ]
}

/// Malformed input and the error each must give. `None` for the frame type means "decode the
/// bytes as a whole frame"; stream readers skip unknown types instead (see below).
fn invalid_vectors() -> Vec<(&'static str, Vec<u8>, DecodeError)> {
    let mut oversized = Vec::new();
    oversized.push(0x30); // POST
    banter_protocol::varint::encode(DEFAULT_MAX_FRAME_SIZE + 1, &mut oversized);
    let mut over_limit_emoji = vec![0x07, 0xa2, 0x02, 0x01, 0x21]; // REACT room 7, target 290, 33 bytes
    over_limit_emoji.extend_from_slice(&[b'x'; 33]);
    over_limit_emoji.push(0x01);
    let mut react = vec![0x34];
    react.push(over_limit_emoji.len() as u8);
    react.extend_from_slice(&over_limit_emoji);
    vec![
        ("frame-truncated-in-body", vec![0x02, 0x05, 0x01, 0x02], DecodeError::Truncated),
        ("frame-truncated-in-length", vec![0x02, 0x40], DecodeError::Truncated),
        ("frame-oversized", oversized, DecodeError::FrameTooLarge { len: 65537, max: 65536 }),
        ("body-missing-fields", vec![0x02, 0x01, 0x05], DecodeError::Truncated),
        (
            "body-bad-varint",
            vec![0x03, 0x0b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            DecodeError::BadVarint,
        ),
        ("body-trailing-bytes", vec![0x1c, 0x01, 0x00], DecodeError::TrailingBytes { extra: 1 }),
        ("unknown-frame-type", vec![0x7f, 0x00, 0x00], DecodeError::UnknownFrameType(0x3f00)),
        ("grease-frame-type", vec![0x21, 0x01, 0xaa], DecodeError::UnknownFrameType(0x21)),
        ("text-bad-utf8", vec![0x28, 0x03, 0x02, 0xc3, 0x28], DecodeError::BadUtf8),
        ("bool-not-0-or-1", vec![0x40, 0x63, 0x03, 0x07, 0x01, 0x02], DecodeError::InvalidValue),
        ("option-tag-not-0-or-1", vec![0x37, 0x02, 0x07, 0x02], DecodeError::InvalidValue),
        ("enum-unknown-variant", vec![0x23, 0x03, 0x02, 0x00, 0x01], DecodeError::InvalidValue),
        ("text-over-its-limit", react, DecodeError::InvalidValue),
        (
            "settings-duplicate-id",
            vec![0x01, 0x04, 0x04, 0x01, 0x04, 0x02],
            DecodeError::DuplicateSetting(4),
        ),
        (
            "settings-truncated-bytes-value",
            vec![0x01, 0x03, 0x05, 0x03, 0x61],
            DecodeError::Truncated,
        ),
        ("settings-too-many-entries", too_many_settings(), DecodeError::TooManySettings),
    ]
}

/// A SETTINGS frame of 257 entries (distinct even ids, value 0): one more than allowed.
fn too_many_settings() -> Vec<u8> {
    let mut body = Vec::new();
    for id in 0..257u64 {
        banter_protocol::varint::encode(0x1000 + id * 2, &mut body);
        body.push(0);
    }
    let mut frame = vec![0x01];
    banter_protocol::varint::encode(body.len() as u64, &mut frame);
    frame.extend(body);
    frame
}

/// A parsed datagram: its header and payload bytes.
type Parsed = Result<(VoiceHeader, Vec<u8>), DecodeError>;

fn datagram_vectors() -> Vec<(&'static str, Vec<u8>, Parsed)> {
    let write = |header: VoiceHeader, payload: &[u8]| {
        let mut buf = [0u8; banter_protocol::datagram::MAX_HEADER_LEN];
        let n = header.write(&mut buf).unwrap();
        let mut bytes = buf[..n].to_vec();
        bytes.extend_from_slice(payload);
        (bytes, Ok((header, payload.to_vec())))
    };
    let opus = [0xfc, 0xff, 0xfe]; // an Opus TOC byte and a tiny payload
    let mut out = Vec::new();
    for (name, header) in [
        ("client-to-server-frame", VoiceHeader::opus(0, 1, false)),
        ("server-to-client-end-of-talk", VoiceHeader::opus(300, 65_535, true)),
        (
            "positional-priority",
            VoiceHeader {
                kind: Kind::OPUS_FRAME,
                end: false,
                context: Context::Priority,
                source: 2,
                sequence: 7,
                position: Some([1.0, 0.5, -2.0]),
            },
        ),
        ("voice-ping", VoiceHeader { kind: Kind::VOICE_PING, ..VoiceHeader::opus(0, 9, false) }),
    ] {
        let (bytes, expected) = write(header, &opus);
        out.push((name, bytes, expected));
    }
    out.push(("truncated-sequence", vec![0x01, 0x00, 0x02, 0x00], Err(DecodeError::Truncated)));
    out.push((
        "truncated-position",
        vec![0x01, 0x02, 0x02, 0x00, 0x01, 0x00, 0x00],
        Err(DecodeError::Truncated),
    ));
    out
}

fn hex_spaced(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn render_frames() -> String {
    let mut out = String::from(
        "# Golden frame vectors, one per registered frame type (spec §11).\n\
         # Generated from protocol/tests/vectors.rs; `hex` is the whole frame (type, length,\n\
         # body). `value` is the decoded value in Rust debug notation.\n",
    );
    for message in frame_vectors() {
        let mut bytes = Vec::new();
        message.encode(&mut bytes);
        let name = registry_entry(message.frame_type()).unwrap().name;
        write!(
            out,
            "\n## {name} {:#04x}\nhex: {}\nvalue:\n",
            message.frame_type().0,
            hex_spaced(&bytes)
        )
        .unwrap();
        out.push_str(&indent(&format!("{message:#?}")));
    }
    out
}

fn render_invalid() -> String {
    let mut out = String::from(
        "# Invalid frames and the error a decoder must report (spec §11).\n\
         # Each `hex` is given to a decoder as one complete frame. Stream readers skip frames\n\
         # of unknown type (UnknownFrameType) instead of failing; everything else is an error.\n",
    );
    for (name, bytes, error) in invalid_vectors() {
        write!(out, "\n## {name}\nhex: {}\nerror: {error:?}\n", hex_spaced(&bytes)).unwrap();
    }
    out
}

fn render_datagrams() -> String {
    let mut out = String::from(
        "# Voice datagrams (spec §8.2): `hex` is the whole datagram; `header` and `payload`\n\
         # what parsing gives, or `error`.\n",
    );
    for (name, bytes, expected) in datagram_vectors() {
        write!(out, "\n## {name}\nhex: {}\n", hex_spaced(&bytes)).unwrap();
        match expected {
            Ok((header, payload)) => {
                write!(
                    out,
                    "header:\n{}payload: {}\n",
                    indent(&format!("{header:#?}")),
                    hex_spaced(&payload)
                )
                .unwrap();
            }
            Err(error) => writeln!(out, "error: {error:?}").unwrap(),
        }
    }
    out
}

/// The datagrams a tunnel stream carries, or why it is refused.
type TunnelRead = Result<Vec<Vec<u8>>, DecodeError>;

/// Voice tunnel streams: the bytes after the stream type, and the datagrams (or the error).
fn tunnel_vectors() -> Vec<(&'static str, Vec<u8>, TunnelRead)> {
    let datagrams = datagram_vectors();
    let (frame, ping) = (datagrams[0].1.clone(), datagrams[3].1.clone());
    let mut two = Vec::new();
    encode_tunnel_record(&frame, &mut two);
    encode_tunnel_record(&ping, &mut two);
    // A record's length may use a longer varint than needed (RFC 9000 allows it).
    let mut long_length = vec![0x40, frame.len() as u8];
    long_length.extend_from_slice(&frame);
    vec![
        ("frame-then-ping", two, Ok(vec![frame.clone(), ping])),
        ("two-byte-length", long_length, Ok(vec![frame])),
        (
            "record-over-1100-bytes",
            vec![0x44, 0x4d, 0x01],
            Err(DecodeError::FrameTooLarge { len: 1101, max: 1100 }),
        ),
    ]
}

fn read_tunnel(bytes: &[u8]) -> TunnelRead {
    let mut reader = TunnelReader::new();
    reader.push(bytes);
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record.to_vec());
    }
    Ok(records)
}

fn render_tunnel() -> String {
    let mut out = String::from(
        "# Voice tunnel streams (spec §8.4): `hex` is the stream after its type (0x03); each\n\
         # `record` is one voice datagram it carries (see datagrams.vectors), or `error`.\n",
    );
    for (name, bytes, expected) in tunnel_vectors() {
        write!(out, "\n## {name}\nhex: {}\n", hex_spaced(&bytes)).unwrap();
        match expected {
            Ok(records) => {
                for record in records {
                    writeln!(out, "record: {}", hex_spaced(&record)).unwrap();
                }
            }
            Err(error) => writeln!(out, "error: {error:?}").unwrap(),
        }
    }
    out
}

fn hex_plain(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The JSON twins of the four files: arrays of objects, one per vector, in the same order.
fn render_json_frames() -> String {
    let vectors: Vec<serde_json::Value> = frame_vectors()
        .iter()
        .map(|message| {
            let mut bytes = Vec::new();
            message.encode(&mut bytes);
            serde_json::json!({
                "name": registry_entry(message.frame_type()).unwrap().name,
                "type": message.frame_type().0,
                "hex": hex_plain(&bytes),
                "value": json::to_json(message),
            })
        })
        .collect();
    pretty(&vectors)
}

fn render_json_invalid() -> String {
    let vectors: Vec<serde_json::Value> = invalid_vectors()
        .iter()
        .map(|(name, bytes, error)| {
            serde_json::json!({"name": name, "hex": hex_plain(bytes), "error": format!("{error:?}")})
        })
        .collect();
    pretty(&vectors)
}

fn header_json(header: &VoiceHeader) -> serde_json::Value {
    serde_json::json!({
        "kind": header.kind.0,
        "end": header.end,
        "context": format!("{:?}", header.context),
        "source": header.source,
        "sequence": header.sequence,
        "position": header.position,
    })
}

fn render_json_datagrams() -> String {
    let vectors: Vec<serde_json::Value> = datagram_vectors()
        .iter()
        .map(|(name, bytes, parsed)| match parsed {
            Ok((header, payload)) => serde_json::json!({
                "name": name,
                "hex": hex_plain(bytes),
                "header": header_json(header),
                "payload": hex_plain(payload),
            }),
            Err(error) => serde_json::json!({
                "name": name, "hex": hex_plain(bytes), "error": format!("{error:?}"),
            }),
        })
        .collect();
    pretty(&vectors)
}

fn render_json_tunnel() -> String {
    let vectors: Vec<serde_json::Value> = tunnel_vectors()
        .iter()
        .map(|(name, bytes, read)| match read {
            Ok(records) => serde_json::json!({
                "name": name,
                "hex": hex_plain(bytes),
                "records": records.iter().map(|r| hex_plain(r)).collect::<Vec<_>>(),
            }),
            Err(error) => serde_json::json!({
                "name": name, "hex": hex_plain(bytes), "error": format!("{error:?}"),
            }),
        })
        .collect();
    pretty(&vectors)
}

fn pretty(vectors: &[serde_json::Value]) -> String {
    serde_json::to_string_pretty(vectors).unwrap() + "\n"
}

#[test]
fn the_json_vectors_say_what_the_text_vectors_say() {
    let frames: Vec<serde_json::Value> =
        serde_json::from_str(&check_file("frames.json", &render_json_frames())).unwrap();
    let text = check_file("frames.vectors", &render_frames());
    let by_text = records(&text);
    assert_eq!(frames.len(), by_text.len());
    for (json, (heading, bytes)) in frames.iter().zip(&by_text) {
        assert_eq!(json["hex"].as_str().unwrap(), hex_plain(bytes), "{heading}");
        assert!(heading.starts_with(json["name"].as_str().unwrap()), "{heading}");
    }
    // Spot checks of the conventions: bytes as hex, v128 as a decimal string, ids as
    // numbers, enums by name, absent options as null.
    let post = frames.iter().find(|v| v["name"] == "POST").unwrap();
    assert!(post["value"]["client_msg_id"].is_string(), "{post}");
    assert_eq!(post["value"]["room"], 7);
    let hello = frames.iter().find(|v| v["name"] == "HELLO").unwrap();
    assert_eq!(hello["value"]["access_token"], hex_plain(b"v1.example-access-token"));
    let room_info = frames.iter().find(|v| v["name"] == "ROOM_INFO").unwrap();
    assert_eq!(room_info["value"]["room"]["visibility"], "Public");
    for (file, rendered) in [
        ("invalid.json", render_json_invalid()),
        ("datagrams.json", render_json_datagrams()),
        ("tunnel.json", render_json_tunnel()),
    ] {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(&check_file(file, &rendered)).unwrap();
        assert!(!values.is_empty(), "{file}");
    }
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors")
}

/// Compares the committed file with the rendering, or rewrites it under BANTER_BLESS=1.
fn check_file(name: &str, rendered: &str) -> String {
    let path = vectors_dir().join(name);
    if std::env::var_os("BANTER_BLESS").is_some() {
        std::fs::write(&path, rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BANTER_BLESS=1 to create)", path.display()));
    assert!(
        committed == rendered,
        "{name} differs from the code: a wire encoding changed. If that is intended (a breaking \
         change), re-run with BANTER_BLESS=1 and update spec/PROTOCOL.md."
    );
    committed
}

/// (heading, hex bytes) of each record in a vectors file.
fn records(file: &str) -> Vec<(String, Vec<u8>)> {
    file.split("\n## ")
        .skip(1)
        .map(|record| {
            let heading = record.lines().next().unwrap().to_owned();
            let hex_line = record.lines().find_map(|l| l.strip_prefix("hex: ")).unwrap();
            (heading, hex::decode(hex_line.replace(' ', "")).unwrap())
        })
        .collect()
}

#[test]
fn every_registered_frame_type_has_a_golden_vector() {
    let covered: BTreeSet<u64> = frame_vectors().iter().map(|m| m.frame_type().0).collect();
    for info in REGISTRY {
        assert!(covered.contains(&info.frame_type.0), "{} has no vector", info.name);
    }
    assert_eq!(frame_vectors().len(), REGISTRY.len(), "one vector per type");
}

#[test]
fn frame_vectors_encode_to_and_decode_from_the_committed_bytes() {
    let file = check_file("frames.vectors", &render_frames());
    let values = frame_vectors();
    let records = records(&file);
    assert_eq!(records.len(), values.len());
    for ((heading, bytes), value) in records.iter().zip(&values) {
        let mut encoded = Vec::new();
        value.encode(&mut encoded);
        assert_eq!(&encoded, bytes, "{heading}: encoding");
        let raw = frame::decode_exact(bytes, DEFAULT_MAX_FRAME_SIZE).unwrap();
        let decoded = Message::decode(raw.frame_type, &raw.body).unwrap();
        assert_eq!(&decoded, value, "{heading}: decoding");
    }
}

fn decode_one(bytes: &[u8]) -> Result<Message, DecodeError> {
    let raw = frame::decode_exact(bytes, DEFAULT_MAX_FRAME_SIZE)?;
    Message::decode(raw.frame_type, &raw.body)
}

#[test]
fn invalid_vectors_give_their_errors() {
    let file = check_file("invalid.vectors", &render_invalid());
    let expected = invalid_vectors();
    for ((heading, bytes), (_, _, error)) in records(&file).iter().zip(&expected) {
        assert_eq!(decode_one(bytes).unwrap_err(), *error, "{heading}");
    }
}

#[test]
fn stream_readers_skip_unknown_and_grease_frames() {
    let mut stream = Vec::new();
    for (name, bytes, _) in invalid_vectors() {
        if name.starts_with("unknown") || name.starts_with("grease") {
            stream.extend_from_slice(&bytes);
        }
    }
    Done {}.encode_frame(&mut stream);
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
    decoder.push(&stream);
    assert_eq!(decoder.next_message().unwrap(), Some(Message::Done(Done {})));
    assert_eq!(decoder.skipped(), 2);
    assert!(FrameType(0x21).is_grease());
}

#[test]
fn datagram_vectors_parse_as_committed() {
    let file = check_file("datagrams.vectors", &render_datagrams());
    for ((heading, bytes), (_, _, expected)) in records(&file).iter().zip(datagram_vectors()) {
        let parsed = VoiceHeader::parse(bytes).map(|(h, p)| (h, p.to_vec()));
        assert_eq!(parsed, expected, "{heading}");
    }
}

#[test]
fn tunnel_vectors_read_as_committed() {
    let file = check_file("tunnel.vectors", &render_tunnel());
    let expected = tunnel_vectors();
    assert_eq!(records(&file).len(), expected.len());
    for ((heading, bytes), (_, _, records)) in records(&file).iter().zip(expected) {
        assert_eq!(read_tunnel(bytes), records, "{heading}");
    }
}

#[test]
fn settings_vector_keeps_the_grease_entry() {
    let Message::Settings(settings) = &frame_vectors()[0] else { panic!("SETTINGS first") };
    assert_eq!(settings.int(SettingId(0x40)), Some(0));
    let _: &Settings = settings;
}
