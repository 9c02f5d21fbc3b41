//! `banter-bench`: a load generator that opens many real QUIC connections to a running banterd
//! from one process and measures named workloads.
//!
//! ```text
//! banter-bench --server 127.0.0.1:4433 fanout --members 100 --messages 1000 [--rate 1000]
//! banter-bench --server 127.0.0.1:4433 durable --clients 32 --messages 500
//! banter-bench --server 127.0.0.1:4433 rooms --rooms 100 --members 10 --rate 5
//! banter-bench --server 127.0.0.1:4433 voice --speakers 20 --listeners 0 --seconds 10
//! banter-bench --server 127.0.0.1:4433 seed --users 10000 --rooms 1000 --messages 1000000 [--queries 200]
//! banter-bench --server 127.0.0.1:4433 soak --rooms 10 --members 5 --seconds 3600 --plot soak.png
//! ```
//!
//! The server must allow the load: start it with cheap password hashing (the workloads
//! register their users) and raised rate limits, e.g.
//! `BANTER_ARGON2_MEMORY_KIB=1024 BANTER_ARGON2_ITERATIONS=1 BANTER_RATE_MESSAGE=1000000/60000000
//! BANTER_RATE_JOIN=100000/6000000 BANTER_RATE_AUTH=100000/6000000 BANTER_MAX_CONNECTIONS_PER_IP=100000
//! banterd run`. Results and the exact commands are in `benches/README.md`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{Message, Post, RoomCreate, RoomInfo, RoomJoin, Visibility};
use banter_client::{Connection, Event, Options, Trust};
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};

mod rooms;
mod seed;
mod soak;
mod voice;

#[derive(Debug, Parser)]
// Global flags go before or after the workload (`banter-bench fanout --json` as
// `banter-bench --json fanout`), as with `banter`.
#[command(name = "banter-bench", about = "Load generator for banterd")]
struct Cli {
    /// The server, HOST:PORT; or a cluster's nodes, comma-separated (the workload's
    /// connections are spread over them in turn).
    #[arg(long, global = true, default_value = "127.0.0.1:4433", value_parser = Servers::parse)]
    server: Servers,
    /// Accept the server's certificate (the benchmark runs against a local server).
    #[arg(long, global = true)]
    accept_new_cert: bool,
    /// Print one JSON object with every figure.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// One room, N members; a publisher posts M messages of 100 bytes.
    Fanout {
        #[arg(long)]
        members: usize,
        #[arg(long)]
        messages: u64,
        /// Messages per second (default: as fast as acks allow, 64 in flight).
        #[arg(long)]
        rate: Option<u64>,
        /// Publish on one post stream (spec §3.1.1, 32 in flight) instead of a request stream
        /// per post.
        #[arg(long)]
        stream: bool,
    },
    /// C authenticated connections that do nothing: server memory per connection (needs
    /// BANTER_SERVER_PID, which benches/run.sh sets).
    Idle {
        #[arg(long)]
        connections: usize,
        /// How long to hold them idle before measuring (to look at the server meanwhile).
        #[arg(long, default_value_t = 5)]
        hold_seconds: u64,
    },
    /// C clients in one room all drop, 10 messages are posted, and all resume at once: time
    /// until every client has resumed and received them, and events lost (must be 0).
    Reconnect {
        #[arg(long)]
        clients: usize,
    },
    /// C clients post M messages each, each in a room of its own (so fan-out does not count),
    /// as fast as acks come back: durable posts/s and ack latency.
    Durable {
        #[arg(long)]
        clients: usize,
        #[arg(long, default_value_t = 200)]
        messages: u64,
        /// Posts each client keeps in flight (1: the next post waits for the last ack).
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Send each client's posts on one post stream (spec §3.1.1) instead of a request
        /// stream each.
        #[arg(long)]
        stream: bool,
    },
    /// R rooms of K members each, every room busy with typing, posts and reactions at
    /// `rate` posts/s: deliveries/s across all members, delivery and ack latency.
    Rooms {
        #[arg(long)]
        rooms: usize,
        #[arg(long)]
        members: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Posts per second in each room.
        #[arg(long, default_value_t = 5)]
        rate: u64,
    },
    /// Fills the server with U users, R rooms and M messages (for start-up, history and search
    /// at scale): P posters, each owning every P-th room, post as fast as acks come back.
    Seed {
        #[arg(long)]
        users: usize,
        #[arg(long)]
        rooms: usize,
        #[arg(long)]
        messages: u64,
        #[arg(long, default_value_t = 64)]
        posters: usize,
        /// Then time this many searches of each kind (a word, a phrase, a filtered query)
        /// by a member of every room (needs `search` rate-limited loosely).
        #[arg(long, default_value_t = 0)]
        queries: u64,
    },
    /// A long mixed load (posts, typing, reactions, reconnects, voice) sampled every
    /// `sample` seconds: server RSS and fds (BANTER_SERVER_PID), p99 latencies, every post
    /// delivered once; `--plot FILE` draws the curves as a PNG.
    Soak {
        #[arg(long, default_value_t = 10)]
        rooms: usize,
        #[arg(long, default_value_t = 5)]
        members: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Posts per second in each room.
        #[arg(long, default_value_t = 5)]
        rate: u64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 5)]
        sample: u64,
        /// Speakers in a voice room beside the chat (0: none).
        #[arg(long, default_value_t = 4)]
        speakers: usize,
        /// Draw RSS, fds and p99 latency over time into this PNG.
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
    },
    /// S speakers and L listeners in one voice room, each speaker sending 50 datagrams/s:
    /// relayed packets/s, latency through banterd, loss.
    Voice {
        #[arg(long)]
        speakers: usize,
        #[arg(long, default_value_t = 0)]
        listeners: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Bytes after the header (80 is about Opus at 32 kbit/s).
        #[arg(long, default_value_t = 80)]
        payload: usize,
    },
}

