//! Fan-out and live state: who is a member of which room, which sessions each user has, and
//! the queues that feed each session's events and ephemeral streams.
//!
//! Room membership and room heads are updated only from the storage writer thread, after a
//! commit is durable and in commit order, so what the hub knows never runs ahead of disk and
//! fan-out happens in `room_seq` order. The hub is in-process; the [`Session`] queues are the
//! seam where a message bus would plug in for several nodes.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use banter_protocol::bounded::Text;
use banter_protocol::ids::{ResumeId, RoomId, SessionId, UserId};
use banter_protocol::message::{
    EventFrame, Hello, LivePaused, Presence, PresenceStatus, Typing, TypingState,
};
use banter_protocol::session::ReplayBuffer;
use banter_protocol::{ErrorCode, Frame};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, mpsc};

/// The most ephemeral frames queued per session; older ones are dropped (soft state).
const EPHEMERAL_QUEUE: usize = 512;

/// A command to a connection's driver.
#[derive(Debug, Clone)]
pub(crate) enum ConnCommand {
    /// Send ERROR on the control stream and close with this code.
    Close(ErrorCode, String),
}

/// One resumable session: a device's numbered events stream, which outlives connections for
/// the resume window.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: ResumeId,
    pub(crate) user: UserId,
    pub(crate) login: SessionId,
    state: Mutex<SessionState>,
}

thread_local! {
    /// The wake-ups held back by [`wakes_after`] running on this thread.
    static HELD_WAKES: RefCell<Option<Vec<Arc<Notify>>>> = const { RefCell::new(None) };
}

/// At most about this much is taken for one write of the events stream: the frames are copied
/// under the session's lock, which the storage writer waits for to queue the next event, and
/// a long replay after a resume goes to QUIC in pieces it can start sending at once.
const TAKE_BYTES: usize = 64 * 1024;

/// At most this many held wake-ups: beyond, they go out at once, so that the first events
/// of a commit group that reaches many sessions do not wait for all of its deliveries.
const HELD_WAKES_MAX: usize = 256;

/// Runs `deliver` and holds back the wake-ups of the events writers it causes until it
/// returns. The storage writer delivers a whole commit group inside one: each session's writer
/// then wakes once for all of the group's events and sends them in one write, packed into as
/// few packets as they fit, instead of one wake-up and one packet per event. (A session's
/// backlog past half its limit wakes its writer at once, see [`Session::push_event`].)
pub(crate) fn wakes_after<R>(deliver: impl FnOnce() -> R) -> R {
    /// Puts back the outer hold and sends what was held, however `deliver` ends.
    struct Release(Option<Vec<Arc<Notify>>>);
    impl Drop for Release {
        fn drop(&mut self) {
            let held =
                HELD_WAKES.with(|held| std::mem::replace(&mut *held.borrow_mut(), self.0.take()));
            for waker in held.into_iter().flatten() {
                waker.notify_one();
            }
        }
    }
    let _release = Release(HELD_WAKES.with(|held| held.borrow_mut().replace(Vec::new())));
    deliver()
}

/// Wakes an events writer now, or when the [`wakes_after`] running on this thread returns.
fn wake(waker: Arc<Notify>) {
    let full = HELD_WAKES.with(|held| match held.borrow_mut().as_mut() {
        Some(held) => {
            held.push(waker);
            (held.len() >= HELD_WAKES_MAX).then(|| std::mem::take(held))
        }
        None => {
            waker.notify_one();
            None
        }
    });
    for waker in full.into_iter().flatten() {
        waker.notify_one();
    }
}

/// What wakes the writers of the connection a session is attached to. Each attachment gets
/// its own, so a replaced connection's writers never steal a wake-up from the new ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wakers {
    pub(crate) events: Arc<Notify>,
    pub(crate) ephemeral: Arc<Notify>,
}

#[derive(Debug)]
struct SessionState {
    replay: ReplayBuffer,
    /// Highest event_seq handed to the events writer.
    sent: u64,
    /// Frames the events writer has not taken, counted as the replay buffer counts them.
    unsent_bytes: usize,
    backlog_limit: usize,
    paused: HashSet<RoomId>,
    ephemeral: VecDeque<Bytes>,
    interests: u64,
    /// The connection currently carrying the session (its stable id).
    attached: Option<usize>,
    detached_at: Option<Instant>,
    status: PresenceStatus,
    status_text: String,
    wakers: Wakers,
}

