//! Request handlers: one function per request type, dispatched on the frame type of a request
//! stream's first frame (spec §3.1). Each returns its answer frames or a [`RequestError`],
//! which becomes an ERROR frame; no handler writes to a stream itself, except KEY_LOGIN's
//! challenge round trip through [`RequestIo`].

mod accounts;
mod contacts;
mod events;
mod files;
mod invites;
mod moderation;
mod post_stream;
mod rooms;
mod search;
mod soft;
mod voice;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use banter_protocol::bounded::Text;
use banter_protocol::ids::{ResumeId, RoomId, SessionId, UserId};
use banter_protocol::message::{self, Frame, Message, Resumed, Role, Welcome};
use banter_protocol::session::{AuthRequest, ServerConnection};
use banter_protocol::{ErrorCode, FrameDecoder, FrameType};
use futures_util::FutureExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use crate::authz::{self, Action, Standing};
use crate::hub::{Session, Wakers};
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::store::records::{BanRecord, MemberRecord, RoomRecord, RoomSettings, UserRecord};
use crate::store::{Prefetched, Records, Store, StoreError, WriteError, keys};
use crate::{Shared, wall_clock};

pub(crate) use accounts::{
    authenticate, check_password, create_user, end_all_access, normalize_username, user_id,
};
pub(crate) use events::{Appended, membership_change, publish};
pub(crate) use moderation::{CONSOLE, audit, role_reason};
pub(crate) use rooms::{check_room_fields, new_channel};

/// A request failed; the client gets ERROR with this code.
#[derive(Debug)]
pub(crate) struct RequestError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) retry_after_ms: Option<u64>,
}

impl RequestError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_ms: None }
    }

    pub(crate) fn to_frame(&self) -> message::Error {
        let mut error = message::Error::new(self.code, &self.message);
        error.retry_after_ms = self.retry_after_ms;
        error
    }
}

impl From<StoreError> for RequestError {
    fn from(error: StoreError) -> Self {
        Self::from(&error)
    }
}

impl From<&StoreError> for RequestError {
    /// A conflict with another node's write, or the shared database away for a moment, is
    /// the client's to retry (nothing was applied, or a retried post is deduplicated);
    /// anything else is the server's failure.
    fn from(error: &StoreError) -> Self {
        match error {
            StoreError::Conflict => Self {
                code: ErrorCode::SERVER_BUSY,
                message: "a concurrent write got in the way: retry".into(),
                retry_after_ms: Some(50),
            },
            // Logged once by the check itself, not per request.
            StoreError::DiskFull { .. } => Self {
                code: ErrorCode::SERVER_BUSY,
                message: "the server's disk is full: retry later".into(),
                retry_after_ms: Some(5000),
            },
            StoreError::Unavailable(why) => {
                tracing::warn!(%why, "the database is unavailable");
                Self {
                    code: ErrorCode::SERVER_BUSY,
                    message: "the database is unavailable: retry".into(),
                    retry_after_ms: Some(1000),
                }
            }
            error => {
                tracing::error!(%error, "storage error during a request");
                Self::new(ErrorCode::INTERNAL, "storage error")
            }
        }
    }
}

impl From<WriteError<Self>> for RequestError {
    fn from(error: WriteError<Self>) -> Self {
        match error {
            WriteError::Rejected(error) => error,
            WriteError::Store(error) => Self::from(&*error),
        }
    }
}

impl From<ErrorCode> for RequestError {
    fn from(code: ErrorCode) -> Self {
        let message = code.name().unwrap_or("error").to_lowercase().replace('_', " ");
        Self::new(code, message)
    }
}

pub(crate) type Result<T, E = RequestError> = std::result::Result<T, E>;

/// An authenticated connection's identity.
#[derive(Debug)]
pub(crate) struct Authed {
    pub(crate) user: UserId,
    pub(crate) login: SessionId,
    pub(crate) session: Arc<Session>,
}

/// What request handlers know about their connection.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) protocol: Arc<Mutex<ServerConnection>>,
    pub(crate) authed: OnceLock<Authed>,
    pub(crate) remote: SocketAddr,
    pub(crate) limiter: Limiter,
    pub(crate) conn_id: usize,
    /// How voice reaches this connection (datagrams or the tunnel).
    pub(crate) voice: Arc<crate::voice::VoiceLink>,
}

