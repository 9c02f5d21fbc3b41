//! [`Client`]: a session that outlives connections. It reconnects with exponential backoff and
//! jitter, resumes its session (or, when the server no longer can, starts a fresh one and
//! catches up room by room), refreshes its access token, delivers each room's log entries once
//! and in order, and sends posts through the ordered [`Outbox`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_protocol::bounded::{Blob, Text};
use banter_protocol::ids::{ResumeId, RoomId, SessionId, Timestamp, UserId};
use banter_protocol::message::{
    AuthOk, CatchUp, Delete, Edit, EventAck, History, ListScope, MarkRead, Member, Message, Post,
    PresenceSet, PresenceStatus, React, Refresh, RoomJoin, RoomLeave, RoomSummary, Search,
    SearchCursor, SearchHit, TypingSet, TypingState,
};
use banter_protocol::{ClientAction, ErrorCode};
use tokio::sync::{Notify, mpsc, watch};

use crate::connection::{ConnectError, Connection, Event, Options, RequestError};
use crate::outbox::{Outbox, Pending};
use crate::post_stream::PostStream;

/// What authenticates the client: the tokens from AUTH_OK. Callers persist them (they rotate:
/// watch for [`Update::Credentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account.
    pub user: UserId,
    /// The login session.
    pub session: SessionId,
    /// Bearer token for HELLO / RESUME.
    pub access_token: Vec<u8>,
    /// Its expiry, ms since the epoch.
    pub access_expires: u64,
    /// Single-use token for REFRESH.
    pub refresh_token: Vec<u8>,
}

impl From<AuthOk> for Credentials {
    fn from(ok: AuthOk) -> Self {
        Self {
            user: ok.user,
            session: ok.session,
            access_token: ok.access_token.into_vec(),
            access_expires: ok.access_expires.0,
            refresh_token: ok.refresh_token.into_vec(),
        }
    }
}

/// The connection as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connecting (or reconnecting: `attempt` > 0).
    Connecting {
        /// Failed attempts so far.
        attempt: u32,
    },
    /// The connection was lost or an attempt failed: the next attempt starts after
    /// `retry_in` (backoff with jitter).
    Waiting {
        /// Failed attempts so far, the one just ended included.
        attempt: u32,
        /// When the next attempt starts, from now.
        retry_in: Duration,
    },
    /// Authenticated and live. Soft state known from before is stale (see
    /// [`State::reconnected`](crate::State::reconnected)); what this connection sends afresh
    /// comes after this update.
    Connected,
    /// Stopped for good: the reason (revoked session, bad credentials).
    Stopped(String),
}

/// Something for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The connection state changed.
    Connection(ConnectionState),
    /// A room log entry: each (room, seq) once, in order per room.
    Room(Message),
    /// Soft state (presence, typing, markers, voice state).
    Ephemeral(Message),
    /// The tokens rotated; persist them.
    Credentials(Credentials),
    /// A queued post was acknowledged (durable on the server).
    Sent {
        /// Its client message id.
        client_msg_id: u128,
        /// The ack.
        ack: EventAck,
    },
    /// A queued post was refused for good (the server's error).
    SendFailed {
        /// Its client message id.
        client_msg_id: u128,
        /// Why.
        error: String,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server: one address, or a cluster's nodes (one certificate for all of them). The
    /// first connection goes to one picked at random, so that clients spread over the nodes;
    /// a lost connection is retried on the same node (where its session can resume), and a
    /// connection attempt that fails moves on to the next address.
    pub addrs: Vec<SocketAddr>,
    /// TLS name and trust.
    pub options: Options,
    /// Where the outbox is persisted; `None` keeps it in memory.
    pub outbox: Option<std::path::PathBuf>,
    /// Rooms to catch up from after a fresh session: room → last room_seq seen.
    pub known_rooms: HashMap<RoomId, u64>,
}

