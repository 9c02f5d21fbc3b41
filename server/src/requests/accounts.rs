//! REGISTER, LOGIN, KEY_LOGIN, REFRESH, LOGOUT, SESSION_LIST, SESSION_REVOKE, KEY_ADD,
//! KEY_LIST, KEY_REMOVE, and the token check behind HELLO / RESUME (spec §6.2).

use std::time::Instant;

use banter_protocol::ErrorCode;
use banter_protocol::bounded::{Blob, List};
use banter_protocol::ids::{SessionId, Timestamp, UserId};
use banter_protocol::message::{
    self, AuthOk, Done, KeyAdd, KeyChallenge, KeyInfo, KeyListPage, KeyLogin, KeyProof, KeyRemove,
    Login, Message, Refresh, Register, SessionInfo, SessionListPage, SessionRevoke,
    key_add_signed_bytes, key_login_signed_bytes,
};
use ed25519_dalek::{Signature, VerifyingKey};

use super::{ConnCtx, RequestError, RequestIo, Result, check_text, text};
use crate::auth::{RefreshToken, TokenError, Verified, same_secret};
use crate::ratelimit::address_key;
use crate::store::records::{LoginKeyRecord, SessionRecord, UserRecord};
use crate::store::{Store, StoreError, Txn, keys};
use crate::{Shared, wall_clock};

fn auth_failed() -> RequestError {
    // One answer for every failure, so that it reveals nothing (spec §12.4).
    RequestError::new(ErrorCode::AUTH_FAILED, "invalid username or password")
}

fn rate_auth(ctx: &ConnCtx) -> Result<()> {
    ctx.rate("auth")?;
    let address = address_key(ctx.remote.ip());
    ctx.shared.auth_limiter.check(address, Instant::now()).map_err(|retry| RequestError {
        code: ErrorCode::RATE_LIMITED,
        message: "too many authentication attempts from this address".into(),
        retry_after_ms: Some(retry),
    })
}

/// Password and key logins also draw from the username's bucket, so that guessing one
/// account's password from many addresses (or through many nodes of a cluster, which hear
/// of each other's attempts on the bus) is as slow as from one (spec §12.4). The answer is
/// the same whether the account exists.
fn rate_auth_user(ctx: &ConnCtx, username: &str) -> Result<()> {
    let name = username.to_ascii_lowercase();
    ctx.shared.auth_user_limiter.check(name.clone(), Instant::now()).map_err(|retry| {
        RequestError {
            code: ErrorCode::RATE_LIMITED,
            message: "too many authentication attempts for this account".into(),
            retry_after_ms: Some(retry),
        }
    })?;
    ctx.shared.bus.auth_attempt(&name);
    Ok(())
}

/// Usernames: 1–32 bytes of `a-z 0-9 _ . -`, folded to lower case.
pub(crate) fn normalize_username(name: &str) -> Result<String> {
    let name = name.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if !valid {
        return Err(RequestError::new(
            ErrorCode::INVALID_REQUEST,
            "usernames are 1-32 of a-z 0-9 _ . -",
        ));
    }
    Ok(name)
}

/// Creates a login session in `txn`; returns its id and first refresh token.
/// What a login was proven with, checked again inside its write: a password reset, a
/// disabled account or a removed key that commits first wins over a login verified before it.
enum Proven {
    /// The password that matched this stored hash.
    Password(String),
    /// This login key.
    Key([u8; 32]),
}

/// The user's record, if `proven` still holds for it now (inside the write).
fn still_proven(txn: &Txn<'_>, user: UserId, proven: &Proven) -> Result<UserRecord> {
    let record: UserRecord = txn.get(&keys::user(user))?.ok_or_else(auth_failed)?;
    let holds = !record.disabled
        && match proven {
            Proven::Password(hash) => record.password_hash == *hash,
            Proven::Key(public_key) => txn.contains(&keys::login_key(user, public_key))?,
        };
    if holds { Ok(record) } else { Err(auth_failed()) }
}