impl ConnCtx {
    /// The connection is gone: out of voice (others are told), no longer reachable for
    /// closes, and its session detached: resumable, or (`finished`: the client closed with
    /// NO_ERROR, spec §7.6) ended at once, so nothing is buffered for a client that is done.
    pub(crate) fn end(&self, finished: bool) {
        // First: a VOICE_JOIN still running can no longer put the connection back in voice.
        self.voice.end();
        if let Some((_, notices)) = self.shared.voice.leave(self.conn_id) {
            crate::announce_voice(&self.shared, notices);
        }
        if let Some(authed) = self.authed.get() {
            self.shared.detach(&authed.session, self.conn_id, finished);
            self.shared.hub.unregister_connection(authed.login, self.conn_id);
        }
    }

    /// The authenticated identity; requests that need it are only admitted after HELLO.
    pub(crate) fn authed(&self) -> Result<&Authed> {
        self.authed.get().ok_or_else(|| ErrorCode::NOT_AUTHENTICATED.into())
    }

    /// Takes a token of `class`: from the account's buckets once authenticated (so a user's
    /// devices share one budget), from the connection's before that.
    pub(crate) fn rate(&self, class: &str) -> Result<()> {
        let now = Instant::now();
        let checked = match self.authed.get() {
            Some(authed) => self.shared.account_limits.check(authed.user, class, now),
            None => self.limiter.check(class, now),
        };
        checked.map_err(|retry| RequestError {
            code: ErrorCode::RATE_LIMITED,
            message: format!("too many {class} requests"),
            retry_after_ms: Some(retry),
        })
    }

    /// The caller's standing in a room, and the room.
    pub(crate) fn standing(&self, room: RoomId) -> Result<(RoomRecord, Standing)> {
        standing_in(&self.shared.store, room, self.authed()?.user)
    }

    /// A user by name (NOT_FOUND when there is none).
    pub(crate) fn user_named(&self, name: &str) -> Result<UserId> {
        user_id(&self.shared.store, name)?
            .ok_or_else(|| RequestError::new(ErrorCode::NOT_FOUND, "no such user"))
    }

    /// A room's moderation settings.
    pub(crate) fn room_settings(&self, room: RoomId) -> Result<RoomSettings> {
        Ok(self.shared.store.get(&keys::room_settings(room))?.unwrap_or_default())
    }

    /// Checks `action` in `room`.
    pub(crate) fn authorize(&self, room: RoomId, action: Action) -> Result<(RoomRecord, Standing)> {
        authorize_in(&self.shared.store, room, self.authed()?.user, action)
    }
}

/// `user`'s server-wide role.
pub(crate) fn server_role_in(records: &impl Records, user: UserId) -> Result<Role> {
    let record: UserRecord = records.record(&keys::user(user))?.ok_or(ErrorCode::NOT_FOUND)?;
    Ok(Role(record.role))
}

/// The records [`standing_in`] reads for `user` in each of `rooms` (keep the two in step),
/// read in one batch: the same checks over many rooms (a search's) then cost one round trip
/// to PostgreSQL rather than five per room. A record missing here is still read, one by one.
pub(crate) fn prefetch_standings<'a>(
    store: &'a Store,
    rooms: &[RoomId],
    user: UserId,
) -> Result<Prefetched<'a>> {
    let mut wanted = vec![keys::user(user)];
    for &room in rooms {
        wanted.extend([
            keys::room(room),
            keys::member(room, user),
            keys::room_settings(room),
            keys::ban(room, user),
        ]);
    }
    Ok(store.prefetch(wanted)?)
}

/// `user`'s standing in `room`, and the room: from the store for a request's reads, from the
/// transaction inside a write.
pub(crate) fn standing_in(
    records: &impl Records,
    room: RoomId,
    user: UserId,
) -> Result<(RoomRecord, Standing)> {
    let record: RoomRecord = records.record(&keys::room(room))?.ok_or(ErrorCode::NOT_FOUND)?;
    let member: Option<MemberRecord> = records.record(&keys::member(room, user))?;
    let settings: RoomSettings = records.record(&keys::room_settings(room))?.unwrap_or_default();
    let standing = Standing {
        member: member.map(|m| Role(m.role)),
        server_role: server_role_in(records, user)?,
        banned: banned_in(records, room, user)?,
        private: record.private || record.direct,
        locked: settings.locked,
        archived: settings.archived,
    };
    Ok((record, standing))
}