/// A reconnecting, resuming client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    credentials: Mutex<Credentials>,
    resume: Mutex<Option<(ResumeId, u64)>>,
    high_water: Mutex<HashMap<RoomId, u64>>,
    live: watch::Sender<Option<Connection>>,
    outbox: Mutex<Outbox>,
    outbox_ready: Notify,
    updates: mpsc::UnboundedSender<Update>,
    /// Set by [`Client::close`], or when the client stops for good: no more connections.
    closed: watch::Sender<bool>,
}

/// The current time as protocol timestamps carry it: ms since the Unix epoch by this
/// machine's clock (the epoch itself if the clock is set before it). banter-protocol is
/// sans-io and never reads the clock; its users do, here.
pub fn wall_clock() -> Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    Timestamp(since_epoch.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

fn random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    // Without system randomness no id (and no TLS) is possible; fall back to the clock.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        return u128::from(wall_clock().0) << 64;
    }
    u128::from_be_bytes(bytes)
}

/// A new client message id: random 128 bits.
pub fn new_client_msg_id() -> u128 {
    random_u128()
}

impl Client {
    /// Connects once (to the first of `addrs` that answers), logs in or registers, and returns
    /// the credentials (then disconnects).
    pub async fn authenticate(
        addrs: &[SocketAddr],
        options: Options,
        username: &str,
        password: &str,
        register: bool,
    ) -> Result<(Credentials, Option<[u8; 32]>), RequestError> {
        let mut failure = RequestError::Connection("no server address".into());
        let mut connected = None;
        for &addr in addrs {
            match Connection::connect(addr, options.clone()).await {
                Ok(conn) => {
                    connected = Some(conn);
                    break;
                }
                // An untrusted certificate is not a node being down: stop there.
                Err(error @ ConnectError::Untrusted(_)) => return Err(error.into()),
                Err(error) => failure = error.into(),
            }
        }
        let (conn, _events) = connected.ok_or(failure)?;
        let ok = if register {
            conn.register(username, password).await
        } else {
            conn.login(username, password).await
        };
        let fingerprint = conn.fingerprint();
        conn.close();
        ok.map(|ok| (Credentials::from(ok), fingerprint))
    }

    /// Starts the client: it connects in the background and keeps reconnecting until
    /// [`Client::stop`] or a permanent failure.
    pub fn start(
        config: ClientConfig,
        credentials: Credentials,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<Update>)> {
        let outbox = match &config.outbox {
            Some(path) => Outbox::open(path)?,
            None => Outbox::in_memory(),
        };
        let (updates, receiver) = mpsc::unbounded_channel();
        let (live, _) = watch::channel(None);
        let high_water = config.known_rooms.clone();
        let inner = Arc::new(Inner {
            config,
            credentials: Mutex::new(credentials),
            resume: Mutex::new(None),
            high_water: Mutex::new(high_water),
            live,
            outbox: Mutex::new(outbox),
            outbox_ready: Notify::new(),
            updates,
            closed: watch::channel(false).0,
        });
        tokio::spawn(supervise(inner.clone()));
        tokio::spawn(flush_outbox(inner.clone()));
        Ok((Self { inner }, receiver))
    }

    /// Waits for a live connection and sends a request on it.
    pub async fn request(&self, request: impl Into<Message>) -> Result<Vec<Message>, RequestError> {
        let conn = self.connection().await?;
        conn.request(request).await
    }

    /// Waits for a live connection; fails once the client has stopped (closed, or stopped for
    /// good by the server).
    pub async fn connection(&self) -> Result<Connection, RequestError> {
        let stopped = || RequestError::Connection("client stopped".into());
        let mut live = self.inner.live.subscribe();
        let mut closed = self.inner.closed.subscribe();
        tokio::select! {
            conn = live.wait_for(Option::is_some) => {
                conn.map_err(|_| stopped())?.clone().ok_or_else(stopped)
            }
            _ = closed.wait_for(|closed| *closed) => Err(stopped()),
        }
    }

    /// Queues a post; it goes out (once, in order) whenever a connection is up. Returns its
    /// client message id; [`Update::Sent`] reports the ack.
    pub fn send(&self, room: RoomId, text: &str, reply_to: Option<u64>) -> std::io::Result<u128> {
        self.enqueue(room, text, reply_to, false)
    }

