//! News between nodes (issue 17). A node that commits an entry announces it on the bus; every
//! other node delivers it to its own sessions ([`crate::fanout`]). The bus may lose or delay
//! messages, and the design does not care: a gap is filled from the database, and the rooms
//! this node's sessions are in are checked against the database's heads every
//! `bus_head_check_ms`, so an entry whose announcement was lost arrives within that bound.
//! With one node there is nobody to tell.
//!
//! NATS core pub/sub (at most once) is enough for that: one subject per room,
//! `banter.room.<id>`, carrying only which seq was committed; receivers read the entry from
//! the database, so nothing of a room's content crosses the bus and a forged announcement can
//! deliver nothing that is not committed. NATS should still be private and authenticated
//! (credentials in `nats_url`): forged control news (below) would act on users. What
//! the hub keeps in memory and no entry carries goes on `banter.control`: logins ended (so a
//! password reset or a revoked session closes connections on every node) and blocks. Those
//! are best effort over the bus; the database still refuses a revoked login's next HELLO
//! or refresh on any node. So do receipts and contact updates (frames for a room's members
//! or a user's sessions), and login attempts (each node charges the account's bucket
//! for attempts made on the others). Soft state goes there too: typing, presence and voice rosters,
//! each node's presence and rosters repeated every head check and forgotten after three
//! missed ones (a dead node's users go offline and leave voice within that bound).
//!
//! Voice packets take `banter.voice.<room>`, once per speaker packet (NATS hands it to
//! every node subscribed, not to every listener, and drops what nobody takes); a node
//! subscribes to the rooms it has participants in, before it answers a VOICE_JOIN. The
//! connection is `no_echo`: a node never hears itself.

use std::collections::HashMap;
use std::sync::{Arc, Weak, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use banter_protocol::ErrorCode;
use banter_protocol::ids::{RoomId, SessionId, UserId};
use banter_protocol::message::{PresenceStatus, TypingState, VoiceParticipant};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{BusKind, Config};
use crate::requests::Appended;
use crate::store::keys;
use crate::store::records::RoomRecord;
use crate::voice::{Decided, VoiceNotice};
use crate::{Shared, StartError, announce_voice, deliver_voice};

/// Voice packets waiting for NATS: about a second of 20 busy speakers.
const VOICE_QUEUE: usize = 1024;

/// Committed entries, per room.
const ENTRIES: &str = "banter.room.*";
/// Everything else but voice packets.
const CONTROL: &str = "banter.control";

fn subject(news: &News) -> String {
    match news {
        News::Entry { room, .. } => format!("banter.room.{room}"),
        News::LoginsEnded { .. }
        | News::Block { .. }
        | News::Typing { .. }
        | News::Presence { .. }
        | News::AuthAttempt { .. }
        | News::RoomFrame { .. }
        | News::UserFrame { .. }
        | News::Voice(_)
        | News::VoiceModerated(_)
        | News::VoiceRosters(_) => CONTROL.to_owned(),
    }
}

fn voice_subject(room: RoomId) -> String {
    format!("banter.voice.{}", room.0)
}

/// What one node tells the others.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    /// The announcing node (a random id per process): whose presence and rosters these are.
    node: u64,
    news: News,
}

#[derive(Debug, Serialize, Deserialize)]
enum News {
    /// A room has a committed entry at `seq` (its content stays in the database).
    Entry { room: u64, seq: u64 },
    /// Login sessions that ended: their connections close, wherever they are.
    LoginsEnded { logins: Vec<u64>, reason: String },
    /// `blocker` blocks (or no longer blocks) `blocked`.
    Block { blocker: u64, blocked: u64, on: bool },
    /// A typing notice (spec §6.5), for the room's members on other nodes.
    Typing { room: u64, user: u64, state: TypingState },
    /// The presence of every user with a session on the announcing node, as seen there
    /// alone; repeated every head check, and forgotten after three missed ones.
    Presence { users: Vec<(u64, PresenceStatus, String)> },
    /// An ephemeral frame (encoded) for a room's members here (receipts).
    RoomFrame { room: RoomId, except: Option<UserId>, interest: u64, frame: Vec<u8> },
    /// An ephemeral frame (encoded) for a user's sessions (contacts, private markers).
    UserFrame { user: UserId, frame: Vec<u8> },
    /// Someone tried to log in to this account here (spec §12.4): the other nodes charge the
    /// account's bucket too, so guessing a password across nodes is as slow as on one.
    AuthAttempt { username: String },
    /// A participant here joined, changed, left, started or stopped talking.
    Voice(VoiceNotice),
    /// A moderator here decided about `target`'s voice, who is in it on another node too.
    VoiceModerated(Decided),
    /// Every voice participant on the announcing node, by room; repeated like presence.
    VoiceRosters(Vec<(RoomId, Vec<VoiceParticipant>)>),
}