/// Whether `user` is banned from `room` now.
pub(crate) fn banned_in(records: &impl Records, room: RoomId, user: UserId) -> Result<bool> {
    let ban: Option<BanRecord> = records.record(&keys::ban(room, user))?;
    let now = wall_clock().0;
    Ok(ban.is_some_and(|b| b.until.is_none_or(|until| until > now)))
}

/// `user`'s effective rank in `room` (what moderation acts on them are measured against).
pub(crate) fn rank_in(records: &impl Records, room: RoomId, user: UserId) -> Result<Role> {
    let member: Option<MemberRecord> = records.record(&keys::member(room, user))?;
    Ok(authz::effective_rank(member.map(|m| Role(m.role)), server_role_in(records, user)?))
}

/// Checks `action` by `user` in `room`, against the standing in `records`.
pub(crate) fn authorize_in(
    records: &impl Records,
    room: RoomId,
    user: UserId,
    action: Action,
) -> Result<(RoomRecord, Standing)> {
    let (record, standing) = standing_in(records, room, user)?;
    authz::authorize(&standing, action)?;
    Ok((record, standing))
}

/// Checks that `actor` may act as a moderator on `target` in `room` (kick, ban, voice
/// moderation): the room is visible to them and they outrank the target.
pub(crate) fn authorize_moderation_in(
    records: &impl Records,
    room: RoomId,
    actor: UserId,
    target: UserId,
) -> Result<()> {
    let target = rank_in(records, room, target)?;
    authorize_in(records, room, actor, Action::Moderate { target }).map(|_| ())
}

/// The connection's protocol state machine (a panic elsewhere must not poison it for good).
pub(crate) fn lock(
    protocol: &Mutex<ServerConnection>,
) -> std::sync::MutexGuard<'_, ServerConnection> {
    protocol.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks a HELLO or RESUME (its access token, and for RESUME the session) and answers it on
/// the control stream; on success the connection is authenticated as [`ConnCtx::authed`]
/// says, and the session's queues are returned for the caller to drain.
pub(crate) fn attach_session(ctx: &ConnCtx, request: AuthRequest) -> Option<(&Authed, Wakers)> {
    let shared = &ctx.shared;
    let (token, resume) = match &request {
        AuthRequest::Hello { access_token, interests } => (access_token, Err(*interests)),
        AuthRequest::Resume { access_token, resume_id, last_event_seq, interests } => {
            (access_token, Ok((*resume_id, *last_event_seq, *interests)))
        }
    };
    let (user, login) = match authenticate(shared, token) {
        Ok(found) => found,
        Err(error) => {
            shared.metrics.count_error(error);
            let message = match error {
                ErrorCode::TOKEN_EXPIRED => "access token expired",
                ErrorCode::SESSION_REVOKED => "session revoked",
                _ => "invalid access token",
            };
            lock(&ctx.protocol).reject(error, message);
            return None;
        }
    };
    let username = shared
        .store
        .get::<UserRecord>(&keys::user(user))
        .ok()
        .flatten()
        .map(|u| u.username)
        .unwrap_or_default();
    tracing::Span::current().record("user", user.0);

    // HELLO and RESUME draw from the account's `session` bucket: a connect-HELLO-close loop
    // cannot churn sessions (each holds a replay buffer for the resume window).
    if let Err(retry) = shared.account_limits.check(user, "session", Instant::now()) {
        shared.metrics.count_error(ErrorCode::RATE_LIMITED);
        lock(&ctx.protocol).reject_with_retry(
            ErrorCode::RATE_LIMITED,
            "too many sessions started",
            retry,
        );
        return None;
    }
    let (session, wakers) = match resume {
        Err(interests) => {
            let mut id = [0u8; 16];
            if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
                lock(&ctx.protocol).reject(ErrorCode::INTERNAL, "no randomness");
                return None;
            }
            let session =
                shared.hub.create_session(ResumeId(id), user, login, ctx.conn_id, interests);
            let wakers = session.wakers();
            lock(&ctx.protocol).accept_hello(Welcome {
                resume_id: ResumeId(id),
                user,
                username: Text::new(username).unwrap_or_default(),
                server_time: wall_clock(),
            });
            (session, wakers)
        }
        Ok((resume_id, last_event_seq, interests)) => {
            let found =
                shared.hub.find_session(&resume_id).filter(|s| s.user == user && s.login == login);
            let Some(session) = found else {
                lock(&ctx.protocol)
                    .reject(ErrorCode::RESUME_UNAVAILABLE, "unknown or expired session");
                return None;
            };
            let Ok((replaced, wakers)) =
                session.attach_resume(ctx.conn_id, last_event_seq, interests)
            else {
                lock(&ctx.protocol)
                    .reject(ErrorCode::RESUME_UNAVAILABLE, "events no longer buffered");
                return None;
            };
            if let Some(old) = replaced {
                shared.hub.close_connection(
                    old,
                    ErrorCode::SESSION_REPLACED,
                    "session resumed elsewhere",
                );
            }
            lock(&ctx.protocol).accept_resume(
                user,
                Resumed { replay_from: last_event_seq + 1, server_time: wall_clock() },
            );
            shared.hub.reattached(&session);
            (session, wakers)
        }
    };
    // The presence of everyone the user shares a room with, after WELCOME and after RESUMED
    // alike (spec §7.3): presence is soft state, never replayed.
    shared.hub.send_presence_snapshot(&session);
    let _ = ctx.authed.set(Authed { user, login, session });
    Some((ctx.authed.get()?, wakers))
}