fn new_login(
    txn: &mut Txn<'_>,
    shared: &Shared,
    user: UserId,
    device_name: &str,
) -> Result<(SessionId, RefreshToken)> {
    let session = SessionId(txn.next_id("session")?);
    let now = wall_clock().0;
    let refresh = shared.tokens.refresh_token(session, now, 1);
    txn.put(
        keys::session(session),
        &SessionRecord {
            user: user.0,
            device_name: device_name.to_owned(),
            created: now,
            last_seen: now,
            refresh_generation: 1,
            refresh_hash: refresh.hash(),
            expires: now + shared.config.refresh_token_ttl_s * 1000,
        },
    );
    txn.put(keys::user_session(user, session), &());
    Ok((session, refresh))
}

fn auth_ok(
    shared: &Shared,
    user: UserId,
    session: SessionId,
    refresh: &RefreshToken,
) -> Vec<Message> {
    let (access, expires) =
        shared.tokens.issue(user, session, wall_clock().0, shared.config.access_token_ttl_s * 1000);
    vec![
        AuthOk {
            user,
            session,
            access_token: Blob::new(access).expect("access tokens are 105 bytes"),
            access_expires: Timestamp(expires),
            refresh_token: Blob::new(refresh.to_bytes()).expect("refresh tokens are 45 bytes"),
        }
        .into(),
    ]
}

/// Passwords are at least 8 bytes (OWASP ASVS 2.1.1 asks for 12 only with no other limits).
pub(crate) fn check_password(password: &str) -> Result<()> {
    if password.len() < 8 {
        return Err(RequestError::new(
            ErrorCode::INVALID_REQUEST,
            "passwords are at least 8 bytes",
        ));
    }
    Ok(())
}

/// Creates an account in `txn` with a normalized username and a password hash. The first
/// account owns the server (spec §6.7), whatever `role` asks.
pub(crate) fn create_user(
    txn: &mut Txn<'_>,
    username: &str,
    password_hash: String,
    role: message::Role,
) -> Result<UserId> {
    if txn.contains(&keys::username(username))? {
        return Err(RequestError::new(ErrorCode::USERNAME_TAKEN, "username taken"));
    }
    let user = UserId(txn.next_id("user")?);
    let role = if user.0 == 1 { message::Role::OWNER } else { role };
    txn.put(
        keys::user(user),
        &UserRecord {
            username: username.to_owned(),
            password_hash,
            created: wall_clock().0,
            disabled: false,
            role: role.0,
        },
    );
    txn.put(keys::username(username), &user.0);
    Ok(user)
}

/// Ends everything that gives access to `user`'s account but the password: every login
/// session (returned, so that their connections can be closed once the commit is durable) and
/// every login key. For a password reset and a disabled account.
pub(crate) fn end_all_access(txn: &mut Txn<'_>, user: UserId) -> Result<Vec<SessionId>> {
    let prefix = keys::login_keys(user);
    for key in txn.keys_in(&prefix, &keys::prefix_end(&prefix))? {
        txn.delete(key);
    }
    end_all_logins(txn, user)
}

/// Deletes every login session of `user` in `txn`; returns them, so that their connections
/// can be closed once the commit is durable.
pub(crate) fn end_all_logins(txn: &mut Txn<'_>, user: UserId) -> Result<Vec<SessionId>> {
    let prefix = keys::ids(keys::tag::USER_SESSION, &[user.0]);
    let mut ended = Vec::new();
    for key in txn.keys_in(&prefix, &keys::prefix_end(&prefix))? {
        let session = SessionId(keys::id_at(&key, 9));
        txn.delete(keys::session(session));
        txn.delete(key);
        ended.push(session);
    }
    Ok(ended)
}