    /// Queues an anonymous post (spec §6.4.1), like [`Client::send`].
    pub fn send_anonymous(&self, room: RoomId, text: &str) -> std::io::Result<u128> {
        self.enqueue(room, text, None, true)
    }

    fn enqueue(
        &self,
        room: RoomId,
        text: &str,
        reply_to: Option<u64>,
        anonymous: bool,
    ) -> std::io::Result<u128> {
        // Longer than any POST can carry: refused here, not sent as something else.
        if text.len() > banter_protocol::message::max::MESSAGE_TEXT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a message is at most {} bytes",
                    banter_protocol::message::max::MESSAGE_TEXT
                ),
            ));
        }
        let client_msg_id = new_client_msg_id();
        lock(&self.inner.outbox).push(Pending {
            room,
            client_msg_id,
            text: text.to_owned(),
            reply_to,
            anonymous,
        })?;
        self.inner.outbox_ready.notify_one();
        Ok(client_msg_id)
    }

    /// Sends a request whose answer is one frame of the expected kind.
    async fn one<T>(
        &self,
        request: impl Into<Message>,
        pick: impl FnOnce(Message) -> Option<T>,
    ) -> Result<T, RequestError> {
        let conn = self.connection().await?;
        let answer = conn.request_one(request).await?;
        let kind = answer.frame_type();
        pick(answer).ok_or_else(|| RequestError::Protocol(format!("unexpected answer {kind:?}")))
    }

    async fn ack(&self, request: impl Into<Message>) -> Result<EventAck, RequestError> {
        self.one(request, |m| match m {
            Message::EventAck(ack) => Some(ack),
            _ => None,
        })
        .await
    }

    /// The rooms the user is in (every page).
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, RequestError> {
        self.connection().await?.rooms(ListScope::Joined).await
    }

    /// Every member of a room (every page).
    pub async fn members(&self, room: RoomId) -> Result<Vec<Member>, RequestError> {
        self.connection().await?.members(room).await
    }

    /// Joins a room.
    pub async fn join(&self, room: RoomId) -> Result<RoomSummary, RequestError> {
        self.one(RoomJoin { room }, |m| match m {
            Message::RoomInfo(info) => Some(info.room),
            _ => None,
        })
        .await
    }

    /// Leaves a room.
    pub async fn leave(&self, room: RoomId) -> Result<EventAck, RequestError> {
        self.ack(RoomLeave { room }).await
    }

    /// Replaces the text of one's own message.
    pub async fn edit(
        &self,
        room: RoomId,
        target: u64,
        text: &str,
    ) -> Result<EventAck, RequestError> {
        self.ack(Edit { room, target, text: text_field(text)? }).await
    }

    /// Deletes a message (one's own, or as a moderator).
    pub async fn delete(&self, room: RoomId, target: u64) -> Result<EventAck, RequestError> {
        self.ack(Delete { room, target }).await
    }

    /// Adds or removes a reaction.
    pub async fn react(
        &self,
        room: RoomId,
        target: u64,
        emoji: &str,
        on: bool,
    ) -> Result<EventAck, RequestError> {
        self.ack(React { room, target, emoji: text_field(emoji)?, on }).await
    }

    /// One page of a SEARCH ([`Connection::search`]) on the live connection.
    pub async fn search(
        &self,
        request: Search,
    ) -> Result<(Vec<SearchHit>, Option<SearchCursor>), RequestError> {
        self.connection().await?.search(request).await
    }

    /// A page of history before `before` (newest first), and the anchor of the next page.
    pub async fn history(
        &self,
        room: RoomId,
        before: Option<u64>,
        limit: u16,
    ) -> Result<(Vec<Message>, Option<u64>), RequestError> {
        let mut page = self.request(History { room, before, limit }).await?;
        match page.pop() {
            Some(Message::PageEnd(end)) => Ok((page, end.next)),
            _ => Err(RequestError::Protocol("HISTORY answer without PAGE_END".into())),
        }
    }

    /// Moves the read marker; returns the stored value (never lower than before).
    pub async fn mark_read(
        &self,
        room: RoomId,
        seq: u64,
        private: bool,
    ) -> Result<u64, RequestError> {
        self.one(MarkRead { room, seq, private }, |m| match m {
            Message::MarkerOk(ok) => Some(ok.seq),
            _ => None,
        })
        .await
    }

    /// Sets the typing state in a room.
    pub async fn typing(&self, room: RoomId, state: TypingState) -> Result<(), RequestError> {
        self.one(TypingSet { room, state }, |m| matches!(m, Message::Done(_)).then_some(())).await
    }

    /// Sets presence.
    pub async fn set_presence(
        &self,
        status: PresenceStatus,
        text: &str,
    ) -> Result<(), RequestError> {
        self.one(PresenceSet { status, text: text_field(text)? }, |m| {
            matches!(m, Message::Done(_)).then_some(())
        })
        .await
    }

    /// Posts waiting for their ack.
    pub fn pending(&self) -> usize {
        lock(&self.inner.outbox).len()
    }

    /// The current credentials.
    pub fn credentials(&self) -> Credentials {
        lock(&self.inner.credentials).clone()
    }

    /// The highest room_seq delivered per room (to persist for a later catch-up).
    pub fn high_water(&self) -> HashMap<RoomId, u64> {
        lock(&self.inner.high_water).clone()
    }

    /// Ends the client: the live connection closes with NO_ERROR, so the server ends the
    /// session at once (spec §7.6), and no new connection is made. Returns once the close
    /// has gone out (at most a second). Posts still queued stay in the outbox (on disk when
    /// it has a path).
    pub async fn close(&self) {
        self.inner.closed.send_replace(true);
        let live = self.inner.live.send_replace(None);
        if let Some(conn) = live {
            conn.close_and_flush().await;
        }
    }

    /// Drops the current connection (as a network change would); the client reconnects and
    /// resumes. For tests and for "reconnect now".
    pub fn reconnect(&self) {
        if let Some(conn) = self.inner.live.borrow().as_ref() {
            conn.suspend();
        }
    }
}