/// Where committed entries are announced.
#[derive(Debug, Default)]
pub(crate) enum Bus {
    /// One node: nobody else to tell.
    #[default]
    Local,
    /// NATS: announcements queue for the publishing task (the writer never waits on it).
    Nats {
        /// This process's id in announcements.
        node: u64,
        outbox: mpsc::UnboundedSender<(String, Bytes)>,
        /// Voice packets, apart: bounded, dropped when NATS cannot keep up (never delayed).
        voice: mpsc::Sender<(String, Bytes)>,
        /// The connection, for its state (/healthz).
        client: async_nats::Client,
    },
}

/// A connected bus, before the server has its shared state: what [`serve`] runs on.
pub(crate) struct Connected {
    client: async_nats::Client,
    entries: async_nats::Subscriber,
    control: async_nats::Subscriber,
    outbox: mpsc::UnboundedReceiver<(String, Bytes)>,
    voice: mpsc::Receiver<(String, Bytes)>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected").finish_non_exhaustive()
    }
}

impl Bus {
    /// The bus the configuration names; for NATS, connected and subscribed.
    pub(crate) async fn connect(config: &Config) -> Result<(Self, Option<Connected>), StartError> {
        match config.bus {
            BusKind::Local => Ok((Self::Local, None)),
            BusKind::Nats => {
                let client = async_nats::ConnectOptions::new()
                    .no_echo()
                    .connect(&config.nats_url)
                    .await
                    .map_err(|e| {
                        StartError::Config(format!("NATS at {:?}: {e}", config.nats_url))
                    })?;
                let subscribe = |subject| {
                    let client = client.clone();
                    async move {
                        client
                            .subscribe(subject)
                            .await
                            .map_err(|e| StartError::Config(format!("NATS subscribe: {e}")))
                    }
                };
                let entries = subscribe(ENTRIES).await?;
                let control = subscribe(CONTROL).await?;
                let (outbox_tx, outbox) = mpsc::unbounded_channel();
                let (voice_tx, voice) = mpsc::channel(VOICE_QUEUE);
                let node = crate::rand_u64();
                let connected =
                    Connected { client: client.clone(), entries, control, outbox, voice };
                let bus =
                    Self::Nats { node, outbox: outbox_tx, voice: voice_tx, client: client.clone() };
                Ok((bus, Some(connected)))
            }
        }
    }

    /// Whether the bus is reachable now (/healthz): NATS connected, or no bus to reach.
    pub(crate) fn reachable(&self) -> Result<(), String> {
        match self {
            Self::Local => Ok(()),
            Self::Nats { client, .. } => match client.connection_state() {
                async_nats::connection::State::Connected => Ok(()),
                state => Err(format!("bus: NATS {state}")),
            },
        }
    }

    /// Announces an entry this node committed (never blocks the writer).
    pub(crate) fn announce(&self, appended: &Appended) {
        self.tell(|| News::Entry { room: appended.room.0, seq: appended.seq });
    }

    /// Announces login sessions that ended here (their connections elsewhere close too).
    pub(crate) fn logins_ended(&self, logins: &[SessionId], reason: &str) {
        self.tell(|| News::LoginsEnded {
            logins: logins.iter().map(|l| l.0).collect(),
            reason: reason.to_owned(),
        });
    }

    /// Announces a typing notice given here.
    pub(crate) fn typing(&self, room: RoomId, user: UserId, state: TypingState) {
        self.tell(|| News::Typing { room: room.0, user: user.0, state });
    }

    /// Announces a block set or lifted here.
    pub(crate) fn block(&self, blocker: UserId, blocked: UserId, on: bool) {
        self.tell(|| News::Block { blocker: blocker.0, blocked: blocked.0, on });
    }

    /// Announces an ephemeral frame for `room`'s members.
    pub(crate) fn room_frame(
        &self,
        room: RoomId,
        except: Option<UserId>,
        interest: u64,
        frame: &[u8],
    ) {
        self.tell(|| News::RoomFrame { room, except, interest, frame: frame.to_vec() });
    }

    /// Announces an ephemeral frame for `user`'s sessions.
    pub(crate) fn user_frame(&self, user: UserId, frame: &[u8]) {
        self.tell(|| News::UserFrame { user, frame: frame.to_vec() });
    }