impl SessionState {
    /// The events writer has taken every frame up to `seq`: the replay buffer keeps those
    /// after it whatever its budget (the backlog limit bounds them).
    fn written_up_to(&mut self, seq: u64) {
        self.sent = seq;
        self.replay.keep_after(seq);
    }
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, SessionState> {
        // A panic while holding this lock would be a bug in the few lines below, none of
        // which can panic; recover the data rather than poison every later caller.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a numbered event frame unless the room is paused for this session; pauses the
    /// room (with a LIVE_PAUSED) when the unsent backlog is over its limit (spec §7.7).
    pub(crate) fn push_event(
        &self,
        now: Instant,
        room: RoomId,
        seq: u64,
        build: impl FnOnce(u64) -> EventFrame,
    ) {
        let mut state = self.lock();
        if state.paused.contains(&room) {
            return;
        }
        let before = state.unsent_bytes;
        if state.unsent_bytes > state.backlog_limit {
            state.paused.insert(room);
            let delivered_seq = seq.saturating_sub(1);
            state.unsent_bytes += state.replay.push(now, |event_seq| {
                encode(&LivePaused { event_seq, room, delivered_seq }).into()
            });
        } else {
            state.unsent_bytes += state.replay.push(now, build);
        }
        // The writer takes everything queued when it wakes, so only the first frame since its
        // last take needs to wake it; past half the backlog limit it is woken at once, held or
        // not, so that a held-back burst is not mistaken for a slow reader (LIVE_PAUSED).
        let half = state.backlog_limit / 2;
        let urgent = before <= half && state.unsent_bytes > half;
        if before == 0 || urgent {
            let waker = state.wakers.events.clone();
            drop(state);
            if urgent { waker.notify_one() } else { wake(waker) }
        }
    }

    /// The next frames to write to the events stream, in one buffer of at most [`TAKE_BYTES`]
    /// (or one frame; empty when there are none), or `Err` when they are no longer buffered.
    pub(crate) fn take_events(&self) -> Result<Bytes, banter_protocol::session::ReplayGone> {
        let mut state = self.lock();
        let mut bytes = Vec::with_capacity(state.unsent_bytes.min(TAKE_BYTES));
        let mut count: usize = 0;
        let all_taken = {
            let mut frames = state.replay.replay_after(state.sent)?;
            for frame in frames.by_ref() {
                frame.append_to(&mut bytes);
                count += 1;
                if bytes.len() >= TAKE_BYTES {
                    break;
                }
            }
            frames.len() == 0
        };
        let sent = state.sent + count as u64;
        state.written_up_to(sent);
        // Only a writer that found nothing left waits for a wake-up (see `push_event`). The
        // backlog is counted as the replay buffer counts it (frames and their entries), so
        // that it reaches its limit, and pauses rooms, before the replay budget drops frames
        // not sent yet.
        let taken = bytes.len() + count * ReplayBuffer::ENTRY_BYTES;
        debug_assert!(all_taken || state.unsent_bytes >= taken, "the backlog count drifted");
        state.unsent_bytes = if all_taken { 0 } else { state.unsent_bytes.saturating_sub(taken) };
        Ok(bytes.into())
    }

    /// Queues an ephemeral frame if the session wants that kind (an `Hello::INTEREST_*` bit,
    /// or 0 for always).
    pub(crate) fn push_ephemeral(&self, interest: u64, frame: Bytes) {
        let mut state = self.lock();
        if interest != 0 && state.interests & interest == 0 || state.attached.is_none() {
            return;
        }
        // Over the bound (a snapshot may stretch it), the oldest gives way: the queue never
        // grows past the larger of the two.
        if state.ephemeral.len() >= EPHEMERAL_QUEUE {
            state.ephemeral.pop_front();
        }
        state.ephemeral.push_back(frame);
        let waker = state.wakers.ephemeral.clone();
        drop(state);
        waker.notify_one();
    }

    /// Queues a snapshot whole (the client takes it as complete, spec §7.3): the queue's
    /// bound gives way to it, and only frames queued before it may be dropped to make room.
    pub(crate) fn push_snapshot(&self, interest: u64, frames: Vec<Bytes>) {
        let mut state = self.lock();
        if interest != 0 && state.interests & interest == 0 || state.attached.is_none() {
            return;
        }
        let room = EPHEMERAL_QUEUE.saturating_sub(frames.len());
        let stale = state.ephemeral.len().saturating_sub(room);
        state.ephemeral.drain(..stale);
        state.ephemeral.extend(frames);
        let waker = state.wakers.ephemeral.clone();
        drop(state);
        waker.notify_one();
    }

    pub(crate) fn take_ephemeral(&self) -> Vec<Bytes> {
        self.lock().ephemeral.drain(..).collect()
    }

    /// The client processed events up to `seq`.
    pub(crate) fn ack(&self, seq: u64) {
        let mut state = self.lock();
        let sent = state.sent;
        state.replay.ack(seq.min(sent));
    }

    /// Attaches a connection for a resume after `last_event_seq`; fails when events after it
    /// are gone. Returns the connection it replaced, if any.
    pub(crate) fn attach_resume(
        &self,
        conn: usize,
        last_event_seq: u64,
        interests: u64,
    ) -> Result<(Option<usize>, Wakers), banter_protocol::session::ReplayGone> {
        let mut state = self.lock();
        // Only whether every frame after it is still here.
        let _ = state.replay.replay_after(last_event_seq)?;
        state.replay.ack(last_event_seq);
        state.written_up_to(last_event_seq);
        // Everything still buffered comes after `last_event_seq`: all of it is to be sent.
        state.unsent_bytes = state.replay.buffered_bytes();
        state.interests = interests;
        state.ephemeral.clear();
        state.detached_at = None;
        state.wakers = Wakers::default();
        let replaced = state.attached.replace(conn).filter(|old| *old != conn);
        Ok((replaced, state.wakers.clone()))
    }

    /// The wakers of the current attachment.
    pub(crate) fn wakers(&self) -> Wakers {
        self.lock().wakers.clone()
    }

    pub(crate) fn is_attached_to(&self, conn: usize) -> bool {
        self.lock().attached == Some(conn)
    }

    /// Resumes live delivery of a room (after a catch-up reached its head).
    pub(crate) fn unpause(&self, room: RoomId) -> bool {
        self.lock().paused.remove(&room)
    }
}

pub(crate) fn encode(frame: &impl Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode_frame(&mut out);
    out
}

/// Sizes of what a session keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    pub(crate) replay_bytes: usize,
    pub(crate) resume_window: Duration,
    pub(crate) backlog_bytes: usize,
    /// Sessions (live or resumable) one login session may hold; 0 is no limit.
    pub(crate) per_login: usize,
    /// Sessions one user may hold across all their logins; 0 is no limit.
    pub(crate) per_user: usize,
    /// How long a detached session still counts for its user's presence: a client that
    /// reconnects within it is never shown offline, and its room mates are sent nothing.
    pub(crate) presence_grace: Duration,
}

impl SessionLimits {
    /// Limits with no caps on sessions per login or user (tests, benchmarks).
    pub(crate) fn uncapped(
        replay_bytes: usize,
        resume_window: Duration,
        backlog_bytes: usize,
    ) -> Self {
        let (per_login, per_user, presence_grace) = (0, 0, Duration::ZERO);
        Self { replay_bytes, resume_window, backlog_bytes, per_login, per_user, presence_grace }
    }
}

#[derive(Debug, Default)]
struct HubState {
    members: HashMap<RoomId, HashSet<UserId>>,
    rooms_of: HashMap<UserId, HashSet<RoomId>>,
    heads: HashMap<RoomId, u64>,
    sessions: HashMap<ResumeId, Arc<Session>>,
    sessions_of: HashMap<UserId, Vec<Arc<Session>>>,
    connections: HashMap<SessionId, Vec<(usize, mpsc::UnboundedSender<ConnCommand>)>>,
    /// Who is typing where, and whether on this node (`true`) or announced by another: a
    /// node ends only its own typists' notices when they go offline.
    typing: HashMap<(RoomId, UserId), bool>,
    presence: HashMap<UserId, (PresenceStatus, String)>,
    /// Users whose session here detached, by when its presence grace ends (in that order).
    lapsing: VecDeque<(Instant, UserId)>,
    /// In a cluster: each user's presence on the other nodes (by node), until it expires
    /// unless refreshed.
    remote_presence: HashMap<UserId, HashMap<u64, RemotePresence>>,
    /// Who each user blocks (spec §6.8): they do not see the blocker's presence.
    blocks: HashMap<UserId, HashSet<UserId>>,
}

/// A user's presence as another node last announced it.
#[derive(Debug)]
struct RemotePresence {
    status: PresenceStatus,
    text: String,
    expires: Instant,
}

/// An encoded PRESENCE frame.
fn presence_frame(user: UserId, status: PresenceStatus, text: &str) -> Bytes {
    let text = Text::new(text.to_owned()).unwrap_or_default();
    Bytes::from(encode(&Presence { user, status, text }))
}

