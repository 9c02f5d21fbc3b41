//! Markers, typing, presence under churn and direct rooms over real QUIC.

use std::collections::BTreeSet;
use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::UserId;
use banter_client::protocol::message::{
    DmOpen, History, MarkDelivered, MarkRead, Members, Message, Presence, PresenceStatus, RoomKind,
    RoomLeave, Typing, TypingSet, TypingState,
};
use banter_client::{
    Client, ClientConfig, Connection, ConnectionState, Credentials, Event, Options, State, Trust,
    Update,
};
use banter_tests::{Dice, TestServer, TestUser, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_never_go_backwards_and_reach_the_room() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    let last = ada.post(room, "read me").await.unwrap().seq;

    let Message::MarkerOk(ok) =
        grace.conn.request_one(MarkRead { room, seq: last, private: false }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(ok.seq, last);
    let Message::MarkerOk(ok) =
        grace.conn.request_one(MarkRead { room, seq: 1, private: false }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(ok.seq, last, "an older marker is answered with the stored one");
    // Beyond the head is clamped to it.
    let Message::MarkerOk(ok) =
        grace.conn.request_one(MarkRead { room, seq: 10_000, private: false }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(ok.seq, last);
    let Message::ReadUpTo(read) =
        ada.ephemeral("a READ_UP_TO", |m| matches!(m, Message::ReadUpTo(_))).await
    else {
        panic!()
    };
    assert_eq!((read.user, read.seq), (grace.auth.user, last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_receipts_reach_the_room_and_private_read_markers_only_ones_own_devices() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let mut grace_phone = server.login("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    let first = ada.post(room, "did you get this?").await.unwrap().seq;

    grace.conn.request_one(MarkDelivered { room, seq: first }).await.unwrap();
    let Message::DeliveredUpTo(delivered) =
        ada.ephemeral("a DELIVERED_UP_TO", |m| matches!(m, Message::DeliveredUpTo(_))).await
    else {
        panic!()
    };
    assert_eq!((delivered.user, delivered.seq), (grace.auth.user, first));

    grace.conn.request_one(MarkRead { room, seq: first, private: true }).await.unwrap();
    let Message::ReadUpTo(synced) =
        grace_phone.ephemeral("a READ_UP_TO", |m| matches!(m, Message::ReadUpTo(_))).await
    else {
        panic!()
    };
    assert_eq!((synced.user, synced.seq), (grace.auth.user, first), "synced to her devices");
    // A later public marker is the first ada sees: the private one never reached her.
    let second = ada.post(room, "and this?").await.unwrap().seq;
    grace.conn.request_one(MarkRead { room, seq: second, private: false }).await.unwrap();
    let Message::ReadUpTo(read) =
        ada.ephemeral("a READ_UP_TO", |m| matches!(m, Message::ReadUpTo(_))).await
    else {
        panic!()
    };
    assert_eq!((read.user, read.seq), (grace.auth.user, second));
}

/// The next TYPING `user` is sent.
async fn next_typing(user: &mut TestUser) -> Typing {
    match user.ephemeral("a TYPING", |m| matches!(m, Message::Typing(_))).await {
        Message::Typing(typing) => typing,
        _ => unreachable!("only TYPING is waited for"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_others_and_a_post_clears_it() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    grace.conn.request_one(TypingSet { room, state: TypingState::Active }).await.unwrap();
    let typing = next_typing(&mut ada).await;
    assert_eq!((typing.user, typing.state), (grace.auth.user, TypingState::Active));
    grace.post(room, "done typing").await.unwrap();
    let stopped = next_typing(&mut ada).await;
    assert_eq!(stopped.state, TypingState::Stopped);

    // A typist who leaves the room stops typing.
    grace.conn.request_one(TypingSet { room, state: TypingState::Active }).await.unwrap();
    let typing = next_typing(&mut ada).await;
    assert_eq!(typing.state, TypingState::Active);
    grace.conn.request_one(RoomLeave { room }).await.unwrap();
    let left = next_typing(&mut ada).await;
    assert_eq!((left.user, left.state), (grace.auth.user, TypingState::Stopped));
    grace.join(room).await.unwrap();

    // A typist whose connection drops stops typing too (on a cluster: grace's node tells
    // ada's, which never saw grace go).
    grace.conn.request_one(TypingSet { room, state: TypingState::Active }).await.unwrap();
    let typing = next_typing(&mut ada).await;
    assert_eq!(typing.state, TypingState::Active);
    grace.conn.suspend();
    let gone = next_typing(&mut ada).await;
    assert_eq!((gone.user, gone.state), (grace.auth.user, TypingState::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_room_has_exactly_its_two_users() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut grace = server.user("grace").await;
    let mallory = server.user("mallory").await;
    let Message::RoomInfo(info) =
        ada.conn.request_one(DmOpen { username: Text::new("grace").unwrap() }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(info.room.kind, RoomKind::Direct);
    assert_eq!(info.room.name.as_str(), "grace", "named after the other user");
    let room = info.room.room;
    // Opening again finds the same room, from either side.
    let Message::RoomInfo(again) =
        grace.conn.request_one(DmOpen { username: Text::new("ada").unwrap() }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(again.room.room, room);
    let Message::MembersPage(members) =
        ada.conn.request_one(Members { room, after: None, limit: 10 }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(members.members.len(), 2);
    ada.post(room, "psst").await.unwrap();
    loop {
        if let Message::Posted(p) = grace.next_room_event().await {
            assert_eq!(p.text.as_str(), "psst");
            break;
        }
    }
    let snoop = mallory.conn.request(History { room, before: None, limit: 10 }).await.unwrap_err();
    assert_eq!(snoop.code(), Some(ErrorCode::NOT_FOUND));
    let unknown =
        ada.conn.request_one(DmOpen { username: Text::new("nobody").unwrap() }).await.unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::NOT_FOUND));
}

/// One device of a churning user: connects and authenticates (resuming its last session
/// when it has one), stays a moment, and leaves in one of the ways clients leave: a clean
/// close, a suspend (the session stays resumable) or dropping the connection. Until `until`;
/// then, if `stay`, it ends connected and returns that connection.
async fn churn(
    server: &TestServer,
    token: Vec<u8>,
    mut dice: Dice,
    until: std::time::Instant,
    stay: bool,
) -> Option<Connection> {
    let mut resumable: Option<(banter_client::protocol::ids::ResumeId, u64)> = None;
    let options = Options::new(Trust::AcceptAny, "localhost");
    loop {
        // An overloaded server may let a handshake time out: try again, as clients do.
        let Ok((conn, mut events)) = Connection::connect(server.addr(), options.clone()).await
        else {
            tokio::time::sleep(Duration::from_millis(dice.below(500))).await;
            continue;
        };
        let resuming = resumable.take();
        match resuming {
            Some((id, last)) => conn.resume(&token, id, last),
            None => conn.hello(&token),
        }
        let live = tokio::time::timeout(WAIT, async {
            loop {
                match events.recv().await {
                    Some(Event::Welcome(welcome)) => return Some(welcome.resume_id),
                    Some(Event::Resumed(_)) => return resuming.map(|(id, _)| id),
                    Some(Event::Rejected(_) | Event::Closed { .. }) | None => return None,
                    Some(_) => {}
                }
            }
        })
        .await;
        let Ok(Some(resume_id)) = live else { continue };
        if stay && std::time::Instant::now() >= until {
            return Some(conn);
        }
        tokio::time::sleep(Duration::from_millis(dice.below(150))).await;
        match dice.below(3) {
            0 => conn.close(),
            1 => {
                conn.suspend();
                resumable = Some((resume_id, conn.last_event_seq()));
            }
            _ => drop(conn),
        }
        if !stay && std::time::Instant::now() >= until {
            return None;
        }
    }
}

/// Who is online among `users` in a view of presence.
fn online(
    view: &std::collections::HashMap<UserId, PresenceStatus>,
    users: &BTreeSet<UserId>,
) -> BTreeSet<UserId> {
    view.iter()
        .filter(|(u, s)| users.contains(*u) && **s != PresenceStatus::Offline)
        .map(|(u, _)| *u)
        .collect()
}

/// Presence under churn (issue 20): users come and go on two devices at once, by every way
/// a client leaves, and afterwards every view of who is online is the truth, with no ghost
/// left online: watchers that stay connected, and an application (the SDK's `Client` and
/// `State`) that reconnects every second throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_churn_every_view_of_presence_is_the_truth() {
    // CI's short form; docs/reliability.md gives the long run's settings.
    let setting = |name: &str, default: u64| -> u64 {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let users_n = setting("BANTER_CHURN_USERS", 30) as usize;
    let seconds = setting("BANTER_CHURN_SECONDS", 8);
    // Every connection comes from 127.0.0.1, and churn is what this test is about.
    let server = TestServer::start_with(|config| {
        config.max_connections_per_ip = 100_000;
        for bucket in config.rate.values_mut() {
            bucket.burst = 10_000;
        }
    });
    let server = std::sync::Arc::new(server.await);
    let owner = server.user("owner").await;
    let room = owner.create_room("lobby", false).await;
    let mut watchers = Vec::new();
    for name in ["watcher-1", "watcher-2"] {
        let watcher = server.user(name).await;
        watcher.join(room).await.unwrap();
        watchers.push(watcher);
    }
    let app = server.user("watcher-app").await;
    app.join(room).await.unwrap();
    let config = ClientConfig {
        addrs: vec![server.addr()],
        options: Options::new(Trust::AcceptAny, "localhost"),
        outbox: None,
        known_rooms: Default::default(),
    };
    let (app_client, mut app_updates) =
        Client::start(config, Credentials::from(app.auth.clone())).unwrap();
    let mut app_state = State::new(app.auth.user, "watcher-app");
    app.conn.close();
    let mut users = Vec::new();
    for i in 0..users_n {
        let user = server.user(&format!("churner-{i}")).await;
        user.join(room).await.unwrap();
        users.push((user.auth.user, user.auth.access_token.to_vec()));
        user.conn.close();
    }

    // Every user on two devices at once for `seconds`; a third of them end online.
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
            | 1;
    let until = std::time::Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    let mut truth = BTreeSet::new();
    for (n, (user, token)) in users.iter().enumerate() {
        let stays = n % 3 == 0;
        if stays {
            truth.insert(*user);
        }
        for device in 0..2u64 {
            let dice = Dice(seed ^ ((n as u64) << 8 | device).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let stay = stays && device == 0;
            tasks.push(tokio::spawn({
                let server = server.clone();
                let token = token.clone();
                async move { churn(&server, token, dice, until, stay).await }
            }));
        }
    }
    while std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        app_client.reconnect();
    }
    let mut kept = Vec::new();
    for task in tasks {
        kept.extend(task.await.unwrap());
    }

    let churners: BTreeSet<_> = users.iter().map(|(u, _)| *u).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut views = Vec::new();
    for watcher in &mut watchers {
        let mut view = std::collections::HashMap::new();
        while online(&view, &churners) != truth {
            match tokio::time::timeout_at(deadline, watcher.next_event()).await {
                Ok(Event::Ephemeral(Message::Presence(p))) => {
                    view.insert(p.user, p.status);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        views.push(("a watcher", online(&view, &churners)));
    }
    while online(&app_state.presence, &churners) != truth {
        match tokio::time::timeout_at(deadline, app_updates.recv()).await {
            Ok(Some(Update::Connection(ConnectionState::Connected))) => app_state.reconnected(),
            Ok(Some(Update::Ephemeral(message))) => app_state.apply_ephemeral(&message, 0),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    views.push(("the application", online(&app_state.presence, &churners)));
    for (who, seen) in views {
        assert_eq!(
            seen,
            truth,
            "seed {seed:#x}, {who}: ghosts {:?}, missing {:?}",
            seen.difference(&truth).collect::<Vec<_>>(),
            truth.difference(&seen).collect::<Vec<_>>()
        );
    }
    drop(kept);
}

/// The presence updates of `whom` that reach `watcher` within `wait`.
async fn presence_of_within(watcher: &mut TestUser, whom: UserId, wait: Duration) -> Vec<Presence> {
    let seen = watcher.ephemeral_within(wait).await.into_iter();
    seen.filter_map(|m| match m {
        Message::Presence(p) if p.user == whom => Some(p),
        _ => None,
    })
    .collect()
}

/// Waits until `watcher` is told `whom` went offline.
async fn shown_offline(watcher: &mut TestUser, whom: UserId) {
    let offline = |m: &Message| matches!(m, Message::Presence(p) if p.user == whom && p.status == PresenceStatus::Offline);
    watcher.ephemeral("an offline PRESENCE", offline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_back_within_the_presence_grace_is_never_shown_offline() {
    let server = TestServer::start_with(|c| c.presence_grace_ms = 60_000).await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    presence_of_within(&mut ada, grace.auth.user, Duration::from_millis(300)).await;

    // The network drops; the client resumes: ada is sent nothing.
    let last = grace.conn.last_event_seq();
    grace.conn.suspend();
    let (conn, mut events) = banter_tests::connect(grace.conn.quic().remote_address()).await;
    conn.resume(&grace.auth.access_token, grace.welcome.resume_id, last);
    tokio::time::timeout(WAIT, async {
        while !matches!(events.recv().await, Some(Event::Resumed(_))) {}
    })
    .await
    .expect("RESUMED");
    let seen = presence_of_within(&mut ada, grace.auth.user, Duration::from_secs(1)).await;
    assert!(seen.is_empty(), "a reconnect showed as presence changes: {seen:?}");

    // A client that closes cleanly is gone at once (long before the grace ends).
    conn.close();
    shown_offline(&mut ada, grace.auth.user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_that_stays_away_shows_offline_once_the_grace_ends() {
    let grace_period = Duration::from_secs(1);
    let server =
        TestServer::start_with(|c| c.presence_grace_ms = grace_period.as_millis() as u64).await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    presence_of_within(&mut ada, grace.auth.user, Duration::from_millis(300)).await;

    let dropped = tokio::time::Instant::now();
    grace.conn.suspend();
    shown_offline(&mut ada, grace.auth.user).await;
    assert!(dropped.elapsed() >= grace_period, "offline after {:?}", dropped.elapsed());
}
