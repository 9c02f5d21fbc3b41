//! Voice relay over real QUIC datagrams (spec §8): sources bound before audio, the server
//! stamps the source, policy (mute, deafen, server mute) enforced by dropping, talk state
//! authored by the server.

use std::time::Duration;

use banter_client::Event;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::datagram::encode_tunnel_record;
use banter_client::protocol::ids::SourceId;
use banter_client::protocol::message::{
    Message, RoomConfigure, VoiceAction, VoiceJoin, VoiceLeave, VoiceModerate, VoiceRequestSpeak,
    VoiceSelf, VoiceState,
};
use banter_client::protocol::stream::StreamType;
use banter_tests::voice::{datagram, heard, join_voice, speak_until_heard, voice_state};
use banter_tests::{TestServer, TestUser, WAIT};

async fn speaking(user: &mut TestUser, source: SourceId, on: bool) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Ephemeral(Message::Speaking(s)) = user.next_event().await {
                if s.source == source && s.on == on {
                    return;
                }
            }
        }
    })
    .await
    .expect("a SPEAKING notice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_is_relayed_with_server_stamped_sources_and_server_enforced_policy() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut bob = server.user("bob").await;
    let mut cy = server.user("cy").await;
    let room = ada.create_voice_room("stage").await;
    bob.join(room).await.unwrap();
    cy.join(room).await.unwrap();
    // A room without voice refuses.
    let text_only = ada.create_room("text", false).await;
    assert_eq!(
        ada.conn.request_one(VoiceJoin { room: text_only }).await.unwrap_err().code(),
        Some(ErrorCode::INVALID_REQUEST)
    );

    let a = join_voice(&ada, room).await.source;
    let b = join_voice(&bob, room).await.source;
    // On a cluster cy's node learns of the others' joins a moment later.
    for (whom, what) in [(ada.auth.user, "ada in voice"), (bob.auth.user, "bob in voice")] {
        voice_state(&mut cy, whom, |s| s.present, what).await;
    }
    let joined = join_voice(&cy, room).await;
    assert_eq!(joined.roster.len(), 3);
    assert_eq!(joined.codec.sample_rate, 48_000);
    assert!(a != b && b != joined.source);

    // Ada speaks, claiming to be source 999: the server stamps her real source.
    ada.conn.quic().send_datagram(datagram(999, 1, false, b"opus frame 1")).unwrap();
    for listener in [&bob, &cy] {
        let (header, payload) = heard(listener, WAIT).await.expect("relayed");
        assert_eq!(header.source, u64::from(a.0));
        assert_eq!(header.sequence, 1);
        assert_eq!(payload, b"opus frame 1");
    }
    assert!(heard(&ada, Duration::from_millis(200)).await.is_none(), "no echo to the speaker");
    speaking(&mut bob, a, true).await;
    ada.conn.quic().send_datagram(datagram(0, 2, true, b"last")).unwrap();
    speaking(&mut bob, a, false).await;
    heard(&bob, WAIT).await.unwrap();
    heard(&cy, WAIT).await.unwrap();

    // Self-mute: dropped by the server.
    ada.conn.request_one(VoiceSelf { room, mute: true, deaf: false }).await.unwrap();
    ada.conn.quic().send_datagram(datagram(0, 3, false, b"muted")).unwrap();
    assert!(heard(&bob, Duration::from_millis(300)).await.is_none(), "a muted speaker is dropped");
    // Deafened listeners get nothing; the others still hear.
    ada.conn.request_one(VoiceSelf { room, mute: false, deaf: false }).await.unwrap();
    cy.conn.request_one(VoiceSelf { room, mute: false, deaf: true }).await.unwrap();
    ada.conn.quic().send_datagram(datagram(0, 4, false, b"again")).unwrap();
    assert_eq!(heard(&bob, WAIT).await.unwrap().1, b"again");
    assert!(
        heard(&cy, Duration::from_millis(300)).await.is_none(),
        "a deafened listener hears nothing"
    );

    // A member cannot server-mute; the owner can, and the muted speaker is dropped.
    let refused = bob
        .conn
        .request_one(VoiceModerate { room, user: ada.auth.user, action: VoiceAction::ServerMute })
        .await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));
    ada.conn
        .request_one(VoiceModerate { room, user: bob.auth.user, action: VoiceAction::ServerMute })
        .await
        .unwrap();
    bob.conn.quic().send_datagram(datagram(0, 1, false, b"bob")).unwrap();
    assert!(
        heard(&ada, Duration::from_millis(300)).await.is_none(),
        "a server-muted speaker is dropped"
    );

    // Leaving is announced.
    ada.conn.request_one(VoiceLeave { room }).await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Ephemeral(Message::VoiceStateChanged(s)) = bob.next_event().await {
                if s.participant.user == ada.auth.user && !s.present {
                    return;
                }
            }
        }
    })
    .await
    .expect("ada's departure is announced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_changes_its_address_keeps_its_call_and_its_chat() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut bob = server.user("bob").await;
    let room = ada.create_voice_room("call").await;
    bob.join(room).await.unwrap();
    join_voice(&ada, room).await;
    join_voice(&bob, room).await;

    let before = ada.conn.local_addr().unwrap();
    ada.conn.rebind().unwrap();
    assert_ne!(ada.conn.local_addr().unwrap().port(), before.port(), "a new socket");

    // Voice still flows both ways, without re-joining.
    ada.conn.quic().send_datagram(datagram(0, 1, false, b"after the move")).unwrap();
    assert_eq!(heard(&bob, WAIT).await.unwrap().1, b"after the move");
    bob.conn.quic().send_datagram(datagram(0, 1, false, b"welcome back")).unwrap();
    assert_eq!(heard(&ada, WAIT).await.unwrap().1, b"welcome back");
    // And chat too.
    ada.post(room, "still here").await.unwrap();
    loop {
        if let Message::Posted(p) = bob.next_room_event().await {
            assert_eq!(p.text.as_str(), "still here");
            break;
        }
    }
}