/// Presence statuses from most to least available; invisible counts as offline.
fn availability(status: PresenceStatus) -> u8 {
    match status {
        PresenceStatus::Online => 0,
        PresenceStatus::Dnd => 1,
        PresenceStatus::Away => 2,
        PresenceStatus::Invisible | PresenceStatus::Offline => 3,
    }
}

impl HubState {
    /// Makes room for one more session of `user` among those `counted` picks, keeping fewer
    /// than `cap`: the session detached longest goes first (its resume is lost; the client
    /// catches up), else the oldest live one, whose connection is returned to be closed.
    /// Memory stays bounded, and nobody is locked out by sessions that linger.
    fn make_room(
        &mut self,
        user: UserId,
        cap: usize,
        counted: impl Fn(&Session) -> bool,
    ) -> Vec<usize> {
        let mut to_close = Vec::new();
        if cap == 0 {
            return to_close;
        }
        loop {
            let sessions = self.sessions_of.get(&user).map(Vec::as_slice).unwrap_or_default();
            let counted: Vec<&Arc<Session>> = sessions.iter().filter(|s| counted(s)).collect();
            if counted.len() < cap {
                return to_close;
            }
            let detached = counted
                .iter()
                .filter_map(|s| s.lock().detached_at.map(|at| (at, s.id)))
                .min_by_key(|(at, _)| *at)
                .map(|(_, id)| id);
            // Sessions are kept in creation order: the first counted one is the oldest.
            let evicted = detached.unwrap_or(counted[0].id);
            if let Some(conn) = self.sessions.get(&evicted).and_then(|s| s.lock().attached) {
                to_close.push(conn);
            }
            self.remove_session(evicted);
        }
    }

    /// Forgets a session (expired or revoked).
    fn remove_session(&mut self, id: ResumeId) {
        let Some(session) = self.sessions.remove(&id) else { return };
        if let Some(list) = self.sessions_of.get_mut(&session.user) {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                self.sessions_of.remove(&session.user);
            }
        }
    }

    /// Everyone in at least one room with `user` (`user` too, when a member anywhere).
    fn blocks(&self, blocker: UserId, blocked: UserId) -> bool {
        self.blocks.get(&blocker).is_some_and(|b| b.contains(&blocked))
    }

    fn room_mates(&self, user: UserId) -> HashSet<UserId> {
        let mut users = HashSet::new();
        for room in self.rooms_of.get(&user).into_iter().flatten() {
            users.extend(self.members.get(room).into_iter().flatten().copied());
        }
        users
    }
}

/// The live state shared by every connection.
#[derive(Debug)]
pub(crate) struct Hub {
    state: Mutex<HubState>,
    limits: SessionLimits,
    pub(crate) metrics: HubMetrics,
}

/// Fan-out counters (registered by the server's metrics).
#[derive(Debug, Default)]
pub(crate) struct HubMetrics {
    /// Log entries published.
    pub(crate) published: Counter,
    /// Log entries queued to sessions.
    pub(crate) delivered: Counter,
}

