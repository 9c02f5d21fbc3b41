//! The oracle of the `voice_receive` fuzz target (fuzz/), shared with the tests that replay
//! its saved inputs under `cargo test`: every listener decodes Opus payloads a relay (or
//! whoever speaks in the room) chose, through the transpiled libopus, so that path is fuzzed
//! from the packet on.

use banter_codec::{Encoder, EncoderSettings, FRAME_SAMPLES, MAX_PACKET, speech_like};
use banter_protocol::datagram::{MAX_HEADER_LEN, VoiceHeader};

use crate::voice::{MAX_SPEAKERS, Mixer};

/// `data` is a run of records, each a 2-byte big-endian length and that many bytes of voice
/// packet (a length of 0 stands for one playout tick instead), fed to a [`Mixer`]: header
/// parse → jitter buffer → Opus decode (with FEC recovery and concealment) → mix. Panics
/// exactly on a bug: any panic inside, a mix that is not one whole frame, or more decoders
/// than [`MAX_SPEAKERS`].
pub fn voice_receive(data: &[u8]) {
    let mut mixer = Mixer::default();
    let mut rest = data;
    while let [high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        if len == 0 {
            assert_eq!(mixer.mix().len(), FRAME_SAMPLES);
            rest = tail;
            continue;
        }
        let (packet, tail) = tail.split_at(len.min(tail.len()));
        mixer.receive(packet);
        assert!(mixer.speakers() <= MAX_SPEAKERS, "{} decoders", mixer.speakers());
        rest = tail;
    }
    // Play out what is still buffered.
    for _ in 0..16 {
        mixer.mix();
    }
}

/// A well-formed [`voice_receive`] input: `speakers` people talking at once for `frames`
/// frames, real Opus (with in-band FEC), each fourth packet of the second speaker lost and
/// every other pair swapped, a tick after each round (the fuzz corpus starts from these).
pub fn voice_receive_input(speakers: u64, frames: usize) -> Vec<u8> {
    let speech = speech_like(frames);
    let mut encoders: Vec<Encoder> = (0..speakers)
        .map(|_| Encoder::new(EncoderSettings::default()).expect("an encoder"))
        .collect();
    let mut input = Vec::new();
    let mut held: Option<Vec<u8>> = None;
    for (i, frame) in speech.iter().enumerate() {
        for (source, encoder) in (1..).zip(encoders.iter_mut()) {
            let mut packet = [0u8; MAX_HEADER_LEN + MAX_PACKET];
            let header = VoiceHeader::opus(source, i as u16, i + 1 == frames);
            let n = header.write(&mut packet).expect("a header fits");
            let n = n + encoder.encode(frame, &mut packet[n..]).expect("encodes");
            let record = [&(n as u16).to_be_bytes()[..], &packet[..n]].concat();
            if source == 2 && i % 4 == 3 {
                continue; // lost
            }
            if source == 1 && i % 2 == 0 {
                held = Some(record); // sent after the next one
                continue;
            }
            input.extend_from_slice(&record);
            input.extend(held.take().unwrap_or_default());
        }
        input.extend_from_slice(&[0, 0]);
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_speech_from_several_speakers_is_mixed_into_sound() {
        let input = voice_receive_input(3, 40);
        voice_receive(&input);
        // The same input, mixed by hand: what comes out is speech, not silence.
        let mut mixer = Mixer::default();
        let mut loud = 0;
        let mut rest = &input[..];
        while let [high, low, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*high, *low]));
            let (packet, tail) = tail.split_at(len);
            if len == 0 {
                loud += usize::from(mixer.mix().iter().any(|s| s.unsigned_abs() > 1000));
            } else {
                mixer.receive(packet);
            }
            rest = tail;
        }
        assert_eq!(mixer.speakers(), 3);
        assert!(loud > 20, "{loud} of 40 ticks had sound");
    }

    #[test]
    fn made_up_sources_cannot_make_the_mixer_allocate_decoders_without_end() {
        let mut input = Vec::new();
        for source in 0..(MAX_SPEAKERS as u64 * 3) {
            let mut packet = [0u8; MAX_HEADER_LEN + 3];
            let n = VoiceHeader::opus(source, 1, false).write(&mut packet).unwrap();
            packet[n..n + 3].copy_from_slice(&[0xfc, 0xff, 0xfe]);
            input.extend_from_slice(&((n + 3) as u16).to_be_bytes());
            input.extend_from_slice(&packet[..n + 3]);
        }
        voice_receive(&input);

        // Sources that sent a packet and went silent give their slots up after a second, so
        // a real speaker who comes later is heard.
        let mut mixer = Mixer::default();
        let mut rest = &input[..];
        while let [high, low, tail @ ..] = rest {
            let (packet, tail) = tail.split_at(usize::from(u16::from_be_bytes([*high, *low])));
            mixer.receive(packet);
            rest = tail;
        }
        assert_eq!(mixer.speakers(), MAX_SPEAKERS);
        let mut late = [0u8; MAX_HEADER_LEN + MAX_PACKET];
        let n = VoiceHeader::opus(1 << 40, 0, false).write(&mut late).unwrap();
        let mut encoder = Encoder::new(EncoderSettings::default()).unwrap();
        let n = n + encoder.encode(&speech_like(1)[0], &mut late[n..]).unwrap();
        let late = &late[..n];
        mixer.receive(late);
        assert_eq!(mixer.speakers(), MAX_SPEAKERS, "no slot while the others are fresh");
        for _ in 0..50 {
            mixer.mix();
        }
        mixer.receive(late);
        assert_eq!(mixer.speakers(), 1, "the silent ones gave way to the latecomer");
    }

    /// Every saved input of the fuzz target (fuzz/regressions/voice_receive/), replayed.
    #[test]
    fn every_saved_voice_receive_input_passes_the_oracle() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/regressions/voice_receive");
        if std::env::var_os("BANTER_BLESS").is_some() {
            std::fs::create_dir_all(dir).unwrap();
            for (speakers, frames) in [(1, 25), (2, 25), (3, 12)] {
                let name = format!("{dir}/speech-{speakers}x{frames}");
                std::fs::write(name, voice_receive_input(speakers, frames)).unwrap();
            }
        }
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            voice_receive(&std::fs::read(entry.unwrap().path()).unwrap());
            replayed += 1;
        }
        assert!(replayed >= 3, "the seeds are there (BANTER_BLESS=1 writes them)");
    }
}
