//! §5: SETTINGS.

use banter_client::protocol::ErrorCode;
use banter_client::protocol::frame::encode_raw;
use banter_client::protocol::message::{Message, Ping};
use banter_client::protocol::settings::{Limits, SettingId};
use banter_client::protocol::{Frame, FrameType, varint};

use crate::raw::{self, ServerControl};
use crate::{Check, Level::*};

/// A SETTINGS frame with `body` as its body.
fn settings_frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_raw(FrameType(0x01), body, &mut bytes);
    bytes
}

/// Sends `control` as the client's CONTROL stream and expects a close with `code`.
async fn closes(target: &crate::Target, control: Vec<u8>, code: ErrorCode) -> crate::Outcome {
    let conn = raw::connect(target).await?;
    let _control = raw::open_control(&conn, &control).await?;
    raw::expect_close(&conn, code, raw::WAIT).await
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "5.1-1",
            "§5.1",
            Must,
            "the server's first CONTROL frame is SETTINGS",
            |t| async move {
                let conn = raw::connect(&t).await?;
                let _control = raw::open_control(&conn, &raw::client_settings()).await?;
                let mut theirs = ServerControl::accept(&conn).await?;
                match theirs.next().await? {
                    Some(Message::Settings(_)) => Ok(()),
                    other => Err(format!("first frame {other:?}")),
                }
            },
        ),
        Check::new(
            "5.1-2",
            "§5.1",
            Must,
            "a CONTROL stream that does not start with SETTINGS closes with MISSING_SETTINGS",
            |t| async move {
                let mut ping = Vec::new();
                Ping { t: 1, ack_event_seq: 0 }.encode_frame(&mut ping);
                closes(&t, ping, ErrorCode::MISSING_SETTINGS).await
            },
        ),
        Check::new(
            "5.1-3",
            "§5.1",
            Must,
            "a second SETTINGS closes with PROTOCOL_VIOLATION",
            |t| async move {
                let mut twice = raw::client_settings();
                twice.extend(raw::client_settings());
                closes(&t, twice, ErrorCode::PROTOCOL_VIOLATION).await
            },
        ),
        Check::new(
            "5.1-4",
            "§5.1",
            Must,
            "a setting named twice is a FRAME_ERROR",
            |t| async move {
                closes(&t, settings_frame(&[0x04, 0x01, 0x04, 0x02]), ErrorCode::FRAME_ERROR).await
            },
        ),
        Check::new(
            "5.1-5",
            "§5.1",
            Must,
            "more than 256 settings is a FRAME_ERROR",
            |t| async move {
                let mut body = Vec::new();
                for id in 0..257u64 {
                    varint::encode(0x1000 + id * 2, &mut body);
                    body.push(0);
                }
                closes(&t, settings_frame(&body), ErrorCode::FRAME_ERROR).await
            },
        ),
        Check::new(
            "5.1-6",
            "§5.1",
            Must,
            "a setting cut off by the end of the body is a FRAME_ERROR",
            |t| async move {
                closes(&t, settings_frame(&[0x05, 0x03, 0x61]), ErrorCode::FRAME_ERROR).await
            },
        ),
        Check::new(
            "5.1-7",
            "§5.1",
            Must,
            "unknown (GREASE) settings are ignored",
            |t| async move {
                let user = raw::User::new(&t, "grease").await?;
                let mut settings = Limits::default().to_settings();
                settings.set_int(SettingId(0x40), 7).map_err(|e| e.to_string())?;
                settings.set_bytes(SettingId(0x41), vec![1, 2, 3]).map_err(|e| e.to_string())?;
                let mut control = Vec::new();
                settings.encode_frame(&mut control);
                let hello = raw::settings_and_hello(&user.auth.access_token);
                // The correct client's SETTINGS is replaced by the one with GREASE entries.
                let after_settings = skip_first_frame(&hello)?;
                control.extend_from_slice(after_settings);
                let conn = raw::connect(&t).await?;
                let _control = raw::open_control(&conn, &control).await?;
                let mut theirs = ServerControl::accept(&conn).await?;
                loop {
                    match theirs.next().await? {
                        Some(Message::Welcome(_)) => return Ok(()),
                        Some(Message::Error(e)) => return Err(format!("refused: {e:?}")),
                        Some(_) => {}
                        None => return Err("the CONTROL stream ended".into()),
                    }
                }
            },
        ),
        Check::new(
            "5.2-1",
            "§5.2",
            Must,
            "a MAX_FRAME_SIZE below 65536 closes with PROTOCOL_VIOLATION",
            |t| async move {
                let mut body = Vec::new();
                varint::encode(0x02, &mut body);
                varint::encode(1000, &mut body);
                closes(&t, settings_frame(&body), ErrorCode::PROTOCOL_VIOLATION).await
            },
        ),
        Check::new(
            "5.2-2",
            "§5.2",
            Should,
            "the server sends its parameters: MAX_FRAME_SIZE ≥ 65536, MAX_HISTORY_PAGE, RESUME_WINDOW_MS",
            |t| async move {
                let conn = raw::connect(&t).await?;
                let _control = raw::open_control(&conn, &raw::client_settings()).await?;
                let mut theirs = ServerControl::accept(&conn).await?;
                let Some(Message::Settings(settings)) = theirs.next().await? else {
                    return Err("no SETTINGS".into());
                };
                let frame_size = settings.int(SettingId::MAX_FRAME_SIZE).unwrap_or(0);
                if frame_size < 65536 {
                    return Err(format!("MAX_FRAME_SIZE {frame_size}"));
                }
                for id in [SettingId::MAX_HISTORY_PAGE, SettingId::RESUME_WINDOW_MS] {
                    if settings.int(id).is_none() {
                        return Err(format!("{id:?} not sent"));
                    }
                }
                Ok(())
            },
        ),
    ]
}

/// The bytes after the first frame of `bytes`.
pub(super) fn skip_first_frame(bytes: &[u8]) -> Result<&[u8], String> {
    let (_, n) = varint::decode(bytes).map_err(|_| "bad frame type".to_owned())?;
    let (len, m) = varint::decode(&bytes[n..]).map_err(|_| "bad frame length".to_owned())?;
    let start = n + m + usize::try_from(len).map_err(|e| e.to_string())?;
    bytes.get(start..).ok_or_else(|| "a frame longer than its bytes".into())
}
