//! §6.3, §6.4, §7.2, §7.3, §7.6, §7.8: rooms, posts, paging, sequencing and resume.

use banter_client::Event;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::ResumeId;
use banter_client::protocol::message::{
    CatchUp, Delete, Edit, History, Message, Post, React, RoomJoin,
};

use crate::raw::{self, User};
use crate::{Check, Level::*, Outcome, Target};

fn next_of(page: &[Message]) -> Result<Option<u64>, String> {
    match page.last() {
        Some(Message::PageEnd(end)) => Ok(end.next),
        other => Err(format!("no PAGE_END: {other:?}")),
    }
}

/// Resumes `user`'s session on a new connection from `last`; `Ok` on RESUMED, with the
/// room entries replayed before `until` of them arrived.
async fn resume(
    target: &Target,
    user: &User,
    resume_id: ResumeId,
    last: u64,
    expect: usize,
) -> Result<Vec<Message>, ErrorCode> {
    let (conn, mut events) =
        banter_client::Connection::connect(target.addr, target.options.clone())
            .await
            .map_err(|_| ErrorCode::INTERNAL)?;
    conn.resume(&user.auth.access_token, resume_id, last);
    let mut replayed = Vec::new();
    loop {
        match tokio::time::timeout(raw::WAIT, events.recv()).await {
            Ok(Some(Event::Rejected(error))) => return Err(error.code),
            Ok(Some(Event::Room(message))) => {
                replayed.push(message);
                if replayed.len() >= expect {
                    return Ok(replayed);
                }
            }
            Ok(Some(Event::Resumed(_))) if expect == 0 => return Ok(replayed),
            Ok(Some(_)) => {}
            _ => return Err(ErrorCode::INTERNAL),
        }
    }
}

