//! Accounts and sessions over real QUIC: login, refresh rotation, reuse detection, logout and
//! revocation closing live connections, token checks at HELLO.

use banter_client::Event;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Blob;
use banter_client::protocol::message::{Logout, Message, Refresh, SessionList, SessionRevoke};
use banter_tests::{TestServer, TestUser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let server = TestServer::start().await;
    server.user("ada").await;
    let (conn, _events) = server.connect().await;
    let wrong = conn.login("ada", "not the password").await.unwrap_err();
    let unknown = conn.login("nobody", "not the password").await.unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::AUTH_FAILED));
    assert_eq!(wrong.to_string(), unknown.to_string());
    let taken = conn.register("ada", "another password").await.unwrap_err();
    assert_eq!(taken.code(), Some(ErrorCode::USERNAME_TAKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_hello_are_refused_and_bad_tokens_are_rejected() {
    let server = TestServer::start().await;
    let (conn, mut events) = server.connect().await;
    let early = conn.request_one(SessionList {}).await.unwrap_err();
    assert_eq!(early.code(), Some(ErrorCode::NOT_AUTHENTICATED));
    conn.hello(b"forged token");
    loop {
        match tokio::time::timeout(banter_tests::WAIT, events.recv()).await.unwrap().unwrap() {
            Event::Rejected(error) => {
                assert_eq!(error.code, ErrorCode::AUTH_FAILED);
                break;
            }
            Event::Welcome(_) => panic!("a forged token was accepted"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_tokens_are_refused_with_token_expired() {
    let server = TestServer::start_with(|c| c.access_token_ttl_s = 0).await;
    let (conn, mut events) = server.connect().await;
    let auth = conn.register("ada", "correct horse battery").await.unwrap();
    conn.hello(&auth.access_token);
    loop {
        match tokio::time::timeout(banter_tests::WAIT, events.recv()).await.unwrap().unwrap() {
            Event::Rejected(error) => {
                assert_eq!(error.code, ErrorCode::TOKEN_EXPIRED);
                break;
            }
            Event::Welcome(_) => panic!("an expired token was accepted"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session_and_its_connections() {
    // No grace: the spent token counts as reuse at once.
    let server = TestServer::start_with(|c| c.refresh_grace_s = 0).await;
    let mut ada = server.user("ada").await;
    let first = ada.auth.refresh_token.clone();
    let rotated =
        match ada.conn.request_one(Refresh { refresh_token: first.clone() }).await.unwrap() {
            Message::AuthOk(ok) => ok,
            other => panic!("expected AUTH_OK, got {other:?}"),
        };
    assert_ne!(rotated.refresh_token, first);
    assert_eq!(rotated.session, ada.auth.session);

    // The old token comes back: someone copied it. The whole login ends.
    let (thief, _events) = server.connect().await;
    let reuse = thief.request_one(Refresh { refresh_token: first }).await.unwrap_err();
    assert_eq!(reuse.code(), Some(ErrorCode::SESSION_REVOKED));
    let (code, reason) = ada.closed().await;
    assert_eq!(code, Some(ErrorCode::SESSION_REVOKED), "{reason}");
    assert!(reason.contains("refresh token reused"), "{reason}");
    // The rotated token is dead too, and looks like any token that was never valid.
    let (again, _events) = server.connect().await;
    let dead =
        again.request_one(Refresh { refresh_token: rotated.refresh_token }).await.unwrap_err();
    assert_eq!(dead.code(), Some(ErrorCode::AUTH_FAILED));
    let garbage = again
        .request_one(Refresh { refresh_token: Blob::new(vec![1; 45]).unwrap() })
        .await
        .unwrap_err();
    assert_eq!(garbage.to_string(), dead.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_session_closes_its_live_connection_and_its_tokens_stop_working() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut laptop = server.login("ada").await;
    let listed = match ada.conn.request_one(SessionList {}).await.unwrap() {
        Message::SessionListPage(page) => page.sessions.into_vec(),
        other => panic!("expected SESSION_LIST_PAGE, got {other:?}"),
    };
    assert_eq!(listed.len(), 2);
    assert_eq!(listed.iter().filter(|s| s.current).count(), 1);

    ada.conn.request_one(SessionRevoke { session: laptop.auth.session }).await.unwrap();
    let (code, reason) = laptop.closed().await;
    assert_eq!(code, Some(ErrorCode::SESSION_REVOKED), "{reason}");
    let (conn, events) = server.connect().await;
    conn.hello(&laptop.auth.access_token);
    let rejected = first_rejection(events).await;
    assert_eq!(rejected, ErrorCode::SESSION_REVOKED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_answers_then_closes_the_connection() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let access = ada.auth.access_token.clone();
    assert!(matches!(ada.conn.request_one(Logout {}).await.unwrap(), Message::Done(_)));
    assert_eq!(ada.closed().await.0, Some(ErrorCode::SESSION_REVOKED));
    let (conn, events) = server.connect().await;
    conn.hello(&access);
    assert_eq!(first_rejection(events).await, ErrorCode::SESSION_REVOKED);
    // Logging in again works.
    let TestUser { .. } = server.login("ada").await;
}

async fn first_rejection(mut events: tokio::sync::mpsc::UnboundedReceiver<Event>) -> ErrorCode {
    loop {
        match tokio::time::timeout(banter_tests::WAIT, events.recv()).await.unwrap().unwrap() {
            Event::Rejected(error) => return error.code,
            // The server closes with the same code; the close may overtake the REJECTED frame
            // (issue 15, item A).
            Event::Closed { code: Some(code), .. } => return code,
            Event::Welcome(_) => panic!("accepted"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_logs_in_with_its_ed25519_key_and_a_wrong_signature_fails() {
    use banter_client::protocol::message::key_login_signed_bytes;
    use ed25519_dalek::{Signer, SigningKey};

    let server = TestServer::start().await;
    let bot = server.user("bot").await;
    let key = SigningKey::from_bytes(&[42; 32]);
    let public_key = key.verifying_key().to_bytes();
    bot.conn.add_key("bot", public_key, |bytes| key.sign(bytes).to_bytes()).await.unwrap();

    let (conn, _events) = server.connect().await;
    let ok = conn.key_login("bot", public_key, |bytes| key.sign(bytes).to_bytes()).await.unwrap();
    assert_eq!(ok.user, bot.auth.user);
    // A signature over other bytes (another username, say) is refused.
    let bad = conn
        .key_login("bot", public_key, |_| {
            key.sign(&key_login_signed_bytes(&[0; 32], "bob")).to_bytes()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::AUTH_FAILED));
    // An unregistered key still gets a challenge, then the same failure.
    let stranger = SigningKey::from_bytes(&[7; 32]);
    let unknown = conn
        .key_login("bot", stranger.verifying_key().to_bytes(), |bytes| {
            stranger.sign(bytes).to_bytes()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.to_string(), bad.to_string());
}