/// Microseconds since the run's start, shared by every task of the process.
fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// One UDP socket for all the generator's connections (as a real many-user client would),
/// with 4 MiB kernel buffers for the bursts of thousands of connections.
fn endpoint() -> &'static quinn::Endpoint {
    static ENDPOINT: std::sync::OnceLock<quinn::Endpoint> = std::sync::OnceLock::new();
    ENDPOINT.get_or_init(|| {
        Connection::endpoint("0.0.0.0:0".parse().expect("literal"), 4 << 20).expect("a UDP socket")
    })
}

fn options() -> Options {
    Options::new(Trust::AcceptAny, "localhost")
}

/// The nodes to connect to: connection `i` goes to node `i % n`.
#[derive(Debug, Clone)]
pub(crate) struct Servers(Arc<[SocketAddr]>);

impl Servers {
    fn parse(list: &str) -> Result<Self, String> {
        let addrs: Result<Vec<SocketAddr>, _> = list.split(',').map(|a| a.trim().parse()).collect();
        let addrs = addrs.map_err(|e| format!("{list:?}: {e}"))?;
        Ok(Self(addrs.into()))
    }

    /// The node of connection `i`.
    pub(crate) fn node(&self, i: usize) -> SocketAddr {
        self.0[i % self.0.len()]
    }
}

/// A connected, authenticated user.
struct User {
    /// The node it is connected to.
    addr: SocketAddr,
    conn: Connection,
    events: mpsc::UnboundedReceiver<Event>,
    token: Vec<u8>,
    resume_id: banter_client::protocol::ids::ResumeId,
    /// Its connection options, TLS session tickets included (one client's own).
    options: Options,
}

/// A user on the first node.
async fn connect_user(
    servers: &Servers,
    name: &str,
) -> anyhow::Result<(Connection, mpsc::UnboundedReceiver<Event>)> {
    let user = connect_full(servers.node(0), name).await?;
    Ok((user.conn, user.events))
}

/// A new user `name`, registered and connected to `addr`.
async fn connect_full(addr: SocketAddr, name: &str) -> anyhow::Result<User> {
    let options = options();
    let (conn, events) = Connection::connect_on(endpoint(), addr, options.clone()).await?;
    let auth = loop {
        match conn.register(name, "benchmark password").await {
            Err(e) if e.code() == Some(ErrorCode::SERVER_BUSY) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            registered => break registered.with_context(|| format!("registering {name}"))?,
        }
    };
    hello(addr, conn, events, auth.access_token.to_vec(), options).await
}

