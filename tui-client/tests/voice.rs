//! `banter voice` as scripts use it: one user speaks a WAV file into a voice room, another
//! records what it hears to a WAV file, through a real banterd.

mod common;

use std::process::Stdio;
use std::time::Duration;

use banter_codec::{FRAME_SAMPLES, Frame, envelope_correlation, speech_like};
use common::{Env, start};

fn frames_of(path: &std::path::Path) -> Vec<Frame> {
    let mut reader = hound::WavReader::open(path).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    samples
        .chunks_exact(FRAME_SAMPLES)
        .map(|c| {
            let mut frame = [0i16; FRAME_SAMPLES];
            frame.copy_from_slice(c);
            frame
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wav_spoken_by_one_user_is_recorded_by_another() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.ada_and_bob_in_voice_room("talk");

    let speech = speech_like(100);
    let input = env.wav("speech.wav", &speech);
    let heard = env.home.path().join("heard.wav");

    let listener = env
        .banter(&[
            "--profile",
            "bob",
            "voice",
            "talk",
            "--output",
            heard.to_str().unwrap(),
            "--seconds",
            "5",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.run_ok(&["voice", "talk", "--input", input.to_str().unwrap(), "--seconds", "3"]);
    let status = tokio::task::spawn_blocking(move || listener.wait_with_output())
        .await
        .unwrap()
        .unwrap()
        .status;
    assert!(status.success());

    let recorded = frames_of(&heard);
    assert!(recorded.len() >= 200, "about 5 s recorded, got {} frames", recorded.len());
    let correlation = envelope_correlation(&speech, &recorded, 200);
    // Above 0.9 on an idle machine; near 0 for broken audio; room left for a loaded CI.
    assert!(correlation > 0.7, "envelope correlation {correlation}");
    server.shutdown().await;
}
