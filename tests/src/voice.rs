//! Voice helpers for tests: raw Opus datagrams, joining, and listening.

use std::time::Duration;

use banter_client::protocol::datagram::{MAX_HEADER_LEN, VoiceHeader};
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{Message, VoiceJoin, VoiceJoined};
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

/// The next voice datagram, or None within `wait`.
pub async fn heard(user: &TestUser, wait: Duration) -> Option<(VoiceHeader, Vec<u8>)> {
    let datagram = tokio::time::timeout(wait, user.conn.quic().read_datagram()).await.ok()?.ok()?;
    let (header, payload) = VoiceHeader::parse(&datagram).unwrap();
    Some((header, payload.to_vec()))
}
