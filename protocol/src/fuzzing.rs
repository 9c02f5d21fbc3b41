//! The oracles of the fuzz targets, shared with the regression test that replays their
//! corpora under `cargo test` (so a fuzz finding, once saved, is checked in CI forever).
//! Each function panics exactly when it found a bug.

use std::time::{Duration, Instant};

use crate::frame::{DEFAULT_MAX_FRAME_SIZE, FrameDecoder};
use crate::message::Message;
use crate::session::{ClientConfig, ClientConnection, Greeting, ServerConfig, ServerConnection};
use crate::settings::{Limits, Settings};

/// The input after its first two bytes, cut in two where those bytes say (a stream that
/// arrives in two reads).
fn split_input(data: &[u8]) -> (&[u8], &[u8]) {
    let (split, bytes) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    bytes.split_at(split % (bytes.len() + 1))
}

/// Arbitrary bytes, split at a point chosen by the first two bytes, into the stream decoder:
/// no panic, and every decoded message re-encodes to something that decodes to itself.
pub fn decode_stream(data: &[u8]) {
    let (first, second) = split_input(data);
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
    for part in [first, second] {
        decoder.push(part);
        while let Ok(Some(message)) = decoder.next_message() {
            message_roundtrip(&message);
        }
    }
}

/// Any message encodes and decodes back to itself, using every byte.
pub fn message_roundtrip(message: &Message) {
    let mut bytes = Vec::new();
    message.encode(&mut bytes);
    let mut decoder = FrameDecoder::new(u64::MAX);
    decoder.push(&bytes);
    assert_eq!(decoder.next_message().expect("re-encoded message decodes").as_ref(), Some(message));
    assert_eq!(decoder.buffered(), 0);
}

/// A SETTINGS body: no panic; what decodes re-encodes identically (the layout is canonical
/// except for varint length, so compare values) and reads into limits without panicking.
pub fn settings_body(data: &[u8]) {
    if let Ok(settings) = Settings::decode_body(data) {
        let mut again = Vec::new();
        settings.encode_body(&mut again);
        assert_eq!(Settings::decode_body(&again).as_ref(), Ok(&settings));
        let _ = Limits::from_settings(&settings);
    }
}

/// A voice datagram: no panic; a parsed header written back parses to the same fields in
/// front of the same payload.
pub fn voice_datagram(data: &[u8]) {
    use crate::datagram::{MAX_HEADER_LEN, VoiceHeader};
    if let Ok((header, payload)) = VoiceHeader::parse(data) {
        let mut out = vec![0u8; MAX_HEADER_LEN];
        let n = header.write(&mut out).expect("a parsed header fits MAX_HEADER_LEN");
        out.truncate(n);
        out.extend_from_slice(payload);
        let (again, again_payload) = VoiceHeader::parse(&out).expect("written header parses");
        assert_eq!(
            (again.kind, again.end, again.context, again.source, again.sequence),
            (header.kind, header.end, header.context, header.source, header.sequence)
        );
        assert_eq!(
            again.position.map(|p| p.map(f32::to_bits)),
            header.position.map(|p| p.map(f32::to_bits))
        );
        assert_eq!(again_payload, payload);
    }
}

/// A voice tunnel stream split at a point chosen by the first two bytes: no panic, no record
/// above the datagram limit, and the records re-encoded read back as the same records.
pub fn voice_tunnel(data: &[u8]) {
    use crate::datagram::{MAX_DATAGRAM_LEN, TunnelReader, encode_tunnel_record};
    let (first, second) = split_input(data);
    let mut reader = TunnelReader::new();
    let mut records = Vec::new();
    'parts: for part in [first, second] {
        reader.push(part);
        loop {
            match reader.next_record() {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(_) => break 'parts,
            }
        }
    }
    let mut again = Vec::new();
    for record in &records {
        assert!(record.len() <= MAX_DATAGRAM_LEN);
        encode_tunnel_record(record, &mut again);
    }
    let mut reader = TunnelReader::new();
    reader.push(&again);
    for record in &records {
        assert_eq!(reader.next_record().as_ref(), Ok(&Some(record.clone())));
    }
    assert_eq!(reader.buffered(), 0);
}

/// The connection state machines fed a sequence of operations derived from `data`: control
/// bytes in either direction (from the peer's real output or arbitrary), time advancing, the
/// application's decisions. No panic, and `poll_timeout` never goes back in time.
pub fn session_ops(data: &[u8]) {
    let start = Instant::now();
    let mut now = start;
    let mut server = ServerConnection::new(&ServerConfig::default(), now);
    let mut client = ClientConnection::new(&ClientConfig::default(), now);
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let len = usize::from(bytes.next().unwrap_or(0) % 64);
        let chunk: Vec<u8> = bytes.by_ref().take(len).collect();
        match op % 9 {
            0 => server.handle_control(now, &chunk),
            1 => client.handle_control(now, &chunk),
            2 => {
                if let Some(out) = client.poll_transmit() {
                    server.handle_control(now, &out);
                }
            }
            3 => {
                if let Some(out) = server.poll_transmit() {
                    client.handle_control(now, &out);
                }
            }
            4 => {
                now += Duration::from_millis(u64::from(op) * 97);
                server.handle_timeout(now);
                client.handle_timeout(now);
            }
            5 => {
                let token = crate::bounded::Blob::new(chunk).unwrap_or_default();
                client.greet(now, Greeting::Hello { access_token: token, interests: 0 });
            }
            6 => server.accept_hello(crate::message::Welcome {
                resume_id: crate::ids::ResumeId([op; 16]),
                user: crate::ids::UserId(u64::from(op)),
                username: crate::bounded::Text::default(),
                server_time: crate::ids::Timestamp(0),
            }),
            7 => server.reject(crate::ErrorCode(u64::from(op)), "fuzz"),
            _ => {
                client.handle_event_seq(u64::from(op));
                let _ = server.admit_request(crate::FrameType(u64::from(op)));
            }
        }
        while server.poll_event().is_some() {}
        while client.poll_event().is_some() {}
        for timeout in [server.poll_timeout(), client.poll_timeout()].into_iter().flatten() {
            assert!(timeout >= start, "a timer before the start");
        }
    }
}
