//! # banter-codec
//!
//! Opus for Banter voice (spec §6.6: 48 kHz, mono, 20 ms frames): a safe [`Encoder`] and
//! [`Decoder`] over `unsafe-libopus`, a c2rust transpile of libopus 1.3.1, so that the default
//! build and the test suite need only cargo (no libopus-dev, no cmake). All `unsafe` of the
//! voice path lives in this file.

use std::ptr::NonNull;

use unsafe_libopus::varargs::{VarArg, VarArgs};
use unsafe_libopus::{
    OPUS_APPLICATION_VOIP, OPUS_OK, OPUS_SET_BITRATE_REQUEST, OPUS_SET_DTX_REQUEST,
    OPUS_SET_INBAND_FEC_REQUEST, OPUS_SET_PACKET_LOSS_PERC_REQUEST, OpusDecoder, OpusEncoder,
};

/// Samples per second.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame (mono).
pub const FRAME_SAMPLES: usize = 960;
/// The largest Opus packet we produce.
pub const MAX_PACKET: usize = 1000;

/// One 20 ms frame of 16-bit mono PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// An Opus call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("opus error {0}")]
pub struct CodecError(pub i32);

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct EncoderSettings {
    /// Target bitrate, bit/s.
    pub bitrate: i32,
    /// In-band forward error correction (lets the receiver rebuild a lost frame from the next).
    pub fec: bool,
    /// Discontinuous transmission (near-silent frames become tiny).
    pub dtx: bool,
    /// Expected packet loss, percent (tunes FEC).
    pub expected_loss: i32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self { bitrate: 32_000, fec: true, dtx: false, expected_loss: 10 }
    }
}

/// An Opus encoder for 48 kHz mono speech.
#[derive(Debug)]
pub struct Encoder {
    state: NonNull<OpusEncoder>,
}

// SAFETY: the encoder state is plain memory owned by this value; libopus keeps no thread-local
// or shared state, so moving it to another thread is sound (it is not shared: no Sync).
unsafe impl Send for Encoder {}

impl Encoder {
    /// A new encoder.
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        let mut error = 0;
        // SAFETY: valid sample rate and channel count; `error` is a valid out-pointer.
        let state = unsafe {
            unsafe_libopus::opus_encoder_create(
                SAMPLE_RATE as i32,
                1,
                OPUS_APPLICATION_VOIP,
                &mut error,
            )
        };
        let state = NonNull::new(state).ok_or(CodecError(error))?;
        let encoder = Self { state };
        for (request, value) in [
            (OPUS_SET_BITRATE_REQUEST, settings.bitrate),
            (OPUS_SET_INBAND_FEC_REQUEST, i32::from(settings.fec)),
            (OPUS_SET_DTX_REQUEST, i32::from(settings.dtx)),
            (OPUS_SET_PACKET_LOSS_PERC_REQUEST, settings.expected_loss),
        ] {
            // SAFETY: a live encoder and a request that takes one i32.
            let status = unsafe {
                unsafe_libopus::opus_encoder_ctl_impl(
                    encoder.state.as_ptr(),
                    request,
                    VarArgs::new(vec![VarArg::I32(value)]),
                )
            };
            if status != OPUS_OK {
                return Err(CodecError(status));
            }
        }
        Ok(encoder)
    }

    /// Encodes one frame into `out`; returns the packet length.
    pub fn encode(&mut self, pcm: &Frame, out: &mut [u8]) -> Result<usize, CodecError> {
        let capacity = i32::try_from(out.len().min(MAX_PACKET)).unwrap_or(MAX_PACKET as i32);
        // SAFETY: a live encoder; `pcm` holds FRAME_SAMPLES samples; `out` has `capacity` bytes.
        let n = unsafe {
            unsafe_libopus::opus_encode(
                self.state.as_ptr(),
                pcm.as_ptr(),
                FRAME_SAMPLES as i32,
                out.as_mut_ptr(),
                capacity,
            )
        };
        usize::try_from(n).map_err(|_| CodecError(n))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { unsafe_libopus::opus_encoder_destroy(self.state.as_ptr()) }
    }
}

/// An Opus decoder for one source.
#[derive(Debug)]
pub struct Decoder {
    state: NonNull<OpusDecoder>,
}

