//! §6.6, §8 (voice) and §6.9 (files).

use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::datagram::{Kind, MAX_HEADER_LEN, VoiceHeader};
use banter_client::protocol::message::{Message, VoiceJoin};

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
