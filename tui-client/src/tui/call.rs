//! A voice call of the TUI: one task owns the [`VoiceSession`] and the sound devices, sends
//! captured frames while the user talks and plays what it hears. The screen steers it through
//! [`CallTask`] and learns how it goes from [`Action::VoiceJoined`] and [`Action::VoiceLeft`].

use banter_client::Client;
use banter_client::voice::VoiceSession;
use banter_codec::{EncoderSettings, FRAME_SAMPLES, Frame};
use banter_protocol::ids::RoomId;
use tokio::sync::mpsc;

use super::model::{Action, CallEnd};
use crate::audio;

enum Control {
    Talk(bool),
    Leave,
}

/// The running call.
#[derive(Debug)]
pub(crate) struct CallTask {
    control: mpsc::UnboundedSender<Control>,
}

impl CallTask {
    /// Joins `room`'s voice; `call` is the screen's number for this call.
    pub(crate) fn start(
        client: &Client,
        room: RoomId,
        call: u64,
        results: mpsc::UnboundedSender<Action>,
    ) -> Self {
        let (control, controls) = mpsc::unbounded_channel();
        tokio::spawn(run(client.clone(), room, call, controls, results));
        Self { control }
    }

    /// Starts or stops sending the microphone.
    pub(crate) fn talk(&self, on: bool) {
        let _ = self.control.send(Control::Talk(on));
    }

    /// Leaves voice; [`Action::VoiceLeft`] follows.
    pub(crate) fn leave(self) {
        let _ = self.control.send(Control::Leave);
    }
}

async fn run(
    client: Client,
    room: RoomId,
    call: u64,
    mut controls: mpsc::UnboundedReceiver<Control>,
    results: mpsc::UnboundedSender<Action>,
) {
    let left = |end: CallEnd| Action::VoiceLeft { call, end };
    let conn = match client.connection().await {
        Ok(conn) => conn,
        Err(error) => {
            let _ = results.send(left(CallEnd::Failed(format!("voice: {error}"))));
            return;
        }
    };
    let (session, mut heard) =
        match VoiceSession::join(&conn, room, EncoderSettings::default()).await {
            Ok(joined) => joined,
            Err(error) => {
                let _ = results.send(left(CallEnd::Failed(format!("voice: {error}"))));
                return;
            }
        };
    let mut devices = audio::open();
    let _ = results.send(Action::VoiceJoined {
        call,
        joined: session.joined().clone(),
        note: devices.note,
    });
    let mut talking = false;
    let end = loop {
        tokio::select! {
            control = controls.recv() => match control {
                Some(Control::Talk(on)) => {
                    if talking && !on {
                        // Marks the end of the talk spurt (spec §8.3).
                        let _ = session.send(&[0; FRAME_SAMPLES], true);
                    }
                    talking = on;
                }
                Some(Control::Leave) | None => {
                    let _ = session.leave().await;
                    break CallEnd::Left;
                }
            },
            Some(frame) = captured(&mut devices.microphone) => {
                if talking {
                    let _ = session.send(&frame, false);
                }
            }
            frame = heard.recv() => match (frame, &devices.speakers) {
                (Some(frame), Some(speakers)) => {
                    let _ = speakers.try_send(frame);
                }
                (Some(_), None) => {}
                (None, _) => break CallEnd::Failed("voice stopped".to_owned()),
            },
            _ = conn.quic().closed() => break CallEnd::Lost,
        }
    };
    let _ = results.send(left(end));
}

/// The next captured frame; never, without a microphone.
async fn captured(microphone: &mut Option<mpsc::Receiver<Frame>>) -> Option<Frame> {
    match microphone {
        Some(frames) => frames.recv().await,
        None => std::future::pending().await,
    }
}
