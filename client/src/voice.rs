//! Voice on the client (spec §8): a [`VoiceSession`] joins a room's voice, encodes 20 ms PCM
//! frames with Opus and sends them as datagrams, and plays out what others say through a
//! jitter buffer per speaker, loss recovery and a mixer, as 20 ms PCM frames. Frames in and
//! out are plain PCM, so any source or sink (a WAV file, a microphone, the C library) plugs in.
//! Packets go as datagrams or on the voice tunnel stream, as [`PathSelector`] decides.

mod path;

pub use path::{PING_INTERVAL, PROBE_INTERVAL, PathSelector, Ping, SWITCH_AFTER, VoicePath};

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_codec::{Decoder, Encoder, EncoderSettings, FRAME_SAMPLES, Frame, MAX_PACKET, energy};
use banter_protocol::datagram::{Kind, MAX_HEADER_LEN, VoiceHeader, encode_tunnel_record};
use banter_protocol::ids::{RoomId, SourceId};
use banter_protocol::message::{Message, VoiceJoin, VoiceJoined, VoiceLeave};
use banter_protocol::stream::StreamType;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::connection::{Connection, RequestError};

/// Frames held per speaker before playout starts (60 ms), and the most it grows to.
const START_DEPTH: usize = 3;
const MAX_DEPTH: usize = 10;
/// After this many missing frames in a row a speaker's stream resets (spec §8.5).
const RESET_AFTER_MISSING: u32 = 20;

/// What the jitter buffer gives for one playout slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Not playing (not started, or reset after silence).
    Idle,
    /// The packet for this slot.
    Packet(Vec<u8>),
    /// This slot's packet is missing but the next is here: rebuild it with FEC.
    Recover(Vec<u8>),
    /// Missing, nothing to rebuild from.
    Missing,
}

/// An adaptive jitter buffer for one speaker, keyed by the extended sequence number.
#[derive(Debug, Default)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, Vec<u8>>,
    next: Option<u64>,
    last: Option<u64>,
    depth: usize,
    missing_run: u32,
    /// Packets that arrived after their slot was played.
    pub late: u64,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self { depth: START_DEPTH, ..Self::default() }
    }

    /// Extends a 16-bit sequence number to 64 bits around the last one seen.
    fn extend(&mut self, sequence: u16) -> u64 {
        let extended = match self.last {
            None => u64::from(sequence) + (1 << 16),
            Some(last) => {
                let delta = i64::from(sequence.wrapping_sub(last as u16) as i16);
                last.saturating_add_signed(delta)
            }
        };
        self.last = Some(self.last.map_or(extended, |l| l.max(extended)));
        extended
    }

    /// Adds a packet.
    pub fn push(&mut self, sequence: u16, payload: Vec<u8>) {
        let seq = self.extend(sequence);
        if self.next.is_some_and(|next| seq < next) {
            // Too late for its slot: dropped, and the buffer grows to avoid the next one.
            self.late += 1;
            self.depth = (self.depth + 1).min(MAX_DEPTH);
            return;
        }
        self.packets.insert(seq, payload);
        while self.packets.len() > MAX_DEPTH * 3 {
            self.packets.pop_first();
        }
    }

    /// The next 20 ms slot.
    pub fn pop(&mut self) -> Playout {
        let next = match self.next {
            Some(next) => next,
            None if self.packets.len() >= self.depth => match self.packets.keys().next() {
                Some(first) => *first,
                None => return Playout::Idle,
            },
            None => return Playout::Idle,
        };
        self.next = Some(next + 1);
        if let Some(packet) = self.packets.remove(&next) {
            self.missing_run = 0;
            return Playout::Packet(packet);
        }
        self.missing_run += 1;
        if self.missing_run > RESET_AFTER_MISSING
            || (self.packets.is_empty() && self.missing_run > 2)
        {
            // The speaker went quiet (or stayed away): start over with the next packet.
            self.next = None;
            self.missing_run = 0;
            return Playout::Idle;
        }
        match self.packets.get(&(next + 1)) {
            Some(following) => Playout::Recover(following.clone()),
            None => Playout::Missing,
        }
    }
}

/// Adds `frame` into `mix`, saturating.
pub fn mix_into(mix: &mut Frame, frame: &Frame) {
    for (out, sample) in mix.iter_mut().zip(frame) {
        *out = out.saturating_add(*sample);
    }
}