pub(super) async fn register(ctx: &ConnCtx, r: Register) -> Result<Vec<Message>> {
    rate_auth(ctx)?;
    let username = normalize_username(&r.username)?;
    check_text("device name", &r.device_name, false)?;
    check_password(&r.password)?;
    let hash = ctx.shared.passwords.hash(r.password.into_string()).await.map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        RequestError::from(ErrorCode::INTERNAL)
    })?;
    let shared = ctx.shared.clone();
    let device = r.device_name.into_string();
    let (user, session, refresh) = ctx
        .shared
        .store
        .write(
            move |txn| {
                let user = create_user(txn, &username, hash, message::Role::MEMBER)?;
                let (session, refresh) = new_login(txn, &shared, user, &device)?;
                Ok((user, session, refresh))
            },
            |v| v,
        )
        .await?;
    Ok(auth_ok(&ctx.shared, user, session, &refresh))
}

/// The account named `username` (in any case), if there is one.
pub(crate) fn user_id(store: &Store, username: &str) -> Result<Option<UserId>, StoreError> {
    let Ok(name) = normalize_username(username) else { return Ok(None) };
    Ok(store.get::<u64>(&keys::username(&name))?.map(UserId))
}

fn find_user(ctx: &ConnCtx, username: &str) -> Result<Option<(UserId, UserRecord)>> {
    let Some(user) = user_id(&ctx.shared.store, username)? else { return Ok(None) };
    Ok(ctx.shared.store.get::<UserRecord>(&keys::user(user))?.map(|record| (user, record)))
}

pub(super) async fn login(ctx: &ConnCtx, r: Login) -> Result<Vec<Message>> {
    rate_auth(ctx)?;
    rate_auth_user(ctx, &r.username)?;
    check_text("device name", &r.device_name, false)?;
    let found = find_user(ctx, &r.username)?.filter(|(_, record)| !record.disabled);
    let stored = found.as_ref().map(|(_, record)| record.password_hash.clone());
    let verified = ctx.shared.passwords.verify(r.password.into_string(), stored).await;
    let (user, rehash, proven) = match (found, verified) {
        (Some((user, record)), Verified::Yes) => (user, None, record.password_hash),
        (Some((user, record)), Verified::YesRehash(hash)) => {
            (user, Some(hash), record.password_hash)
        }
        _ => return Err(auth_failed()),
    };
    let shared = ctx.shared.clone();
    let device = r.device_name.into_string();
    let (session, refresh) = ctx
        .shared
        .store
        .write(
            move |txn| {
                let mut record = still_proven(txn, user, &Proven::Password(proven))?;
                if let Some(hash) = rehash {
                    record.password_hash = hash;
                    txn.put(keys::user(user), &record);
                }
                new_login(txn, &shared, user, &device)
            },
            |v| v,
        )
        .await?;
    Ok(auth_ok(&ctx.shared, user, session, &refresh))
}

pub(super) async fn key_login(
    ctx: &ConnCtx,
    r: KeyLogin,
    io: &mut RequestIo<'_>,
) -> Result<Vec<Message>> {
    rate_auth(ctx)?;
    rate_auth_user(ctx, &r.username)?;
    check_text("device name", &r.device_name, false)?;
    // Always challenge, so the answer does not reveal which accounts have keys.
    let (nonce, proof) = challenge(io).await?;
    let found = find_user(ctx, &r.username)?.filter(|(user, record)| {
        !record.disabled
            && ctx.shared.store.contains(&keys::login_key(*user, &r.public_key)).unwrap_or(false)
    });
    let Some((user, record)) = found else { return Err(auth_failed()) };
    verify_proof(&r.public_key, &key_login_signed_bytes(&nonce, &record.username), &proof)?;
    let (shared, public_key) = (ctx.shared.clone(), r.public_key);
    let device = r.device_name.into_string();
    let (session, refresh) = ctx
        .shared
        .store
        .write(
            move |txn| {
                still_proven(txn, user, &Proven::Key(public_key))?;
                new_login(txn, &shared, user, &device)
            },
            |v| v,
        )
        .await?;
    Ok(auth_ok(&ctx.shared, user, session, &refresh))
}

