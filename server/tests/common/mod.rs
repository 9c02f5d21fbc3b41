//! What the banterd child-process tests share: starting a real `banterd` binary on a data dir,
//! logging in with real clients, and reading a room's whole history.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::{RoomId, UserId};
use banter_client::protocol::message::{
    EventAck, History, Message, Post, RoomCreate, RoomInfo, Visibility,
};
use banter_client::{Connection, Event, Options, RequestError, Trust};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// The child banterd; killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
pub(crate) struct Banterd {
    pub(crate) child: Child,
    /// The certificate fingerprint it printed.
    pub(crate) fingerprint: String,
}

impl Drop for Banterd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// A `banterd` command with test-friendly settings (cheap hashing, loose rate limits).
pub(crate) fn banterd(args: &[&str], dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_banterd"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("BANTER_ARGON2_MEMORY_KIB", "256")
        .env("BANTER_ARGON2_ITERATIONS", "1")
        .env("BANTER_RATE_MESSAGE", "100000/6000000")
        .env("BANTER_RATE_AUTH", "1000/60000")
        .env("BANTER_RATE_JOIN", "1000/60000")
        // Checks read all of history back, a page of 100 at a time.
        .env("BANTER_RATE_HISTORY", "100000/6000000")
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE");
    command
}

/// Starts `banterd run` and waits until it serves.
pub(crate) fn start(dir: &Path, addr: SocketAddr) -> Banterd {
    start_with(dir, addr, &[])
}

/// [`start`] with more `banterd run` arguments.
pub(crate) fn start_with(dir: &Path, addr: SocketAddr, args: &[&str]) -> Banterd {
    start_adjusted(dir, addr, args, |_| {})
}

/// [`start_with`], the command adjusted by `adjust` (more variables) before it runs.
pub(crate) fn start_adjusted(
    dir: &Path,
    addr: SocketAddr,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> Banterd {
    let listen = addr.to_string();
    let mut command = banterd(&[&["run", "--listen", &listen], args].concat(), dir);
    adjust(&mut command);
    let child =
        command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("banterd starts");
    // Owned by the guard at once, so that a panic below still kills it.
    let mut server = Banterd { child, fingerprint: String::new() };
    let stdout = server.child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("banterd printed its address").unwrap();
        if let Some(fingerprint) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
            server.fingerprint = fingerprint.to_owned();
            return server;
        }
    }
}

pub(crate) async fn connect(
    addr: SocketAddr,
) -> (Connection, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let options = Options::new(Trust::AcceptAny, "localhost");
    for _ in 0..100 {
        if let Ok(connected) = Connection::connect(addr, options.clone()).await {
            return connected;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to banterd");
}

/// Logs in (or registers) with `password` and says HELLO: the session is live.
pub(crate) async fn try_login(
    addr: SocketAddr,
    name: &str,
    password: &str,
    register: bool,
) -> Result<(Connection, tokio::sync::mpsc::UnboundedReceiver<Event>, UserId), RequestError> {
    let (conn, mut events) = connect(addr).await;
    let auth = if register {
        conn.register(name, password).await?
    } else {
        conn.login(name, password).await?
    };
    conn.hello(&auth.access_token);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap() {
            Event::Welcome(_) => return Ok((conn, events, auth.user)),
            Event::Rejected(e) => panic!("{e:?}"),
            _ => {}
        }
    }
}

/// [`try_login`] with [`PASSWORD`], which must succeed.
pub(crate) async fn login(
    addr: SocketAddr,
    name: &str,
    register: bool,
) -> (Connection, tokio::sync::mpsc::UnboundedReceiver<Event>, UserId) {
    try_login(addr, name, PASSWORD, register).await.unwrap()
}

/// Posts `text` with a fresh client_msg_id; the ack, or the refusal.
pub(crate) async fn post(
    conn: &Connection,
    room: RoomId,
    text: &str,
) -> Result<EventAck, RequestError> {
    static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let client_msg_id = u128::from(SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let text = Text::new(text).unwrap();
    let request = Post { room, client_msg_id, text, reply_to: None, anonymous: false };
    match conn.request_one(request).await? {
        Message::EventAck(ack) => Ok(ack),
        other => panic!("{other:?}"),
    }
}

pub(crate) async fn create_room(conn: &Connection, name: &str) -> RoomId {
    let request = RoomCreate {
        name: Text::new(name).unwrap(),
        topic: Text::default(),
        category: Text::default(),
        visibility: Visibility::Public,
        voice: false,
    };
    match conn.request_one(request).await.unwrap() {
        Message::RoomInfo(RoomInfo { room }) => room.room,
        other => panic!("{other:?}"),
    }
}

/// Every posted message of a room, by room_seq (each seq at most once).
pub(crate) async fn history(reader: &Connection, room: RoomId) -> BTreeMap<u64, String> {
    let mut posts = BTreeMap::new();
    let mut before = None;
    loop {
        let page = reader.request(History { room, before, limit: 100 }).await.unwrap();
        for message in &page {
            if let Message::HistoryMessage(m) = message {
                assert!(posts.insert(m.meta.seq, m.text.to_string()).is_none());
            }
        }
        match page.last() {
            Some(Message::PageEnd(end)) if end.next.is_some() => before = end.next,
            _ => return posts,
        }
    }
}