fn text_field<const N: usize>(text: &str) -> Result<Text<N>, RequestError> {
    Text::new(text).map_err(|e| RequestError::Protocol(e.to_string()))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Backoff before attempt `n`: 100 ms doubling to 1 s, each wait drawn from its upper half
/// (jitter) so that clients dropped together do not return together. The cap is short
/// because a chat user waits on it: with the handshake's own retransmissions (see
/// `quic_config`) a restarted server hears from every client within ~2 s, and a client that
/// finds nothing costs one small packet a second.
pub fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(4)).min(1_000);
    let jitter = (random_u128() % u128::from(base / 2 + 1)) as u64;
    Duration::from_millis(base / 2 + jitter)
}

/// How long one connection attempt may take before it is abandoned and the next node tried
/// (QUIC's own handshake timeout is the idle timeout, far too long to notice a dead node).
/// A live server answers in one round trip; 3 s covers slow paths with a lost packet.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How one connection ended.
enum Ended {
    /// Reconnect (and resume if possible).
    Retry,
    /// The server said it is going away (GO_AWAY): reconnect to the next node.
    Moved,
    /// Start a fresh session next time (resume is gone).
    Fresh,
    /// Stop for good.
    Stop(String),
}

async fn supervise(inner: Arc<Inner>) {
    let mut attempt = 0u32;
    let addrs = &inner.config.addrs;
    let mut current = (random_u128() % addrs.len().max(1) as u128) as usize;
    let mut closed = inner.closed.subscribe();
    loop {
        if *closed.borrow() {
            let _ =
                inner.updates.send(Update::Connection(ConnectionState::Stopped("closed".into())));
            return;
        }
        let _ = inner.updates.send(Update::Connection(ConnectionState::Connecting { attempt }));
        let Some(&addr) = addrs.get(current % addrs.len().max(1)) else {
            inner.closed.send_replace(true);
            let _ = inner
                .updates
                .send(Update::Connection(ConnectionState::Stopped("no server address".into())));
            return;
        };
        let connecting = Connection::connect(addr, inner.config.options.clone());
        let ended = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok((conn, events))) => run_connection(&inner, conn, events, &mut attempt).await,
            failed => {
                let why =
                    failed.map_or_else(|_| "timed out".to_owned(), |r| format!("{:?}", r.err()));
                tracing::debug!(%addr, why, "connect failed; next node");
                Ended::Moved
            }
        };
        inner.live.send_replace(None);
        if *closed.borrow() {
            continue; // closed meanwhile: the loop's top says so
        }
        match ended {
            Ended::Stop(reason) => {
                inner.closed.send_replace(true);
                let _ = inner.updates.send(Update::Connection(ConnectionState::Stopped(reason)));
                return;
            }
            Ended::Fresh => *lock(&inner.resume) = None,
            Ended::Moved => current = current.wrapping_add(1),
            Ended::Retry => {}
        }
        if inner.updates.is_closed() {
            return;
        }
        let retry_in = backoff(attempt);
        attempt = attempt.saturating_add(1);
        let _ =
            inner.updates.send(Update::Connection(ConnectionState::Waiting { attempt, retry_in }));
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {}
            _ = closed.wait_for(|closed| *closed) => {}
        }
    }
}

