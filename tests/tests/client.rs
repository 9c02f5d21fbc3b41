//! The reconnecting SDK client against a real banterd: sends survive reconnects and server
//! restarts exactly once and in order, and a reader sees every entry once.

use std::collections::HashMap;
use std::time::Duration;

use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{History, ListScope, Message};
use banter_client::{Client, ClientConfig, ConnectionState, Credentials, Options, Trust, Update};
use banter_tests::{TestServer, TestUser};
use tokio::sync::mpsc::UnboundedReceiver;

fn options() -> Options {
    Options::new(Trust::AcceptAny, "localhost")
}

fn start(
    server: &TestServer,
    credentials: Credentials,
    rooms: &[RoomId],
) -> (Client, UnboundedReceiver<Update>) {
    let config = ClientConfig {
        addrs: vec![server.addr()],
        options: options(),
        outbox: None,
        known_rooms: rooms.iter().map(|r| (*r, 0)).collect::<HashMap<_, _>>(),
    };
    Client::start(config, credentials).unwrap()
}

fn credentials(user: &TestUser) -> Credentials {
    Credentials::from(user.auth.clone())
}

async fn history_texts(user: &TestUser, room: RoomId) -> Vec<String> {
    let mut texts = Vec::new();
    let mut before = None;
    loop {
        let page = user.conn.request(History { room, before, limit: 100 }).await.unwrap();
        for message in &page {
            if let Message::HistoryMessage(m) = message {
                texts.push(m.text.to_string());
            }
        }
        match page.last() {
            Some(Message::PageEnd(end)) if end.next.is_some() => before = end.next,
            _ => break,
        }
    }
    texts.reverse();
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_survive_reconnects_and_a_restart_exactly_once_in_order_and_readers_see_each_once() {
    let mut server = TestServer::start().await;
    let ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();

    let (writer, mut writer_updates) = start(&server, credentials(&ada), &[room]);
    let (reader, mut reader_updates) = start(&server, credentials(&grace), &[room]);
    const N: usize = 120;
    for i in 0..N {
        writer.send(room, &format!("m{i:03}"), None).unwrap();
    }

    let mut acked = 0;
    let mut received = Vec::new();
    let mut restarted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked < N || received.len() < N {
        tokio::select! {
            Some(update) = writer_updates.recv() => match update {
                Update::Sent { .. } => {
                    acked += 1;
                    // Drop the connection now and then, and restart the server once.
                    if acked % 25 == 0 {
                        writer.reconnect();
                        reader.reconnect();
                    }
                    if acked == 60 && !restarted {
                        restarted = true;
                        server.restart().await;
                    }
                }
                Update::SendFailed { error, .. } => panic!("send failed: {error}"),
                Update::Connection(ConnectionState::Stopped(reason)) => panic!("writer stopped: {reason}"),
                _ => {}
            },
            Some(update) = reader_updates.recv() => {
                if let Update::Room(Message::Posted(posted)) = update {
                    received.push(posted.text.to_string());
                }
            }
            () = tokio::time::sleep_until(deadline) => panic!("timed out: {acked} acked, {} received", received.len()),
        }
    }
    let expected: Vec<String> = (0..N).map(|i| format!("m{i:03}")).collect();
    assert_eq!(received, expected, "the reader saw every message once, in order");
    assert_eq!(writer.pending(), 0);
    let ada = server.login("ada").await;
    assert_eq!(
        banter_tests::settled(&expected, async || history_texts(&ada, room).await).await,
        expected,
        "the log holds each message once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_helpers_edit_react_delete_page_and_mark() {
    use banter_client::protocol::message::{PresenceStatus, TypingState};
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let (client, mut updates) = start(&server, credentials(&ada), &[]);
    let id = client.send(room, "first", None).unwrap();
    let seq = loop {
        if let Some(Update::Sent { client_msg_id, ack }) = updates.recv().await {
            assert_eq!(client_msg_id, id);
            break ack.seq;
        }
    };
    client.send(room, "a reply", Some(seq)).unwrap();
    assert_eq!(client.rooms().await.unwrap().len(), 1);
    client.edit(room, seq, "first, edited").await.unwrap();
    client.react(room, seq, "🎉", true).await.unwrap();
    client.typing(room, TypingState::Active).await.unwrap();
    client.set_presence(PresenceStatus::Away, "lunch").await.unwrap();
    let (page, next) = client.history(room, None, 50).await.unwrap();
    assert_eq!(next, None);
    let first = page
        .iter()
        .find_map(|m| match m {
            Message::HistoryMessage(h) if h.meta.seq == seq => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(first.text.as_str(), "first, edited");
    assert_eq!(first.reactions[0].emoji.as_str(), "🎉");
    assert!(
        page.iter().any(|m| matches!(m, Message::HistoryMessage(h) if h.reply_to == Some(seq)))
    );
    assert_eq!(client.mark_read(room, seq, false).await.unwrap(), seq);
    assert_eq!(client.mark_read(room, 1, false).await.unwrap(), seq, "markers never go back");
    client.delete(room, seq).await.unwrap();

    // Queued anonymously: others (here, a second user) see no author.
    ada.allow_anonymous(room).await;
    let bob = server.user("bob").await;
    bob.join(room).await.unwrap();
    let id = client.send_anonymous(room, "guess who").unwrap();
    let anonymous_seq = loop {
        if let Some(Update::Sent { client_msg_id, ack }) = updates.recv().await {
            if client_msg_id == id {
                break ack.seq;
            }
        }
    };
    // In a cluster bob's node learns of the entry over the bus, a moment after the ack.
    let mut sender = None;
    for _ in 0..100 {
        let page = bob.conn.request(History { room, before: None, limit: 50 }).await.unwrap();
        sender = page.iter().find_map(|m| match m {
            Message::HistoryMessage(h) if h.meta.seq == anonymous_seq => Some(h.meta.sender),
            _ => None,
        });
        if sender.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sender, Some(banter_client::protocol::ids::UserId(0)));
    let _ = client.leave(room).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_and_member_listings_follow_every_page_and_rooms_are_found_by_name_or_id() {
    const MORE_THAN_A_PAGE: usize = 105; // pages hold 100
    // Every member below keeps a connection from this one address.
    let server = TestServer::start_with(|c| c.max_connections_per_ip = 1000).await;
    let ada = server.user("ada").await;
    let mut last = None;
    for i in 0..MORE_THAN_A_PAGE {
        last = Some(ada.create_room(&format!("room-{i:03}"), false).await);
    }
    let grace = server.user("grace").await;
    let public = grace.conn.rooms(ListScope::Public).await.unwrap();
    assert_eq!(public.len(), MORE_THAN_A_PAGE);
    let last = last.unwrap();
    let by_name = grace.conn.find_room("#ROOM-104").await.unwrap().expect("found past page one");
    assert_eq!(by_name.room, last);
    let by_id = grace.conn.find_room(&last.0.to_string()).await.unwrap().expect("found by id");
    assert_eq!(by_id.name.as_str(), "room-104");
    assert!(grace.conn.find_room("no-such-room").await.unwrap().is_none());

    let mut names = vec!["ada".to_owned()];
    for i in 0..MORE_THAN_A_PAGE {
        let name = format!("user{i:03}");
        server.user(&name).await.join(last).await.unwrap();
        names.push(name);
    }
    let mut members: Vec<String> = grace
        .conn
        .members(last)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.username.into_string())
        .collect();
    members.sort();
    assert_eq!(members, names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_in_more_rooms_than_its_catch_up_budget_still_catches_every_room_up() {
    // Two catch-ups at once, then one every 100 ms: the rooms cannot all catch up at once.
    let server = TestServer::start_with(|config| {
        let history = config.rate.get_mut("history").unwrap();
        history.burst = 2;
        history.per_minute = 600;
    })
    .await;
    let ada = server.user("ada").await;
    let mut rooms = Vec::new();
    let mut expected = std::collections::BTreeSet::new();
    for i in 0..6 {
        let room = ada.create_room(&format!("r{i}"), false).await;
        ada.post(room, &format!("in r{i}")).await.unwrap();
        expected.insert(format!("in r{i}"));
        rooms.push(room);
    }

    let (_client, mut updates) = start(&server, credentials(&ada), &rooms);
    let mut received = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while received != expected {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some(Update::Room(Message::Posted(post)))) => {
                received.insert(post.text.to_string());
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(received, expected, "every room's post, though catch-ups were rate limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_the_user_was_banned_from_is_dropped_not_caught_up_for_ever() {
    use banter_client::protocol::bounded::Text;
    use banter_client::protocol::message::Ban;
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let banned = ada.create_room("strict", false).await;
    let open = ada.create_room("open", false).await;
    grace.join(banned).await.unwrap();
    grace.join(open).await.unwrap();
    let ban =
        Ban { room: banned, user: grace.auth.user, reason: Text::new("bye").unwrap(), until: None };
    ada.conn.request_one(ban).await.unwrap();
    ada.post(open, "while you were away").await.unwrap();

    // Grace's application remembers both rooms; CATCH_UP in the one she is banned from is
    // refused. That room is dropped, the other is caught up, and the connection stays up.
    let (client, mut updates) = start(&server, credentials(&grace), &[banned, open]);
    let mut connected = 0;
    let mut caught_up = false;
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some(update)) = tokio::time::timeout_at(until, updates.recv()).await {
        match update {
            Update::Connection(ConnectionState::Connected) => connected += 1,
            Update::Room(Message::Posted(post)) if post.text.as_str() == "while you were away" => {
                caught_up = true;
            }
            _ => {}
        }
    }
    assert!(caught_up, "the open room was caught up");
    assert_eq!(connected, 1, "one connection, not a reconnect loop");
    let high_water = client.high_water();
    assert!(!high_water.contains_key(&banned), "{high_water:?}");
    assert!(high_water.contains_key(&open));
}

/// A burst larger than the rate limit goes out on post streams: refused posts (and the ones
/// after them on their stream) are sent again once the bucket refills, and the room ends up
/// with every post once, in the order they were queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_arrives_whole_and_in_order() {
    let server = TestServer::start_with(|c| {
        let message = c.rate.get_mut("message").unwrap();
        message.burst = 5;
        message.per_minute = 1200;
    })
    .await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let (writer, mut updates) = start(&server, credentials(&ada), &[room]);
    const N: usize = 40;
    for i in 0..N {
        writer.send(room, &format!("b{i:02}"), None).unwrap();
    }
    let mut acked = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked.len() < N {
        tokio::select! {
            Some(update) = updates.recv() => match update {
                Update::Sent { ack, .. } => acked.push(ack.seq),
                Update::SendFailed { error, .. } => panic!("send failed: {error}"),
                _ => {}
            },
            () = tokio::time::sleep_until(deadline) => panic!("timed out: {} acked", acked.len()),
        }
    }
    // Acked in queue order, with no gap: nothing was taken twice or out of turn.
    assert_eq!(acked, (2..2 + N as u64).collect::<Vec<_>>());
    let expected: Vec<String> = (0..N).map(|i| format!("b{i:02}")).collect();
    assert_eq!(history_texts(&ada, room).await, expected);
    assert_eq!(writer.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_longer_than_a_post_can_carry_is_refused_when_queued() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let (writer, _updates) = start(&server, credentials(&ada), &[room]);
    let error = writer.send(room, &"x".repeat(16 * 1024 + 1), None).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(writer.pending(), 0, "nothing was queued");
}