/// What REFRESH decided inside the writer.
enum Refreshed {
    /// The current token was presented: here are the next ones. Also the answer to the
    /// previous generation within the grace window (its answer was lost): the same tokens.
    Rotated(UserId, SessionId, RefreshToken),
    /// A genuine token of an earlier generation came back: it was copied.
    Reused(SessionId),
}

/// REFRESH (spec §6.2). Nothing happens to a login session unless the token's secret is
/// proven: a token that is not genuine, for a session that may or may not exist, gets
/// AUTH_FAILED and changes nothing, so forging tokens can neither end logins nor tell live
/// sessions from dead ones.
pub(super) async fn refresh(ctx: &ConnCtx, r: Refresh) -> Result<Vec<Message>> {
    rate_auth(ctx)?;
    let token = RefreshToken::parse(&r.refresh_token).ok_or_else(auth_failed)?;
    let shared = ctx.shared.clone();
    let grace_ms = ctx.shared.config.refresh_grace_s.saturating_mul(1000);
    let outcome = ctx
        .shared
        .store
        .write(
            move |txn| {
                let key = keys::session(token.session);
                let Some(mut record) = txn.get::<SessionRecord>(&key)? else {
                    return Err(auth_failed());
                };
                let user = UserId(record.user);
                // Derived by the current key or one it replaced.
                let genuine = |generation: u32| {
                    let derived =
                        shared.tokens.refresh_tokens(token.session, record.created, generation);
                    derived.iter().any(|d| same_secret(&d.secret, &token.secret))
                };
                let current = record.refresh_generation;
                let proven = if token.generation == current {
                    // The current secret is checked against its stored hash, which also
                    // covers tokens issued before secrets were derived.
                    same_secret(&token.hash(), &record.refresh_hash)
                } else {
                    token.generation != 0 && token.generation < current && genuine(token.generation)
                };
                if !proven {
                    return Err(auth_failed());
                }
                let now = wall_clock().0;
                if record.expires <= now {
                    txn.delete(key);
                    txn.delete(keys::user_session(user, token.session));
                    return Err(RequestError::new(ErrorCode::SESSION_REVOKED, "session expired"));
                }
                if token.generation < current {
                    // `last_seen` is when the current generation was issued.
                    let lost_answer = token.generation + 1 == current
                        && now.saturating_sub(record.last_seen) <= grace_ms;
                    if lost_answer {
                        // The same token again, by whichever key derived it.
                        let derived =
                            shared.tokens.refresh_tokens(token.session, record.created, current);
                        let again = derived
                            .into_iter()
                            .find(|d| same_secret(&d.hash(), &record.refresh_hash))
                            .ok_or_else(auth_failed)?;
                        return Ok(Refreshed::Rotated(user, token.session, again));
                    }
                    txn.delete(key);
                    txn.delete(keys::user_session(user, token.session));
                    return Ok(Refreshed::Reused(token.session));
                }
                let next = shared.tokens.refresh_token(token.session, record.created, current + 1);
                record.refresh_generation = next.generation;
                record.refresh_hash = next.hash();
                record.last_seen = now;
                txn.put(key, &record);
                Ok(Refreshed::Rotated(user, token.session, next))
            },
            |v| v,
        )
        .await?;
    match outcome {
        Refreshed::Rotated(user, session, next) => Ok(auth_ok(&ctx.shared, user, session, &next)),
        Refreshed::Reused(session) => {
            tracing::warn!(session = session.0, "refresh token reused; login session revoked");
            ctx.shared.logins_ended(&[session], "refresh token reused");
            Err(RequestError::new(
                ErrorCode::SESSION_REVOKED,
                "refresh token reused; session revoked",
            ))
        }
    }
}