/// Frames a lost stretch is bridged by fading the last good frame, before silence.
const CONCEAL_FRAMES: u32 = 3;

/// Speakers heard at once, each with an Opus decoder: a roster's worth (spec §6.6). Packets
/// of further sources are dropped until one of these goes quiet, so that a relay sending
/// made-up source ids cannot make the client allocate decoders without end.
pub const MAX_SPEAKERS: usize = banter_protocol::message::max::VOICE_ROSTER;

/// The receive side of voice without sockets or clocks: voice packets in (datagrams or
/// tunnel records, as the server relays them), one mixed 20 ms frame out per [`Mixer::mix`].
/// [`VoiceSession`] drives it from its tasks; the `voice_receive` fuzz target drives it with
/// arbitrary packets (Opus payloads from the network reach the decoder here).
#[derive(Default)]
pub struct Mixer {
    speakers: HashMap<u64, Speaker>,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer").field("speakers", &self.speakers.len()).finish()
    }
}

impl Mixer {
    /// Takes one voice packet. Returns the payload of a VOICE_PING echo (for the path
    /// selector); anything malformed or of another kind is ignored.
    pub fn receive<'a>(&mut self, packet: &'a [u8]) -> Option<&'a [u8]> {
        let (header, payload) = VoiceHeader::parse(packet).ok()?;
        if header.kind == Kind::VOICE_PING {
            return Some(payload);
        }
        if header.kind != Kind::OPUS_FRAME {
            return None;
        }
        let full = self.speakers.len() >= MAX_SPEAKERS;
        if full && !self.speakers.contains_key(&header.source) {
            self.speakers.retain(|_, speaker| !speaker.quiet());
        }
        let room = self.speakers.len() < MAX_SPEAKERS;
        let speaker = match self.speakers.entry(header.source) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) if room => new.insert(Speaker::new(Decoder::new().ok()?)),
            Entry::Vacant(_) => return None,
        };
        speaker.heard(header.sequence, payload.to_vec());
        None
    }

    /// The next 20 ms of every speaker, mixed (silence when nobody speaks).
    pub fn mix(&mut self) -> Frame {
        let mut mix = [0i16; FRAME_SAMPLES];
        for speaker in self.speakers.values_mut() {
            speaker.idle_ticks = speaker.idle_ticks.saturating_add(1);
            if let Some(frame) = speaker.next_frame() {
                mix_into(&mut mix, &frame);
            }
        }
        mix
    }

    /// Speakers with a decoder.
    pub fn speakers(&self) -> usize {
        self.speakers.len()
    }
}

/// One speaker's receive pipeline: jitter buffer, decoder, and loss concealment.
struct Speaker {
    jitter: JitterBuffer,
    decoder: Decoder,
    /// The last good frame and how many frames have been concealed since.
    last: Option<(Frame, u32)>,
    /// Playout ticks since its last packet.
    idle_ticks: u32,
}

/// Playout ticks (20 ms) without a packet after which a speaker counts as gone: a second.
const QUIET_AFTER_TICKS: u32 = 50;

impl Speaker {
    fn new(decoder: Decoder) -> Self {
        Self { jitter: JitterBuffer::new(), decoder, last: None, idle_ticks: 0 }
    }

    fn heard(&mut self, sequence: u16, payload: Vec<u8>) {
        self.idle_ticks = 0;
        self.jitter.push(sequence, payload);
    }

    /// Heard nothing for a second: its slot may go to a new speaker (a source that sent a
    /// packet or two and stopped never starts playing, so "nothing buffered" is not enough).
    fn quiet(&self) -> bool {
        self.idle_ticks >= QUIET_AFTER_TICKS
    }

    /// The next 20 ms of this speaker, if any.
    fn next_frame(&mut self) -> Option<Frame> {
        let mut frame = [0i16; FRAME_SAMPLES];
        match self.jitter.pop() {
            Playout::Packet(packet) => {
                self.decoder.decode(Some(&packet), false, &mut frame).ok()?;
            }
            Playout::Recover(following) => {
                let rebuilt = self.decoder.decode(Some(&following), true, &mut frame).is_ok();
                let previous = self.last.as_ref().map(|(last, _)| last);
                if !rebuilt || !plausible(&frame, previous) {
                    return self.conceal();
                }
            }
            Playout::Missing => return self.conceal(),
            Playout::Idle => {
                self.last = None;
                return None;
            }
        }
        self.last = Some((frame, 0));
        Some(frame)
    }