/// A request stream's two halves: a QUIC stream in the server, in-memory pipes in the fuzz
/// target. Handlers with a round trip (KEY_LOGIN, uploads, downloads) use it directly.
///
/// Every write is bounded by the answer timeout: a client that never reads its answers (32
/// streams of HISTORY pages, a DOWNLOAD it does not take) holds nothing for ever. After a
/// write timed out, [`timed_out`](Self::timed_out) says so and the caller resets the stream.
pub(crate) struct RequestIo<'a> {
    send: &'a mut (dyn AsyncWrite + Send + Unpin),
    recv: &'a mut (dyn AsyncRead + Send + Unpin),
    decoder: FrameDecoder,
    write_timeout: Duration,
    timed_out: bool,
}

impl<'a> RequestIo<'a> {
    /// Frames up to `max_frame_size` from `recv`; answers to `send`, each write within
    /// `write_timeout`.
    pub(crate) fn new(
        send: &'a mut (dyn AsyncWrite + Send + Unpin),
        recv: &'a mut (dyn AsyncRead + Send + Unpin),
        max_frame_size: u64,
        write_timeout: Duration,
    ) -> Self {
        Self {
            send,
            recv,
            decoder: FrameDecoder::new(max_frame_size),
            write_timeout,
            timed_out: false,
        }
    }