    /// Announces a login attempt for `username` (lower case) made here.
    pub(crate) fn auth_attempt(&self, username: &str) {
        self.tell(|| News::AuthAttempt { username: username.to_owned() });
    }

    /// Announces what changed in voice here (participants here only).
    pub(crate) fn voice(&self, notices: &[VoiceNotice]) {
        for notice in notices {
            self.tell(|| News::Voice(notice.clone()));
        }
    }

    /// Announces a moderator's decision about a user in voice on another node.
    pub(crate) fn voice_moderated(&self, decided: Decided) {
        self.tell(|| News::VoiceModerated(decided));
    }

    /// Waits (a second at most) until `room`'s packets from other nodes reach this node, so
    /// that a participant who just joined hears the others from the start.
    pub(crate) async fn voice_ready(&self, voice: &crate::voice::Voice, room: RoomId) {
        if matches!(self, Self::Local) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while !voice.is_subscribed(room) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Hands a relayed voice packet to the nodes with participants in `room`.
    pub(crate) fn voice_packet(&self, room: RoomId, packet: Bytes) -> Result<(), &'static str> {
        match self {
            Self::Local => Ok(()),
            Self::Nats { voice, .. } => {
                voice.try_send((voice_subject(room), packet)).map_err(|_| "bus_backlog")
            }
        }
    }

    fn tell(&self, news: impl FnOnce() -> News) {
        let Self::Nats { node, outbox, .. } = self else { return };
        let news = news();
        let subject = subject(&news);
        match postcard::to_stdvec(&Announcement { node: *node, news }) {
            Ok(bytes) => {
                let _ = outbox.send((subject, bytes.into()));
            }
            Err(error) => tracing::warn!(%error, "could not encode an announcement"),
        }
    }
}

/// Runs the bus for `shared`: a task publishing this node's announcements, a task taking the
/// others', and a thread delivering those (it reads the database to fill gaps, which must not
/// block the async runtime) and checking room heads. All end with the server.
pub(crate) fn serve(shared: &Arc<Shared>, bus: Connected, mut shutdown: watch::Receiver<bool>) {
    let Connected { client, entries, control, mut outbox, mut voice } = bus;
    let publisher = client.clone();
    tokio::spawn(async move {
        loop {
            let (subject, bytes) = tokio::select! {
                Some(news) = outbox.recv() => news,
                Some(packet) = voice.recv() => packet,
                else => return,
            };
            // At most once: a lost entry is found by the receivers' head checks.
            if let Err(error) = publisher.publish(subject, bytes).await {
                tracing::debug!(%error, "announcement not published");
            }
        }
    });
    tokio::spawn(carry_voice(shared.clone(), client, shutdown.clone()));
    let (arrivals, inbox) = std_mpsc::channel::<Vec<u8>>();
    let mut subscriber = futures_util::stream::select(entries, control);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                message = subscriber.next() => match message {
                    Some(message) => {
                        if arrivals.send(message.payload.to_vec()).is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    });
    let shared = Arc::downgrade(shared);
    let every = Duration::from_millis(shared_config(&shared).map_or(1000, |c| c.bus_head_check_ms));
    let spawned = std::thread::Builder::new()
        .name("banter-bus".into())
        .spawn(move || deliver_arrivals(&shared, &inbox, every));
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the bus thread");
    }
}

fn shared_config(shared: &Weak<Shared>) -> Option<Config> {
    shared.upgrade().map(|shared| shared.config.clone())
}