    /// Bridges a lost frame with the last good one, halved each time, then silence. (Opus's
    /// own concealment is not used: in the transpiled libopus it can emit full-scale noise.)
    fn conceal(&mut self) -> Option<Frame> {
        let (last, concealed) = self.last.as_mut()?;
        if *concealed >= CONCEAL_FRAMES {
            return None;
        }
        *concealed += 1;
        for sample in last.iter_mut() {
            *sample /= 2;
        }
        Some(*last)
    }
}

/// Whether a frame rebuilt from FEC is believable next to the frame before it: no clipping
/// and no sudden jump in loudness. The transpiled libopus sometimes falls back to its own
/// concealment inside an FEC decode and returns full-scale noise; such frames are concealed
/// instead of played.
fn plausible(rebuilt: &Frame, previous: Option<&Frame>) -> bool {
    let clipped = rebuilt.iter().any(|s| s.unsigned_abs() >= 32_000);
    let jump = previous.is_some_and(|p| energy(rebuilt) > 16.0 * energy(p).max(1e4));
    !clipped && !jump
}

/// One frame's duration.
const FRAME_TIME: Duration = Duration::from_millis(20);
/// Mixed frames the consumer may fall behind by (200 ms) before playout waits for it.
const OUTPUT_FRAMES: usize = 10;
/// How far playout makes up for late ticks before it restarts its clock.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);

/// Tunnel records waiting for the writer: beyond this voice is dropped, never delayed.
const TUNNEL_QUEUE: usize = 32;

/// The two ways out of a voice session, and the choice between them.
struct Paths {
    quic: quinn::Connection,
    selector: Mutex<PathSelector>,
    /// The tunnel writer's queue, once the tunnel is open.
    tunnel: Mutex<Option<mpsc::Sender<Bytes>>>,
}

impl Paths {
    fn selector(&self) -> std::sync::MutexGuard<'_, PathSelector> {
        self.selector.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one voice packet on the path in use.
    fn send(&self, packet: Bytes) -> Result<(), RequestError> {
        let path = self.selector().path();
        self.send_on(path, packet)
    }