/// The next VOICE_STATE about `user`.
async fn state_of(listener: &mut TestUser, user: &TestUser) -> VoiceState {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Ephemeral(Message::VoiceStateChanged(s)) = listener.next_event().await {
                if s.participant.user == user.auth.user {
                    return s.participant.state;
                }
            }
        }
    })
    .await
    .expect("a VOICE_STATE notice")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_speaker_raises_a_hand_and_is_heard_once_a_moderator_grants_it() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_voice_room("stage").await;
    bob.join(room).await.unwrap();
    join_voice(&ada, room).await;
    join_voice(&bob, room).await;
    state_of(&mut ada, &bob).await; // bob joined

    let revoke = VoiceModerate { room, user: bob.auth.user, action: VoiceAction::RevokeSpeak };
    ada.conn.request_one(revoke).await.unwrap();
    assert!(state_of(&mut ada, &bob).await.suppressed);
    bob.conn.quic().send_datagram(datagram(0, 1, false, b"let me talk")).unwrap();
    assert!(
        heard(&ada, Duration::from_millis(300)).await.is_none(),
        "a suppressed speaker is dropped"
    );

    bob.conn.request_one(VoiceRequestSpeak { room, raise: true }).await.unwrap();
    let raised = state_of(&mut ada, &bob).await;
    assert!(raised.suppressed && raised.requested_to_speak.is_some(), "{raised:?}");
    bob.conn.request_one(VoiceRequestSpeak { room, raise: false }).await.unwrap();
    assert_eq!(state_of(&mut ada, &bob).await.requested_to_speak, None, "hand lowered");
    bob.conn.request_one(VoiceRequestSpeak { room, raise: true }).await.unwrap();
    state_of(&mut ada, &bob).await;

    // Only a moderator grants; granting answers the request.
    let grant = VoiceModerate { room, user: bob.auth.user, action: VoiceAction::GrantSpeak };
    let refused = bob.conn.request_one(grant.clone()).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));
    ada.conn.request_one(grant).await.unwrap();
    let granted = state_of(&mut ada, &bob).await;
    assert!(!granted.suppressed && granted.requested_to_speak.is_none(), "{granted:?}");
    bob.conn.quic().send_datagram(datagram(0, 2, false, b"thank you")).unwrap();
    assert_eq!(heard(&ada, WAIT).await.unwrap().1, b"thank you");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_stage_members_join_suppressed_and_speak_once_granted() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_voice_room("stage").await;
    bob.join(room).await.unwrap();
    let stage =
        RoomConfigure { room, slow_mode_s: None, locked: None, anonymous: None, stage: Some(true) };
    ada.conn.request_one(stage).await.unwrap();

    // The owner is on stage at once; a member joins suppressed and is not relayed.
    let joined = join_voice(&ada, room).await;
    let mine = joined.roster.iter().find(|p| p.user == ada.auth.user).unwrap();
    assert!(!mine.state.suppressed);
    let joined = join_voice(&bob, room).await;
    let bobs = joined.roster.iter().find(|p| p.user == bob.auth.user).unwrap();
    assert!(bobs.state.suppressed, "members join a stage suppressed");
    bob.conn.quic().send_datagram(datagram(0, 1, false, b"from the floor")).unwrap();
    assert!(heard(&ada, Duration::from_millis(300)).await.is_none());
    ada.conn.quic().send_datagram(datagram(0, 1, false, b"from the stage")).unwrap();
    assert_eq!(heard(&bob, WAIT).await.unwrap().1, b"from the stage");

    // Granted, he is heard.
    let grant = VoiceModerate { room, user: bob.auth.user, action: VoiceAction::GrantSpeak };
    ada.conn.request_one(grant).await.unwrap();
    bob.conn.quic().send_datagram(datagram(0, 2, false, b"now on stage")).unwrap();
    assert_eq!(heard(&ada, WAIT).await.unwrap().1, b"now on stage");
    let listed = ada.conn.rooms(banter_client::protocol::message::ListScope::Joined).await.unwrap();
    assert!(listed.iter().find(|r| r.room == room).unwrap().stage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_flood_is_cut_to_the_bitrate_cap_and_the_flooder_stays_usable() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_voice_room("flood").await;
    bob.join(room).await.unwrap();
    join_voice(&ada, room).await;
    join_voice(&bob, room).await;
    // 5,000 datagrams of 200 bytes as fast as QUIC takes them: about 1 MB in well under a
    // second, some 80 times what the voice bitrate cap lets through.
    let payload = [0x55u8; 194];
    for sequence in 0..5000u16 {
        let _ = ada.conn.quic().send_datagram(datagram(0, sequence, false, &payload));
        if sequence % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut relayed = 0;
    while heard(&bob, Duration::from_millis(300)).await.is_some() {
        relayed += 1;
    }
    assert!(relayed > 0, "some audio gets through");
    assert!(relayed < 200, "{relayed} datagrams relayed: the cap did not hold");
    // The flooder's connection still answers requests.
    ada.conn.request_one(VoiceSelf { room, mute: true, deaf: false }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_records_are_relayed_like_datagrams_and_an_oversized_one_closes_the_connection() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut bob = server.user("bob").await;
    let room = ada.create_voice_room("voice").await;
    bob.join(room).await.unwrap();
    let ada_source = join_voice(&ada, room).await.source;
    join_voice(&bob, room).await;
    // Bob's voice tunnel, written by hand: one frame, then a record longer than 1100 bytes.
    let mut tunnel = bob.conn.quic().open_uni().await.unwrap();
    let mut bytes = Vec::new();
    StreamType::VOICE_TUNNEL.encode(&mut bytes);
    encode_tunnel_record(&datagram(0, 1, false, b"opus"), &mut bytes);
    tunnel.write_all(&bytes).await.unwrap();
    let (header, payload) = heard(&ada, WAIT).await.expect("the tunnelled frame is relayed");
    assert_eq!(payload, b"opus");
    assert_ne!(header.source, u64::from(ada_source.0), "stamped with bob's source");
    tunnel.write_all(&[0x44, 0x4d]).await.unwrap();
    let (code, _) = tokio::time::timeout(WAIT, bob.closed()).await.unwrap();
    assert_eq!(code, Some(ErrorCode::FRAME_TOO_LARGE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_leave_of_the_previous_room_does_not_end_the_call_in_the_next() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let first = ada.create_voice_room("first").await;
    let second = ada.create_voice_room("second").await;
    bob.join(second).await.unwrap();
    join_voice(&ada, first).await;
    join_voice(&ada, second).await; // moves ada's voice to the second room
    join_voice(&bob, second).await;
    let late = ada.conn.request_one(VoiceLeave { room: first }).await;
    assert_eq!(late.unwrap_err().code(), Some(ErrorCode::INVALID_REQUEST));
    // Still in the second room's voice: bob hears her (spoken until heard: a lone datagram
    // may be lost, and a cluster's relay starts a moment after the joins).
    speak_until_heard(&ada, &[&bob], b"still here").await;
    ada.conn.request_one(VoiceLeave { room: second }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_voice_requests_need_a_login_and_draw_from_the_voice_budget() {
    use banter_client::protocol::ids::{RoomId, UserId};

    let server = TestServer::start_with(|c| {
        let voice = c.rate.get_mut("voice").unwrap();
        (voice.burst, voice.per_minute) = (4, 1);
    })
    .await;
    // A stranger's voice requests are refused before anything is looked at.
    let (stranger, _events) = server.connect().await;
    let (room, user) = (RoomId(1), UserId(1));
    for request in [
        Message::from(VoiceJoin { room }),
        VoiceModerate { room, user, action: VoiceAction::ServerMute }.into(),
        VoiceSelf { room, mute: true, deaf: false }.into(),
        VoiceRequestSpeak { room, raise: true }.into(),
    ] {
        let refused = stranger.request_one(request).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NOT_AUTHENTICATED), "{refused}");
    }

    // Joining (which in a cluster may wait for the room's packets from other nodes) and
    // moderating draw from one budget per account.
    let ada = server.user("ada").await;
    let room = ada.create_voice_room("busy").await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(match ada.conn.request_one(VoiceJoin { room }).await {
            Ok(_) => None,
            Err(e) => e.code(),
        });
    }
    assert_eq!(codes[..4], [None; 4], "{codes:?}");
    assert_eq!(codes[4..], [Some(ErrorCode::RATE_LIMITED); 2], "{codes:?}");
    let moderate = VoiceModerate { room, user: ada.auth.user, action: VoiceAction::ServerMute };
    let refused = ada.conn.request_one(moderate).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RATE_LIMITED));
}