impl Hub {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        Self { state: Mutex::new(HubState::default()), limits, metrics: HubMetrics::default() }
    }

    /// Sessions held (live, or waiting to be resumed).
    pub(crate) fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads a membership at startup or after a durable join.
    pub(crate) fn add_member(&self, room: RoomId, user: UserId) {
        let mut state = self.lock();
        state.members.entry(room).or_default().insert(user);
        state.rooms_of.entry(user).or_default().insert(room);
    }

    /// Removes a membership after a durable leave, kick or ban: live delivery stops at once.
    pub(crate) fn remove_member(&self, room: RoomId, user: UserId) {
        let mut state = self.lock();
        if let Some(members) = state.members.get_mut(&room) {
            members.remove(&user);
        }
        if let Some(rooms) = state.rooms_of.get_mut(&user) {
            rooms.remove(&room);
        }
    }

    /// The rooms the users with a session here are members of (what a cluster node checks
    /// against the database's heads).
    pub(crate) fn rooms_with_local_sessions(&self) -> Vec<RoomId> {
        let state = self.lock();
        let rooms: HashSet<RoomId> = state
            .sessions_of
            .keys()
            .filter_map(|user| state.rooms_of.get(user))
            .flatten()
            .copied()
            .collect();
        rooms.into_iter().collect()
    }

    /// Records a room's durable head (called after commit, in order).
    pub(crate) fn set_head(&self, room: RoomId, seq: u64) {
        let mut state = self.lock();
        let head = state.heads.entry(room).or_default();
        *head = (*head).max(seq);
    }

    /// The highest room_seq that is durable and delivered; reads never go beyond it.
    pub(crate) fn head(&self, room: RoomId) -> u64 {
        self.lock().heads.get(&room).copied().unwrap_or(0)
    }

    /// Delivers a durable log entry to every session of every member, in call order.
    /// `build(event_seq, to_author)` encodes the frame for one session.
    pub(crate) fn publish(
        &self,
        room: RoomId,
        seq: u64,
        author: UserId,
        extra_recipient: Option<UserId>,
        build: impl Fn(u64, bool) -> EventFrame,
    ) {
        let now = Instant::now();
        let sessions: Vec<Arc<Session>> = {
            let mut state = self.lock();
            let head = state.heads.entry(room).or_default();
            *head = (*head).max(seq);
            let members = state.members.get(&room);
            let extra = extra_recipient.filter(|u| !members.is_some_and(|m| m.contains(u)));
            members
                .into_iter()
                .flatten()
                .chain(extra.as_ref())
                .filter_map(|u| state.sessions_of.get(u))
                .flatten()
                .cloned()
                .collect()
        };
        self.metrics.published.inc();
        self.metrics.delivered.inc_by(sessions.len() as u64);
        for session in sessions {
            let to_author = session.user == author;
            session.push_event(now, room, seq, |event_seq| build(event_seq, to_author));
        }
    }

    /// Sends an ephemeral frame to the sessions of a room's members (optionally excluding one
    /// user, the actor).
    pub(crate) fn broadcast_ephemeral(
        &self,
        room: RoomId,
        except: Option<UserId>,
        interest: u64,
        frame: &impl Frame,
    ) {
        self.broadcast_encoded(room, except, interest, Bytes::from(encode(frame)));
    }

    /// [`broadcast_ephemeral`](Self::broadcast_ephemeral) of a frame already encoded (as
    /// another node sent it).
    pub(crate) fn broadcast_encoded(
        &self,
        room: RoomId,
        except: Option<UserId>,
        interest: u64,
        bytes: Bytes,
    ) {
        let sessions: Vec<Arc<Session>> = {
            let state = self.lock();
            let Some(members) = state.members.get(&room) else { return };
            members
                .iter()
                .filter(|u| Some(**u) != except)
                .filter_map(|u| state.sessions_of.get(u))
                .flatten()
                .cloned()
                .collect()
        };
        for session in sessions {
            session.push_ephemeral(interest, bytes.clone());
        }
    }

    /// Sends an ephemeral frame, encoded, to all of one user's sessions.
    pub(crate) fn to_user_encoded(&self, user: UserId, bytes: Bytes) {
        let sessions = self.lock().sessions_of.get(&user).cloned().unwrap_or_default();
        for session in sessions {
            session.push_ephemeral(0, bytes.clone());
        }
    }

    /// Creates a session for a HELLO and attaches `conn` to it, within the caps on sessions
    /// per login and per user (older sessions make room, see `HubState::make_room`).
    pub(crate) fn create_session(
        &self,
        id: ResumeId,
        user: UserId,
        login: SessionId,
        conn: usize,
        interests: u64,
    ) -> Arc<Session> {
        let mut state = SessionState {
            replay: ReplayBuffer::new(self.limits.resume_window, self.limits.replay_bytes),
            sent: 0,
            unsent_bytes: 0,
            backlog_limit: self.limits.backlog_bytes,
            paused: HashSet::new(),
            ephemeral: VecDeque::new(),
            interests,
            attached: Some(conn),
            detached_at: None,
            status: PresenceStatus::Online,
            status_text: String::new(),
            wakers: Wakers::default(),
        };
        state.written_up_to(0);
        let session = Arc::new(Session { id, user, login, state: Mutex::new(state) });
        let mut state = self.lock();
        let mut to_close = state.make_room(user, self.limits.per_login, |s| s.login == login);
        to_close.extend(state.make_room(user, self.limits.per_user, |_| true));
        state.sessions.insert(id, session.clone());
        state.sessions_of.entry(user).or_default().push(session.clone());
        drop(state);
        for old in to_close {
            self.close_connection(old, ErrorCode::SESSION_REPLACED, "too many sessions");
        }
        self.presence_changed(user);
        session
    }

    pub(crate) fn find_session(&self, id: &ResumeId) -> Option<Arc<Session>> {
        self.lock().sessions.get(id).cloned()
    }

    /// The connection carrying `session` went away; the session stays resumable unless the
    /// client `finished` it. The rooms where the user's typing ended (they are offline here).
    pub(crate) fn detach(&self, session: &Session, conn: usize, finished: bool) -> Vec<RoomId> {
        {
            let mut state = session.lock();
            if state.attached != Some(conn) {
                return Vec::new();
            }
            state.attached = None;
            state.detached_at = Some(Instant::now());
            state.ephemeral.clear();
        }
        {
            let mut state = self.lock();
            if finished {
                // Unless a RESUME attached it again in between.
                if session.lock().attached.is_none() {
                    state.remove_session(session.id);
                }
            } else if !self.limits.presence_grace.is_zero() {
                // The deadline taken under the lock, so the queue stays in order.
                let lapses = Instant::now() + self.limits.presence_grace;
                state.lapsing.push_back((lapses, session.user));
            }
        }
        self.presence_changed(session.user);
        self.clear_typing_if_offline(session.user)
    }

    /// Marks a resumed session attached again and re-announces presence.
    pub(crate) fn reattached(&self, session: &Session) {
        self.presence_changed(session.user);
    }

    /// Drops sessions detached for longer than the resume window.
    pub(crate) fn expire_sessions(&self, now: Instant) {
        let window = self.limits.resume_window;
        let mut state = self.lock();
        let expired: Vec<ResumeId> = state
            .sessions
            .values()
            .filter(|s| {
                s.lock().detached_at.is_some_and(|at| now.saturating_duration_since(at) > window)
            })
            .map(|s| s.id)
            .collect();
        for id in expired {
            state.remove_session(id);
        }
    }

    /// Ends every session of a login session (logout, revocation) and tells its connections
    /// to close.
    pub(crate) fn revoke_login(&self, login: SessionId, code: ErrorCode, reason: &str) {
        let mut state = self.lock();
        let connections = state.connections.remove(&login).unwrap_or_default();
        let ended: Vec<Arc<Session>> =
            state.sessions.values().filter(|s| s.login == login).cloned().collect();
        for session in &ended {
            state.remove_session(session.id);
        }
        drop(state);
        for (_, commands) in connections {
            let _ = commands.send(ConnCommand::Close(code, reason.to_owned()));
        }
        // A session in its presence grace stops counting now, not when the grace ends (a
        // login's sessions are all one user's).
        if let Some(session) = ended.first() {
            self.presence_changed(session.user);
        }
    }

    /// Registers a live connection of a login session (for revocation).
    pub(crate) fn register_connection(
        &self,
        login: SessionId,
        conn: usize,
        commands: mpsc::UnboundedSender<ConnCommand>,
    ) {
        self.lock().connections.entry(login).or_default().push((conn, commands));
    }

    pub(crate) fn unregister_connection(&self, login: SessionId, conn: usize) {
        let mut state = self.lock();
        if let Some(list) = state.connections.get_mut(&login) {
            list.retain(|(id, _)| *id != conn);
            if list.is_empty() {
                state.connections.remove(&login);
            }
        }
    }

    /// Tells a connection (by id) to close.
    pub(crate) fn close_connection(&self, conn: usize, code: ErrorCode, reason: &str) {
        let state = self.lock();
        for list in state.connections.values() {
            for (id, commands) in list {
                if *id == conn {
                    let _ = commands.send(ConnCommand::Close(code, reason.to_owned()));
                }
            }
        }
    }

    /// Sets a session's chosen status and re-announces the user's presence.
    pub(crate) fn set_status(&self, session: &Session, status: PresenceStatus, text: String) {
        {
            let mut state = session.lock();
            state.status = status;
            state.status_text = text;
        }
        self.presence_changed(session.user);
    }

    /// The user's presence as others see it (spec §6.5.4): the most available status of their
    /// attached sessions and of those detached less than the presence grace ago; invisible
    /// counts as offline.
    fn aggregate(&self, sessions: &[Arc<Session>], now: Instant) -> (PresenceStatus, String) {
        let recent = |at: Instant| now.saturating_duration_since(at) < self.limits.presence_grace;
        sessions
            .iter()
            .filter_map(|s| {
                let state = s.lock();
                let counts = state.attached.is_some() || state.detached_at.is_some_and(recent);
                counts.then(|| (state.status, state.status_text.clone()))
            })
            .map(|(s, t)| {
                if s == PresenceStatus::Invisible {
                    (PresenceStatus::Offline, String::new())
                } else {
                    (s, t)
                }
            })
            .min_by_key(|(s, _)| availability(*s))
            .unwrap_or((PresenceStatus::Offline, String::new()))
    }

    /// The presence of every user with a session here, as this node sees it alone (what it
    /// announces to the other nodes of a cluster).
    pub(crate) fn local_presence(&self) -> Vec<(UserId, PresenceStatus, String)> {
        let state = self.lock();
        state
            .sessions_of
            .iter()
            .map(|(user, sessions)| {
                let (status, text) = self.aggregate(sessions, Instant::now());
                (*user, status, text)
            })
            .collect()
    }

    /// Another node's presence announcement: these users, as seen there, until `expires`
    /// unless announced again; its users not in the list are no longer there.
    pub(crate) fn remote_presence(
        &self,
        node: u64,
        users: Vec<(UserId, PresenceStatus, String)>,
        expires: Instant,
    ) {
        let changed: HashSet<UserId> = {
            let mut state = self.lock();
            let mut changed: HashSet<UserId> = state
                .remote_presence
                .iter_mut()
                .filter_map(|(user, nodes)| nodes.remove(&node).map(|_| *user))
                .collect();
            for (user, status, text) in users {
                let entry = RemotePresence { status, text, expires };
                state.remote_presence.entry(user).or_default().insert(node, entry);
                changed.insert(user);
            }
            state.remote_presence.retain(|_, nodes| !nodes.is_empty());
            changed
        };
        for user in changed {
            self.presence_changed(user);
        }
    }

    /// Forgets other nodes' announcements that were not refreshed in time (a node that died):
    /// its users go offline here.
    pub(crate) fn expire_remote_presence(&self, now: Instant) {
        let expired: Vec<UserId> = {
            let mut state = self.lock();
            let mut expired = Vec::new();
            for (user, nodes) in &mut state.remote_presence {
                let before = nodes.len();
                nodes.retain(|_, p| p.expires > now);
                if nodes.len() != before {
                    expired.push(*user);
                }
            }
            state.remote_presence.retain(|_, nodes| !nodes.is_empty());
            expired
        };
        for user in expired {
            self.presence_changed(user);
        }
    }

    /// Recomputes a user's presence (this node's sessions and, in a cluster, what the other
    /// nodes announced); when it changed, tells the users who share a room.
    ///
    /// All of it under the hub lock, queueing included: two recomputations that race (a
    /// device connecting while another drops) must not store or queue their results in the
    /// other order, or a user who left stays online for everyone. The lock order is hub, then
    /// session, as everywhere.
    pub(crate) fn presence_changed(&self, user: UserId) {
        self.presence_changed_at(user, Instant::now());
    }

    /// [`Self::presence_changed`], with dropped sessions' graces judged at `now`.
    fn presence_changed_at(&self, user: UserId, now: Instant) {
        let mut state = self.lock();
        let sessions = state.sessions_of.get(&user).cloned().unwrap_or_default();
        let local = self.aggregate(&sessions, now);
        let remote = state.remote_presence.get(&user).into_iter().flatten();
        let current = remote
            .map(|(_, p)| (p.status, p.text.clone()))
            .chain(std::iter::once(local))
            .min_by_key(|(s, _)| availability(*s))
            .unwrap_or((PresenceStatus::Offline, String::new()));
        let previous =
            state.presence.get(&user).cloned().unwrap_or((PresenceStatus::Offline, String::new()));
        if previous == current {
            return;
        }
        state.presence.insert(user, current.clone());
        let bytes = presence_frame(user, current.0, &current.1);
        for session in Self::sharing_sessions(&state, user) {
            session.push_ephemeral(Hello::INTEREST_PRESENCE, bytes.clone());
        }
    }

    /// Announces the presence of users whose detached session's grace has ended by `now`
    /// (unless it came back, or another session keeps them present). Run a few times a second.
    pub(crate) fn presence_lapsed(&self, now: Instant) {
        let due: HashSet<UserId> = {
            let mut state = self.lock();
            let ended = state.lapsing.iter().take_while(|(at, _)| *at <= now).count();
            state.lapsing.drain(..ended).map(|(_, user)| user).collect()
        };
        for user in due {
            self.presence_changed_at(user, now);
        }
    }

    /// Whether `blocker` blocks `blocked`.
    pub(crate) fn blocks(&self, blocker: UserId, blocked: UserId) -> bool {
        self.lock().blocks(blocker, blocked)
    }

    /// Records a block beginning or ending (at startup and after a durable CONTACT_SET). A
    /// blocked room mate is told the blocker went offline; when the block ends, where the
    /// blocker really is.
    pub(crate) fn set_block(&self, blocker: UserId, blocked: UserId, on: bool, announce: bool) {
        // Queued under the hub lock, like every presence change (see `presence_changed`).
        let mut state = self.lock();
        let set = state.blocks.entry(blocker).or_default();
        let changed = if on { set.insert(blocked) } else { set.remove(&blocked) };
        if !changed || !announce || !state.room_mates(blocker).contains(&blocked) {
            return;
        }
        let current = state
            .presence
            .get(&blocker)
            .cloned()
            .unwrap_or((PresenceStatus::Offline, String::new()));
        let (status, text) = if on { (PresenceStatus::Offline, String::new()) } else { current };
        let bytes = presence_frame(blocker, status, &text);
        for session in state.sessions_of.get(&blocked).into_iter().flatten() {
            session.push_ephemeral(Hello::INTEREST_PRESENCE, bytes.clone());
        }
    }

    /// Queues for `session` the presence of everyone who shares a room with its user, does
    /// not block them and is not offline: what a session is told first, after WELCOME or
    /// RESUMED (spec §7.3). Under the hub lock, like every change: a change is queued either
    /// before the snapshot (which then already shows it) or after it, never overtaken by it.
    pub(crate) fn send_presence_snapshot(&self, session: &Session) {
        let state = self.lock();
        let mut frames = Vec::new();
        for u in state.room_mates(session.user) {
            if state.blocks(u, session.user) {
                continue;
            }
            let Some((status, text)) = state.presence.get(&u) else { continue };
            if *status == PresenceStatus::Offline {
                continue;
            }
            frames.push(presence_frame(u, *status, text));
        }
        session.push_snapshot(Hello::INTEREST_PRESENCE, frames);
    }

    /// The sessions of everyone who shares a room with `user` and is not blocked by them.
    fn sharing_sessions(state: &HubState, user: UserId) -> Vec<Arc<Session>> {
        let mut users = state.room_mates(user);
        users.remove(&user);
        users.retain(|u| !state.blocks(user, *u));
        users.iter().filter_map(|u| state.sessions_of.get(u)).flatten().cloned().collect()
    }

    /// Records a typing state, given on this node (`here`) or announced by another, and tells
    /// the room (except the typist).
    pub(crate) fn typing(&self, room: RoomId, user: UserId, state: TypingState, here: bool) {
        {
            let mut hub = self.lock();
            match state {
                TypingState::Stopped => {
                    hub.typing.remove(&(room, user));
                }
                // Typing here stays this node's to end, whatever the others announce.
                _ => *hub.typing.entry((room, user)).or_insert(false) |= here,
            }
        }
        self.broadcast_ephemeral(
            room,
            Some(user),
            Hello::INTEREST_TYPING,
            &Typing { room, user, state },
        );
    }

    /// A user posted: their typing in that room is over. Whether they were typing.
    pub(crate) fn clear_typing(&self, room: RoomId, user: UserId) -> bool {
        let was_typing = self.lock().typing.remove(&(room, user)).is_some();
        if was_typing {
            self.broadcast_ephemeral(
                room,
                Some(user),
                Hello::INTEREST_TYPING,
                &Typing { room, user, state: TypingState::Stopped },
            );
        }
        was_typing
    }

    /// Ends the typing `user` started on this node once none of their sessions here is
    /// attached; the rooms where it ended.
    fn clear_typing_if_offline(&self, user: UserId) -> Vec<RoomId> {
        let rooms: Vec<RoomId> = {
            let state = self.lock();
            let online = state
                .sessions_of
                .get(&user)
                .is_some_and(|list| list.iter().any(|s| s.lock().attached.is_some()));
            if online {
                return Vec::new();
            }
            let typed_here = state.typing.iter().filter(|((_, u), here)| *u == user && **here);
            typed_here.map(|((room, _), _)| *room).collect()
        };
        for room in &rooms {
            self.clear_typing(*room, user);
        }
        rooms
    }
}

