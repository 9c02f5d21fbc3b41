//! §4: framing and body encoding, on request streams.

use banter_client::protocol::frame::encode_raw;
use banter_client::protocol::message::{Message, Pong};
use banter_client::protocol::{ErrorCode, FrameType, varint};

use super::streams::{room_list, session, still_serves};
use crate::raw;
use crate::{Check, Level::*};

/// A ROOM_LIST frame with `body` (scope, after, limit) as its body.
fn room_list_with(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_raw(FrameType(0x23), body, &mut bytes);
    bytes
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "4.2-1",
            "§4.2",
            Must,
            "a request frame longer than MAX_FRAME_SIZE is answered FRAME_TOO_LARGE; the connection goes on",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                // Only the header: the Length is checked before any body is read.
                let mut header = Vec::new();
                varint::encode(0x30, &mut header);
                varint::encode(10 << 20, &mut header);
                let answer = raw::request_raw(&conn, &header).await?;
                raw::expect_error(&answer, ErrorCode::FRAME_TOO_LARGE)?;
                still_serves(&conn).await
            },
        ),
        Check::new(
            "4.3-1",
            "§4.3",
            Must,
            "unknown and GREASE frame types before a request are skipped",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let mut bytes = Vec::new();
                encode_raw(FrameType(0x21), b"grease", &mut bytes);
                encode_raw(FrameType(0x3fff), &[1, 2, 3], &mut bytes);
                bytes.extend(room_list());
                match raw::request_raw(&conn, &bytes).await?.first() {
                    Some(Message::RoomListPage(_)) => Ok(()),
                    other => Err(format!("answer {other:?}")),
                }
            },
        ),
        Check::new(
            "4.3-2",
            "§4.3",
            Must,
            "a registered type that is not a request (PONG) is answered PROTOCOL_VIOLATION",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let answer = raw::request_raw(&conn, &raw::frame(Pong { t: 1 })).await?;
                raw::expect_error(&answer, ErrorCode::PROTOCOL_VIOLATION)?;
                still_serves(&conn).await
            },
        ),
        Check::new(
            "4.4-1",
            "§4.4",
            Must,
            "bytes left over in a body are a FRAME_ERROR",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let answer =
                    raw::request_raw(&conn, &room_list_with(&[0x00, 0x00, 0x0a, 0xff])).await?;
                raw::expect_error(&answer, ErrorCode::FRAME_ERROR)?;
                still_serves(&conn).await
            },
        ),
        Check::new(
            "4.4-2",
            "§4.4",
            Must,
            "an option tag other than 0 or 1 is a FRAME_ERROR",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let answer = raw::request_raw(&conn, &room_list_with(&[0x00, 0x02, 0x0a])).await?;
                raw::expect_error(&answer, ErrorCode::FRAME_ERROR)
            },
        ),
        Check::new(
            "4.4-3",
            "§4.4",
            Must,
            "an unknown enum variant is a FRAME_ERROR",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let answer = raw::request_raw(&conn, &room_list_with(&[0x09, 0x00, 0x0a])).await?;
                raw::expect_error(&answer, ErrorCode::FRAME_ERROR)
            },
        ),
        Check::new(
            "4.4-4",
            "§4.4",
            Must,
            "a varint longer than its type allows is a FRAME_ERROR",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                // A v16 of four bytes.
                let answer =
                    raw::request_raw(&conn, &room_list_with(&[0x00, 0x00, 0x80, 0x80, 0x80, 0x01]))
                        .await?;
                raw::expect_error(&answer, ErrorCode::FRAME_ERROR)
            },
        ),
        Check::new(
            "4.4-5",
            "§4.4",
            Must,
            "a non-minimal varint within its bound is accepted (87 00 is 7)",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let answer =
                    raw::request_raw(&conn, &room_list_with(&[0x00, 0x00, 0x87, 0x00])).await?;
                match answer.first() {
                    Some(Message::RoomListPage(_)) => Ok(()),
                    other => Err(format!("answer {other:?}")),
                }
            },
        ),
        Check::new(
            "4.4-6",
            "§4.4",
            Must,
            "text that is not UTF-8 is a FRAME_ERROR",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                // ROOM_CREATE: name "\xff", topic "", category "", visibility 0, voice false.
                let mut bytes = Vec::new();
                encode_raw(FrameType(0x20), &[0x01, 0xff, 0x00, 0x00, 0x00, 0x00], &mut bytes);
                raw::expect_error(&raw::request_raw(&conn, &bytes).await?, ErrorCode::FRAME_ERROR)
            },
        ),
    ]
}
