//! Sample conversion between sound devices (any rate, interleaved channels, −1.0..=1.0) and
//! voice frames (48 kHz mono 16-bit, 20 ms).

use banter_codec::{FRAME_SAMPLES, Frame, SAMPLE_RATE};

/// Linear-interpolation resampling of a mono stream, one sample at a time: enough for speech
/// between the usual device rates (44.1, 48, 96 kHz) and 48 kHz Opus.
#[derive(Debug, Clone)]
pub(crate) struct Resampler {
    /// Input samples per output sample.
    step: f64,
    /// Where the next output sample falls, in input samples after the previous input sample.
    at: f64,
    previous: f32,
}

impl Resampler {
    pub(crate) fn new(from_rate: u32, to_rate: u32) -> Self {
        let step = f64::from(from_rate) / f64::from(to_rate.max(1));
        Self { step, at: step, previous: 0.0 }
    }

    /// Takes the next input sample; gives the output samples that fall before it.
    pub(crate) fn push(&mut self, sample: f32, mut out: impl FnMut(f32)) {
        while self.at <= 1.0 {
            let t = self.at as f32;
            out(self.previous + (sample - self.previous) * t);
            self.at += self.step;
        }
        self.at -= 1.0;
        self.previous = sample;
    }
}

/// Interleaved device samples in, 20 ms frames of 48 kHz mono out.
#[derive(Debug)]
pub(crate) struct ToFrames {
    channels: usize,
    resampler: Resampler,
    frame: Vec<i16>,
}

impl ToFrames {
    pub(crate) fn new(rate: u32, channels: u16) -> Self {
        Self {
            channels: usize::from(channels.max(1)),
            resampler: Resampler::new(rate, SAMPLE_RATE),
            frame: Vec::with_capacity(FRAME_SAMPLES),
        }
    }

    /// Converts `interleaved` samples (−1.0..=1.0); each finished frame goes to `out`.
    pub(crate) fn push(&mut self, interleaved: &[f32], mut out: impl FnMut(Frame)) {
        for sample in interleaved.chunks(self.channels) {
            let mono = sample.iter().sum::<f32>() / sample.len() as f32;
            let frame = &mut self.frame;
            self.resampler.push(mono, |s| frame.push((s.clamp(-1.0, 1.0) * 32_767.0) as i16));
            if self.frame.len() >= FRAME_SAMPLES {
                let mut whole = [0i16; FRAME_SAMPLES];
                whole.copy_from_slice(&self.frame[..FRAME_SAMPLES]);
                self.frame.drain(..FRAME_SAMPLES);
                out(whole);
            }
        }
    }
}

/// 48 kHz mono frames in, interleaved device samples out.
#[derive(Debug)]
pub(crate) struct FromFrames {
    channels: usize,
    resampler: Resampler,
}

impl FromFrames {
    pub(crate) fn new(rate: u32, channels: u16) -> Self {
        Self {
            channels: usize::from(channels.max(1)),
            resampler: Resampler::new(SAMPLE_RATE, rate),
        }
    }

    /// Appends `frame`, converted, to `out`.
    pub(crate) fn push(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        let channels = self.channels;
        for sample in frame {
            self.resampler.push(f32::from(*sample) / 32_768.0, |s| {
                out.extend(std::iter::repeat_n(s, channels));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, channels: u16, hz: f32, seconds: f32) -> Vec<f32> {
        let samples = (rate as f32 * seconds) as usize;
        (0..samples)
            .flat_map(|i| {
                let s = (i as f32 / rate as f32 * hz * std::f32::consts::TAU).sin() * 0.5;
                std::iter::repeat_n(s, usize::from(channels))
            })
            .collect()
    }

    /// Sign changes per second, halved: the frequency of a pure tone.
    fn frequency(samples: impl Iterator<Item = f32>, rate: u32) -> f32 {
        let samples: Vec<f32> = samples.collect();
        let crossings = samples.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        crossings as f32 / 2.0 / (samples.len() as f32 / rate as f32)
    }

    #[test]
    fn a_44k_stereo_microphone_becomes_48k_mono_frames_of_the_same_tone() {
        let mut convert = ToFrames::new(44_100, 2);
        let mut frames = Vec::new();
        convert.push(&tone(44_100, 2, 440.0, 1.0), |f| frames.push(f));
        // One second in is 50 frames out (the last may still be filling).
        assert!((49..=50).contains(&frames.len()), "{} frames", frames.len());
        let samples = frames.iter().flatten().map(|s| f32::from(*s));
        let hz = frequency(samples, SAMPLE_RATE);
        assert!((hz - 440.0).abs() < 3.0, "{hz} Hz");
        let peak = frames.iter().flatten().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((16_000..=16_400).contains(&peak), "peak {peak}");
    }

    #[test]
    fn frames_become_the_speakers_rate_and_channels() {
        let mut frames = Vec::new();
        ToFrames::new(SAMPLE_RATE, 1).push(&tone(SAMPLE_RATE, 1, 300.0, 1.0), |f| frames.push(f));
        let mut convert = FromFrames::new(96_000, 2);
        let mut out = Vec::new();
        for frame in &frames {
            convert.push(frame, &mut out);
        }
        assert!((out.len() as i64 - 2 * 96_000).abs() <= 4, "{} samples", out.len());
        assert!(out.chunks(2).all(|pair| pair[0] == pair[1]), "both channels carry the voice");
        let hz = frequency(out.iter().step_by(2).copied(), 96_000);
        assert!((hz - 300.0).abs() < 3.0, "{hz} Hz");
    }
}