#[cfg(test)]
mod tests {
    use banter_protocol::message::Message;

    use super::*;

    fn hub(backlog_bytes: usize) -> Hub {
        Hub::new(SessionLimits::uncapped(1 << 20, Duration::from_secs(60), backlog_bytes))
    }

    fn decode(frame: &Bytes) -> Message {
        let mut decoder = banter_protocol::FrameDecoder::new(65536);
        decoder.push(frame);
        decoder.next_message().unwrap().unwrap()
    }

    /// Every frame in what a writer took.
    fn frames(taken: &Bytes) -> Vec<Message> {
        let mut decoder = banter_protocol::FrameDecoder::new(65536);
        decoder.push(taken);
        std::iter::from_fn(|| decoder.next_message().unwrap()).collect()
    }

    /// A room event with `topic`, stamped per session as banterd stamps a log entry.
    fn event(room: RoomId, seq: u64, topic: &str) -> banter_protocol::message::StampedEvent {
        use banter_protocol::ids::Timestamp;
        use banter_protocol::message::{EventMeta, StampedEvent, TopicChanged};
        let meta = EventMeta { room, seq, ts: Timestamp(0), sender: UserId(9) };
        let topic = topic.try_into().unwrap();
        StampedEvent::new(&TopicChanged { event_seq: 0, meta, topic }.into()).unwrap()
    }

