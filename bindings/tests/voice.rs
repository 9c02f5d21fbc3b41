//! Voice through the C ABI: one libbanter client pushes speech, another pulls it, through a
//! real banterd; the envelope survives.

mod common;

use std::ptr;
use std::time::{Duration, Instant};

use banter::*;
use banter_codec::{FRAME_SAMPLES, envelope_correlation, speech_like};
use banter_tests::TestServer;
use common::client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_pushed_by_one_c_client_is_pulled_by_another() {
    let server = TestServer::start().await;
    let addr = server.addr().to_string();
    let result = tokio::task::spawn_blocking(move || {
        let speaker = client(&addr, "speaker");
        let listener = client(&addr, "listener");
        let mut room = 0;
        // SAFETY: live clients, valid strings and buffers of the stated lengths.
        unsafe {
            assert_eq!(
                banter_client_create_room(speaker, c"talk".as_ptr(), 4, false, true, &mut room),
                banter_status::BANTER_OK
            );
            assert_eq!(banter_client_join(listener, room), banter_status::BANTER_OK);
            assert_eq!(banter_client_voice_join(listener, room), banter_status::BANTER_OK);
            assert_eq!(banter_client_voice_join(speaker, room), banter_status::BANTER_OK);
            // Wrong frame sizes and NULL are errors.
            assert_eq!(
                banter_client_voice_push(speaker, ptr::null(), 960, false),
                banter_status::BANTER_NULL_ARGUMENT
            );
            assert_eq!(
                banter_client_voice_push(speaker, [0i16; 10].as_ptr(), 10, false),
                banter_status::BANTER_INVALID_ARGUMENT
            );
        }
        let speech = speech_like(100);
        let pulled = std::thread::scope(|scope| {
            let listener_ptr = listener as usize;
            let pulling = scope.spawn(move || {
                let listener = listener_ptr as *mut banter_client;
                let mut heard = Vec::new();
                let mut frame = [0i16; FRAME_SAMPLES];
                while heard.len() < 140 {
                    // SAFETY: a live client; `frame` holds FRAME_SAMPLES samples.
                    match unsafe {
                        banter_client_voice_pull(listener, frame.as_mut_ptr(), FRAME_SAMPLES, 1000)
                    } {
                        banter_status::BANTER_OK => heard.push(frame),
                        other => panic!("pull: {other:?}"),
                    }
                }
                heard
            });
            let start = Instant::now();
            for (i, frame) in speech.iter().enumerate() {
                let due = start + Duration::from_millis(20 * i as u64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                // SAFETY: a live client; `frame` holds FRAME_SAMPLES samples.
                let status = unsafe {
                    banter_client_voice_push(speaker, frame.as_ptr(), FRAME_SAMPLES, i == 99)
                };
                assert_eq!(status, banter_status::BANTER_OK);
            }
            pulling.join().unwrap()
        });
        // SAFETY: live clients, freed once.
        unsafe {
            assert_eq!(banter_client_voice_mute(speaker, true), banter_status::BANTER_OK);
            assert_eq!(banter_client_voice_leave(speaker), banter_status::BANTER_OK);
            banter_client_free(speaker);
            banter_client_free(listener);
        }
        (speech, pulled)
    })
    .await
    .unwrap();
    let (speech, heard) = result;
    let correlation = envelope_correlation(&speech, &heard, 40);
    // Above 0.9 on an idle machine; near 0 for broken audio; room left for a loaded CI.
    assert!(correlation > 0.7, "envelope correlation {correlation}");
}