/// Deletes a login session durably, then closes its connections. DONE is written first, so
/// that when it is the asking connection's own session the answer arrives before the close.
async fn end_login(
    ctx: &ConnCtx,
    io: &mut RequestIo<'_>,
    user: UserId,
    session: SessionId,
    reason: &'static str,
) -> Result<Vec<Message>> {
    ctx.shared
        .store
        .write(
            move |txn| {
                match txn.get::<SessionRecord>(&keys::session(session))? {
                    Some(record) if record.user == user.0 => {}
                    _ => return Err(RequestError::from(ErrorCode::NOT_FOUND)),
                }
                txn.delete(keys::session(session));
                txn.delete(keys::user_session(user, session));
                Ok(())
            },
            |()| (),
        )
        .await?;
    io.send(&Done {}).await?;
    io.finish().await;
    ctx.shared.logins_ended(&[session], reason);
    Ok(Vec::new())
}

pub(super) async fn logout(ctx: &ConnCtx, io: &mut RequestIo<'_>) -> Result<Vec<Message>> {
    let authed = ctx.authed()?;
    end_login(ctx, io, authed.user, authed.login, "logged out").await
}

pub(super) fn session_list(ctx: &ConnCtx) -> Result<Vec<Message>> {
    let authed = ctx.authed()?;
    let prefix = keys::ids(keys::tag::USER_SESSION, &[authed.user.0]);
    let mut sessions = Vec::new();
    for key in ctx.shared.store.keys_with_prefix(&prefix, List::<SessionInfo, 256>::MAX)? {
        let session = SessionId(keys::id_at(&key, 9));
        if let Some(record) = ctx.shared.store.get::<SessionRecord>(&keys::session(session))? {
            sessions.push(SessionInfo {
                session,
                device_name: text(&record.device_name),
                created: Timestamp(record.created),
                last_seen: Timestamp(record.last_seen),
                current: session == authed.login,
            });
        }
    }
    sessions.reverse();
    Ok(vec![
        SessionListPage { sessions: List::new(sessions).expect("bounded by the scan limit") }
            .into(),
    ])
}

pub(super) async fn session_revoke(
    ctx: &ConnCtx,
    r: SessionRevoke,
    io: &mut RequestIo<'_>,
) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    end_login(ctx, io, user, r.session, "session revoked").await
}

/// Sends KEY_CHALLENGE with a fresh nonce on the request's stream and waits (30 s at most)
/// for the KEY_PROOF that answers it.
async fn challenge(io: &mut RequestIo<'_>) -> Result<([u8; 32], KeyProof)> {
    let mut nonce = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| RequestError::from(ErrorCode::INTERNAL))?;
    io.send(&KeyChallenge { nonce }).await?;
    match tokio::time::timeout(std::time::Duration::from_secs(30), io.next()).await {
        Ok(Ok(Message::KeyProof(proof))) => Ok((nonce, proof)),
        Ok(Ok(_)) => Err(ErrorCode::PROTOCOL_VIOLATION.into()),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(auth_failed()),
    }
}

/// Checks that `proof` is `public_key`'s signature of `signed` (AUTH_FAILED otherwise).
fn verify_proof(public_key: &[u8; 32], signed: &[u8], proof: &KeyProof) -> Result<()> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| auth_failed())?;
    key.verify_strict(signed, &Signature::from_bytes(&proof.signature.0)).map_err(|_| auth_failed())
}