// SAFETY: as for Encoder: owned plain memory, no shared state.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A new decoder.
    pub fn new() -> Result<Self, CodecError> {
        let mut error = 0;
        // SAFETY: valid sample rate and channel count; `error` is a valid out-pointer.
        let state =
            unsafe { unsafe_libopus::opus_decoder_create(SAMPLE_RATE as i32, 1, &mut error) };
        Ok(Self { state: NonNull::new(state).ok_or(CodecError(error))? })
    }

    /// Decodes one packet into a frame. With `fec` and the packet that *follows* a lost one,
    /// the lost frame is rebuilt from that packet's in-band redundancy. `None` asks Opus's own
    /// concealment (PLC) for a frame; in the transpiled 1.3.1 this produced a full-scale burst
    /// in our tests, and an FEC decode of a packet without redundancy sometimes does the same
    /// (it falls back to PLC), so the voice pipeline checks rebuilt frames and conceals losses
    /// itself (`banter_client::voice`).
    pub fn decode(
        &mut self,
        packet: Option<&[u8]>,
        fec: bool,
        out: &mut Frame,
    ) -> Result<usize, CodecError> {
        let (data, len) = match packet {
            Some(p) => (p.as_ptr(), i32::try_from(p.len()).map_err(|_| CodecError(-1))?),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: a live decoder; `data` is NULL (PLC) or `len` readable bytes; `out` holds
        // FRAME_SAMPLES samples.
        let n = unsafe {
            unsafe_libopus::opus_decode(
                self.state.as_ptr(),
                data,
                len,
                out.as_mut_ptr(),
                FRAME_SAMPLES as i32,
                i32::from(fec),
            )
        };
        usize::try_from(n).map_err(|_| CodecError(n))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { unsafe_libopus::opus_decoder_destroy(self.state.as_ptr()) }
    }
}

/// A deterministic speech-like test signal (a harmonic voice at 160 Hz under a syllable-rate
/// envelope), for tests and benchmarks that need real audio through real Opus.
pub fn speech_like(frames: usize) -> Vec<Frame> {
    (0..frames)
        .map(|f| {
            let mut frame = [0i16; FRAME_SAMPLES];
            for (i, sample) in frame.iter_mut().enumerate() {
                let t = (f * FRAME_SAMPLES + i) as f64 / f64::from(SAMPLE_RATE);
                let envelope = (0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin()).powi(2);
                let voiced: f64 = (1..=8)
                    .map(|k| {
                        (2.0 * std::f64::consts::PI * 160.0 * f64::from(k) * t).sin() / f64::from(k)
                    })
                    .sum();
                *sample = (envelope * 6_000.0 * voiced) as i16;
            }
            frame
        })
        .collect()
}

/// Mean energy of a frame (its square-loudness), for envelope comparisons.
pub fn energy(frame: &Frame) -> f64 {
    frame.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / FRAME_SAMPLES as f64
}

/// How recognisable `heard` is as `sent`: the best Pearson correlation of their per-frame
/// energy envelopes over lags of 0..`max_lag` frames (a voice pipeline delays the audio by its
/// jitter buffer and the network). 1 is a perfect match; unrelated audio is near 0.
pub fn envelope_correlation(sent: &[Frame], heard: &[Frame], max_lag: usize) -> f64 {
    let a: Vec<f64> = sent.iter().map(energy).collect();
    let b: Vec<f64> = heard.iter().map(energy).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    (0..=max_lag)
        .filter(|lag| lag + a.len() <= b.len())
        .map(|lag| {
            let b = &b[lag..lag + a.len()];
            let (ma, mb) = (mean(&a), mean(b));
            let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
            let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
            let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
            if va == 0.0 || vb == 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_survives_an_encode_decode_round_trip_and_fec_rebuilds_a_lost_frame() {
        let input = speech_like(50);
        let mut encoder = Encoder::new(EncoderSettings::default()).unwrap();
        let mut decoder = Decoder::new().unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let packets: Vec<Vec<u8>> = input
            .iter()
            .map(|frame| {
                let n = encoder.encode(frame, &mut packet).unwrap();
                assert!(n > 0 && n < 400, "a 20 ms frame at 32 kbit/s is about 80 bytes, got {n}");
                packet[..n].to_vec()
            })
            .collect();
        let mut output = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            let mut out = [0i16; FRAME_SAMPLES];
            if i == 25 {
                // Lost: rebuilt from the next packet's in-band FEC.
                decoder.decode(Some(&packets[26]), true, &mut out).unwrap();
            } else {
                decoder.decode(Some(packet), false, &mut out).unwrap();
            }
            output.push(out);
        }
        // Opus delays by a few ms; compare the envelopes after the first frames.
        let correlation = envelope_correlation(&input[5..], &output[5..], 0);
        assert!(correlation > 0.9, "envelope correlation {correlation}");
        let (lost, sent) = (energy(&output[25]).sqrt(), energy(&input[25]).sqrt());
        assert!(
            lost > sent * 0.3 && lost < sent * 3.0,
            "the lost frame was rebuilt ({lost} vs {sent})"
        );
    }
}
