//! Chat over real QUIC: ordering, echo to the author, history with folding, idempotent posts.

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::message::{Edit, History, Message, Post, React};
use banter_tests::{TestServer, fresh_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_every_member_in_order() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    // Grace sees her own join first.
    assert!(matches!(grace.next_room_event().await, Message::Membership(_)));

    let mut acks = Vec::new();
    for i in 0..50 {
        acks.push(ada.post(room, &format!("message {i}")).await.unwrap().seq);
    }
    // Acks are gap-free: the room's log has create-join (1), grace's join (2), then posts.
    assert_eq!(acks, (3..53).collect::<Vec<_>>());
    let mut last_event_seq = 1;
    for (i, ack) in acks.iter().enumerate() {
        let Message::Posted(posted) = grace.next_room_event().await else {
            panic!("expected POSTED")
        };
        assert_eq!(posted.text.as_str(), format!("message {i}"));
        assert_eq!(posted.meta.seq, *ack);
        assert_eq!(posted.meta.sender, ada.auth.user);
        assert_eq!(posted.event_seq, last_event_seq + 1, "event_seq advances by one");
        assert_eq!(posted.client_msg_id, None, "other users never see the client message id");
        last_event_seq = posted.event_seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authors_other_devices_get_the_client_message_id() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let mut laptop = server.login("ada").await;
    let id = fresh_id();
    ada.post_with_id(room, id, "from my phone").await.unwrap();
    // On a cluster the room's creation may reach the laptop's node after its HELLO: then
    // the laptop gets that membership event first.
    let posted = loop {
        if let Message::Posted(posted) = laptop.next_room_event().await {
            break posted;
        }
    };
    assert_eq!(posted.client_msg_id, Some(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_post_is_acked_identically_and_a_reused_id_with_other_text_conflicts() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let id = fresh_id();
    let first = ada.post_with_id(room, id, "once").await.unwrap();
    let again = ada.post_with_id(room, id, "once").await.unwrap();
    assert_eq!(first, again);
    let conflict = ada.post_with_id(room, id, "other text").await.unwrap_err();
    assert_eq!(conflict.code(), Some(ErrorCode::CONFLICT));
    let history = ada.conn.request(History { room, before: None, limit: 100 }).await.unwrap();
    let posts = history.iter().filter(|m| matches!(m, Message::HistoryMessage(_))).count();
    assert_eq!(posts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_post_is_deduplicated_across_a_server_restart() {
    let mut server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let id = fresh_id();
    let first = ada.post_with_id(room, id, "before the restart").await.unwrap();
    drop(ada);
    server.restart().await;
    let ada = server.login("ada").await;
    let again = ada.post_with_id(room, id, "before the restart").await.unwrap();
    assert_eq!(first, again, "the dedup record survived the restart");
    let history = ada.conn.request(History { room, before: None, limit: 100 }).await.unwrap();
    assert_eq!(history.iter().filter(|m| matches!(m, Message::HistoryMessage(_))).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_backwards_with_edits_and_reactions_folded_in() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    let mut seqs = Vec::new();
    for i in 0..25 {
        seqs.push(ada.post(room, &format!("m{i}")).await.unwrap().seq);
    }
    ada.conn
        .request_one(Edit { room, target: seqs[3], text: Text::new("m3 edited").unwrap() })
        .await
        .unwrap();
    grace
        .conn
        .request_one(React { room, target: seqs[3], emoji: Text::new("👍").unwrap(), on: true })
        .await
        .unwrap();
    // Someone else's edit is refused.
    let refused =
        grace.conn.request_one(Edit { room, target: seqs[4], text: Text::new("x").unwrap() }).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));

    let mut texts = Vec::new();
    let mut before = None;
    loop {
        let page = grace.conn.request(History { room, before, limit: 10 }).await.unwrap();
        let Some(Message::PageEnd(end)) = page.last() else { panic!("page ends with PAGE_END") };
        for message in &page {
            if let Message::HistoryMessage(m) = message {
                texts.push(m.text.to_string());
                if m.meta.seq == seqs[3] {
                    assert!(m.edited.is_some());
                    assert_eq!(m.reactions.len(), 1);
                    assert_eq!(m.reactions[0].count, 1);
                    assert!(m.reactions[0].me, "grace reacted");
                }
            }
        }
        match end.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    texts.reverse();
    let expected: Vec<String> =
        (0..25).map(|i| if i == 3 { "m3 edited".into() } else { format!("m{i}") }).collect();
    assert_eq!(texts, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_deletes_a_members_message_leaving_a_tombstone_but_a_member_cannot() {
    use banter_client::protocol::message::Delete;
    let server = TestServer::start().await;
    let owner = server.user("owner").await;
    let spammer = server.user("spammer").await;
    let room = owner.create_room("general", false).await;
    spammer.join(room).await.unwrap();
    let spam = spammer.post(room, "buy now").await.unwrap().seq;
    let own = owner.post(room, "welcome").await.unwrap().seq;
    let refused = spammer.conn.request_one(Delete { room, target: own }).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::FORBIDDEN));
    owner.conn.request_one(Delete { room, target: spam }).await.unwrap();
    let history = owner.conn.request(History { room, before: None, limit: 100 }).await.unwrap();
    let tombstone = history
        .iter()
        .find_map(|m| match m {
            Message::HistoryMessage(h) if h.meta.seq == spam => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(tombstone.text.as_str(), "", "the content is purged");
    assert_eq!(tombstone.deleted_by, Some(owner.auth.user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_topic_change_reaches_the_room_and_stays_but_an_outsider_cannot_set_one() {
    use banter_client::protocol::message::RoomSetTopic;
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut grace = server.user("grace").await;
    let mallory = server.user("mallory").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();

    let topic = |text: &str| RoomSetTopic { room, topic: Text::new(text).unwrap() };
    ada.conn.request_one(topic("release on friday")).await.unwrap();
    let changed = loop {
        if let Message::TopicChanged(t) = grace.next_room_event().await {
            break t;
        }
    };
    assert_eq!((changed.meta.sender, changed.topic.as_str()), (ada.auth.user, "release on friday"));
    let refused = mallory.conn.request_one(topic("spam")).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::FORBIDDEN));

    // A newcomer sees the topic in the room's summary.
    let Message::RoomInfo(info) = mallory.join(room).await.unwrap() else { panic!() };
    assert_eq!(info.room.topic.as_str(), "release on friday");
}

/// Spec §7.2 (issue 15): a retried POST whose first attempt was taken gets its ack even
/// after the author was kicked; a first attempt from someone kicked is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_kick_still_gets_the_original_ack() {
    use banter_client::protocol::message::Kick;
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    let id = fresh_id();
    let first = grace.post_with_id(room, id, "delivered").await.unwrap();
    let kick = Kick { room, user: grace.auth.user, reason: Text::default() };
    ada.conn.request_one(kick).await.unwrap();
    // The retry (the ack was lost, say) is answered as the first attempt was.
    let again = grace.post_with_id(room, id, "delivered").await.unwrap();
    assert_eq!(first, again);
    // Anything new is refused.
    let refused = grace.post_with_id(room, fresh_id(), "new").await.unwrap_err();
    assert!(refused.code().is_some(), "{refused:?}");
    assert_ne!(refused.code(), Some(ErrorCode::CONFLICT));
}

/// Only a posted message can be replied to, edited or reacted to: a log entry of another kind
/// (the room's first entry is its creator's join) is NOT_FOUND, and a post's first edit and
/// reaction work although the post alone wrote no state record for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_edits_and_reactions_take_posts_only() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let join = 1;
    let code = |answer: Result<Message, banter_client::RequestError>| {
        answer.expect_err("refused").code().expect("a server error")
    };
    let reply = Post {
        room,
        client_msg_id: fresh_id(),
        text: Text::new("re").unwrap(),
        reply_to: Some(join),
        anonymous: false,
    };
    assert_eq!(code(ada.conn.request_one(reply.clone()).await), ErrorCode::NOT_FOUND);
    let edit = Edit { room, target: join, text: Text::new("x").unwrap() };
    assert_eq!(code(ada.conn.request_one(edit).await), ErrorCode::NOT_FOUND);
    let react = React { room, target: join, emoji: Text::new("👍").unwrap(), on: true };
    assert_eq!(code(ada.conn.request_one(react).await), ErrorCode::NOT_FOUND);

    let seq = ada.post(room, "first").await.unwrap().seq;
    let reply = Post { reply_to: Some(seq), client_msg_id: fresh_id(), ..reply };
    assert!(matches!(ada.conn.request_one(reply).await, Ok(Message::EventAck(_))));
    let edit = Edit { room, target: seq, text: Text::new("first, edited").unwrap() };
    assert!(matches!(ada.conn.request_one(edit).await, Ok(Message::EventAck(_))));
    let react = React { room, target: seq, emoji: Text::new("👍").unwrap(), on: true };
    assert!(matches!(ada.conn.request_one(react).await, Ok(Message::EventAck(_))));
}