/// A user with access `token` on a new connection and session to `addr`.
async fn connect_with_token(
    addr: SocketAddr,
    token: Vec<u8>,
    options: Options,
) -> anyhow::Result<User> {
    let (conn, events) = Connection::connect_on(endpoint(), addr, options.clone()).await?;
    hello(addr, conn, events, token, options).await
}

/// Sends HELLO with `token` on `conn` and waits for WELCOME.
async fn hello(
    addr: SocketAddr,
    conn: Connection,
    mut events: mpsc::UnboundedReceiver<Event>,
    token: Vec<u8>,
    options: Options,
) -> anyhow::Result<User> {
    conn.hello(&token);
    loop {
        match events.recv().await {
            Some(Event::Welcome(welcome)) => {
                let resume_id = welcome.resume_id;
                return Ok(User { addr, conn, events, token, resume_id, options });
            }
            Some(Event::Rejected(e)) => bail!("HELLO rejected: {e:?}"),
            Some(_) => {}
            None => bail!("connection closed during HELLO"),
        }
    }
}

/// Connects `count` users spread over the nodes (at most 32 handshakes at a time).
async fn connect_many(
    servers: &Servers,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<(Connection, mpsc::UnboundedReceiver<Event>)>> {
    Ok(connect_many_full(servers, prefix, count)
        .await?
        .into_iter()
        .map(|u| (u.conn, u.events))
        .collect())
}

async fn connect_many_full(
    servers: &Servers,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<User>> {
    at_most_32_at_a_time(count, |i| {
        let (addr, name) = (servers.node(i), format!("{prefix}{i}"));
        async move { connect_full(addr, &name).await }
    })
    .await
}

/// `count` new members of `room`, connected, spread over the nodes. Each joins on a first
/// connection that it closes, and all connect again once all have joined: a join made while
/// the others are connected reaches each of them, and N joins would cost N²/2 events (most
/// of the set-up time of a 5,000-client storm).
async fn connected_members(
    servers: &Servers,
    prefix: &str,
    count: usize,
    room: RoomId,
) -> anyhow::Result<Vec<User>> {
    let joined = at_most_32_at_a_time(count, |i| {
        let (addr, name) = (servers.node(i), format!("{prefix}{i}"));
        async move {
            let user = connect_full(addr, &name).await?;
            ask(&user.conn, RoomJoin { room }).await.with_context(|| format!("{name} joining"))?;
            user.conn.close();
            Ok((user.addr, user.token, user.options))
        }
    })
    .await?;
    let mut joined = joined.into_iter();
    at_most_32_at_a_time(count, |_| {
        let (addr, token, options) = joined.next().expect("one per member");
        connect_with_token(addr, token, options)
    })
    .await
}

/// Runs `task(i)` for `i` in `0..count`, at most 32 at a time; their results in order.
async fn at_most_32_at_a_time<T: Send + 'static, F>(
    count: usize,
    mut task: impl FnMut(usize) -> F,
) -> anyhow::Result<Vec<T>>
where
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let permits = permits.clone();
        let work = task(i);
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await?;
            work.await
        }));
    }
    let mut out = Vec::with_capacity(count);
    for task in tasks {
        out.push(task.await??);
    }
    Ok(out)
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("b{:x}", nanos & 0xffff_ffff)
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "p50_us": h.value_at_quantile(0.5),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

/// `conn.request_one`, sent again while the server answers SERVER_BUSY (in a cluster,
/// another node's transaction won a race: a client retries, a post with the same
/// client_msg_id, so nothing is done twice).
pub(crate) async fn ask(
    conn: &Connection,
    request: impl Into<Message>,
) -> Result<Message, banter_client::RequestError> {
    let request = request.into();
    loop {
        match conn.request_one(request.clone()).await {
            Err(e) if e.code() == Some(ErrorCode::SERVER_BUSY) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            answer => return answer,
        }
    }
}

async fn create_room(conn: &Connection, name: &str, voice: bool) -> anyhow::Result<RoomId> {
    let request = RoomCreate {
        name: Text::new(name)?,
        topic: Text::default(),
        category: Text::default(),
        visibility: Visibility::Public,
        voice,
    };
    match ask(conn, request).await? {
        Message::RoomInfo(RoomInfo { room }) => Ok(room.room),
        other => bail!("unexpected answer {other:?}"),
    }
}

