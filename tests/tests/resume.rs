//! Session resume over real QUIC (spec §7.3): a reconnecting client gets exactly the events it
//! missed, numbered on from where it stopped; when the window is gone it is told so.

use banter_client::Event;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::ids::ResumeId;
use banter_client::protocol::message::{CatchUp, Message};
use banter_tests::{TestServer, TestUser, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_delivers_exactly_the_missed_events() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    grace.next_room_event().await; // her join
    ada.post(room, "seen live").await.unwrap();
    let Message::Posted(seen) = grace.next_room_event().await else { panic!() };
    let last = grace.conn.last_event_seq();
    assert_eq!(last, seen.event_seq);

    // Grace's connection drops; meanwhile five messages are posted.
    grace.conn.suspend();
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(ada.post(room, &format!("missed {i}")).await.unwrap().seq);
    }

    // Back to the node it was on (as the SDK does first: in a cluster, the session is there).
    let (conn, mut events) = banter_tests::connect(grace.conn.quic().remote_address()).await;
    conn.resume(&grace.auth.access_token, grace.welcome.resume_id, last);
    let mut got = Vec::new();
    while got.len() < 5 {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap().unwrap() {
            Event::Resumed(resumed) => assert_eq!(resumed.replay_from, last + 1),
            Event::Room(Message::Posted(posted)) => got.push((posted.event_seq, posted.meta.seq)),
            Event::Rejected(error) => panic!("resume rejected: {error:?}"),
            _ => {}
        }
    }
    let expected: Vec<(u64, u64)> =
        missed.iter().enumerate().map(|(i, seq)| (last + 1 + i as u64, *seq)).collect();
    assert_eq!(got, expected, "exactly the missed events, in order, numbered on");
    // And live delivery continues on the resumed session.
    let mut resumed =
        TestUser { conn, events, auth: grace.auth.clone(), welcome: grace.welcome.clone() };
    ada.post(room, "after resume").await.unwrap();
    let Message::Posted(live) = resumed.next_room_event().await else { panic!() };
    assert_eq!(live.event_seq, last + 6);
    assert_eq!(live.text.as_str(), "after resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_an_unknown_session_fails_and_catch_up_fills_the_gap() {
    let mut server = TestServer::start().await;
    let ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    let auth = grace.auth.clone();
    drop(grace);
    ada.post(room, "one").await.unwrap();
    drop(ada);
    // A restart loses the replay buffers: resume must fail, catch-up must work.
    server.restart().await;
    let (conn, mut events) = server.connect().await;
    conn.resume(&auth.access_token, ResumeId([1; 16]), 3);
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap().unwrap() {
            Event::Rejected(error) => {
                assert_eq!(error.code, ErrorCode::RESUME_UNAVAILABLE);
                break;
            }
            Event::Resumed(_) => panic!("resumed a session that cannot exist"),
            _ => {}
        }
    }
    let grace = server.login("grace").await;
    let page = grace.conn.request(CatchUp { room, after: 2, limit: 100 }).await.unwrap();
    let texts: Vec<_> = page
        .iter()
        .filter_map(|m| match m {
            Message::Posted(p) => Some(p.text.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["one".to_owned()]);
    assert!(matches!(page.last(), Some(Message::PageEnd(end)) if end.next.is_none()));
}

/// Spec §7.6: NO_ERROR from a client ends its session at once; GOING_AWAY keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_with_no_error_ends_its_session_and_one_that_suspends_keeps_it() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let resume = |user: &TestUser| {
        let (addr, token, id) = (
            user.conn.quic().remote_address(),
            user.auth.access_token.clone(),
            user.welcome.resume_id,
        );
        let last = user.conn.last_event_seq();
        async move {
            let (conn, mut events) = banter_tests::connect(addr).await;
            conn.resume(&token, id, last);
            loop {
                match tokio::time::timeout(WAIT, events.recv()).await.unwrap().unwrap() {
                    Event::Resumed(_) => return Ok(()),
                    Event::Rejected(error) => return Err(error.code),
                    _ => {}
                }
            }
        }
    };
    let (conn, events) = server.connect().await;
    let suspended = TestUser::authenticate(conn, events, ada.auth.clone()).await;
    suspended.conn.suspend();
    assert_eq!(resume(&suspended).await, Ok(()), "GOING_AWAY keeps the session resumable");

    let (conn, events) = server.connect().await;
    let done = TestUser::authenticate(conn, events, ada.auth.clone()).await;
    done.conn.close_and_flush().await;
    // The server ends it as the close arrives; give its connection task a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(resume(&done).await, Err(ErrorCode::RESUME_UNAVAILABLE), "NO_ERROR ended it");
}

/// Spec §6.4 (issue 15 C): CATCH_UP's Next is absent exactly when the answer reaches the
/// head, a full page that ends there included; HISTORY's is absent when it reaches seq 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_ends_without_next_exactly_at_the_head_and_at_the_start() {
    use banter_client::protocol::message::History;
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await; // seq 1: ada's join
    for i in 0..3 {
        ada.post(room, &format!("post {i}")).await.unwrap(); // seqs 2..=4
    }
    let next = |page: &[Message]| match page.last() {
        Some(Message::PageEnd(end)) => end.next,
        other => panic!("no PAGE_END: {other:?}"),
    };
    let full_to_head = ada.conn.request(CatchUp { room, after: 1, limit: 3 }).await.unwrap();
    assert_eq!(full_to_head.len(), 4, "three entries and PAGE_END");
    assert_eq!(next(&full_to_head), None, "a full page that ends at the head has no Next");
    let short_of_head = ada.conn.request(CatchUp { room, after: 0, limit: 3 }).await.unwrap();
    assert_eq!(next(&short_of_head), Some(3));
    let past_head = ada.conn.request(CatchUp { room, after: 4, limit: 3 }).await.unwrap();
    assert_eq!((past_head.len(), next(&past_head)), (1, None));

    let to_start = ada.conn.request(History { room, before: Some(4), limit: 3 }).await.unwrap();
    assert_eq!(next(&to_start), None, "a page that ends at seq 1 has no Next");
    let newest = ada.conn.request(History { room, before: None, limit: 2 }).await.unwrap();
    assert_eq!(next(&newest), Some(3));
}

/// Dropping the last handle of an SDK connection closes it (NO_ERROR, spec §7.6) instead of
/// leaving it running, keep-alives and all, in the tasks that read its streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_connection_handle_closes_the_connection() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let (conn, _events) = server.connect().await;
    let clone = conn.clone();
    let quic = conn.quic().clone();
    drop(conn);
    assert!(quic.close_reason().is_none(), "a clone still holds it");
    drop(clone);
    let reason = tokio::time::timeout(WAIT, quic.closed()).await.expect("closed at once");
    assert!(matches!(reason, quinn::ConnectionError::LocallyClosed), "{reason:?}");
    drop(ada);
}
