//! # banter-tests
//!
//! End-to-end tests: a real banterd (in process, on loopback, with a temporary sled data dir)
//! and real clients ([`banter_client::Connection`]) over real QUIC. [`TestServer`] starts and
//! restarts servers; [`TestUser`] is a registered, authenticated client with helpers for the
//! requests tests make most.

use std::net::SocketAddr;
use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{
    AuditEntry, AuditQuery, AuthOk, DmOpen, EventAck, Message, Post, RoomConfigure, RoomCreate,
    RoomInfo, RoomInvite, RoomJoin, Visibility, Welcome,
};
use banter_client::{Connection, Event, Options, RequestError, Trust};
use banter_server::Server;
use banter_server::config::Config;
use tokio::sync::mpsc;

pub mod child;
mod impaired;
pub mod nats;
pub mod postgres;
pub mod voice;

pub use impaired::{ImpairedPath, Impairment};

/// Settings for a node of a cluster on `postgres` and `nats` (issue 17), with a head check
/// every 200 ms so that tests of what the bus lost run quickly.
pub fn clustered(
    postgres: &postgres::TestPostgres,
    nats: &nats::TestNats,
) -> impl FnOnce(&mut Config) + use<> {
    use banter_server::config::{BusKind, StoreKind};
    let (database, bus) = (postgres.url(), nats.url());
    move |config| {
        config.store = StoreKind::Postgres;
        config.database_url = database;
        config.bus = BusKind::Nats;
        config.nats_url = bus;
        config.bus_head_check_ms = 200;
    }
}

/// How long a test waits for something the server should send.
pub const WAIT: Duration = Duration::from_secs(10);

/// A banterd on loopback with its own temporary data dir; or, with
/// `BANTER_TEST_BACKEND=cluster`, three nodes of a cluster on a PostgreSQL and a nats-server
/// of their own, whose users are spread over the nodes (one end-to-end suite, two backends:
/// scripts/test runs the chat, resume, moderation, files and voice tests both ways).
#[derive(Debug)]
pub struct TestServer {
    server: Option<Server>,
    config: Config,
    dir: tempfile::TempDir,
    /// The other nodes, in the cluster backend.
    cluster: Option<Cluster>,
}

/// What the cluster backend adds to the first node.
#[derive(Debug)]
struct Cluster {
    others: Vec<TestServer>,
    /// Which node the next user connects to.
    next: std::sync::atomic::AtomicUsize,
    // Dropped after the nodes (fields drop in order).
    _nats: nats::TestNats,
    _postgres: postgres::TestPostgres,
}

/// A small deterministic generator (xorshift64*) for tests that act at random but must be
/// reproducible from their seed.
#[derive(Debug, Clone)]
pub struct Dice(pub u64);

impl Dice {
    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Whether `BANTER_TEST_BACKEND` asks for a cluster (`cluster`) rather than one node on sled
/// (`sled`, the default).
fn cluster_backend() -> bool {
    match std::env::var("BANTER_TEST_BACKEND").as_deref() {
        Ok("cluster") => true,
        Ok("sled") | Err(_) => false,
        Ok(other) => panic!("BANTER_TEST_BACKEND is sled or cluster, not {other:?}"),
    }
}

impl TestServer {
    /// A server with test-friendly settings (cheap password hashing, loose rate limits).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server with settings adjusted by `adjust` (a cluster of three in the cluster
    /// backend, each node adjusted so).
    pub async fn start_with(adjust: impl Fn(&mut Config)) -> Self {
        if !cluster_backend() {
            return Self::node(adjust).await;
        }
        let postgres = postgres::TestPostgres::start();
        let nats = nats::TestNats::start();
        let dir = tempfile::tempdir().expect("temp dir");
        // One files directory for the cluster: the first node's, where tests look.
        let files = dir.path().join("files");
        let node = |config: &mut Config| {
            clustered(&postgres, &nats)(config);
            config.files_dir = files.clone();
            adjust(config);
        };
        let mut first = Self::start_in(dir, node).await;
        let mut others = Vec::new();
        for _ in 0..2 {
            others.push(Self::start_beside(&first, node).await);
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        first.cluster = Some(Cluster { others, next, _nats: nats, _postgres: postgres });
        first
    }

    /// One node with settings adjusted by `adjust`, whatever the backend: for what is per
    /// node (metrics, rate limits and caps per connection or address, sled itself), and the
    /// nodes the cluster tests build their clusters of.
    pub async fn node(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), adjust).await
    }

    /// Another node of `first`'s cluster: its own data dir, holding a copy of `first`'s
    /// signing key and certificate (as an operator distributes them), so that tokens and
    /// certificate pins hold on both.
    pub async fn start_beside(first: &Self, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["server.key", "cert.pem", "cert-key.pem"] {
            std::fs::copy(first.data_dir().join(name), dir.path().join(name)).expect("identity");
        }
        Self::start_in(dir, adjust).await
    }