async fn resume_refused(target: &Target, user: &User, resume_id: ResumeId, last: u64) -> Outcome {
    match resume(target, user, resume_id, last, 0).await {
        Err(ErrorCode::RESUME_UNAVAILABLE) => Ok(()),
        other => Err(format!("RESUME: {other:?}")),
    }
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "6.4-1",
            "§6.4",
            Must,
            "POST is acknowledged with its room_seq, and the EVENTS stream carries the POSTED entry with it",
            |t| async move {
                let mut ada = User::new(&t, "post").await?;
                let room = ada.room(false, false).await?;
                let joined = ada.next_entry().await?;
                let ack = ada.post(room, "hello").await?;
                match ada.next_entry().await? {
                    Message::Posted(p)
                        if p.meta.seq == ack.seq
                            && p.event_seq == joined_event_seq(&joined) + 1 =>
                    {
                        Ok(())
                    }
                    other => Err(format!("after ack {ack:?}: {other:?}")),
                }
            },
        ),
        Check::new(
            "7.2-1",
            "§7.2",
            Must,
            "a resent POST gets the identical EVENT_ACK; the same id with other text is CONFLICT",
            |t| async move {
                let ada = User::new(&t, "dedup").await?;
                let room = ada.room(false, false).await?;
                let client_msg_id = raw::fresh_id();
                let first =
                    ada.send(Post { client_msg_id, ..raw::post_request(room, "once") }).await?;
                let again =
                    ada.send(Post { client_msg_id, ..raw::post_request(room, "once") }).await?;
                if first != again {
                    return Err(format!("{first:?} then {again:?}"));
                }
                let conflict = Post { client_msg_id, ..raw::post_request(room, "other") };
                match ada.conn.request_one(conflict).await {
                    Err(e) if e.code() == Some(ErrorCode::CONFLICT) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "7.2-2",
            "§7.2",
            Must,
            "room_seq has no gaps, and event_seq counts up by one",
            |t| async move {
                let mut ada = User::new(&t, "seq").await?;
                let room = ada.room(false, false).await?;
                let mut last_event = joined_event_seq(&ada.next_entry().await?);
                let mut last_seq = 1;
                for _ in 0..10 {
                    let ack = ada.post(room, "n").await?;
                    if ack.seq != last_seq + 1 {
                        return Err(format!("seq {} after {last_seq}", ack.seq));
                    }
                    last_seq = ack.seq;
                    let Message::Posted(p) = ada.next_entry().await? else {
                        return Err("not POSTED".into());
                    };
                    if p.event_seq != last_event + 1 {
                        return Err(format!("event_seq {} after {last_event}", p.event_seq));
                    }
                    last_event = p.event_seq;
                }
                Ok(())
            },
        ),
        Check::new(
            "7.2-3",
            "§7.2",
            Must,
            "a retried POST is acknowledged even after its author was kicked",
            |t| async move {
                let ada = User::new(&t, "kicker").await?;
                let grace = User::new(&t, "kicked").await?;
                let room = ada.room(false, false).await?;
                grace.conn.request_one(RoomJoin { room }).await.map_err(|e| e.to_string())?;
                let client_msg_id = raw::fresh_id();
                let first = grace
                    .send(Post { client_msg_id, ..raw::post_request(room, "delivered") })
                    .await?;
                let kick = banter_client::protocol::message::Kick {
                    room,
                    user: grace.auth.user,
                    reason: Text::default(),
                };
                ada.conn.request_one(kick).await.map_err(|e| e.to_string())?;
                let again = grace
                    .send(Post { client_msg_id, ..raw::post_request(room, "delivered") })
                    .await?;
                if first == again { Ok(()) } else { Err(format!("{first:?} then {again:?}")) }
            },
        ),
        Check::new(
            "6.4-2",
            "§6.4",
            Must,
            "HISTORY comes newest first, and a page that covers seq 1 has no Next",
            |t| async move {
                let ada = User::new(&t, "hist").await?;
                let room = ada.room(false, false).await?;
                for _ in 0..3 {
                    ada.post(room, "h").await?;
                }
                let page = ada
                    .conn
                    .request(History { room, before: None, limit: 10 })
                    .await
                    .map_err(|e| e.to_string())?;
                let seqs: Vec<u64> =
                    page.iter().filter_map(|m| m.entry_meta().map(|m| m.seq)).collect();
                if seqs != [4, 3, 2, 1] {
                    return Err(format!("seqs {seqs:?}"));
                }
                match next_of(&page)? {
                    None => Ok(()),
                    Some(next) => Err(format!("Next {next} at the log's start")),
                }
            },
        ),
        Check::new(
            "6.4-3",
            "§6.4",
            Must,
            "CATCH_UP: a page that stops short of the head has Next; one that ends there (full or not) has none",
            |t| async move {
                let ada = User::new(&t, "catch").await?;
                let room = ada.room(false, false).await?;
                for _ in 0..3 {
                    ada.post(room, "c").await?;
                }
                let short = ada
                    .conn
                    .request(CatchUp { room, after: 0, limit: 2 })
                    .await
                    .map_err(|e| e.to_string())?;
                if next_of(&short)? != Some(2) {
                    return Err(format!("short page: {short:?}"));
                }
                let full = ada
                    .conn
                    .request(CatchUp { room, after: 1, limit: 3 })
                    .await
                    .map_err(|e| e.to_string())?;
                match next_of(&full)? {
                    None => Ok(()),
                    Some(next) => Err(format!("Next {next} on a full page that ends at the head")),
                }
            },
        ),
        Check::new(
            "6.4-4",
            "§6.4",
            Must,
            "EDIT of another's message is FORBIDDEN; of a deleted one NOT_FOUND",
            |t| async move {
                let ada = User::new(&t, "editor").await?;
                let grace = User::new(&t, "other").await?;
                let room = ada.room(false, false).await?;
                grace.conn.request_one(RoomJoin { room }).await.map_err(|e| e.to_string())?;
                let theirs = grace.post(room, "theirs").await?;
                let edit =
                    |target| Edit { room, target, text: Text::new("changed").unwrap_or_default() };
                match ada.conn.request_one(edit(theirs.seq)).await {
                    Err(e) if e.code() == Some(ErrorCode::FORBIDDEN) => {}
                    other => return Err(format!("EDIT of another's: {other:?}")),
                }
                let mine = ada.post(room, "mine").await?;
                ada.conn
                    .request_one(Delete { room, target: mine.seq })
                    .await
                    .map_err(|e| e.to_string())?;
                match ada.conn.request_one(edit(mine.seq)).await {
                    Err(e) if e.code() == Some(ErrorCode::NOT_FOUND) => Ok(()),
                    other => Err(format!("EDIT of a tombstone: {other:?}")),
                }
            },
        ),
        Check::new(
            "6.4-5",
            "§6.4",
            Must,
            "REACT is idempotent: the same reaction twice appends one entry",
            |t| async move {
                let mut ada = User::new(&t, "react").await?;
                let room = ada.room(false, false).await?;
                ada.next_entry().await?;
                let target = ada.post(room, "react to me").await?.seq;
                ada.next_entry().await?;
                let react =
                    || React {
                        room, target, emoji: Text::new("👍").unwrap_or_default(), on: true
                    };
                ada.conn.request_one(react()).await.map_err(|e| e.to_string())?;
                ada.conn.request_one(react()).await.map_err(|e| e.to_string())?;
                let marker = ada.post(room, "after").await?.seq;
                let mut reactions = 0;
                loop {
                    match ada.next_entry().await? {
                        Message::Reacted(_) => reactions += 1,
                        Message::Posted(p) if p.meta.seq == marker => break,
                        _ => {}
                    }
                }
                if reactions == 1 { Ok(()) } else { Err(format!("{reactions} REACTED entries")) }
            },
        ),
        Check::new(
            "6.3-1",
            "§6.3",
            Must,
            "a non-member cannot read a private room",
            |t| async move {
                let ada = User::new(&t, "owner").await?;
                let mallory = User::new(&t, "outsider").await?;
                let room = ada.room(true, false).await?;
                ada.post(room, "secret").await?;
                match mallory.conn.request(History { room, before: None, limit: 10 }).await {
                    Err(e)
                        if matches!(
                            e.code(),
                            Some(ErrorCode::FORBIDDEN | ErrorCode::NOT_FOUND)
                        ) =>
                    {
                        Ok(())
                    }
                    other => Err(format!("HISTORY by a non-member: {other:?}")),
                }
            },
        ),
        Check::new(
            "7.8-1",
            "§7.8",
            Must,
            "a joiner gets their own MEMBERSHIP entry on EVENTS",
            |t| async move {
                let ada = User::new(&t, "host").await?;
                let mut grace = User::new(&t, "joiner").await?;
                let room = ada.room(false, false).await?;
                grace.conn.request_one(RoomJoin { room }).await.map_err(|e| e.to_string())?;
                match grace.next_entry().await? {
                    Message::Membership(m) if m.user == grace.auth.user && m.meta.room == room => {
                        Ok(())
                    }
                    other => Err(format!("first entry {other:?}")),
                }
            },
        ),
        Check::new("6.4-6", "§6.4", Must, "HISTORY with Limit 0 is taken as 1", |t| async move {
            let ada = User::new(&t, "zero").await?;
            let room = ada.room(false, false).await?;
            ada.post(room, "z").await?;
            let page = ada
                .conn
                .request(History { room, before: None, limit: 0 })
                .await
                .map_err(|e| e.to_string())?;
            if page.len() == 2 && next_of(&page)? == Some(2) {
                Ok(())
            } else {
                Err(format!("{page:?}"))
            }
        }),
        Check::new(
            "7.3-1",
            "§7.3",
            Must,
            "RESUME replays exactly the missed events, numbered on",
            |t| async move {
                let ada = User::new(&t, "writer").await?;
                let mut grace = User::new(&t, "reader").await?;
                let room = ada.room(false, false).await?;
                grace.conn.request_one(RoomJoin { room }).await.map_err(|e| e.to_string())?;
                grace.next_entry().await?;
                let last = grace.conn.last_event_seq();
                grace.conn.suspend();
                let mut missed = Vec::new();
                for _ in 0..3 {
                    missed.push(ada.post(room, "missed").await?.seq);
                }
                let replayed = resume(&t, &grace, grace.welcome.resume_id, last, 3)
                    .await
                    .map_err(|code| format!("RESUME refused: {code}"))?;
                let got: Vec<(u64, u64)> = replayed
                    .iter()
                    .filter_map(|m| match m {
                        Message::Posted(p) => Some((p.event_seq, p.meta.seq)),
                        _ => None,
                    })
                    .collect();
                let expected: Vec<(u64, u64)> =
                    missed.iter().enumerate().map(|(i, seq)| (last + 1 + i as u64, *seq)).collect();
                if got == expected {
                    Ok(())
                } else {
                    Err(format!("replayed {got:?}, missed {expected:?}"))
                }
            },
        ),
        Check::new(
            "7.3-2",
            "§7.3",
            Must,
            "RESUME of an unknown session is RESUME_UNAVAILABLE",
            |t| async move {
                let ada = User::new(&t, "unknown").await?;
                resume_refused(&t, &ada, ResumeId([0x5a; 16]), 0).await
            },
        ),
        Check::new(
            "7.3-3",
            "§7.3",
            Must,
            "RESUME from above the highest event_seq sent is RESUME_UNAVAILABLE",
            |t| async move {
                let ada = User::new(&t, "ahead").await?;
                ada.conn.suspend();
                resume_refused(&t, &ada, ada.welcome.resume_id, 1_000_000).await
            },
        ),
        Check::new(
            "7.6-1",
            "§7.6",
            Must,
            "a client's close with NO_ERROR ends its session: RESUME is then RESUME_UNAVAILABLE",
            |t| async move {
                let ada = User::new(&t, "done").await?;
                ada.conn.close_and_flush().await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                resume_refused(&t, &ada, ada.welcome.resume_id, 0).await
            },
        ),
    ]
}

/// The event_seq of an EVENTS frame (a join's MEMBERSHIP, say).
fn joined_event_seq(message: &Message) -> u64 {
    match message {
        Message::Membership(m) => m.event_seq,
        Message::Posted(p) => p.event_seq,
        _ => 0,
    }
}
