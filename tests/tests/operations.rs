//! Operations over real QUIC and HTTP (issue 9): a Prometheus scrape reflects what clients
//! did (posts and their latency, failed logins, fan-out, voice relayed and dropped, group
//! commits), and `/healthz` answers from the storage writer.

use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::datagram::{MAX_HEADER_LEN, VoiceHeader};
use banter_client::protocol::message::{Message, VoiceJoin, VoiceSelf};
use banter_tests::{TestServer, TestUser, WAIT, http_get as get, metric_samples as samples};
use bytes::Bytes;

fn opus(sequence: u16, payload: &[u8]) -> Bytes {
    let mut buf = vec![0u8; MAX_HEADER_LEN];
    let n = VoiceHeader::opus(0, sequence, false).write(&mut buf).unwrap();
    buf.truncate(n);
    buf.extend_from_slice(payload);
    Bytes::from(buf)
}

async fn join_voice(user: &TestUser, room: banter_client::protocol::ids::RoomId) {
    let joined = user.conn.request_one(VoiceJoin { room }).await.unwrap();
    assert!(matches!(joined, Message::VoiceJoined(_)), "{joined:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_scrape_reflects_what_clients_did() {
    let server = TestServer::node(|config| {
        config.metrics = true;
        config.metrics_listen = "127.0.0.1:0".parse().unwrap();
        config.node_name = "node-a".into();
    })
    .await;
    let metrics = server.metrics_addr().expect("metrics listener");
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_voice_room("ops").await;
    bob.join(room).await.unwrap();
    for i in 0..3 {
        ada.post(room, &format!("m{i}")).await.unwrap();
    }
    let (stranger, _events) = server.connect().await;
    let refused = stranger.login("ada", "wrong password").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::AUTH_FAILED));

    // One voice frame relayed to bob, one dropped because ada muted herself.
    join_voice(&ada, room).await;
    join_voice(&bob, room).await;
    ada.conn.quic().send_datagram(opus(1, b"frame")).unwrap();
    tokio::time::timeout(WAIT, bob.conn.quic().read_datagram()).await.unwrap().unwrap();
    ada.conn.request_one(VoiceSelf { room, mute: true, deaf: false }).await.unwrap();
    ada.conn.quic().send_datagram(opus(2, b"muted")).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    // Every series names its node.
    assert!(text.contains(r#"banter_connections{node="node-a"} 3"#), "{text}");
    let found = samples(&text);
    let value = |name: &str| *found.get(name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    assert_eq!(value("banter_connections"), 3.0);
    assert_eq!(value("banter_rooms"), 1.0);
    assert_eq!(value(r#"banter_request_duration_seconds_count{request="POST"}"#), 3.0);
    assert_eq!(value(r#"banter_request_errors_total{code="AUTH_FAILED"}"#), 1.0);
    assert_eq!(value("banter_auth_failures_total"), 1.0);
    // Two joins and three posts, the posts delivered to both members.
    assert_eq!(value("banter_events_published_total"), 5.0);
    assert_eq!(value("banter_events_delivered_total"), 1.0 + 2.0 + 3.0 * 2.0);
    assert_eq!(value("banter_voice_packets_relayed_total"), 1.0);
    assert_eq!(value(r#"banter_voice_packets_dropped_total{reason="muted"}"#), 1.0);
    assert!(value("banter_commit_group_size_count") >= 1.0);
    assert!(value("banter_commit_sync_seconds_count") >= 1.0);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");

    assert_eq!(get(metrics, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(get(metrics, "/admin").await.0, 404);
}
