//! §6.6, §8 (voice) and §6.9 (files).

use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::datagram::{Kind, MAX_HEADER_LEN, VoiceHeader};
use banter_client::protocol::message::{Message, RoomJoin, VoiceJoin, VoiceLeave, VoiceSelf};

use super::streams::session;
use crate::raw::{self, User};
use crate::{Check, Level::*};

/// A VOICE_PING datagram carrying `payload`.
fn ping(payload: &[u8]) -> Vec<u8> {
    let header = VoiceHeader { kind: Kind::VOICE_PING, ..VoiceHeader::opus(0, 0, false) };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = header.write(&mut buf).unwrap_or(0);
    let mut datagram = buf[..n].to_vec();
    datagram.extend_from_slice(payload);
    datagram
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "6.6-1",
            "§6.6",
            Must,
            "VOICE_JOIN of a room without voice is INVALID_REQUEST",
            |t| async move {
                let ada = User::new(&t, "novoice").await?;
                let room = ada.room(false, false).await?;
                match ada.conn.request_one(VoiceJoin { room }).await {
                    Err(e) if e.code() == Some(ErrorCode::INVALID_REQUEST) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "8.2-1",
            "§8.2",
            Must,
            "a VOICE_PING from a connection in voice is echoed byte for byte",
            |t| async move {
                let ada = User::new(&t, "pinger").await?;
                let room = ada.room(false, true).await?;
                match ada.conn.request_one(VoiceJoin { room }).await {
                    Ok(Message::VoiceJoined(_)) => {}
                    other => return Err(format!("VOICE_JOIN: {other:?}")),
                }
                let datagram = ping(b"conformance-ping");
                let quic = ada.conn.quic();
                for _ in 0..5 {
                    quic.send_datagram(datagram.clone().into()).map_err(|e| e.to_string())?;
                    if let Ok(Ok(echo)) =
                        tokio::time::timeout(Duration::from_secs(1), quic.read_datagram()).await
                    {
                        return if echo[..] == datagram[..] {
                            Ok(())
                        } else {
                            Err(format!("echo {:02x?} for {datagram:02x?}", &echo[..]))
                        };
                    }
                }
                Err("no echo".into())
            },
        ),
        Check::new(
            "8.2-2",
            "§8.2",
            Must,
            "datagrams before authentication are dropped, not a connection error",
            |t| async move {
                let conn = raw::connect(&t).await?;
                let _control = raw::open_control(&conn, &raw::client_settings()).await?;
                for _ in 0..3 {
                    conn.send_datagram(ping(b"early").into()).map_err(|e| e.to_string())?;
                }
                match raw::closed_with(&conn, Duration::from_millis(500)).await {
                    None => Ok(()),
                    Some(code) => Err(format!("closed with {code}")),
                }
            },
        ),
        Check::new(
            "8.2-3",
            "§8.2",
            Must,
            "datagrams of an unknown kind are dropped, not a connection error",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                conn.send_datagram(vec![0x7f, 0x00, 0x00, 0x00, 1, 2, 3].into())
                    .map_err(|e| e.to_string())?;
                super::streams::still_serves(&conn).await
            },
        ),
        Check::new(
            "6.6-2",
            "§6.6",
            Must,
            "VOICE_JOINED binds the caller's Source and lists the caller in the roster",
            |t| async move {
                let ada = User::new(&t, "speaker").await?;
                let room = ada.room(false, true).await?;
                match ada.conn.request_one(VoiceJoin { room }).await {
                    Ok(Message::VoiceJoined(joined))
                        if joined
                            .roster
                            .iter()
                            .any(|p| p.user == ada.auth.user && p.source == joined.source) =>
                    {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "6.6-3",
            "§6.6",
            Must,
            "VOICE_LEAVE when not in that room's voice is INVALID_REQUEST",
            |t| async move {
                let ada = User::new(&t, "leaver").await?;
                let room = ada.room(false, true).await?;
                match ada.conn.request_one(VoiceLeave { room }).await {
                    Err(e) if e.code() == Some(ErrorCode::INVALID_REQUEST) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "8.2-4",
            "§8.2",
            Must,
            "a speaker's packet reaches a listener stamped with the speaker's Source; a self-muted speaker's does not",
            |t| async move {
                let ada = User::new(&t, "talker").await?;
                let grace = User::new(&t, "listener").await?;
                let room = ada.room(false, true).await?;
                grace.conn.request_one(RoomJoin { room }).await.map_err(|e| e.to_string())?;
                let source = match ada.conn.request_one(VoiceJoin { room }).await {
                    Ok(Message::VoiceJoined(joined)) => joined.source,
                    other => return Err(format!("VOICE_JOIN: {other:?}")),
                };
                grace.conn.request_one(VoiceJoin { room }).await.map_err(|e| e.to_string())?;
                let opus = |sequence| {
                    let mut buf = [0u8; MAX_HEADER_LEN];
                    let n = VoiceHeader::opus(0, sequence, false).write(&mut buf).unwrap_or(0);
                    let mut datagram = buf[..n].to_vec();
                    datagram.extend_from_slice(&[0xfc, 0xff, 0xfe]);
                    datagram
                };
                let mut heard = None;
                for sequence in 0..20u16 {
                    ada.conn
                        .quic()
                        .send_datagram(opus(sequence).into())
                        .map_err(|e| e.to_string())?;
                    if let Ok(Ok(datagram)) = tokio::time::timeout(
                        Duration::from_millis(100),
                        grace.conn.quic().read_datagram(),
                    )
                    .await
                    {
                        heard = Some(datagram);
                        break;
                    }
                }
                let heard = heard.ok_or("nothing relayed to the listener")?;
                let (header, _) = VoiceHeader::parse(&heard).map_err(|e| e.to_string())?;
                if header.source != u64::from(source.0) {
                    return Err(format!("stamped {} for source {}", header.source, source.0));
                }
                ada.conn
                    .request_one(VoiceSelf { room, mute: true, deaf: false })
                    .await
                    .map_err(|e| e.to_string())?;
                // Drain what was in flight, then nothing more may come.
                while tokio::time::timeout(
                    Duration::from_millis(200),
                    grace.conn.quic().read_datagram(),
                )
                .await
                .is_ok()
                {}
                for sequence in 100..110u16 {
                    ada.conn
                        .quic()
                        .send_datagram(opus(sequence).into())
                        .map_err(|e| e.to_string())?;
                }
                match tokio::time::timeout(
                    Duration::from_millis(500),
                    grace.conn.quic().read_datagram(),
                )
                .await
                {
                    Err(_) => Ok(()),
                    Ok(_) => Err("a self-muted speaker was relayed".into()),
                }
            },
        ),
        Check::new(
            "6.9-3",
            "§6.9",
            Must,
            "an UPLOAD whose bytes do not match its SHA-256 is INVALID_REQUEST",
            |t| async move {
                use banter_client::protocol::bounded::{Blob, Text};
                use banter_client::protocol::message::{FileChunk, Upload};
                let ada = User::new(&t, "liar").await?;
                let room = ada.room(false, false).await?;
                let (mut send, mut recv) =
                    ada.conn.quic().open_bi().await.map_err(|e| e.to_string())?;
                let upload = Upload {
                    room,
                    name: Text::new("x.bin").map_err(|e| e.to_string())?,
                    size: 4,
                    sha256: [7; 32],
                };
                send.write_all(&raw::frame(upload)).await.map_err(|e| e.to_string())?;
                let chunk =
                    FileChunk { data: Blob::new(vec![1, 2, 3, 4]).map_err(|e| e.to_string())? };
                send.write_all(&raw::frame(chunk)).await.map_err(|e| e.to_string())?;
                let _ = send.finish();
                let answer = raw::read_answer(&mut recv).await?;
                raw::expect_error(&answer, ErrorCode::INVALID_REQUEST)
            },
        ),
        Check::new(
            "6.9-1",
            "§6.9",
            Must,
            "a file uploads and downloads whole, checked against its SHA-256",
            |t| async move {
                let ada = User::new(&t, "sharer").await?;
                let room = ada.room(false, false).await?;
                let dir = std::env::temp_dir().join(raw::fresh_name("banter-conformance-"));
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                let result = async {
                    let original = dir.join("data.bin");
                    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
                    std::fs::write(&original, &content).map_err(|e| e.to_string())?;
                    let ack = ada
                        .conn
                        .upload(room, "data.bin", &original)
                        .await
                        .map_err(|e| format!("UPLOAD: {e}"))?;
                    let copy = dir.join("copy.bin");
                    ada.conn
                        .download(room, ack.seq, &copy)
                        .await
                        .map_err(|e| format!("DOWNLOAD: {e}"))?;
                    let fetched = std::fs::read(&copy).map_err(|e| e.to_string())?;
                    if fetched == content { Ok(()) } else { Err("the download differs".to_owned()) }
                }
                .await;
                let _ = std::fs::remove_dir_all(&dir);
                result
            },
        ),
    ]
}
