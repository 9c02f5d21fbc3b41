//! §3: request streams and unidirectional streams.

use std::time::Duration;

use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{ListScope, Message, RoomList};
use banter_client::protocol::{ErrorCode, varint};

use crate::raw::{self, ServerControl};
use crate::{Check, Level::*, Outcome, Target};

/// A raw connection with a live session of a fresh user (SETTINGS and HELLO sent, WELCOME
/// read), and the server's CONTROL stream.
pub(super) async fn session(
    target: &Target,
) -> Result<(quinn::Connection, quinn::SendStream, ServerControl), String> {
    let user = raw::User::new(target, "raw").await?;
    let conn = raw::connect(target).await?;
    let control =
        raw::open_control(&conn, &raw::settings_and_hello(&user.auth.access_token)).await?;
    let mut theirs = ServerControl::accept(&conn).await?;
    loop {
        match theirs.next().await? {
            Some(Message::Welcome(_)) => return Ok((conn, control, theirs)),
            Some(Message::Error(e)) => return Err(format!("HELLO refused: {e:?}")),
            Some(_) => {}
            None => return Err("the CONTROL stream ended".into()),
        }
    }
}

/// A ROOM_LIST request's bytes (any authenticated request would do).
pub(super) fn room_list() -> Vec<u8> {
    raw::frame(RoomList { scope: ListScope::Joined, after: None, limit: 10 })
}