/// KEY_ADD: only with proof that the caller holds the private key, so nobody registers
/// someone else's public key; at most `max_keys_per_user` keys.
pub(super) async fn key_add(
    ctx: &ConnCtx,
    r: KeyAdd,
    io: &mut RequestIo<'_>,
) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("keys")?;
    VerifyingKey::from_bytes(&r.public_key)
        .map_err(|_| RequestError::new(ErrorCode::INVALID_REQUEST, "not an ed25519 public key"))?;
    let username = ctx
        .shared
        .store
        .get::<UserRecord>(&keys::user(user))?
        .ok_or(ErrorCode::NOT_FOUND)?
        .username;
    let (nonce, proof) = challenge(io).await?;
    verify_proof(&r.public_key, &key_add_signed_bytes(&nonce, &username), &proof)?;
    let max_keys = ctx.shared.config.max_keys_per_user.min(message::max::KEYS as u32) as usize;
    let login = ctx.authed()?.login;
    ctx.shared
        .store
        .write(
            move |txn| {
                // A password reset or revocation that commits first ends this login: no key
                // may outlive it.
                let enabled =
                    txn.get::<UserRecord>(&keys::user(user))?.is_some_and(|u| !u.disabled);
                if !enabled || !txn.contains(&keys::session(login))? {
                    return Err(RequestError::from(ErrorCode::SESSION_REVOKED));
                }
                let key = keys::login_key(user, &r.public_key);
                if txn.contains(&key)? {
                    return Err(RequestError::new(ErrorCode::CONFLICT, "key already registered"));
                }
                let prefix = keys::login_keys(user);
                if txn.keys_in(&prefix, &keys::prefix_end(&prefix))?.len() >= max_keys {
                    return Err(RequestError::new(ErrorCode::LIMIT_EXCEEDED, "too many keys"));
                }
                txn.put(key, &LoginKeyRecord { added: wall_clock().0 });
                Ok(())
            },
            |v| v,
        )
        .await?;
    Ok(vec![Done {}.into()])
}

pub(super) fn key_list(ctx: &ConnCtx) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    let prefix = keys::login_keys(user);
    let found = ctx.shared.store.range::<LoginKeyRecord>(
        &prefix,
        &keys::prefix_end(&prefix),
        false,
        message::max::KEYS,
    )?;
    let mut listed: Vec<KeyInfo> = found
        .into_iter()
        .filter_map(|(key, record)| {
            let public_key = key.get(prefix.len()..)?.try_into().ok()?;
            Some(KeyInfo { public_key, added: Timestamp(record.added) })
        })
        .collect();
    listed.sort_by_key(|key| key.added);
    Ok(vec![KeyListPage { keys: List::new(listed).expect("at most max::KEYS") }.into()])
}

pub(super) async fn key_remove(ctx: &ConnCtx, r: KeyRemove) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("keys")?;
    ctx.shared
        .store
        .write(
            move |txn| {
                let key = keys::login_key(user, &r.public_key);
                if !txn.contains(&key)? {
                    return Err(RequestError::new(ErrorCode::NOT_FOUND, "no such key"));
                }
                txn.delete(key);
                Ok(())
            },
            |v| v,
        )
        .await?;
    Ok(vec![Done {}.into()])
}

/// Checks the access token of a HELLO or RESUME: signature, expiry, and that the login
/// session still exists. Returns the user and login session.
pub(crate) fn authenticate(
    shared: &Shared,
    token: &[u8],
) -> Result<(UserId, SessionId), ErrorCode> {
    let claims = shared.tokens.verify(token, wall_clock().0).map_err(|e| match e {
        TokenError::Expired => ErrorCode::TOKEN_EXPIRED,
        TokenError::Invalid => ErrorCode::AUTH_FAILED,
    })?;
    let alive = shared
        .store
        .get::<SessionRecord>(&keys::session(claims.session))
        .map_err(|_| ErrorCode::INTERNAL)?
        .is_some_and(|record| record.user == claims.user.0);
    let enabled = shared
        .store
        .get::<UserRecord>(&keys::user(claims.user))
        .map_err(|_| ErrorCode::INTERNAL)?
        .is_some_and(|record| !record.disabled);
    if !alive {
        return Err(ErrorCode::SESSION_REVOKED);
    }
    if !enabled {
        return Err(ErrorCode::AUTH_FAILED);
    }
    Ok((claims.user, claims.session))
}
