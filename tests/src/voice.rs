//! Voice helpers for tests: raw Opus datagrams, joining, and listening.

use std::time::Duration;

use banter_client::protocol::datagram::{MAX_HEADER_LEN, VoiceHeader};
use banter_client::protocol::ids::{RoomId, UserId};
use banter_client::protocol::message::{Message, VoiceJoin, VoiceJoined, VoiceStateChanged};
use bytes::Bytes;

use crate::TestUser;

/// An OPUS_FRAME datagram with `payload` as its Opus packet.
pub fn datagram(source: u64, sequence: u16, end: bool, payload: &[u8]) -> Bytes {
    let mut buf = vec![0u8; MAX_HEADER_LEN];
    let n = VoiceHeader::opus(source, sequence, end).write(&mut buf).unwrap();
    buf.truncate(n);
    buf.extend_from_slice(payload);
    Bytes::from(buf)
}

/// Joins `room`'s voice (which must succeed).
pub async fn join_voice(user: &TestUser, room: RoomId) -> VoiceJoined {
    match user.conn.request_one(VoiceJoin { room }).await.unwrap() {
        Message::VoiceJoined(joined) => joined,
        other => panic!("expected VOICE_JOINED, got {other:?}"),
    }
}

/// Waits until `user` hears that `whom`'s voice state is as `wanted` says; `what` names it.
/// In a cluster, how another node's voice changes reach this one.
pub async fn voice_state(
    user: &mut TestUser,
    whom: UserId,
    wanted: impl Fn(&VoiceStateChanged) -> bool,
    what: &str,
) {
    user.ephemeral(
        what,
        |m| matches!(m, Message::VoiceStateChanged(s) if s.participant.user == whom && wanted(s)),
    )
    .await;
}

/// The next voice datagram, or None within `wait`.
pub async fn heard(user: &TestUser, wait: Duration) -> Option<(VoiceHeader, Vec<u8>)> {
    let datagram = tokio::time::timeout(wait, user.conn.quic().read_datagram()).await.ok()?.ok()?;
    let (header, payload) = VoiceHeader::parse(&datagram).unwrap();
    Some((header, payload.to_vec()))
}

/// Sends `payload` from `speaker` until every listener has heard it, then drops the repeats
/// still on their way. Voice is best-effort: a datagram may be lost, and in a cluster the relay
/// between nodes starts a moment after the joins. For tests whose point is what comes after.
pub async fn speak_until_heard(speaker: &TestUser, listeners: &[&TestUser], payload: &[u8]) {
    let mut heard_by = vec![false; listeners.len()];
    for sequence in 1..=50u16 {
        speaker.conn.quic().send_datagram(datagram(0, sequence, false, payload)).unwrap();
        for (listener, done) in listeners.iter().zip(heard_by.iter_mut()) {
            while !*done {
                match heard(listener, Duration::from_millis(200)).await {
                    Some((_, got)) => *done = got == payload,
                    None => break,
                }
            }
        }
        if heard_by.iter().all(|done| *done) {
            for listener in listeners {
                while heard(listener, Duration::from_millis(300)).await.is_some() {}
            }
            return;
        }
    }
    panic!("{:?} was not heard by every listener", String::from_utf8_lossy(payload));
}