    /// Whether a write gave up because the client did not take the answer in time.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Writes a frame now.
    pub(crate) async fn send(&mut self, frame: &impl Frame) -> Result<()> {
        let mut bytes = Vec::new();
        frame.encode_frame(&mut bytes);
        self.write(&bytes).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match tokio::time::timeout(self.write_timeout, self.send.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ErrorCode::REQUEST_CANCELLED.into()),
            Err(_) => {
                self.timed_out = true;
                Err(RequestError::new(ErrorCode::REQUEST_CANCELLED, "answer not read in time"))
            }
        }
    }

    /// Ends the answer: the client reads to the end of the stream.
    pub(crate) async fn finish(&mut self) {
        let _ = self.send.shutdown().await;
    }

    /// Reads the next frame from the client.
    pub(crate) async fn next(&mut self) -> Result<Message> {
        self.next_or_end().await?.ok_or_else(|| ErrorCode::REQUEST_CANCELLED.into())
    }

    /// Whether the client has finished the stream after the frames read so far, as far as
    /// can be told without waiting (whatever a read brings stays for [`next_or_end`]).
    ///
    /// [`next_or_end`]: Self::next_or_end
    pub(crate) fn finished_now(&mut self) -> bool {
        if self.decoder.buffered() > 0 {
            return false;
        }
        let mut buf = [0u8; 16 * 1024];
        match self.recv.read(&mut buf).now_or_never() {
            Some(Ok(0)) => true,
            Some(Ok(n)) => {
                self.decoder.push(&buf[..n]);
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    /// Reads the next frame, or `None` when the client finished the stream after whole
    /// frames (a reset or a frame cut short is REQUEST_CANCELLED / FRAME_ERROR).
    pub(crate) async fn next_or_end(&mut self) -> Result<Option<Message>> {
        loop {
            match self.decoder.next_message() {
                Ok(Some(message)) => return Ok(Some(message)),
                Ok(None) => {}
                Err(e) => return Err(RequestError::new(e.code(), e.to_string())),
            }
            let mut buf = [0u8; 16 * 1024];
            match self.recv.read(&mut buf).await {
                Ok(0) => {
                    return match self.decoder.finish() {
                        Ok(()) => Ok(None),
                        Err(e) => Err(RequestError::new(e.code(), e.to_string())),
                    };
                }
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(_) => return Err(ErrorCode::REQUEST_CANCELLED.into()),
            }
        }
    }
}

/// How long a request stream may take to deliver its request frame (slowloris guard).
pub(crate) const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one request stream: reads the request, checks it is admissible on this connection,
/// runs it and writes the answer (or the ERROR). A POST opens a post stream instead (spec
/// §3.1.1, [`post_stream`]). Returns the code to stop reading with when a request was
/// malformed or oversized (spec §3.1); the caller then finishes the stream.
pub(crate) async fn serve(ctx: &ConnCtx, io: &mut RequestIo<'_>) -> Option<ErrorCode> {
    let answer = match tokio::time::timeout(REQUEST_READ_TIMEOUT, io.next()).await {
        // A POST that arrived with the stream's end is a request like any other.
        Ok(Ok(Message::Post(post))) if post_stream::offered(ctx) && !io.finished_now() => {
            // Boxed: its state would otherwise enlarge every request's task.
            return Box::pin(post_stream::serve(ctx, post, io)).await;
        }
        Ok(Ok(first)) => {
            let frame_type = first.frame_type();
            match admit(ctx, frame_type) {
                Ok(started) => {
                    let span = tracing::debug_span!("request", kind = ?frame_type);
                    let answer = handle(ctx, first, io).instrument(span).await;
                    observe(ctx, frame_type, started);
                    answer
                }
                Err(error) => Err(error),
            }
        }
        Ok(Err(error)) => Err(error),
        Err(_) => {
            Err(RequestError::new(ErrorCode::REQUEST_CANCELLED, "request not received in time"))
        }
    };
    let (bytes, stop) = encode_answer(ctx, answer);
    if io.write(&bytes).await.is_ok() {
        io.finish().await;
    }
    stop
}

/// Whether a request of `frame_type` is admissible on this connection now (spec §7.1); if
/// so, when it started, for [`observe`].
fn admit(ctx: &ConnCtx, frame_type: FrameType) -> Result<Instant> {
    lock(&ctx.protocol).admit_request(frame_type)?;
    Ok(Instant::now())
}

/// Records how long a request of `frame_type` took.
fn observe(ctx: &ConnCtx, frame_type: FrameType, started: Instant) {
    ctx.shared
        .metrics
        .requests
        .get_or_create(&Metrics::request_label(frame_type))
        .observe(started.elapsed().as_secs_f64());
}

/// An answer's bytes (its frames, or the ERROR), and the code to stop reading with when the
/// request was malformed or oversized.
fn encode_answer(ctx: &ConnCtx, answer: Result<Vec<Message>>) -> (Vec<u8>, Option<ErrorCode>) {
    let mut bytes = Vec::new();
    let mut stop = None;
    match answer {
        Ok(frames) => frames.iter().for_each(|f| f.encode(&mut bytes)),
        Err(error) => {
            tracing::debug!(code = %error.code, message = %error.message, "request failed");
            ctx.shared.metrics.count_error(error.code);
            error.to_frame().encode_frame(&mut bytes);
            // A malformed or oversized request: say why, and stop reading the rest.
            if matches!(error.code, ErrorCode::FRAME_ERROR | ErrorCode::FRAME_TOO_LARGE) {
                stop = Some(error.code);
            }
        }
    }
    (bytes, stop)
}

/// Runs one request; returns the answer frames.
pub(crate) async fn handle(
    ctx: &ConnCtx,
    request: Message,
    io: &mut RequestIo<'_>,
) -> Result<Vec<Message>> {
    use Message as M;
    match request {
        M::Register(r) => accounts::register(ctx, r).await,
        M::Login(r) => accounts::login(ctx, r).await,
        M::KeyLogin(r) => accounts::key_login(ctx, r, io).await,
        M::Refresh(r) => accounts::refresh(ctx, r).await,
        M::Logout(_) => accounts::logout(ctx, io).await,
        M::SessionList(_) => accounts::session_list(ctx),
        M::SessionRevoke(r) => accounts::session_revoke(ctx, r, io).await,
        M::KeyAdd(r) => accounts::key_add(ctx, r, io).await,
        M::KeyList(_) => accounts::key_list(ctx),
        M::KeyRemove(r) => accounts::key_remove(ctx, r).await,
        M::RoomCreate(r) => rooms::create(ctx, r).await,
        M::RoomList(r) => rooms::list(ctx, r),
        M::RoomJoin(r) => rooms::join(ctx, r).await,
        M::RoomLeave(r) => rooms::leave(ctx, r).await,
        M::RoomSetTopic(r) => rooms::set_topic(ctx, r).await,
        M::RoomConfigure(r) => rooms::configure(ctx, r).await,
        M::InviteCreate(r) => invites::create(ctx, r).await,
        M::InviteUse(r) => invites::accept(ctx, r).await,
        M::RoomInvite(r) => invites::add_user(ctx, r).await,
        M::ContactSet(r) => contacts::set(ctx, r).await,
        M::ContactList(_) => contacts::list(ctx),
        M::DmOpen(r) => rooms::dm_open(ctx, r).await,
        M::Members(r) => rooms::members(ctx, r),
        M::Post(r) => events::post(ctx, r, None).await,
        M::Edit(r) => events::edit(ctx, r).await,
        M::Delete(r) => events::delete(ctx, r).await,
        M::React(r) => events::react(ctx, r).await,
        M::History(r) => events::history(ctx, r),
        M::RevealAuthor(r) => events::reveal_author(ctx, r).await,
        M::Upload(r) => files::upload(ctx, r, io).await,
        M::Download(r) => files::download(ctx, r, io).await,
        M::CatchUp(r) => events::catch_up(ctx, r).await,
        M::Search(r) => search::search(ctx, r).await,
        M::Kick(r) => rooms::kick(ctx, r).await,
        M::Ban(r) => rooms::ban(ctx, r).await,
        M::Unban(r) => rooms::unban(ctx, r).await,
        M::MarkRead(r) => soft::mark_read(ctx, r).await,
        M::MarkDelivered(r) => soft::mark_delivered(ctx, r).await,
        M::TypingSet(r) => soft::typing(ctx, r),
        M::PresenceSet(r) => soft::presence(ctx, r),
        M::RoleSet(r) => moderation::role_set(ctx, r).await,
        M::AuditQuery(r) => moderation::audit_query(ctx, r),
        M::VoiceJoin(r) => voice::join(ctx, r).await,
        M::VoiceLeave(r) => voice::leave(ctx, r),
        M::VoiceSelf(r) => voice::set_self(ctx, r),
        M::VoiceRequestSpeak(r) => voice::request_speak(ctx, r),
        M::VoiceModerate(r) => voice::moderate(ctx, r).await,
        // admit_request lets only request types through; anything else is the peer's mistake.
        other => Err(RequestError::new(
            ErrorCode::PROTOCOL_VIOLATION,
            format!("{:?} is not a request", other.frame_type()),
        )),
    }
}

/// Rejects control characters in names, topics and reasons (spec §5.4); `multiline` allows
/// line feeds and tabs (message text).
pub(crate) fn check_text(field: &str, text: &str, multiline: bool) -> Result<()> {
    let bad = text.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')));
    if bad {
        return Err(RequestError::new(
            ErrorCode::INVALID_REQUEST,
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

/// `Text` from a string we built (names from storage): cut to fit rather than fail.
pub(crate) fn text<const N: usize>(s: &str) -> Text<N> {
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Text::new(&s[..end]).unwrap_or_default()
}