/// Refreshes the access token if it expires within a minute.
async fn refresh_if_needed(inner: &Inner, conn: &Connection) -> Result<(), Ended> {
    let credentials = lock(&inner.credentials).clone();
    if credentials.access_expires > wall_clock().0 + 60_000 {
        return Ok(());
    }
    let refresh =
        Refresh { refresh_token: Blob::new(credentials.refresh_token).unwrap_or_default() };
    match conn.request_one(refresh).await {
        Ok(Message::AuthOk(ok)) => {
            let fresh = Credentials::from(ok);
            *lock(&inner.credentials) = fresh.clone();
            let _ = inner.updates.send(Update::Credentials(fresh));
            Ok(())
        }
        Ok(_) => Err(Ended::Retry),
        Err(RequestError::Server { code, message, .. })
            if code.action() == ClientAction::GiveUp =>
        {
            Err(Ended::Stop(format!("{code}: {message}")))
        }
        Err(_) => Err(Ended::Retry),
    }
}

async fn run_connection(
    inner: &Arc<Inner>,
    conn: Connection,
    mut events: mpsc::UnboundedReceiver<Event>,
    attempt: &mut u32,
) -> Ended {
    if let Err(ended) = refresh_if_needed(inner, &conn).await {
        return ended;
    }
    let token = lock(&inner.credentials).access_token.clone();
    let resume = *lock(&inner.resume);
    match resume {
        Some((id, last)) => conn.resume(&token, id, last),
        None => conn.hello(&token),
    }
    let mut going_away = false;
    // The highest event_seq handled on this connection: what a later RESUME resumes after
    // (the connection's own count also holds events still queued here, which a close can
    // strand).
    let mut handled = 0;
    // EPHEMERAL frames that come before WELCOME or RESUMED (their stream is not ordered with
    // the control stream) wait for it: the application forgets its soft state when the
    // connection goes live (spec §7.3), and the presence sent afresh must come after that.
    let mut early: Option<Vec<Message>> = Some(Vec::new());
    let mut closed = inner.closed.subscribe();
    loop {
        // Client::close may come at any point, the handshake included: the connection is
        // closed here then, before it can go live.
        let event = tokio::select! {
            event = events.recv() => event,
            _ = closed.wait_for(|closed| *closed) => {
                conn.close();
                return Ended::Retry;
            }
        };
        let Some(event) = event else { return Ended::Retry };
        match event {
            Event::Welcome(welcome) => {
                *lock(&inner.resume) = Some((welcome.resume_id, handled));
                went_live(inner, &conn, early.take());
                // A fresh session: whatever happened while we were away is in the logs. The
                // backoff starts over only once that is read: a catch-up that keeps failing
                // reconnects no faster than the backoff allows.
                let rooms: Vec<(RoomId, u64)> =
                    lock(&inner.high_water).iter().map(|(r, s)| (*r, *s)).collect();
                let mut caught_up = true;
                for (room, after) in rooms {
                    if !fill(inner, &conn, room, after).await {
                        caught_up = false;
                        break;
                    }
                }
                if caught_up {
                    *attempt = 0;
                }
            }
            Event::Resumed(_) => {
                *attempt = 0;
                went_live(inner, &conn, early.take());
            }
            Event::Rejected(error) => {
                return match error.code {
                    ErrorCode::RESUME_UNAVAILABLE => Ended::Fresh,
                    ErrorCode::TOKEN_EXPIRED => {
                        lock(&inner.credentials).access_expires = 0;
                        Ended::Retry
                    }
                    code if code.action() == ClientAction::GiveUp => {
                        Ended::Stop(format!("{code}: {}", error.message))
                    }
                    _ => Ended::Retry,
                };
            }
            Event::Room(message) => {
                handled = handled.max(message.event_seq().unwrap_or(0));
                if let Some((_, last)) = lock(&inner.resume).as_mut() {
                    *last = handled;
                }
                if let Message::LivePaused(paused) = &message {
                    // From what was delivered here, should that be below what the server
                    // thinks it delivered.
                    let high = lock(&inner.high_water).get(&paused.room).copied();
                    let after = high.map_or(paused.delivered_seq, |h| h.min(paused.delivered_seq));
                    fill(inner, &conn, paused.room, after).await;
                    continue;
                }
                deliver(inner, &conn, message).await;
            }
            Event::Ephemeral(message) => match early.as_mut() {
                Some(held) => held.push(message),
                None => {
                    let _ = inner.updates.send(Update::Ephemeral(message));
                }
            },
            Event::GoAway(_) => going_away = true,
            Event::Closed { code, reason } => {
                return match code {
                    Some(code) if code.action() == ClientAction::GiveUp => {
                        Ended::Stop(format!("{code}: {reason}"))
                    }
                    Some(ErrorCode::RESUME_UNAVAILABLE) => Ended::Fresh,
                    _ if going_away => Ended::Moved,
                    _ => Ended::Retry,
                };
            }
        }
    }
}