async fn post(conn: &Connection, room: RoomId, id: u128, text: &str) -> anyhow::Result<()> {
    let request =
        Post { room, client_msg_id: id, text: Text::new(text)?, reply_to: None, anonymous: false };
    match ask(conn, request).await? {
        Message::EventAck(_) => Ok(()),
        other => bail!("unexpected answer {other:?}"),
    }
}

async fn fanout(
    servers: &Servers,
    members: usize,
    messages: u64,
    rate: Option<u64>,
    stream: bool,
) -> anyhow::Result<serde_json::Value> {
    let run = run_id();
    let (publisher, _publisher_events) = connect_user(servers, &format!("{run}p")).await?;
    let room = create_room(&publisher, &run, false).await?;
    let subscribers = connect_many(servers, &format!("{run}s"), members).await?;
    for (conn, _) in &subscribers {
        ask(conn, RoomJoin { room }).await?;
    }
    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let last_receive = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for (conn, mut events) in subscribers {
        let (received, last_receive) = (received.clone(), last_receive.clone());
        readers.push(tokio::spawn(async move {
            let _keep = conn;
            let mut latency =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut count = 0;
            while count < messages {
                let Some(event) = events.recv().await else { break };
                if let Event::Room(Message::Posted(posted)) = event {
                    let sent: u64 =
                        posted.text.split(':').next().and_then(|t| t.parse().ok()).unwrap_or(0);
                    let now = micros(start);
                    let _ = latency.record(now.saturating_sub(sent).max(1));
                    count += 1;
                    received.fetch_add(1, Ordering::Relaxed);
                    last_receive.fetch_max(now, Ordering::Relaxed);
                }
            }
            latency
        }));
    }
    // Let the join events drain before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first_send = micros(start);
    // Waits until message `i` is due at `rate`.
    let pace = |i: u64| async move {
        if let Some(rate) = rate {
            let due = first_send + i * 1_000_000 / rate.max(1);
            let now = micros(start);
            if due > now {
                tokio::time::sleep(Duration::from_micros(due - now)).await;
            }
        }
    };
    let stamped = move || format!("{:020}:{}", micros(start), "x".repeat(79));
    if stream {
        let mut posts =
            publisher.post_stream().await?.context("the server does not offer post streams")?;
        for i in 0..messages {
            pace(i).await;
            if posts.unanswered() >= 32 {
                posts.answer().await?;
            }
            let text = Text::new(stamped())?;
            let client_msg_id = u128::from(i) + 1;
            posts
                .send(Post { room, client_msg_id, text, reply_to: None, anonymous: false })
                .await?;
        }
        posts.finish();
        while posts.unanswered() > 0 {
            posts.answer().await?;
        }
    } else {
        let publisher = Arc::new(publisher);
        let in_flight = Arc::new(Semaphore::new(64));
        let mut sends = Vec::new();
        for i in 0..messages {
            pace(i).await;
            let permit = in_flight.clone().acquire_owned().await?;
            let publisher = publisher.clone();
            sends.push(tokio::spawn(async move {
                let result = post(&publisher, room, u128::from(i) + 1, &stamped()).await;
                drop(permit);
                result
            }));
        }
        for send in sends {
            send.await??;
        }
    }
    let published = micros(start);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let wait = tokio::time::timeout(Duration::from_secs(120), async {
        for reader in readers {
            if let Ok(h) = reader.await {
                latency.add(h).ok();
            }
        }
    })
    .await;
    let delivered = received.load(Ordering::Relaxed);
    let expected = messages * members as u64;
    let span = last_receive.load(Ordering::Relaxed).saturating_sub(first_send).max(1);
    Ok(serde_json::json!({
        "workload": "fanout",
        "members": members,
        "messages": messages,
        "rate": rate,
        "post_stream": stream,
        "delivered": delivered,
        "lost": expected.saturating_sub(delivered),
        "timed_out": wait.is_err(),
        "deliveries_per_s": delivered as f64 * 1e6 / span as f64,
        "posts_per_s": messages as f64 * 1e6 / (published - first_send).max(1) as f64,
        "latency": percentiles(&latency),
    }))
}