/// Delivers other nodes' announcements, and checks heads every `every`; ends when the
/// server is gone.
fn deliver_arrivals(shared: &Weak<Shared>, inbox: &std_mpsc::Receiver<Vec<u8>>, every: Duration) {
    let mut next_check = Instant::now() + every;
    loop {
        let wait = next_check.saturating_duration_since(Instant::now());
        let arrival = inbox.recv_timeout(wait);
        let Some(shared) = shared.upgrade() else { return };
        match arrival {
            Ok(bytes) => match postcard::from_bytes::<Announcement>(&bytes) {
                Ok(a) => hear(&shared, a.node, a.news, 3 * every),
                Err(error) => tracing::warn!(%error, "an announcement that does not decode"),
            },
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next_check {
            check_heads(&shared);
            let users = shared.hub.local_presence();
            let users = users.into_iter().map(|(user, status, text)| (user.0, status, text));
            shared.bus.tell(|| News::Presence { users: users.collect() });
            let bus = &shared.bus;
            shared.voice.announce_local_rosters(|r| bus.tell(|| News::VoiceRosters(r)));
            shared.hub.expire_remote_presence(Instant::now());
            deliver_voice(&shared, shared.voice.expire_other_nodes(Instant::now()));
            next_check = Instant::now() + every;
        }
    }
}

/// Acts on `node`'s news; its presence and voice rosters hold for `ttl` unless announced
/// again.
fn hear(shared: &Shared, node: u64, news: News, ttl: Duration) {
    let expires = Instant::now() + ttl;
    match news {
        News::Entry { room, seq } => shared.fanout.announced(shared, RoomId(room), seq),
        News::LoginsEnded { logins, reason } => {
            for login in logins {
                shared.hub.revoke_login(SessionId(login), ErrorCode::SESSION_REVOKED, &reason);
            }
        }
        News::Block { blocker, blocked, on } => {
            shared.hub.set_block(UserId(blocker), UserId(blocked), on, true);
        }
        News::Typing { room, user, state } => {
            shared.hub.typing(RoomId(room), UserId(user), state, false);
        }
        News::Presence { users } => {
            let users = users.into_iter().map(|(user, status, text)| (UserId(user), status, text));
            shared.hub.remote_presence(node, users.collect(), expires);
        }
        News::RoomFrame { room, except, interest, frame } => {
            shared.hub.broadcast_encoded(room, except, interest, frame.into());
        }
        News::UserFrame { user, frame } => shared.hub.to_user_encoded(user, frame.into()),
        News::AuthAttempt { username } => {
            // Charged whether or not a token is left: the attempt was made.
            let _ = shared.auth_user_limiter.check(username, Instant::now());
        }
        News::Voice(notice) => {
            shared.voice.changed_elsewhere(node, &notice, expires);
            deliver_voice(shared, vec![notice]);
        }
        News::VoiceModerated(decided) => {
            announce_voice(shared, shared.voice.moderate(decided).notices);
        }
        News::VoiceRosters(rosters) => {
            deliver_voice(shared, shared.voice.roster_elsewhere(node, rosters, expires));
        }
    }
}

/// Takes other nodes' voice packets for the rooms with participants here (one subscription
/// per room, following [`crate::voice::Voice::rooms_changed`]) and relays them to those
/// participants, until the server stops.
async fn carry_voice(
    shared: Arc<Shared>,
    client: async_nats::Client,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut subscribed: HashMap<RoomId, JoinHandle<()>> = HashMap::new();
    loop {
        let changed = shared.voice.rooms_changed.notified();
        let wanted = shared.voice.local_rooms();
        subscribed.retain(|room, task| {
            let keep = wanted.contains(room) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for room in wanted {
            if subscribed.contains_key(&room) {
                continue;
            }
            match client.subscribe(voice_subject(room)).await {
                Ok(packets) => {
                    let relay = relay_packets(Arc::downgrade(&shared), room, packets);
                    subscribed.insert(room, tokio::spawn(relay));
                }
                Err(error) => tracing::warn!(%error, room = room.0, "no voice from other nodes"),
            }
        }
        // Once NATS has answered a flush, it has taken the subscriptions.
        if client.flush().await.is_ok() {
            shared.voice.set_subscribed(subscribed.keys().copied().collect());
        }
        tokio::select! {
            () = changed => {}
            _ = shutdown.changed() => break,
            // A subscription that failed is tried again.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    for task in subscribed.into_values() {
        task.abort();
    }
}

async fn relay_packets(shared: Weak<Shared>, room: RoomId, mut packets: async_nats::Subscriber) {
    while let Some(message) = packets.next().await {
        let Some(shared) = shared.upgrade() else { return };
        let now = Instant::now();
        let voice = &shared.voice;
        for (listener, packet) in voice.relay_from_other_node(room, message.payload) {
            match listener.send(packet, now) {
                Ok(()) => {
                    voice.metrics.relayed.inc();
                }
                Err(reason) => voice.metrics.drop(reason),
            }
        }
    }
}

/// Fills whatever the database holds beyond what was delivered, for every room a session
/// here is in.
fn check_heads(shared: &Shared) {
    for room in shared.hub.rooms_with_local_sessions() {
        match shared.store.get::<RoomRecord>(&keys::room(room)) {
            Ok(Some(record)) if record.last_seq > shared.hub.head(room) => {
                shared.fanout.fill(shared, room, record.last_seq);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "head check failed; next time");
                return;
            }
        }
    }
}