/// The connection is live: `Connected`, then the soft state that came before it (`held`).
fn went_live(inner: &Inner, conn: &Connection, held: Option<Vec<Message>>) {
    inner.live.send_replace(Some(conn.clone()));
    inner.outbox_ready.notify_one();
    let _ = inner.updates.send(Update::Connection(ConnectionState::Connected));
    for message in held.into_iter().flatten() {
        let _ = inner.updates.send(Update::Ephemeral(message));
    }
}

/// The (room, seq) of a log entry frame.
fn position(message: &Message) -> Option<(RoomId, u64)> {
    message.entry_meta().map(|meta| (meta.room, meta.seq))
}

/// Passes a log entry on once: entries at or below the room's high-water mark are duplicates
/// (spec §7.2); a jump above it is a gap, filled by catch-up first. An entry above a gap
/// that could not be filled is not passed on: the fresh session that follows fetches both.
async fn deliver(inner: &Inner, conn: &Connection, message: Message) {
    let Some((room, seq)) = position(&message) else {
        let _ = inner.updates.send(Update::Room(message));
        return;
    };
    let high = lock(&inner.high_water).get(&room).copied();
    match high {
        Some(high) if seq <= high => return,
        Some(high) if seq > high + 1 && !fill(inner, conn, room, high).await => return,
        _ => {}
    }
    accept(inner, room, seq, message);
}

fn accept(inner: &Inner, room: RoomId, seq: u64, message: Message) {
    let mut high_water = lock(&inner.high_water);
    let high = high_water.entry(room).or_insert(0);
    if seq > *high {
        *high = seq;
        drop(high_water);
        let _ = inner.updates.send(Update::Room(message));
    }
}

/// Catches a room up (see [`catch_up`]); false if that failed. The room then has a hole that
/// only a fresh session can fill: a resumed one would not catch up again (nor unpause a
/// paused room), so the session is forgotten and the connection closed. The next one says
/// HELLO, and its WELCOME catches every room up from its high-water mark.
async fn fill(inner: &Inner, conn: &Connection, room: RoomId, after: u64) -> bool {
    match catch_up(inner, conn, room, after).await {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(?room, %error, "catch-up failed; starting a fresh session");
            *lock(&inner.resume) = None;
            conn.close();
            false
        }
    }
}