    /// Publishes an event with `topic` as entry `seq` of `room`, by user 2.
    fn publish_topic(hub: &Hub, room: RoomId, seq: u64, topic: &str) {
        let event = event(room, seq, topic);
        hub.publish(room, seq, UserId(2), None, |event_seq, _| event.stamp(event_seq));
    }

    /// A hub whose sessions may hold `backlog_bytes` unsent, and the one session of user 1, a
    /// member of `room`.
    fn member_session(room: RoomId, backlog_bytes: usize) -> (Hub, Arc<Session>) {
        let hub = hub(backlog_bytes);
        let session = session_in(&hub, &[room]);
        (hub, session)
    }

    /// The one session of user 1, made a member of `rooms` first.
    fn session_in(hub: &Hub, rooms: &[RoomId]) -> Arc<Session> {
        for &room in rooms {
            hub.add_member(room, UserId(1));
        }
        hub.create_session(ResumeId([0; 16]), UserId(1), SessionId(1), 7, 0)
    }

    /// A hub with small buffers: a 64 KiB replay budget at twice the backlog limit, as by
    /// default (1 MiB, 512 KiB).
    fn small_hub() -> Hub {
        Hub::new(SessionLimits::uncapped(64 * 1024, Duration::from_secs(60), 32 * 1024))
    }

    /// Everything the session's writer takes until nothing is left; no frame may be missing.
    fn take_all(session: &Session) -> Vec<Message> {
        let mut taken = Vec::new();
        loop {
            let frames = frames(&session.take_events().expect("no unsent frame was dropped"));
            if frames.is_empty() {
                return taken;
            }
            taken.extend(frames);
        }
    }

    fn topic(message: &Message) -> &str {
        let Message::TopicChanged(changed) = message else { panic!("{message:?}") };
        &changed.topic
    }

    /// Whether the session's events writer has been woken since this was last asked.
    fn woken(session: &Session) -> bool {
        use futures_util::FutureExt as _;
        let events = session.lock().wakers.events.clone();
        events.notified().now_or_never().is_some()
    }

    #[test]
    fn a_commit_group_wakes_each_events_writer_once_after_its_deliveries() {
        let room = RoomId(1);
        let (hub, session) = member_session(room, 1 << 20);
        let publish = |seq| publish_topic(&hub, room, seq, "x");
        wakes_after(|| {
            for seq in 1..=3 {
                publish(seq);
            }
            assert!(!woken(&session), "held while the group is delivered");
        });
        assert!(woken(&session));
        assert_eq!(frames(&session.take_events().unwrap()).len(), 3);
        // Outside a group, the writer is woken at once.
        publish(4);
        assert!(woken(&session));
        // Queued frames it has not taken yet need no second wake-up.
        publish(5);
        assert!(!woken(&session));
        assert_eq!(frames(&session.take_events().unwrap()).len(), 2);
    }