    async fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("literal"),
            data_dir: dir.path().to_owned(),
            // Cheap hashing keeps tests fast; production defaults are OWASP's.
            argon2_memory_kib: 256,
            argon2_iterations: 1,
            ..Config::default()
        };
        for bucket in config.rate.values_mut() {
            bucket.burst = 10_000;
            bucket.per_minute = 600_000;
        }
        adjust(&mut config);
        let server = Server::start(config.clone()).await.expect("banterd starts");
        // Restarts reuse the port, so clients can reconnect to the same address.
        config.listen = server.local_addr();
        Self { server: Some(server), config, dir, cluster: None }
    }

    /// Where the next user connects: this node, or the cluster's nodes in turn.
    fn next_addr(&self) -> SocketAddr {
        let Some(cluster) = &self.cluster else { return self.addr() };
        let n = cluster.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match n % (cluster.others.len() + 1) {
            0 => self.addr(),
            i => cluster.others[i - 1].addr(),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    /// Where `/metrics` and `/healthz` are served (when `metrics` is on).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().and_then(Server::metrics_addr)
    }

    /// The data dir.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Graceful shutdown, then a new server on the same data dir and port (every node of a
    /// cluster).
    pub async fn restart(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            for node in &mut cluster.others {
                Box::pin(node.restart()).await;
            }
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        // The OS may hold the UDP port for a moment after the endpoint closes.
        for _ in 0..50 {
            match Server::start(self.config.clone()).await {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("banterd did not restart");
    }

    /// Stops the server (every node of a cluster).
    pub async fn stop(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            for node in &mut cluster.others {
                Box::pin(node.stop()).await;
            }
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// A raw connection (not registered or authenticated).
    pub async fn connect(&self) -> (Connection, mpsc::UnboundedReceiver<Event>) {
        connect(self.addr()).await
    }

    /// Registers `name` and authenticates a connection as them.
    pub async fn user(&self, name: &str) -> TestUser {
        self.user_with(name, Options::new(Trust::AcceptAny, "localhost")).await
    }

    /// Registers `name` and authenticates a connection made with `options` (to the next
    /// node, in a cluster).
    pub async fn user_with(&self, name: &str, options: Options) -> TestUser {
        self.user_via(name, self.next_addr(), options).await
    }

    /// Registers `name` and authenticates a connection made to `addr` (a path to this server,
    /// such as an [`ImpairedPath`]).
    pub async fn user_via(&self, name: &str, addr: SocketAddr, options: Options) -> TestUser {
        let (conn, events) = Connection::connect(addr, options).await.expect("connect");
        let auth = conn.register(name, "correct horse battery").await.expect("register");
        TestUser::authenticate(conn, events, auth).await
    }

    /// Another authenticated connection (a second device) of an existing user (to the next
    /// node, in a cluster).
    pub async fn login(&self, name: &str) -> TestUser {
        let (conn, events) = connect(self.next_addr()).await;
        let auth = conn.login(name, "correct horse battery").await.expect("login");
        TestUser::authenticate(conn, events, auth).await
    }
}

/// Connects to `addr`, accepting its certificate.
pub async fn connect(addr: SocketAddr) -> (Connection, mpsc::UnboundedReceiver<Event>) {
    let options = Options::new(Trust::AcceptAny, "localhost");
    Connection::connect(addr, options).await.expect("connect")
}

/// A registered user with an authenticated connection.
#[derive(Debug)]
pub struct TestUser {
    /// The connection.
    pub conn: Connection,
    /// What the server pushes.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The tokens.
    pub auth: AuthOk,
    /// The session's WELCOME.
    pub welcome: Welcome,
}

impl TestUser {
    /// Sends HELLO with `auth` and waits for WELCOME.
    pub async fn authenticate(
        conn: Connection,
        mut events: mpsc::UnboundedReceiver<Event>,
        auth: AuthOk,
    ) -> Self {
        conn.hello(&auth.access_token);
        let welcome = loop {
            match next(&mut events).await {
                Event::Welcome(welcome) => break welcome,
                Event::Rejected(error) => panic!("HELLO rejected: {error:?}"),
                _ => {}
            }
        };
        Self { conn, events, auth, welcome }
    }

    /// The next pushed event.
    pub async fn next_event(&mut self) -> Event {
        next(&mut self.events).await
    }

    /// The next ephemeral frame that `wanted` accepts, skipping the others; panics saying
    /// `what` did not arrive when none does within [`WAIT`].
    pub async fn ephemeral(&mut self, what: &str, wanted: impl Fn(&Message) -> bool) -> Message {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Event::Ephemeral(message) = self.next_event().await {
                    if wanted(&message) {
                        return message;
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what} did not arrive"))
    }

    /// Whatever the user is sent on the ephemeral stream within `wait`.
    pub async fn ephemeral_within(&mut self, wait: Duration) -> Vec<Message> {
        let mut seen = Vec::new();
        let _ = tokio::time::timeout(wait, async {
            loop {
                if let Event::Ephemeral(message) = self.next_event().await {
                    seen.push(message);
                }
            }
        })
        .await;
        seen
    }

    /// The next frame of the events stream, skipping ephemeral traffic.
    pub async fn next_room_event(&mut self) -> Message {
        loop {
            match self.next_event().await {
                Event::Room(message) => return message,
                Event::Closed { reason, .. } => panic!("connection closed: {reason}"),
                _ => {}
            }
        }
    }

    /// Waits until the connection closes; returns the close code and reason.
    pub async fn closed(&mut self) -> (Option<ErrorCode>, String) {
        loop {
            if let Event::Closed { code, reason } = self.next_event().await {
                return (code, reason);
            }
        }
    }

    /// Creates a public (or private) room.
    pub async fn create_room(&self, name: &str, private: bool) -> RoomId {
        self.create(name, private, false).await
    }

    /// Creates a public room that carries voice.
    pub async fn create_voice_room(&self, name: &str) -> RoomId {
        self.create(name, false, true).await
    }

    async fn create(&self, name: &str, private: bool, voice: bool) -> RoomId {
        let request = RoomCreate {
            name: Text::new(name).expect("short"),
            topic: Text::default(),
            category: Text::default(),
            visibility: if private { Visibility::Private } else { Visibility::Public },
            voice,
        };
        match self.conn.request_one(request).await.expect("create room") {
            Message::RoomInfo(RoomInfo { room }) => room.room,
            other => panic!("expected ROOM_INFO, got {other:?}"),
        }
    }

    /// Joins a room.
    pub async fn join(&self, room: RoomId) -> Result<Message, RequestError> {
        self.conn.request_one(RoomJoin { room }).await
    }

    /// Lets `room`'s members post anonymously (ROOM_CONFIGURE; the caller moderates it).
    pub async fn allow_anonymous(&self, room: RoomId) {
        let request = RoomConfigure {
            room,
            slow_mode_s: None,
            locked: None,
            anonymous: Some(true),
            stage: None,
        };
        self.conn.request_one(request).await.expect("anonymous posts allowed");
    }

    /// Opens (or reopens) the direct room with `username`.
    pub async fn open_dm(&self, username: &str) -> Result<RoomId, RequestError> {
        let request = DmOpen { username: Text::new(username).expect("short") };
        match self.conn.request_one(request).await? {
            Message::RoomInfo(RoomInfo { room }) => Ok(room.room),
            other => panic!("expected ROOM_INFO, got {other:?}"),
        }
    }

    /// Adds `username` to a room (ROOM_INVITE).
    pub async fn add(&self, room: RoomId, username: &str) -> Result<Message, RequestError> {
        let username = Text::new(username).expect("short");
        self.conn.request_one(RoomInvite { room, username }).await
    }

    /// Posts with a given client message id.
    pub async fn post_with_id(
        &self,
        room: RoomId,
        id: u128,
        text: &str,
    ) -> Result<EventAck, RequestError> {
        let request = Post {
            room,
            client_msg_id: id,
            text: Text::new(text).expect("short"),
            reply_to: None,
            anonymous: false,
        };
        match self.conn.request_one(request).await? {
            Message::EventAck(ack) => Ok(ack),
            other => panic!("expected EVENT_ACK, got {other:?}"),
        }
    }

    /// Posts with a fresh client message id.
    pub async fn post(&self, room: RoomId, text: &str) -> Result<EventAck, RequestError> {
        self.post_with_id(room, fresh_id(), text).await
    }

    /// The newest `limit` entries of a room's audit log, newest first (must be allowed).
    pub async fn audit(&self, room: RoomId, limit: u16) -> Vec<AuditEntry> {
        match self.conn.request_one(AuditQuery { room: Some(room), before: None, limit }).await {
            Ok(Message::AuditPage(page)) => page.entries.into_vec(),
            other => panic!("expected AUDIT_PAGE, got {other:?}"),
        }
    }
}

/// Reads with `read` until it gives `expected` or [`WAIT`] has passed; what it read last.
/// For reads a cluster's node answers from what it has heard (history stops at the newest
/// entry the node has delivered): they catch up a moment after a write on another node.
pub async fn settled<T: PartialEq>(expected: &T, mut read: impl AsyncFnMut() -> T) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = read().await;
        if got == *expected || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A random 128-bit client message id.
pub fn fresh_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos << 32) ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

async fn next(events: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event within the wait")
        .expect("event stream open")
}

/// A plain HTTP/1.0 GET: the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// `name{labels}` → value, from the OpenMetrics text of a `/metrics` scrape (the `node` label
/// left out).
pub fn metric_samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (without_node(k), v.parse().unwrap())))
        .collect()
}

/// A series' name and labels without the `node` label every series of a node carries.
fn without_node(series: &str) -> String {
    let Some((name, labels)) = series.split_once('{') else { return series.to_owned() };
    let labels: Vec<&str> = labels
        .trim_end_matches('}')
        .split(',')
        .filter(|label| !label.is_empty() && !label.starts_with("node="))
        .collect();
    if labels.is_empty() { name.to_owned() } else { format!("{name}{{{}}}", labels.join(",")) }
}
