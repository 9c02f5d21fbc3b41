//! §6.2 and §7.1: accounts, tokens, authentication.

use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::{Blob, Text};
use banter_client::protocol::message::{Login, Message, Refresh, Register};

use super::streams::{room_list, session, still_serves};
use crate::raw::{self, PASSWORD, ServerControl};
use crate::{Check, Level::*, Target};

fn login(name: &str, password: &str) -> Vec<u8> {
    raw::frame(Login {
        username: Text::new(name).unwrap_or_default(),
        password: Text::new(password).unwrap_or_default(),
        device_name: Text::default(),
    })
}

fn refresh_frame(token: &[u8]) -> Vec<u8> {
    raw::frame(Refresh { refresh_token: Blob::new(token.to_vec()).unwrap_or_default() })
}

/// REFRESH with `token`; the new refresh token.
async fn refresh(conn: &quinn::Connection, token: &[u8]) -> Result<Vec<u8>, String> {
    let answer = raw::request_raw(conn, &refresh_frame(token)).await?;
    match answer.first() {
        Some(Message::AuthOk(ok)) => Ok(ok.refresh_token.to_vec()),
        other => Err(format!("REFRESH: {other:?}")),
    }
}

/// A raw connection that sent SETTINGS and nothing else.
async fn unauthenticated(
    target: &Target,
) -> Result<(quinn::Connection, quinn::SendStream), String> {
    let conn = raw::connect(target).await?;
    let control = raw::open_control(&conn, &raw::client_settings()).await?;
    Ok((conn, control))
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "6.2-1",
            "§6.2",
            Must,
            "REGISTER answers AUTH_OK, and a taken name USERNAME_TAKEN",
            |t| async move {
                let user = raw::User::new(&t, "taken").await?;
                let (conn, _control) = unauthenticated(&t).await?;
                let again = raw::frame(Register {
                    username: Text::new(user.name.as_str()).map_err(|e| e.to_string())?,
                    password: Text::new(PASSWORD).map_err(|e| e.to_string())?,
                    device_name: Text::default(),
                });
                raw::expect_error(
                    &raw::request_raw(&conn, &again).await?,
                    ErrorCode::USERNAME_TAKEN,
                )
            },
        ),
        Check::new(
            "6.2-2",
            "§6.2",
            Must,
            "usernames fold ASCII case: LOGIN in upper case logs the same account in",
            |t| async move {
                let user = raw::User::new(&t, "fold").await?;
                let (conn, _control) = unauthenticated(&t).await?;
                let answer =
                    raw::request_raw(&conn, &login(&user.name.to_uppercase(), PASSWORD)).await?;
                match answer.first() {
                    Some(Message::AuthOk(ok)) if ok.user == user.auth.user => Ok(()),
                    other => Err(format!("answer {other:?}")),
                }
            },
        ),
        Check::new(
            "6.2-3",
            "§6.2",
            Must,
            "a username with a byte outside a-z 0-9 _ . - is refused INVALID_REQUEST",
            |t| async move {
                let (conn, _control) = unauthenticated(&t).await?;
                let bad = raw::frame(Register {
                    username: Text::new("bad name✓").map_err(|e| e.to_string())?,
                    password: Text::new(PASSWORD).map_err(|e| e.to_string())?,
                    device_name: Text::default(),
                });
                raw::expect_error(&raw::request_raw(&conn, &bad).await?, ErrorCode::INVALID_REQUEST)
            },
        ),
        Check::new("6.2-4", "§6.2", Must, "a wrong password is AUTH_FAILED", |t| async move {
            let user = raw::User::new(&t, "wrong").await?;
            let (conn, _control) = unauthenticated(&t).await?;
            let answer = raw::request_raw(&conn, &login(&user.name, "not the password")).await?;
            raw::expect_error(&answer, ErrorCode::AUTH_FAILED)
        }),
        Check::new(
            "6.2-5",
            "§6.2",
            Must,
            "a forged access token in HELLO closes with AUTH_FAILED",
            |t| async move {
                let conn = raw::connect(&t).await?;
                let _control =
                    raw::open_control(&conn, &raw::settings_and_hello(b"v1.forged")).await?;
                raw::expect_close(&conn, ErrorCode::AUTH_FAILED, raw::WAIT).await
            },
        ),
        Check::new(
            "6.2-6",
            "§6.2",
            Must,
            "REFRESH rotates the refresh token; the spent one, presented after the lost-answer grace, is SESSION_REVOKED and ends the whole login",
            |t| async move {
                let user = raw::User::new(&t, "rotate").await?;
                let (conn, _control) = unauthenticated(&t).await?;
                let rotated = refresh(&conn, &user.auth.refresh_token).await?;
                if rotated[..] == user.auth.refresh_token[..] {
                    return Err("the refresh token did not change".into());
                }
                // Within the grace window the spent token is answered as before (a lost answer);
                // after it, it is a copy. This check needs a grace of at most 15 s.
                let deadline = std::time::Instant::now() + Duration::from_secs(15);
                loop {
                    let answer =
                        raw::request_raw(&conn, &refresh_frame(&user.auth.refresh_token)).await?;
                    match answer.first() {
                        Some(Message::AuthOk(ok)) if ok.refresh_token[..] == rotated[..] => {}
                        _ => {
                            raw::expect_error(&answer, ErrorCode::SESSION_REVOKED)?;
                            break;
                        }
                    }
                    if std::time::Instant::now() > deadline {
                        return Err("the spent token still worked after 15 s (a grace window this long cannot be checked)".into());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                // The login is gone: its newer token no longer works either (AUTH_FAILED: a
                // token of a login session that no longer exists).
                let after = raw::request_raw(&conn, &refresh_frame(&rotated)).await?;
                match raw::error_code(&after) {
                    Some(ErrorCode::AUTH_FAILED | ErrorCode::SESSION_REVOKED) => Ok(()),
                    _ => Err(format!("the newer token after the revocation: {after:?}")),
                }
            },
        ),
        Check::new(
            "6.2-7",
            "§6.2",
            Should,
            "a lost REFRESH answer is forgiven: the latest spent token again, at once, gets the same new refresh token",
            |t| async move {
                let user = raw::User::new(&t, "grace").await?;
                let (conn, _control) = unauthenticated(&t).await?;
                let first = refresh(&conn, &user.auth.refresh_token).await?;
                let again = refresh(&conn, &user.auth.refresh_token).await?;
                if again == first {
                    Ok(())
                } else {
                    Err("another refresh token the second time".into())
                }
            },
        ),
        Check::new(
            "6.2-8",
            "§6.2",
            Must,
            "a forged refresh token is AUTH_FAILED and changes nothing",
            |t| async move {
                let user = raw::User::new(&t, "forged").await?;
                let (conn, _control) = unauthenticated(&t).await?;
                let mut forged = user.auth.refresh_token.to_vec();
                if let Some(last) = forged.last_mut() {
                    *last ^= 0x55;
                }
                raw::expect_error(
                    &raw::request_raw(&conn, &refresh_frame(&forged)).await?,
                    ErrorCode::AUTH_FAILED,
                )?;
                refresh(&conn, &user.auth.refresh_token).await.map(|_| ())
            },
        ),
        Check::new(
            "7.1-1",
            "§7.1",
            Must,
            "an authenticated request before HELLO is answered NOT_AUTHENTICATED, not queued",
            |t| async move {
                let (conn, _control) = unauthenticated(&t).await?;
                raw::expect_error(
                    &raw::request_raw(&conn, &room_list()).await?,
                    ErrorCode::NOT_AUTHENTICATED,
                )
            },
        ),
        Check::new(
            "7.1-2",
            "§7.1",
            Must,
            "a second HELLO closes with PROTOCOL_VIOLATION",
            |t| async move {
                let user = raw::User::new(&t, "twice").await?;
                let conn = raw::connect(&t).await?;
                let greeting = raw::settings_and_hello(&user.auth.access_token);
                let hello = super::settings::skip_first_frame(&greeting)?.to_vec();
                let mut control = raw::open_control(&conn, &greeting).await?;
                let mut theirs = ServerControl::accept(&conn).await?;
                loop {
                    match theirs.next().await? {
                        Some(Message::Welcome(_)) => break,
                        Some(_) => {}
                        None => return Err("the CONTROL stream ended".into()),
                    }
                }
                control.write_all(&hello).await.map_err(|e| e.to_string())?;
                raw::expect_close(&conn, ErrorCode::PROTOCOL_VIOLATION, raw::WAIT).await
            },
        ),
        Check::new(
            "7.1-3",
            "§7.1",
            Should,
            "a connection that never authenticates is closed NOT_AUTHENTICATED (RECOMMENDED 10 s)",
            |t| async move {
                let (conn, _control) = unauthenticated(&t).await?;
                raw::expect_close(&conn, ErrorCode::NOT_AUTHENTICATED, Duration::from_secs(15))
                    .await
            },
        ),
        Check::new(
            "7.1-4",
            "§7.1",
            Must,
            "after WELCOME the session's requests are served",
            |t| async move {
                let (conn, _control, _theirs) = session(&t).await?;
                still_serves(&conn).await
            },
        ),
    ]
}