    fn send_on(&self, path: VoicePath, packet: Bytes) -> Result<(), RequestError> {
        match path {
            VoicePath::Datagram => {
                self.quic.send_datagram(packet).map_err(|e| RequestError::Connection(e.to_string()))
            }
            VoicePath::Tunnel => {
                let mut tunnel = self.tunnel.lock().unwrap_or_else(|e| e.into_inner());
                let queue = tunnel.get_or_insert_with(|| {
                    let (queue, packets) = mpsc::channel(TUNNEL_QUEUE);
                    tokio::spawn(write_tunnel(self.quic.clone(), packets));
                    queue
                });
                // A full queue loses this frame, as a congested path would.
                match queue.try_send(packet) {
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        Err(RequestError::Connection("voice tunnel closed".into()))
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// Writes queued voice packets as records on our voice tunnel stream (spec §8.4).
async fn write_tunnel(quic: quinn::Connection, mut packets: mpsc::Receiver<Bytes>) {
    let Ok(mut stream) = quic.open_uni().await else { return };
    let _ = stream.set_priority(3);
    let mut records = Vec::new();
    StreamType::VOICE_TUNNEL.encode(&mut records);
    while let Some(packet) = packets.recv().await {
        encode_tunnel_record(&packet, &mut records);
        if stream.write_all(&records).await.is_err() {
            return;
        }
        records.clear();
    }
}

/// A joined voice room.
pub struct VoiceSession {
    conn: Connection,
    joined: VoiceJoined,
    encoder: Mutex<Encoder>,
    sequence: Mutex<u16>,
    paths: Arc<Paths>,
    /// Where the connection hands this session the server's tunnel records.
    inbox: mpsc::Sender<Bytes>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for VoiceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceSession")
            .field("room", &self.joined.room)
            .field("source", &self.joined.source)
            .finish_non_exhaustive()
    }
}

impl VoiceSession {
    /// Joins `room`'s voice on `conn`. Mixed audio of everyone else comes out of the returned
    /// receiver as one frame every 20 ms (silence when nobody speaks).
    pub async fn join(
        conn: &Connection,
        room: RoomId,
        settings: EncoderSettings,
    ) -> Result<(Self, mpsc::Receiver<Frame>), RequestError> {
        let codec_error = |e: banter_codec::CodecError| RequestError::Protocol(e.to_string());
        let encoder = Encoder::new(settings).map_err(codec_error)?;
        let joined = match conn.request_one(VoiceJoin { room }).await? {
            Message::VoiceJoined(joined) => joined,
            other => {
                return Err(RequestError::Protocol(format!(
                    "expected VOICE_JOINED, got {:?}",
                    other.frame_type()
                )));
            }
        };
        let mixer: Arc<Mutex<Mixer>> = Arc::default();
        let (output_tx, output) = mpsc::channel(OUTPUT_FRAMES);
        let quic = conn.quic().clone();
        let datagrams = quic.max_datagram_size().is_some();
        let paths = Arc::new(Paths {
            selector: Mutex::new(PathSelector::new(Instant::now(), datagrams)),
            quic,
            tunnel: Mutex::default(),
        });
        let (tunnel_tx, mut tunnel_rx) = mpsc::channel(TUNNEL_QUEUE);
        *conn.voice_inbox().lock().unwrap_or_else(|e| e.into_inner()) = Some(tunnel_tx.clone());
        let receive = {
            let (paths, mixer) = (paths.clone(), mixer.clone());
            tokio::spawn(async move {
                loop {
                    let (via, packet) = tokio::select! {
                        datagram = paths.quic.read_datagram() => match datagram {
                            Ok(datagram) => (VoicePath::Datagram, datagram),
                            Err(_) => return,
                        },
                        Some(record) = tunnel_rx.recv() => (VoicePath::Tunnel, record),
                    };
                    let echo = mixer.lock().unwrap_or_else(|e| e.into_inner()).receive(&packet);
                    if let Some(echo) = echo {
                        paths.selector().on_echo(via, echo, Instant::now());
                    }
                }
            })
        };
        let ping = {
            let paths = paths.clone();
            tokio::spawn(async move {
                loop {
                    let due = paths.selector().poll_timeout();
                    tokio::time::sleep_until(due.into()).await;
                    let pings = paths.selector().poll(Instant::now());
                    for (via, stamp) in pings {
                        let header = VoiceHeader {
                            kind: Kind::VOICE_PING,
                            ..VoiceHeader::opus(0, 0, false)
                        };
                        let mut packet = [0u8; MAX_HEADER_LEN + 8];
                        let Some(n) = header.write(&mut packet) else { return };
                        packet[n..n + 8].copy_from_slice(&stamp);
                        // A ping that cannot go is what the selector learns from.
                        let _ = paths.send_on(via, Bytes::copy_from_slice(&packet[..n + 8]));
                    }
                }
            })
        };
        let playout = tokio::spawn(async move {
            let mut due = tokio::time::Instant::now();
            loop {
                tokio::time::sleep_until(due).await;
                // A frame every 20 ms; a late tick is made up, but after a longer stall (the
                // consumer stopped reading) the clock restarts instead of bursting.
                due += FRAME_TIME;
                let now = tokio::time::Instant::now();
                if now > due + MAX_CATCH_UP {
                    due = now;
                }
                let mix = mixer.lock().unwrap_or_else(|e| e.into_inner()).mix();
                if output_tx.send(mix).await.is_err() {
                    return;
                }
            }
        });
        let session = Self {
            conn: conn.clone(),
            joined,
            encoder: Mutex::new(encoder),
            sequence: Mutex::new(0),
            paths,
            inbox: tunnel_tx,
            tasks: vec![receive, ping, playout],
        };
        Ok((session, output))
    }

    /// The room.
    pub fn room(&self) -> RoomId {
        self.joined.room
    }

    /// Our source id in the room.
    pub fn source(&self) -> SourceId {
        self.joined.source
    }

    /// The server's answer to the join: codec and who was in voice then.
    pub fn joined(&self) -> &VoiceJoined {
        &self.joined
    }

    /// The path voice takes now.
    pub fn path(&self) -> VoicePath {
        self.paths.selector().path()
    }

    /// The round-trip time to the server, measured by VOICE_PING (spec §8.2).
    pub fn rtt(&self) -> Option<Duration> {
        self.paths.selector().rtt()
    }

    /// Encodes and sends one 20 ms frame; `end` marks the last frame of a talk spurt.
    pub fn send(&self, pcm: &Frame, end: bool) -> Result<(), RequestError> {
        let mut packet = [0u8; MAX_HEADER_LEN + MAX_PACKET];
        let sequence = {
            let mut sequence = self.sequence.lock().unwrap_or_else(|e| e.into_inner());
            *sequence = sequence.wrapping_add(1);
            *sequence
        };
        let header = VoiceHeader::opus(0, sequence, end);
        let n = header.write(&mut packet).ok_or_else(|| RequestError::Protocol("header".into()))?;
        let encoded = self
            .encoder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .encode(pcm, &mut packet[n..])
            .map_err(|e| RequestError::Protocol(e.to_string()))?;
        self.paths.send(Bytes::copy_from_slice(&packet[..n + encoded]))
    }

    /// Leaves voice.
    pub async fn leave(self) -> Result<(), RequestError> {
        self.stop();
        self.conn.request_one(VoiceLeave { room: self.joined.room }).await.map(|_| ())
    }

    fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
        // A session joined since on the same connection has its own inbox: leave it be.
        let mut inbox = self.conn.voice_inbox().lock().unwrap_or_else(|e| e.into_inner());
        if inbox.as_ref().is_some_and(|current| current.same_channel(&self.inbox)) {
            *inbox = None;
        }
    }
}

impl Drop for VoiceSession {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jitter_buffer_reorders_recovers_single_losses_and_resets_after_silence() {
        let mut buffer = JitterBuffer::new();
        assert_eq!(buffer.pop(), Playout::Idle);
        buffer.push(2, vec![2]);
        buffer.push(1, vec![1]); // reordered
        assert_eq!(buffer.pop(), Playout::Idle, "playout waits for START_DEPTH frames");
        buffer.push(0, vec![0]);
        assert_eq!(buffer.pop(), Playout::Packet(vec![0]));
        assert_eq!(buffer.pop(), Playout::Packet(vec![1]));
        assert_eq!(buffer.pop(), Playout::Packet(vec![2]));
        buffer.push(4, vec![4]); // 3 is lost
        assert_eq!(buffer.pop(), Playout::Recover(vec![4]));
        assert_eq!(buffer.pop(), Playout::Packet(vec![4]));
        buffer.push(3, vec![3]); // far too late
        assert_eq!(buffer.late, 1);
        for _ in 0..3 {
            buffer.pop();
        }
        assert_eq!(buffer.pop(), Playout::Idle, "reset after the speaker went quiet");
        // Sequence numbers wrap.
        let mut wrap = JitterBuffer::new();
        wrap.push(65_534, vec![0]);
        wrap.push(65_535, vec![1]);
        wrap.push(0, vec![2]);
        assert_eq!(wrap.pop(), Playout::Packet(vec![0]));
        assert_eq!(wrap.pop(), Playout::Packet(vec![1]));
        assert_eq!(wrap.pop(), Playout::Packet(vec![2]));
    }

    #[test]
    fn mixing_saturates_instead_of_wrapping() {
        let mut mix = [30_000i16; FRAME_SAMPLES];
        mix_into(&mut mix, &[10_000i16; FRAME_SAMPLES]);
        assert!(mix.iter().all(|s| *s == i16::MAX));
    }

    #[test]
    fn implausible_fec_frames_are_rejected_and_losses_fade_to_silence() {
        let quiet = [1_000i16; FRAME_SAMPLES];
        assert!(plausible(&[2_000i16; FRAME_SAMPLES], Some(&quiet)));
        assert!(!plausible(&[32_767i16; FRAME_SAMPLES], None), "clipped");
        assert!(!plausible(&[8_000i16; FRAME_SAMPLES], Some(&quiet)), "a jump in loudness");

        let mut speaker = Speaker::new(Decoder::new().unwrap());
        assert_eq!(speaker.conceal(), None, "nothing to bridge from");
        speaker.last = Some(([8_000i16; FRAME_SAMPLES], 0));
        let levels: Vec<Option<i16>> =
            (0..4).map(|_| speaker.conceal().map(|frame| frame[0])).collect();
        assert_eq!(levels, [Some(4_000), Some(2_000), Some(1_000), None]);
    }
}