async fn durable(
    servers: &Servers,
    clients: usize,
    messages: u64,
    window: usize,
    stream: bool,
) -> anyhow::Result<serde_json::Value> {
    let run = run_id();
    let users = connect_many(servers, &format!("{run}d"), clients).await?;
    let mut rooms = Vec::with_capacity(clients);
    for (n, (conn, _)) in users.iter().enumerate() {
        rooms.push(create_room(conn, &format!("{run}-{n}"), false).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (n, ((conn, _events), room)) in users.into_iter().zip(rooms).enumerate() {
        tasks.push(tokio::spawn(async move {
            if stream {
                return post_on_stream(&conn, room, n, messages, window).await;
            }
            let mut latency =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let conn = &conn;
            let mut in_flight = futures_util::stream::FuturesUnordered::new();
            for i in 0..messages {
                if in_flight.len() >= window.max(1) {
                    if let Some(result) = in_flight.next().await {
                        let _ = latency.record(result?);
                    }
                }
                in_flight.push(async move {
                    let sent = Instant::now();
                    let id = (n as u128) << 64 | u128::from(i);
                    post(conn, room, id, &format!("durable {n} {i}")).await?;
                    anyhow::Ok(sent.elapsed().as_micros().max(1) as u64)
                });
            }
            while let Some(result) = in_flight.next().await {
                let _ = latency.record(result?);
            }
            anyhow::Ok(latency)
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        latency.add(task.await??).ok();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total = clients as u64 * messages;
    Ok(serde_json::json!({
        "workload": "durable",
        "clients": clients,
        "messages_per_client": messages,
        "window": window,
        "post_stream": stream,
        "acked": total,
        "acked_per_s": total as f64 / elapsed,
        "ack_latency": percentiles(&latency),
    }))
}

/// Client `n`'s part of the durable workload on one post stream, `window` posts in flight:
/// each post's ack latency.
async fn post_on_stream(
    conn: &Connection,
    room: RoomId,
    n: usize,
    messages: u64,
    window: usize,
) -> anyhow::Result<Histogram<u64>> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut stream = conn.post_stream().await?.context("the server does not offer post streams")?;
    let mut sent = std::collections::VecDeque::new();
    let mut acked = |sent: &mut std::collections::VecDeque<Instant>| {
        let started: Instant = sent.pop_front().expect("an answer follows a post");
        let _ = latency.record(started.elapsed().as_micros().max(1) as u64);
    };
    for i in 0..messages {
        if stream.unanswered() >= window.max(1) {
            stream.answer().await?;
            acked(&mut sent);
        }
        let id = (n as u128) << 64 | u128::from(i);
        let text = Text::new(format!("durable {n} {i}"))?;
        sent.push_back(Instant::now());
        stream
            .send(Post { room, client_msg_id: id, text, reply_to: None, anonymous: false })
            .await?;
    }
    stream.finish();
    while stream.unanswered() > 0 {
        stream.answer().await?;
        acked(&mut sent);
    }
    Ok(latency)
}

/// CPU time (user + system) a process has used, in clock ticks (1/100 s on Linux), from
/// `/proc/PID/stat` (`pid` may be `self`).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) ": state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU use of the server (BANTER_SERVER_PID) and of this generator over a measured window.
struct CpuMeter {
    started: Instant,
    server_pid: Option<String>,
    server: Option<u64>,
    generator: Option<u64>,
}

impl CpuMeter {
    fn start() -> Self {
        let server_pid = std::env::var("BANTER_SERVER_PID").ok();
        let server = server_pid.as_deref().and_then(cpu_ticks);
        Self { started: Instant::now(), server_pid, server, generator: cpu_ticks("self") }
    }

    /// Percent of one core each used since `start`.
    fn percent(&self) -> serde_json::Value {
        let seconds = self.started.elapsed().as_secs_f64();
        let share = |before: Option<u64>, now: Option<u64>| {
            Some((now? - before?) as f64 / 100.0 / seconds * 100.0)
        };
        serde_json::json!({
            "server": share(self.server, self.server_pid.as_deref().and_then(cpu_ticks)),
            "generator": share(self.generator, cpu_ticks("self")),
        })
    }
}

/// The server's resident memory in KiB (VmRSS of BANTER_SERVER_PID), if known.
fn server_rss_kib() -> Option<u64> {
    let pid = std::env::var("BANTER_SERVER_PID").ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn idle(
    servers: &Servers,
    connections: usize,
    hold: Duration,
) -> anyhow::Result<serde_json::Value> {
    let before = server_rss_kib().context("set BANTER_SERVER_PID (benches/run.sh does)")?;
    let users = connect_many_full(servers, &format!("{}i", run_id()), connections).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // What holding them costs while nothing happens (QUIC keep-alives, timers).
    let cpu = CpuMeter::start();
    tokio::time::sleep(hold).await;
    let idle_cpu = cpu.percent();
    let after = server_rss_kib().context("server gone")?;
    drop(users);
    Ok(serde_json::json!({
        "workload": "idle",
        "connections": connections,
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "kib_per_connection": (after.saturating_sub(before)) as f64 / connections as f64,
        "idle_cpu_percent": idle_cpu,
    }))
}

async fn reconnect(servers: &Servers, clients: usize) -> anyhow::Result<serde_json::Value> {
    let run = run_id();
    let set_up = Instant::now();
    // The publisher connects again once the members are there (its first connection would
    // sit idle through minutes of set-up).
    let creator = connect_full(servers.node(0), &format!("{run}p")).await?;
    let room = create_room(&creator.conn, &run, false).await?;
    creator.conn.close();
    let mut users = connected_members(servers, &format!("{run}r"), clients, room).await?;
    let publisher = connect_with_token(creator.addr, creator.token, creator.options).await?;
    // Everyone has processed the joins so far.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let set_up_s = set_up.elapsed().as_secs_f64();
    // Connections that ended during the set-up (they resume like the others).
    let lost_in_set_up = users.iter().filter(|u| u.conn.quic().close_reason().is_some()).count();
    let mut resume_points = Vec::new();
    for user in &mut users {
        while user.events.try_recv().is_ok() {}
        let last = user.conn.last_event_seq();
        resume_points.push((
            user.addr,
            user.token.clone(),
            user.resume_id,
            last,
            user.options.clone(),
        ));
        user.conn.suspend();
    }
    drop(users);
    const MISSED: u64 = 10;
    for i in 0..MISSED {
        post(&publisher.conn, room, u128::from(i) + 1, &format!("missed {i}")).await.with_context(
            || format!("the publisher's post ({:?})", publisher.conn.quic().close_reason()),
        )?;
    }
    let cpu = CpuMeter::start();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (addr, token, resume_id, last, options) in resume_points {
        tasks.push(tokio::spawn(async move {
            resume_until_caught_up(addr, &token, resume_id, last, &options, MISSED, start).await
        }));
    }
    let mut received = 0;
    let mut slowest = Duration::ZERO;
    // Why connections ended before their client had caught up, and how often.
    let mut gave_up = std::collections::BTreeMap::<String, u64>::new();
    let (mut tls_resumed, mut attempts) = (0, 0);
    let mut back_after = Histogram::<u64>::new(3)?;
    for task in tasks {
        let back = task.await??;
        back_after.record(back.took.as_micros() as u64)?;
        tls_resumed += back.tls_resumed;
        attempts += back.attempts;
        received += back.got;
        slowest = slowest.max(back.took);
        for reason in back.failures {
            *gave_up.entry(reason).or_default() += 1;
        }
    }
    Ok(serde_json::json!({
        "workload": "reconnect",
        "clients": clients,
        "set_up_s": set_up_s,
        "connections_lost_in_set_up": lost_in_set_up,
        "missed_per_client": MISSED,
        "lost": MISSED * clients as u64 - received,
        "all_resumed_ms": slowest.as_millis() as u64,
        "caught_up_after": percentiles(&back_after),
        "storm_cpu_percent": cpu.percent(),
        "connections": attempts,
        "failed_attempts": gave_up,
        "tls_resumed": tls_resumed,
    }))
}

/// How one client of a reconnect storm came back.
struct Back {
    /// Missed posts it received.
    got: u64,
    /// From the storm's start to its last missed post (or to giving up).
    took: Duration,
    /// Connections it made, and of them how many resumed their TLS session.
    attempts: u64,
    tls_resumed: u64,
    /// Why each connection that failed before it had caught up ended.
    failures: Vec<String>,
}

/// One client of a reconnect storm: after the SDK's backoff, connects, RESUMEs from `last`
/// and reads until it has `missed` posts; when a connection fails first, it waits the next
/// backoff and does it again from where it got to (as [`banter_client::Client`] does), for
/// up to 30 s.
async fn resume_until_caught_up(
    addr: SocketAddr,
    token: &[u8],
    resume_id: banter_client::protocol::ids::ResumeId,
    mut last: u64,
    options: &Options,
    missed: u64,
    start: Instant,
) -> anyhow::Result<Back> {
    const PATIENCE: Duration = Duration::from_secs(30);
    let mut back =
        Back { got: 0, took: Duration::ZERO, attempts: 0, tls_resumed: 0, failures: Vec::new() };
    while back.got < missed && start.elapsed() < PATIENCE {
        // The SDK waits its backoff before every attempt, the first after a drop included
        // (50–100 ms, drawn at random: the storm's only spread).
        tokio::time::sleep(banter_client::backoff(back.attempts as u32)).await;
        back.attempts += 1;
        let checked_before = options.tls_sessions.certificates_checked();
        let (conn, mut events) =
            match Connection::connect_on(endpoint(), addr, options.clone()).await {
                Ok(connected) => connected,
                Err(error) => {
                    back.failures.push(format!("connect: {error}"));
                    continue;
                }
            };
        if options.tls_sessions.certificates_checked() == checked_before {
            back.tls_resumed += 1;
        }
        conn.resume(token, resume_id, last);
        while back.got < missed {
            let left = PATIENCE.saturating_sub(start.elapsed());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Some(Event::Room(Message::Posted(_)))) => back.got += 1,
                Ok(Some(Event::Rejected(e))) => bail!("resume rejected: {e:?}"),
                Ok(Some(Event::Closed { reason, .. })) => {
                    back.failures.push(reason);
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    back.failures.push("events ended".to_owned());
                    break;
                }
                Err(_) => {
                    back.failures.push("not caught up within 30 s".to_owned());
                    break;
                }
            }
        }
        last = conn.last_event_seq();
        conn.close();
    }
    back.took = start.elapsed();
    Ok(back)
}

fn print_table(result: &serde_json::Value) {
    let mut rows = Vec::new();
    flatten("", result, &mut rows);
    for (key, value) in rows {
        println!("{key:<28} {value}");
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Number(n) if n.is_f64() => {
            out.push((prefix.to_owned(), format!("{:.0}", n.as_f64().unwrap_or(0.0))))
        }
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !cli.accept_new_cert {
        bail!("banter-bench only runs against a local test server: pass --accept-new-cert");
    }
    let result = match cli.workload {
        Workload::Fanout { members, messages, rate, stream } => {
            fanout(&cli.server, members, messages, rate, stream).await?
        }
        Workload::Durable { clients, messages, window, stream } => {
            durable(&cli.server, clients, messages, window, stream).await?
        }
        Workload::Idle { connections, hold_seconds } => {
            idle(&cli.server, connections, Duration::from_secs(hold_seconds)).await?
        }
        Workload::Reconnect { clients } => reconnect(&cli.server, clients).await?,
        Workload::Rooms { rooms, members, seconds, rate } => {
            rooms::run(&cli.server, rooms, members, seconds, rate).await?
        }
        Workload::Seed { users, rooms, messages, posters, queries } => {
            seed::run(&cli.server, users, rooms, messages, posters, queries).await?
        }
        Workload::Soak { rooms, members, seconds, rate, sample, speakers, plot } => {
            let settings = soak::Settings { rooms, members, seconds, rate, sample, speakers, plot };
            soak::run(&cli.server, settings).await?
        }
        Workload::Voice { speakers, listeners, seconds, payload } => {
            voice::run(&cli.server, speakers, listeners, seconds, payload).await?
        }
    };
    if cli.json {
        println!("{result}");
    } else {
        print_table(&result);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn global_flags_go_before_or_after_the_workload() {
        let after = ["banter-bench", "fanout", "--members", "2", "--messages", "5", "--json"];
        let after =
            Cli::try_parse_from(after.into_iter().chain(["--server", "127.0.0.1:5000"])).unwrap();
        let before = ["banter-bench", "--json", "--server", "127.0.0.1:5000", "fanout"];
        let before =
            Cli::try_parse_from(before.into_iter().chain(["--members", "2", "--messages", "5"]))
                .unwrap();
        for cli in [after, before] {
            assert!(cli.json);
            assert_eq!(
                format!("{:?}", cli.server),
                format!("{:?}", Servers::parse("127.0.0.1:5000").unwrap())
            );
        }
    }
}