    #[test]
    fn a_held_back_writer_is_woken_at_half_its_backlog_and_after_a_panic() {
        let room = RoomId(1);
        let frame_len = event(room, 1, "x").stamp(1).len() + ReplayBuffer::ENTRY_BYTES;
        let (hub, session) = member_session(room, frame_len * 5 / 2);
        let publish = |seq| publish_topic(&hub, room, seq, "x");
        wakes_after(|| {
            publish(1);
            assert!(!woken(&session));
            // Two frames are past half the limit: a burst must not look like a slow reader.
            publish(2);
            assert!(woken(&session), "woken at once past half the backlog");
        });
        assert_eq!(frames(&session.take_events().unwrap()).len(), 2);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wakes_after(|| {
                publish(3);
                panic!("a delivery failed");
            })
        }));
        assert!(panicked.is_err());
        assert!(woken(&session), "what was held goes out however the group ends");
        session.take_events().unwrap();
        publish(4);
        assert!(woken(&session), "and nothing is held afterwards");
    }

    #[test]
    fn a_long_queue_is_taken_in_pieces_in_order() {
        let room = RoomId(1);
        let (hub, session) = member_session(room, 1 << 20);
        let text = "x".repeat(500);
        for seq in 1..=300 {
            publish_topic(&hub, room, seq, &text);
        }
        let mut numbers = Vec::new();
        let mut pieces = 0;
        loop {
            let taken = session.take_events().unwrap();
            if taken.is_empty() {
                break;
            }
            assert!(taken.len() < TAKE_BYTES + 600, "{} bytes in one piece", taken.len());
            numbers.extend(frames(&taken).iter().map(Message::event_seq));
            pieces += 1;
        }
        assert!(pieces >= 3, "about 150 KiB in pieces of 64 KiB: {pieces}");
        assert_eq!(numbers, (1..=300).map(Some).collect::<Vec<_>>());
        // Everything taken: the next event wakes the writer again.
        woken(&session);
        publish_topic(&hub, room, 301, "x");
        assert!(woken(&session));
    }

    #[test]
    fn a_session_past_its_backlog_is_paused_with_live_paused_then_resumed() {
        let room = RoomId(1);
        let frame_len = event(room, 1, "x").stamp(1).len() + ReplayBuffer::ENTRY_BYTES;
        // After three frames the unsent backlog is over the limit, so the fourth event pauses
        // the room instead of being queued.
        let (hub, session) = member_session(room, frame_len * 5 / 2);
        for seq in 1..=10 {
            publish_topic(&hub, room, seq, "x");
        }
        let taken = frames(&session.take_events().unwrap());
        assert_eq!(taken.len(), 4);
        let numbers: Vec<_> = taken[..3].iter().map(Message::event_seq).collect();
        assert_eq!(numbers, [Some(1), Some(2), Some(3)]);
        let Message::LivePaused(paused) = &taken[3] else { panic!("LIVE_PAUSED last") };
        assert_eq!((paused.event_seq, paused.room, paused.delivered_seq), (4, room, 3));
        publish_topic(&hub, room, 11, "x");
        assert!(session.take_events().unwrap().is_empty(), "nothing while paused");
        assert!(session.unpause(room));
        publish_topic(&hub, room, 12, "x");
        let after_unpause = frames(&session.take_events().unwrap());
        assert_eq!(after_unpause.len(), 1);
        assert_eq!(after_unpause[0].event_seq(), Some(5));
    }

    #[test]
    fn a_reader_of_tiny_frames_is_paused_before_its_replay_budget_drops_unsent_ones() {
        let room = RoomId(1);
        // Frames far smaller than their entries in the buffer.
        let hub = small_hub();
        let session = session_in(&hub, &[room]);
        for seq in 1..=20_000 {
            publish_topic(&hub, room, seq, "x");
        }
        let taken = take_all(&session);
        assert!(matches!(taken.last(), Some(Message::LivePaused(_))), "paused, not ended");
        assert!(taken.len() < 1_000, "{} frames queued past a 32 KiB backlog", taken.len());
    }

    #[test]
    fn after_a_resume_from_far_back_new_events_pause_the_rooms_and_no_unsent_frame_is_lost() {
        let room = RoomId(1);
        let hub = small_hub();
        let rooms: Vec<RoomId> = (1..=20).map(RoomId).collect();
        let session = session_in(&hub, &rooms);
        let text = "y".repeat(200);
        // Written, never acknowledged: the buffer holds its budget of them.
        for seq in 1..=1_000 {
            publish_topic(&hub, room, seq, &text);
            session.take_events().unwrap();
        }
        let oldest = (0..1_000).find(|&last| session.lock().replay.replay_after(last).is_ok());
        let resume_from = oldest.unwrap();
        session.attach_resume(8, resume_from, 0).unwrap();
        // The whole buffer is to be sent again; more events arrive, in every room, before the
        // writer takes any: each room is paused, and each pause is a frame more.
        for seq in 1_001..=1_100 {
            for &room in &rooms {
                publish_topic(&hub, room, seq, &text);
            }
        }
        let taken = take_all(&session);
        let numbers: Vec<u64> = taken.iter().filter_map(Message::event_seq).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "the replay is whole, in order");
        assert_eq!(numbers[0], resume_from + 1);
        let paused = taken.iter().filter(|m| matches!(m, Message::LivePaused(_))).count();
        assert_eq!(paused, rooms.len(), "every room is paused");
    }

    #[test]
    fn a_partial_take_leaves_the_rest_of_the_backlog_counted() {
        let room = RoomId(1);
        let (hub, session) = member_session(room, 1 << 20);
        let text = "z".repeat(500);
        for seq in 1..=200 {
            publish_topic(&hub, room, seq, &text);
        }
        let taken = frames(&session.take_events().unwrap()).len() as u64;
        assert!(taken < 200, "one take is bounded");
        // Entry `seq` of the room is the session's event `seq`.
        let left: usize = (taken + 1..=200)
            .map(|seq| event(room, seq, &text).stamp(seq).len() + ReplayBuffer::ENTRY_BYTES)
            .sum();
        assert_eq!(session.lock().unsent_bytes, left);
    }

    #[test]
    fn a_presence_snapshot_is_queued_whole_however_many_are_online() {
        let hub = hub(1 << 20);
        let room = RoomId(1);
        let online = EPHEMERAL_QUEUE as u64 + 88;
        for user in 1..=online + 1 {
            hub.add_member(room, UserId(user));
        }
        let mut id = 0u8;
        let mut session_of = |user: u64| {
            id = id.wrapping_add(1);
            let resume = ResumeId([
                id,
                (user >> 8) as u8,
                user as u8,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ]);
            hub.create_session(resume, UserId(user), SessionId(user), 7, u64::MAX)
        };
        let others: Vec<_> = (2..=online + 1).map(&mut session_of).collect();
        let me = session_of(1);
        me.take_ephemeral();
        hub.send_presence_snapshot(&me);
        let queued = me.take_ephemeral();
        // One PRESENCE per room mate online, and the user's own.
        assert_eq!(queued.len() as u64, online + 1);
        assert!(queued.iter().all(|f| matches!(decode(f), Message::Presence(_))));
        // Later frames still respect the bound: the queue never outgrows the snapshot.
        hub.send_presence_snapshot(&me);
        hub.set_status(&others[0], PresenceStatus::Away, String::new());
        assert_eq!(me.take_ephemeral().len() as u64, online + 1);
    }

    #[test]
    fn removed_members_get_nothing_and_authors_are_told_apart() {
        let hub = hub(1 << 20);
        let room = RoomId(1);
        hub.add_member(room, UserId(1));
        hub.add_member(room, UserId(2));
        let author = hub.create_session(ResumeId([1; 16]), UserId(1), SessionId(1), 1, 0);
        let other = hub.create_session(ResumeId([2; 16]), UserId(2), SessionId(2), 2, 0);
        let [to_author, to_others] = [event(room, 1, "author"), event(room, 1, "others")];
        hub.publish(room, 1, UserId(1), None, |event_seq, author| {
            if author { to_author.stamp(event_seq) } else { to_others.stamp(event_seq) }
        });
        assert_eq!(topic(&frames(&author.take_events().unwrap())[0]), "author");
        assert_eq!(topic(&frames(&other.take_events().unwrap())[0]), "others");
        hub.remove_member(room, UserId(2));
        let second = event(room, 2, "second");
        hub.publish(room, 2, UserId(1), None, |event_seq, _| second.stamp(event_seq));
        assert!(other.take_events().unwrap().is_empty());
        // A removed user still sees the entry that removes them (extra recipient).
        let removal = event(room, 3, "removal");
        hub.publish(room, 3, UserId(1), Some(UserId(2)), |event_seq, _| removal.stamp(event_seq));
        let taken = frames(&other.take_events().unwrap());
        assert_eq!(taken.len(), 1);
        assert_eq!((topic(&taken[0]), taken[0].event_seq()), ("removal", Some(2)));
    }

    #[test]
    fn security_sessions_are_capped_per_login_and_user_evicting_the_longest_detached() {
        let mut limits = SessionLimits::uncapped(1 << 20, Duration::from_secs(60), 1 << 20);
        limits.per_login = 2;
        limits.per_user = 3;
        let hub = Hub::new(limits);
        let (user, login) = (UserId(1), SessionId(1));
        let (commands, mut closes) = mpsc::unbounded_channel();
        hub.register_connection(login, 1, commands);
        let first = hub.create_session(ResumeId([1; 16]), user, login, 1, 0);
        let second = hub.create_session(ResumeId([2; 16]), user, login, 2, 0);
        // Both live: a third HELLO of the login ends the oldest live one.
        hub.create_session(ResumeId([3; 16]), user, login, 3, 0);
        assert!(hub.find_session(&ResumeId([1; 16])).is_none(), "the oldest stayed");
        assert!(matches!(
            closes.try_recv(),
            Ok(ConnCommand::Close(ErrorCode::SESSION_REPLACED, _))
        ));
        // A detached one goes before any live one.
        let _ = hub.detach(&second, 2, false);
        hub.create_session(ResumeId([4; 16]), user, login, 4, 0);
        assert!(hub.find_session(&ResumeId([2; 16])).is_none(), "the detached one stayed");
        assert!(hub.find_session(&ResumeId([3; 16])).is_some());
        // Across logins, the per-user cap holds too.
        hub.create_session(ResumeId([5; 16]), user, SessionId(2), 5, 0);
        hub.create_session(ResumeId([6; 16]), user, SessionId(3), 6, 0);
        assert_eq!(hub.session_count(), 3);
        drop(first);
    }

    /// The presence updates queued for `session`.
    fn presence(session: &Session) -> Vec<(UserId, PresenceStatus)> {
        session
            .take_ephemeral()
            .iter()
            .filter_map(|frame| match decode(frame) {
                Message::Presence(p) => Some((p.user, p.status)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_dropped_session_counts_for_presence_until_its_grace_ends_or_the_server_ends_it() {
        let mut limits = SessionLimits::uncapped(1 << 20, Duration::from_secs(60), 1 << 20);
        limits.presence_grace = Duration::from_secs(30);
        let hub = Hub::new(limits);
        let (room, (ada, bob)) = (RoomId(1), (UserId(1), UserId(2)));
        hub.add_member(room, ada);
        hub.add_member(room, bob);
        let watcher =
            hub.create_session(ResumeId([1; 16]), ada, SessionId(1), 1, Hello::INTEREST_ALL);
        let phone = hub.create_session(ResumeId([2; 16]), bob, SessionId(2), 2, 0);
        assert_eq!(presence(&watcher), [(bob, PresenceStatus::Online)]);

        // Dropped: nothing to tell until the grace ends (and nothing if it came back).
        let _ = hub.detach(&phone, 2, false);
        hub.presence_lapsed(Instant::now());
        assert_eq!(presence(&watcher), []);
        hub.presence_lapsed(Instant::now() + Duration::from_secs(31));
        assert_eq!(presence(&watcher), [(bob, PresenceStatus::Offline)]);

        // A session the server ends stops counting at once, grace or not (the phone's ended
        // too: by the clock, its grace has not).
        hub.revoke_login(SessionId(2), ErrorCode::SESSION_REVOKED, "logged out");
        assert_eq!(presence(&watcher), []);
        let laptop = hub.create_session(ResumeId([3; 16]), bob, SessionId(3), 3, 0);
        assert_eq!(presence(&watcher), [(bob, PresenceStatus::Online)]);
        let _ = hub.detach(&laptop, 3, false);
        assert_eq!(presence(&watcher), []);
        hub.revoke_login(SessionId(3), ErrorCode::SESSION_REVOKED, "logged out");
        assert_eq!(presence(&watcher), [(bob, PresenceStatus::Offline)]);
    }

    #[test]
    fn another_nodes_presence_is_shown_until_it_stops_being_refreshed() {
        let hub = hub(1 << 20);
        let (room, (ada, bob)) = (RoomId(1), (UserId(1), UserId(2)));
        hub.add_member(room, ada);
        hub.add_member(room, bob);
        let watcher =
            hub.create_session(ResumeId([1; 16]), ada, SessionId(1), 1, Hello::INTEREST_ALL);
        let now = Instant::now();
        let away = vec![(bob, PresenceStatus::Away, "lunch".to_owned())];
        hub.remote_presence(7, away.clone(), now + Duration::from_secs(3));
        assert_eq!(presence(&watcher), [(bob, PresenceStatus::Away)]);
        // Refreshed, unchanged: nothing new to tell.
        hub.remote_presence(7, away, now + Duration::from_secs(6));
        assert_eq!(presence(&watcher), []);
        hub.expire_remote_presence(now + Duration::from_secs(5));
        assert_eq!(presence(&watcher), []);
        // Node 7 stopped announcing (it died): bob goes offline here.
        hub.expire_remote_presence(now + Duration::from_secs(7));
        assert_eq!(presence(&watcher), [(bob, PresenceStatus::Offline)]);
        // A node that no longer lists a user has no session of theirs any more.
        hub.remote_presence(
            8,
            vec![(bob, PresenceStatus::Online, String::new())],
            now + Duration::from_secs(9),
        );
        hub.remote_presence(8, Vec::new(), now + Duration::from_secs(9));
        assert_eq!(
            presence(&watcher),
            [(bob, PresenceStatus::Online), (bob, PresenceStatus::Offline)]
        );
    }

    #[test]
    fn security_a_login_leaves_no_connection_entry_behind() {
        let hub = hub(1 << 20);
        let (commands, _rx) = mpsc::unbounded_channel();
        hub.register_connection(SessionId(4), 9, commands);
        hub.unregister_connection(SessionId(4), 9);
        assert!(hub.lock().connections.is_empty());
    }
}
