//! Sound devices for the TUI's voice. With the `audio` feature the default microphone and
//! speakers come through cpal (ALSA on Linux, hence libasound2-dev); without it there are none,
//! and a call shows who is in voice and talking but plays and captures nothing. Devices rarely
//! run at 48 kHz mono, so samples are converted on the way in and out ([`Resampler`]).

use banter_codec::Frame;
use tokio::sync::mpsc;

#[cfg(any(feature = "audio", test))]
mod convert;

/// The sound devices of a call, while it lasts.
#[derive(Debug)]
pub(crate) struct Devices {
    /// Captured frames, when there is a microphone.
    pub(crate) microphone: Option<mpsc::Receiver<Frame>>,
    /// Frames to play, when there are speakers.
    pub(crate) speakers: Option<mpsc::Sender<Frame>>,
    /// What is missing and why, for the status line.
    pub(crate) note: Option<String>,
    /// Dropping this stops the device thread.
    _stop: Option<std::sync::mpsc::Sender<()>>,
}

/// Opens the default microphone and speakers.
#[cfg(not(feature = "audio"))]
pub(crate) fn open() -> Devices {
    Devices {
        microphone: None,
        speakers: None,
        note: Some("no sound devices: banter was built without the `audio` feature".into()),
        _stop: None,
    }
}

/// Opens the default microphone and speakers.
#[cfg(feature = "audio")]
pub(crate) fn open() -> Devices {
    devices::open()
}

#[cfg(feature = "audio")]
mod devices {
    //! cpal streams live on their own thread (they are not `Send` on every platform) until the
    //! call drops its [`Devices`].

    use std::collections::VecDeque;

    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    use cpal::{FromSample, SampleFormat, SizedSample, Stream};

    use super::convert::{FromFrames, ToFrames};
    use super::*;

    /// At most this much audio waits for the speakers; beyond it the oldest goes, so latency
    /// stays bounded when the device runs slow.
    const MAX_QUEUED_MS: usize = 200;

    type Opened = (Option<mpsc::Receiver<Frame>>, Option<mpsc::Sender<Frame>>, Vec<String>);

