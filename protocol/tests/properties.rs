//! Property tests: round trips for every message, and "no input panics a decoder".

use arbitrary::{Arbitrary, Unstructured};
use banter_protocol::datagram::{Context, Kind, VoiceHeader};
use banter_protocol::frame::{DEFAULT_MAX_FRAME_SIZE, FrameDecoder};
use banter_protocol::message::{REGISTRY, StampedEvent};
use banter_protocol::settings::{Limits, Settings};
use banter_protocol::{DecodeError, FrameType, Message};
use proptest::prelude::*;

/// Messages built by `arbitrary` from proptest's random bytes, so every variant and field
/// is reached without a hand-written strategy per type.
fn messages(count: usize) -> impl Strategy<Value = Vec<Message>> {
    proptest::collection::vec(any::<u8>(), 64..4096).prop_map(move |seed| {
        let mut u = Unstructured::new(&seed);
        (0..count).filter_map(|_| Message::arbitrary(&mut u).ok()).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(messages in messages(4)) {
        for message in messages {
            let mut bytes = Vec::new();
            message.encode(&mut bytes);
            let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
            decoder.push(&bytes);
            prop_assert_eq!(decoder.next_message().unwrap(), Some(message.clone()));
            prop_assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn a_stamped_event_is_the_event_with_each_sessions_number(
        messages in messages(8),
        other in any::<u64>(),
    ) {
        for message in messages {
            let Some(seq) = message.event_seq() else {
                prop_assert!(StampedEvent::new(&message).is_none());
                continue;
            };
            let stamped = StampedEvent::new(&message).expect("every numbered event stamps");
            let (mut encoded, mut again) = (Vec::new(), Vec::new());
            message.encode(&mut encoded);
            stamped.stamp(seq).append_to(&mut again);
            prop_assert_eq!(&again, &encoded, "same number, same bytes");
            let frame = stamped.stamp(other);
            let mut restamped = Vec::new();
            frame.append_to(&mut restamped);
            prop_assert_eq!(frame.len(), restamped.len());
            let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
            decoder.push(&restamped);
            let decoded = decoder.next_message().unwrap().expect("a whole frame");
            prop_assert_eq!(decoded.event_seq(), Some(other));
            prop_assert_eq!(StampedEvent::new(&decoded), Some(stamped), "only the number differs");
        }
    }

    #[test]
    fn a_stream_split_anywhere_gives_the_same_messages(
        messages in messages(6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        for message in &messages {
            message.encode(&mut bytes);
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
        let mut got = Vec::new();
        for pair in cuts.windows(2) {
            decoder.push(&bytes[pair[0]..pair[1]]);
            while let Some(message) = decoder.next_message().unwrap() {
                got.push(message);
            }
        }
        decoder.finish().unwrap();
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_stream_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        split in any::<prop::sample::Index>(),
    ) {
        let split = split.index(bytes.len() + 1);
        let mut decoder = FrameDecoder::new(4096);
        for part in [&bytes[..split], &bytes[split..]] {
            decoder.push(part);
            while let Ok(Some(_)) = decoder.next_message() {}
        }
        // Whatever happened, nothing beyond the limit was buffered for one frame.
        prop_assert!(decoder.buffered() <= bytes.len());
    }

    #[test]
    fn arbitrary_bodies_never_panic_any_registered_decoder(
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        for info in REGISTRY {
            match Message::decode(info.frame_type, &body) {
                Ok(message) => {
                    // Whatever decodes re-encodes to something that decodes to the same.
                    let mut bytes = Vec::new();
                    message.encode(&mut bytes);
                    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
                    decoder.push(&bytes);
                    prop_assert_eq!(decoder.next_message().unwrap(), Some(message));
                }
                Err(DecodeError::Incomplete) => prop_assert!(false, "Incomplete from a whole body"),
                Err(_) => {}
            }
        }
        prop_assert!(matches!(
            Message::decode(FrameType(0x3f00), &body),
            Err(DecodeError::UnknownFrameType(0x3f00))
        ));
    }

    #[test]
    fn settings_round_trip_and_limits_never_panic(seed in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut u = Unstructured::new(&seed);
        if let Ok(settings) = Settings::arbitrary(&mut u) {
            let message = Message::Settings(settings.clone());
            let mut bytes = Vec::new();
            message.encode(&mut bytes);
            let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
            decoder.push(&bytes);
            prop_assert_eq!(decoder.next_message().unwrap(), Some(message));
            let _ = Limits::from_settings(&settings);
        }
    }

    #[test]
    fn voice_headers_round_trip(
        kind in any::<u8>(),
        end in any::<bool>(),
        context in 0u8..4,
        source in 0u64..(1 << 62),
        sequence in any::<u16>(),
        position in proptest::option::of([-1e6f32..1e6, -1e6f32..1e6, -1e6f32..1e6]),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let context = [Context::Normal, Context::Whisper, Context::Priority, Context::Listen][context as usize];
        let header = VoiceHeader { kind: Kind(kind), end, context, source, sequence, position };
        let mut bytes = vec![0u8; banter_protocol::datagram::MAX_HEADER_LEN];
        let n = header.write(&mut bytes).unwrap();
        prop_assert_eq!(n, header.len());
        bytes.truncate(n);
        bytes.extend_from_slice(&payload);
        let (parsed, rest) = VoiceHeader::parse(&bytes).unwrap();
        prop_assert_eq!(parsed, header);
        prop_assert_eq!(rest, &payload[..]);
    }

    #[test]
    fn arbitrary_datagrams_never_panic_the_voice_parser(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok((header, payload)) = VoiceHeader::parse(&bytes) {
            // The payload is what follows the header (non-minimal varints make headers longer
            // than `len()`, which counts the shortest form).
            prop_assert!(bytes.ends_with(payload));
            prop_assert!(header.len() + payload.len() <= bytes.len());
        }
    }
}