/// The longest a catch-up waits for a rate limit before it gives the connection up.
const CATCH_UP_MAX_WAIT: Duration = Duration::from_secs(30);

/// Reads a room's log after `after` until its head and passes the entries on. Rate limits
/// are waited out (a client in many rooms catches them all up at once), unless the
/// connection ends meanwhile. A room the user may no longer read (gone, left, kicked,
/// banned) is forgotten: there is nothing to catch up, now or later.
async fn catch_up(
    inner: &Inner,
    conn: &Connection,
    room: RoomId,
    mut after: u64,
) -> Result<(), RequestError> {
    loop {
        let page = match conn.request(CatchUp { room, after, limit: 100 }).await {
            Ok(page) => page,
            Err(RequestError::Server { code, retry_after_ms, message })
                if code.action() == ClientAction::RetryAfter =>
            {
                let wait = Duration::from_millis(retry_after_ms.unwrap_or(1000));
                if wait > CATCH_UP_MAX_WAIT {
                    return Err(RequestError::Server { code, retry_after_ms, message });
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    _ = conn.quic().closed() => {
                        return Err(RequestError::Connection("closed during a catch-up".into()));
                    }
                }
            }
            Err(RequestError::Server { code, .. })
                if [
                    ErrorCode::NOT_FOUND,
                    ErrorCode::FORBIDDEN,
                    ErrorCode::KICKED,
                    ErrorCode::BANNED,
                ]
                .contains(&code) =>
            {
                lock(&inner.high_water).remove(&room);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let mut next = None;
        for message in page {
            match message {
                Message::PageEnd(end) => next = end.next,
                other => {
                    if let Some((room, seq)) = position(&other) {
                        accept(inner, room, seq, other);
                    }
                }
            }
        }
        match next {
            Some(n) if n > after => after = n,
            _ => return Ok(()),
        }
    }
}

/// Posts the outbox sends on one post stream (spec §3.1.1) when that many wait.
const OUTBOX_BATCH: usize = 16;

/// Sends the outbox's posts in order whenever a connection is live: several at a time on a
/// post stream when the server offers them (what a stream takes is a prefix of it, so order
/// survives refusals and retries), else one at a time.
async fn flush_outbox(inner: Arc<Inner>) {
    loop {
        let batch = lock(&inner.outbox).first(OUTBOX_BATCH);
        if batch.is_empty() {
            inner.outbox_ready.notified().await;
            continue;
        }
        let conn = inner.live.borrow().clone();
        let Some(conn) = conn else {
            inner.outbox_ready.notified().await;
            continue;
        };
        let stream = match batch.len() {
            1 => Ok(None),
            _ => conn.post_stream().await,
        };
        let next = match stream {
            Ok(Some(stream)) => send_on_stream(&inner, &conn, stream, &batch).await,
            Ok(None) => send_one(&inner, &conn, &batch[0]).await,
            Err(_) => Next::Reconnect,
        };
        match next {
            Next::Go => {}
            Next::After(wait) => tokio::time::sleep(wait).await,
            // The connection failed (or the server did): same ids again after reconnecting.
            Next::Reconnect => {
                let mut live = inner.live.subscribe();
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    live.wait_for(|c| {
                        c.as_ref().is_some_and(|c| c.quic().stable_id() != conn.quic().stable_id())
                    }),
                )
                .await;
            }
        }
        if inner.updates.is_closed() {
            return;
        }
    }
}

/// What the outbox does after a post's answer.
enum Next {
    /// On with the outbox's front (the post was acked or refused for good, or is to be sent
    /// again at once).
    Go,
    /// Wait, then send the front again (RATE_LIMITED).
    After(Duration),
    /// Wait for a new connection, then send the front again.
    Reconnect,
}

fn post_of(pending: &Pending) -> Post {
    Post {
        room: pending.room,
        client_msg_id: pending.client_msg_id,
        // Checked when queued; an outbox file edited by hand gets an empty text, which the
        // server refuses.
        text: Text::new(pending.text.as_str()).unwrap_or_default(),
        reply_to: pending.reply_to,
        anonymous: pending.anonymous,
    }
}

async fn send_one(inner: &Inner, conn: &Connection, pending: &Pending) -> Next {
    let answer = match conn.request_one(post_of(pending)).await {
        Ok(Message::EventAck(ack)) => Ok(ack),
        Ok(other) => {
            Err(RequestError::Protocol(format!("{:?} answered a POST", other.frame_type())))
        }
        Err(error) => Err(error),
    };
    match judge(conn, answer) {
        Verdict::Keep(next) => next,
        verdict => {
            settle(inner, vec![(pending, verdict)]);
            Next::Go
        }
    }
}

/// Sends `batch` on one post stream and settles the answers in order, up to the first that
/// is not an ack (the server took none after it).
async fn send_on_stream(
    inner: &Inner,
    conn: &Connection,
    mut stream: PostStream,
    batch: &[Pending],
) -> Next {
    let mut sent = 0;
    for pending in batch {
        if stream.send(post_of(pending)).await.is_err() {
            break;
        }
        sent += 1;
    }
    stream.finish();
    let mut settled = Vec::new();
    let mut next = if sent == 0 { Next::Reconnect } else { Next::Go };
    for pending in &batch[..sent] {
        match judge(conn, stream.answer().await) {
            verdict @ Verdict::Sent(_) => settled.push((pending, verdict)),
            verdict @ Verdict::Refused(_) => {
                settled.push((pending, verdict));
                break;
            }
            Verdict::Keep(keep) => {
                next = keep;
                break;
            }
        }
    }
    settle(inner, settled);
    next
}

/// What a post's answer means for the outbox.
enum Verdict {
    /// Acked: out of the outbox.
    Sent(EventAck),
    /// Refused for good (the request must change): out of the outbox, with why.
    Refused(String),
    /// Not taken: it stays at the front, sent again after `Next`.
    Keep(Next),
}

fn judge(conn: &Connection, answer: Result<EventAck, RequestError>) -> Verdict {
    match answer {
        Ok(ack) => Verdict::Sent(ack),
        Err(RequestError::Server { code, retry_after_ms, .. })
            if code.action() == ClientAction::RetryAfter =>
        {
            Verdict::Keep(Next::After(Duration::from_millis(retry_after_ms.unwrap_or(1000))))
        }
        // Not taken because an earlier post of its stream was not (or the server gave up
        // waiting for it): again, after a moment.
        Err(RequestError::Server { code, .. }) if code == ErrorCode::REQUEST_CANCELLED => {
            Verdict::Keep(Next::After(Duration::from_millis(20)))
        }
        Err(RequestError::Server { code, message, .. })
            if code.action() == ClientAction::FixRequest =>
        {
            Verdict::Refused(crate::connection::describe_refusal(code, &message))
        }
        // The stream ended without an answer while the connection lives on: a new stream.
        Err(RequestError::Connection(_)) if conn.quic().close_reason().is_none() => {
            Verdict::Keep(Next::After(Duration::from_millis(100)))
        }
        _ => Verdict::Keep(Next::Reconnect),
    }
}

/// Takes settled posts out of the outbox (one rewrite of a persisted outbox), then says what
/// became of each, in order.
fn settle(inner: &Inner, settled: Vec<(&Pending, Verdict)>) {
    if settled.is_empty() {
        return;
    }
    let ids: Vec<u128> = settled.iter().map(|(pending, _)| pending.client_msg_id).collect();
    let _ = lock(&inner.outbox).remove_all(&ids);
    for (pending, verdict) in settled {
        let client_msg_id = pending.client_msg_id;
        let update = match verdict {
            Verdict::Sent(ack) => Update::Sent { client_msg_id, ack },
            Verdict::Refused(error) => Update::SendFailed { client_msg_id, error },
            Verdict::Keep(_) => continue,
        };
        let _ = inner.updates.send(update);
    }
}