    pub(super) fn open() -> Devices {
        let (ready_tx, ready) = std::sync::mpsc::channel::<Opened>();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let host = cpal::default_host();
            let mut notes = Vec::new();
            let (mic_tx, mic_rx) = mpsc::channel(10);
            let input = microphone(&host, mic_tx)
                .map_err(|e| notes.push(format!("no microphone: {e}")))
                .ok();
            let (speaker_tx, speaker_rx) = mpsc::channel(10);
            let output = speakers(&host, speaker_rx)
                .map_err(|e| notes.push(format!("no speakers: {e}")))
                .ok();
            let opened =
                (input.is_some().then_some(mic_rx), output.is_some().then_some(speaker_tx));
            let _ = ready_tx.send((opened.0, opened.1, notes));
            // Until the call ends (its sender is dropped).
            let _ = stopped.recv();
            drop((input, output));
        });
        let (microphone, speakers, notes) =
            ready.recv().unwrap_or_else(|_| (None, None, vec!["the sound thread failed".into()]));
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        Devices { microphone, speakers, note, _stop: Some(stop) }
    }

    fn microphone(host: &cpal::Host, frames: mpsc::Sender<Frame>) -> Result<Stream, String> {
        let device = host.default_input_device().ok_or("no default input device")?;
        let config = device.default_input_config().map_err(|e| e.to_string())?;
        let convert = ToFrames::new(config.sample_rate().0, config.channels());
        let stream = match config.sample_format() {
            SampleFormat::F32 => capture::<f32>(&device, &config.into(), convert, frames),
            SampleFormat::I16 => capture::<i16>(&device, &config.into(), convert, frames),
            other => return Err(format!("unsupported sample format {other}")),
        }?;
        stream.play().map_err(|e| e.to_string())?;
        Ok(stream)
    }

    fn capture<T>(
        device: &cpal::Device,
        config: &cpal::StreamConfig,
        mut convert: ToFrames,
        frames: mpsc::Sender<Frame>,
    ) -> Result<Stream, String>
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        let mut samples = Vec::new();
        device
            .build_input_stream(
                config,
                move |data: &[T], _: &cpal::InputCallbackInfo| {
                    samples.clear();
                    samples.extend(data.iter().map(|s| s.to_sample::<f32>()));
                    // A call that falls behind loses frames rather than delaying them.
                    convert.push(&samples, |frame| {
                        let _ = frames.try_send(frame);
                    });
                },
                |error| tracing::warn!(%error, "microphone"),
                None,
            )
            .map_err(|e| e.to_string())
    }

    fn speakers(host: &cpal::Host, frames: mpsc::Receiver<Frame>) -> Result<Stream, String> {
        let device = host.default_output_device().ok_or("no default output device")?;
        let config = device.default_output_config().map_err(|e| e.to_string())?;
        let convert = FromFrames::new(config.sample_rate().0, config.channels());
        let limit =
            config.sample_rate().0 as usize * usize::from(config.channels()) * MAX_QUEUED_MS / 1000;
        let stream = match config.sample_format() {
            SampleFormat::F32 => play::<f32>(&device, &config.into(), convert, frames, limit),
            SampleFormat::I16 => play::<i16>(&device, &config.into(), convert, frames, limit),
            other => return Err(format!("unsupported sample format {other}")),
        }?;
        stream.play().map_err(|e| e.to_string())?;
        Ok(stream)
    }

    fn play<T>(
        device: &cpal::Device,
        config: &cpal::StreamConfig,
        mut convert: FromFrames,
        mut frames: mpsc::Receiver<Frame>,
        limit: usize,
    ) -> Result<Stream, String>
    where
        T: SizedSample + FromSample<f32>,
    {
        let mut queued = VecDeque::new();
        let mut converted = Vec::new();
        device
            .build_output_stream(
                config,
                move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
                    while let Ok(frame) = frames.try_recv() {
                        converted.clear();
                        convert.push(&frame, &mut converted);
                        queued.extend(converted.iter().copied());
                    }
                    let excess = queued.len().saturating_sub(limit);
                    queued.drain(..excess);
                    for out in data.iter_mut() {
                        *out = T::from_sample(queued.pop_front().unwrap_or(0.0));
                    }
                },
                |error| tracing::warn!(%error, "speakers"),
                None,
            )
            .map_err(|e| e.to_string())
    }
}

#[cfg(all(test, feature = "audio"))]
mod tests {
    use std::time::Duration;

    /// ALSA configured with nothing but a null default device: no sound card needed.
    const NULL_ALSA: &str = "pcm.!default { type null }\n";

    /// Runs the device test in a child process whose ALSA reads only `NULL_ALSA` (the
    /// environment of this process is not ours to change).
    #[test]
    fn the_default_devices_open_capture_frames_and_take_playback() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alsa.conf");
        std::fs::write(&config, NULL_ALSA).unwrap();
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "audio::tests::on_null_devices"])
            .env("ALSA_CONFIG_PATH", &config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && stdout.contains("1 passed"), "{stdout}");
    }

    /// Both directions open, the microphone delivers 20 ms frames, the speakers take them.
    #[tokio::test]
    #[ignore = "run by the test above, against ALSA's null device"]
    async fn on_null_devices() {
        let mut devices = super::open();
        assert_eq!(devices.note, None, "both devices open");
        let microphone = devices.microphone.as_mut().expect("a microphone");
        let frame = tokio::time::timeout(Duration::from_secs(2), microphone.recv()).await;
        assert!(matches!(frame, Ok(Some(_))), "a captured frame");
        let speakers = devices.speakers.as_ref().expect("speakers");
        speakers.send([0; banter_codec::FRAME_SAMPLES]).await.unwrap();
    }
}
