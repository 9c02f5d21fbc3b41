//! Search (issue 18, spec §6.10) over real QUIC, on both backends (tantivy beside sled; a
//! cluster's PostgreSQL full-text search with `BANTER_TEST_BACKEND=cluster`): the query
//! language, Unicode folding and CJK, paging, and above all who sees what — only rooms the
//! searcher can read at the moment of the search, and anonymous authors only to moderators
//! who may reveal them, audited.

use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::{RoomId, UserId};
use banter_client::protocol::message::{
    AuditAction, AuditEntry, Delete, Edit, Kick, Post, Search, SearchHit,
};
use banter_tests::{TestServer, TestUser, fresh_id};

fn search(query: &str) -> Search {
    Search::new(Text::new(query).unwrap(), 50)
}

async fn hits(user: &TestUser, request: Search) -> Vec<SearchHit> {
    user.conn.search(request).await.unwrap().0
}

/// The texts of `user`'s hits for `query`, once they are `want` (the index commits within
/// about a second of an ack).
async fn found(user: &TestUser, query: &str, want: &[&str]) -> Vec<SearchHit> {
    let mut last = Vec::new();
    for _ in 0..100 {
        last = hits(user, search(query)).await;
        let texts: Vec<&str> = last.iter().map(|h| h.snippet.as_str()).collect();
        if texts == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let texts: Vec<&str> = last.iter().map(|h| h.snippet.as_str()).collect();
    panic!("{query:?} found {texts:?}, not {want:?}");
}

/// Waits until everything `poster` posted before is indexed: a fresh marker is findable.
async fn settle(poster: &TestUser, room: RoomId) {
    let marker = format!("marker{:x}", fresh_id());
    poster.post(room, &marker).await.unwrap();
    found(poster, &marker, &[marker.as_str()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_phrases_exclusions_folding_and_cjk_are_found_newest_first() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("lunch", false).await;
    for text in [
        "Café at noon?",
        "the lunch plan is pizza",
        "lunch plan without pizza, then",
        "東京タワーに行きました",
        "Die Straße ist NAÏVE",
    ] {
        ada.post(room, text).await.unwrap();
    }
    let hit = &found(&ada, "cafe", &["Café at noon?"]).await[0];
    assert_eq!((hit.room, hit.seq, hit.sender, hit.file), (room, 2, ada.auth.user, false));
    let highlighted: Vec<(u32, u32)> = hit.highlights.iter().map(|h| (h.start, h.end)).collect();
    assert_eq!(highlighted, [(0, 5)], "the match is `Café`, in bytes");
    found(&ada, "lunch", &["lunch plan without pizza, then", "the lunch plan is pizza"]).await;
    found(&ada, "\"plan is pizza\"", &["the lunch plan is pizza"]).await;
    found(&ada, "\"pizza plan\"", &[]).await;
    found(&ada, "lunch -\"is pizza\"", &["lunch plan without pizza, then"]).await;
    found(&ada, "タワー", &["東京タワーに行きました"]).await;
    found(&ada, "東京", &["東京タワーに行きました"]).await;
    found(&ada, "strasse naive", &["Die Straße ist NAÏVE"]).await;
    found(
        &ada,
        "from:ada in:#lunch pizza",
        &["lunch plan without pizza, then", "the lunch plan is pizza"],
    )
    .await;
    found(&ada, "from:nobody pizza", &[]).await;
    found(&ada, "in:elsewhere pizza", &[]).await;
    found(&ada, "before:2000-01-01 pizza", &[]).await;
    found(&ada, "after:2000-01-01 cafe", &["Café at noon?"]).await;

    // Paging: one hit a page, newest first, each once.
    let mut cursor = None;
    let mut seqs = Vec::new();
    loop {
        let (page, next) =
            ada.conn.search(Search { limit: 1, cursor, ..search("pizza") }).await.unwrap();
        seqs.extend(page.into_iter().map(|h| h.seq));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seqs, [4, 3], "pages walk the hits newest first, each once");

    for bad in ["from:", "before:2026-02-30", "has:link", "   "] {
        let refused = ada.conn.search(search(bad)).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::INVALID_REQUEST), "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_rooms_the_searcher_can_read_now_are_searched() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let mallory = server.user("mallory").await;
    let secret = ada.create_room("secret", true).await;
    ada.add(secret, "bob").await.unwrap();
    ada.post(secret, "the launch code is swordfish").await.unwrap();
    let dm = ada.open_dm("bob").await.unwrap();
    ada.post(dm, "swordfish, but quietly").await.unwrap();
    let open = ada.create_room("open", false).await;
    ada.post(open, "swordfish for everyone").await.unwrap();
    mallory.join(open).await.unwrap();
    settle(&ada, open).await;

    found(&bob, "swordfish", &["swordfish, but quietly", "the launch code is swordfish"]).await;
    // A non-member sees the public room only, and is told a private room does not exist.
    found(&mallory, "swordfish", &["swordfish for everyone"]).await;
    for room in [secret, dm] {
        let refused = mallory.conn.search(Search { room: Some(room), ..search("swordfish") }).await;
        assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::NOT_FOUND));
    }
    // Kicked: nothing of that room from the next search on.
    ada.conn
        .request_one(Kick { room: secret, user: bob.auth.user, reason: Text::default() })
        .await
        .unwrap();
    found(&bob, "swordfish", &["swordfish, but quietly"]).await;
    let refused = bob.conn.search(Search { room: Some(secret), ..search("swordfish") }).await;
    assert!(refused.is_err(), "a kicked member cannot search the private room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_replace_deletes_remove_files_match_and_anonymous_posts_hide_their_author() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = ada.create_room("changes", false).await;
    bob.join(room).await.unwrap();
    carol.join(room).await.unwrap();
    let typo = ada.post(room, "meet at the trian station").await.unwrap();
    let gone = ada.post(room, "delete this secret plan").await.unwrap();
    found(&ada, "trian", &["meet at the trian station"]).await;
    ada.conn
        .request_one(Edit {
            room,
            target: typo.seq,
            text: Text::new("meet at the train station").unwrap(),
        })
        .await
        .unwrap();
    ada.conn.request_one(Delete { room, target: gone.seq }).await.unwrap();
    let edited = found(&ada, "train", &["meet at the train station"]).await;
    assert_eq!(edited[0].seq, typo.seq, "an edit keeps the message's seq");
    found(&ada, "trian", &[]).await;
    found(&ada, "secret plan", &[]).await;

    let file = std::env::temp_dir().join(format!("quarterly-{:x}.pdf", fresh_id()));
    std::fs::write(&file, b"numbers").unwrap();
    let shared = ada.conn.upload(room, "quarterly report.pdf", &file).await.unwrap();
    std::fs::remove_file(&file).unwrap();
    let files = found(&ada, "has:file report", &["quarterly report.pdf"]).await;
    assert!(files[0].file && files[0].seq == shared.seq);

    ada.allow_anonymous(room).await;
    let anonymous = Post {
        room,
        client_msg_id: fresh_id(),
        text: Text::new("I broke the build").unwrap(),
        reply_to: None,
        anonymous: true,
    };
    bob.conn.request_one(anonymous).await.unwrap();
    let seen_by_carol = found(&carol, "build", &["I broke the build"]).await;
    assert_eq!(seen_by_carol[0].sender, UserId(0), "others see no author");
    let seen_by_bob = found(&bob, "build", &["I broke the build"]).await;
    assert_eq!(seen_by_bob[0].sender, bob.auth.user, "the author sees their own");
    let seen_by_ada = found(&ada, "build", &["I broke the build"]).await;
    assert_eq!(
        seen_by_ada[0].sender,
        UserId(0),
        "a plain search reveals nothing, even to the owner"
    );
    found(&carol, "from:bob build", &[]).await;
    found(&carol, "from:bob in:changes build", &[]).await;
    let by_sender = Search { sender: Some(bob.auth.user), ..search("build") };
    assert!(hits(&carol, by_sender.clone()).await.is_empty(), "Sender finds no anonymous post");
    found(&ada, "from:bob build", &[]).await;
    assert!(audit_of(&ada, room).await.is_empty(), "nothing revealed yet");

    // The room's owner may reveal authors: a search by sender confined to the room finds the
    // post and shows its author, and every such search is in the room's audit log (as
    // REVEAL_AUTHOR would be), whether it found anything or not.
    let revealed = found(&ada, "from:bob in:changes build", &["I broke the build"]).await;
    assert_eq!(revealed[0].sender, bob.auth.user);
    let in_room = hits(&ada, Search { room: Some(room), ..by_sender }).await;
    assert_eq!(in_room.len(), 1);
    assert_eq!(in_room[0].sender, bob.auth.user);
    found(&ada, "from:carol in:changes build", &[]).await;
    let audit = audit_of(&ada, room).await;
    assert_eq!(audit.len(), 3, "one entry per revealing search: {audit:?}");
    let seq = revealed[0].seq;
    let bobs = format!("seq {seq}");
    for (entry, (target, reason)) in audit.iter().zip([
        (carol.auth.user, "no anonymous post"),
        (bob.auth.user, bobs.as_str()),
        (bob.auth.user, bobs.as_str()),
    ]) {
        assert_eq!((entry.actor, entry.target), (ada.auth.user, Some(target)));
        assert!(entry.reason.as_str().ends_with(reason), "{:?}", entry.reason);
    }
}

/// The reveals in a room's audit log, newest first.
async fn audit_of(moderator: &TestUser, room: RoomId) -> Vec<AuditEntry> {
    let entries = moderator.audit(room, 50).await.into_iter();
    entries.filter(|entry| entry.action == AuditAction::REVEAL_AUTHOR).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_index_is_rebuilt_from_the_logs_at_the_next_start() {
    let mut server = TestServer::node(|_| {}).await;
    let ada = server.user("ada").await;
    let room = ada.create_room("durable", false).await;
    for n in 0..30 {
        ada.post(room, &format!("entry number {n} of the log")).await.unwrap();
    }
    settle(&ada, room).await;
    server.stop().await;
    std::fs::remove_dir_all(server.data_dir().join("search")).unwrap();
    server.restart().await;
    let ada = server.login("ada").await;
    let want: Vec<String> = (0..30).rev().map(|n| format!("entry number {n} of the log")).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    found(&ada, "entry log", &want).await;
}

/// With `search = false` the server says it has no search, and does not advertise it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_search_says_so() {
    let server = TestServer::start_with(|config| config.search = false).await;
    let ada = server.user("ada").await;
    let answer = ada.conn.search(search("anything")).await;
    assert_eq!(answer.unwrap_err().code(), Some(ErrorCode::UNSUPPORTED_EXTENSION));
}

/// What a search may cost: only after login, at most a page of `max_history_page` hits,
/// and `search` rate-limited per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_needs_a_login_is_capped_at_a_page_and_rate_limited() {
    let server = TestServer::start_with(|config| {
        config.max_history_page = 10;
        config
            .rate
            .insert("search".into(), banter_server::config::Bucket { burst: 4, per_minute: 1 });
    })
    .await;
    let (stranger, _events) = server.connect().await;
    let refused = stranger.search(search("anything")).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NOT_AUTHENTICATED));

    let ada = server.user("ada").await;
    let room = ada.create_room("many", false).await;
    for n in 0..15 {
        ada.post(room, &format!("bounded {n}")).await.unwrap();
    }
    let mut page = Vec::new();
    for _ in 0..3 {
        page = hits(&ada, Search { limit: u16::MAX, ..search("bounded") }).await;
        if page.len() == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(page.len(), 10, "a page holds at most max_history_page hits");
    // Four in the burst (the page above used one or more): the fifth at the latest is refused.
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(ada.conn.search(search("bounded")).await.err().and_then(|e| e.code()));
    }
    assert!(answers.contains(&Some(ErrorCode::RATE_LIMITED)), "{answers:?}");
}