/// The connection still answers requests.
pub(super) async fn still_serves(conn: &quinn::Connection) -> Outcome {
    let answer = raw::request_raw(conn, &room_list()).await?;
    match answer.first() {
        Some(Message::RoomListPage(_)) => Ok(()),
        _ => Err(format!("the connection no longer serves: {answer:?}")),
    }
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "3.1-1",
            "§3.1",
            Must,
            "an empty request stream is answered ERROR REQUEST_CANCELLED, not a connection error",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                raw::expect_error(
                    &raw::request_raw(&conn, &[]).await?,
                    ErrorCode::REQUEST_CANCELLED,
                )?;
                still_serves(&conn).await
            },
        ),
        Check::new(
            "3.1-2",
            "§3.1",
            Must,
            "the server opens no bidirectional stream",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                still_serves(&conn).await?;
                match tokio::time::timeout(Duration::from_secs(1), conn.accept_bi()).await {
                    Err(_) => Ok(()),
                    Ok(Ok(_)) => Err("the server opened a bidirectional stream".into()),
                    Ok(Err(e)) => Err(format!("the connection ended: {e}")),
                }
            },
        ),
        Check::new(
            "3.1.1-1",
            "§3.1.1",
            Must,
            "posts on a post stream are answered in order, and none after a refused one is taken",
            |t| async move {
                let ada = raw::User::new(&t, "burst").await?;
                let room = ada.room(false, false).await?;
                let Some(mut stream) =
                    ada.conn.post_stream().await.map_err(|e| format!("post stream: {e}"))?
                else {
                    return Ok(()); // POST_STREAMS is optional: a server without it passes.
                };
                // Five posts, one to a room that does not exist, then three more.
                let mut posts: Vec<_> =
                    (0..5).map(|i| raw::post_request(room, &format!("p{i}"))).collect();
                posts.push(raw::post_request(RoomId(u64::MAX >> 8), "nowhere"));
                posts.extend((5..8).map(|i| raw::post_request(room, &format!("p{i}"))));
                let mut sent = 0;
                for post in posts {
                    if stream.send(post).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                stream.finish();
                let mut answers = Vec::new();
                for _ in 0..sent {
                    answers.push(stream.answer().await);
                }
                let seqs: Vec<u64> = answers
                    .iter()
                    .take(5)
                    .filter_map(|a| a.as_ref().ok())
                    .map(|ack| ack.seq)
                    .collect();
                if seqs.len() != 5 || seqs.windows(2).any(|w| w[1] != w[0] + 1) {
                    return Err(format!("the first five were not acked in order: {answers:?}"));
                }
                if answers.get(5).is_none_or(Result::is_ok) {
                    return Err(format!("the post to no room was not refused: {answers:?}"));
                }
                if let Some(taken) = answers.iter().skip(6).find(|a| a.is_ok()) {
                    return Err(format!("a post after the refused one was taken: {taken:?}"));
                }
                Ok(())
            },
        ),
        Check::new(
            "3.2-1",
            "§3.2",
            Must,
            "after WELCOME the server opens one EVENTS and one EPHEMERAL stream",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let mut seen = Vec::new();
                while seen.len() < 2 {
                    let mut recv = tokio::time::timeout(raw::WAIT, conn.accept_uni())
                        .await
                        .map_err(|_| format!("only streams {seen:?} opened"))?
                        .map_err(|e| e.to_string())?;
                    let mut kind = [0u8; 1];
                    recv.read_exact(&mut kind).await.map_err(|e| e.to_string())?;
                    seen.push(kind[0]);
                }
                seen.sort_unstable();
                if seen == [0x01, 0x02] { Ok(()) } else { Err(format!("stream types {seen:?}")) }
            },
        ),
        Check::new(
            "3.2-2",
            "§3.2",
            Must,
            "an unknown unidirectional stream type is stopped with UNKNOWN_STREAM and is no error",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let mut grease = conn.open_uni().await.map_err(|e| e.to_string())?;
                let mut kind = Vec::new();
                varint::encode(0x21 + 0x1f * 5, &mut kind);
                grease.write_all(&kind).await.map_err(|e| e.to_string())?;
                let stopped = tokio::time::timeout(raw::WAIT, grease.stopped())
                    .await
                    .map_err(|_| "not stopped".to_owned())?
                    .map_err(|e| e.to_string())?;
                match stopped.map(|code| code.into_inner()) {
                    Some(code) if code == ErrorCode::UNKNOWN_STREAM.0 => still_serves(&conn).await,
                    other => Err(format!("stopped with {other:?}")),
                }
            },
        ),
        Check::new(
            "3.2-3",
            "§3.2",
            Must,
            "a second CONTROL stream closes with PROTOCOL_VIOLATION",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                let _second = raw::open_control(&conn, &raw::client_settings()).await?;
                raw::expect_close(&conn, ErrorCode::PROTOCOL_VIOLATION, raw::WAIT).await
            },
        ),
        Check::new(
            "3.2-4",
            "§3.2",
            Must,
            "closing the client's CONTROL stream closes with CLOSED_CRITICAL_STREAM",
            |t| async move {
                let (conn, mut control, _theirs) = session(&t).await?;
                control.finish().map_err(|e| e.to_string())?;
                raw::expect_close(&conn, ErrorCode::CLOSED_CRITICAL_STREAM, raw::WAIT).await
            },
        ),
        Check::new(
            "3.2-5",
            "§3.2",
            Must,
            "the server does not finish its CONTROL stream before a close: ERROR, then the close's own code",
            |t| async move {
                let conn = raw::connect(&t).await?;
                let _control =
                    raw::open_control(&conn, &raw::settings_and_hello(&[7u8; 64])).await?;
                let mut theirs = ServerControl::accept(&conn).await?;
                let mut errors = Vec::new();
                let end = loop {
                    match theirs.next().await {
                        Ok(Some(Message::Error(e))) => errors.push(e.code),
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            break Err(
                                "the CONTROL stream was finished (FIN) before the close".to_owned()
                            );
                        }
                        Err(ended) => break Ok(ended),
                    }
                };
                end?;
                if !errors.contains(&ErrorCode::AUTH_FAILED) {
                    return Err(format!("ERROR frames {errors:?}"));
                }
                raw::expect_close(&conn, ErrorCode::AUTH_FAILED, raw::WAIT).await
            },
        ),
    ]
}
