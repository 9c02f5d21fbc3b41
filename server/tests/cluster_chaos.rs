//! Chaos for a cluster (issue 17): three banterd processes on one PostgreSQL and one NATS, one
//! of them killed (SIGKILL) every 10 s for two minutes and started again at once, while
//! clients that know the whole cluster post and read through the SDK (its outbox, failover
//! and catch-up, as an application uses them). Afterwards every acked post is in the room's
//! log once, at the seq its ack named, each sender's posts in the order sent, and every
//! client has received every post, in order, once.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{Message, RoomJoin};
use banter_client::{Client, ClientConfig, Credentials, Event, Options, Trust, Update};
use banter_tests::nats::TestNats;
use banter_tests::postgres::TestPostgres;
use common::{Banterd, PASSWORD, connect, create_room, free_port, history, start_adjusted};

const WRITERS: usize = 4;
const RUN: Duration = Duration::from_secs(120);
const KILL_EVERY: Duration = Duration::from_secs(10);
/// The longest a writer waits for its post's ack, through a kill and the failover.
const ACK_WAIT: Duration = Duration::from_secs(60);

/// One node: its data dir and address outlive its processes.
struct Node {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    process: Option<Banterd>,
}

impl Node {
    /// Starts banterd on the node's data dir, the cluster given as `banterd run`'s flags.
    fn start(&mut self, postgres: &TestPostgres, nats: &TestNats, files: &Path) {
        let (database, bus) = (postgres.url(), nats.url());
        let files = files.to_str().unwrap();
        let name = format!("node-{}", self.addr.port());
        let args = [
            ["--store", "postgres"],
            ["--database-url", &database],
            ["--bus", "nats"],
            ["--nats-url", &bus],
            ["--files-dir", files],
            ["--node-name", &name],
        ]
        .concat();
        let quick_checks = |command: &mut Command| {
            command.env("BANTER_BUS_HEAD_CHECK_MS", "200");
        };
        self.process = Some(start_adjusted(self.dir.path(), self.addr, &args, quick_checks));
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.child.kill().unwrap();
            process.child.wait().unwrap();
        }
    }
}

/// Registers `name` on `addr` (or logs in, once registered) and says HELLO: its credentials,
/// and the live connection.
async fn session(
    addr: SocketAddr,
    name: &str,
    register: bool,
) -> (Credentials, banter_client::Connection) {
    let (conn, mut events) = connect(addr).await;
    let auth = if register {
        conn.register(name, PASSWORD).await
    } else {
        conn.login(name, PASSWORD).await
    };
    let auth = auth.unwrap();
    conn.hello(&auth.access_token);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap() {
            Some(Event::Welcome(_)) => return (Credentials::from(auth), conn),
            Some(Event::Rejected(e)) => panic!("{e:?}"),
            Some(_) => {}
            None => panic!("closed before WELCOME"),
        }
    }
}

/// What one writer did and saw.
struct Writer {
    name: String,
    /// Its posts' texts and acked seqs, in the order sent.
    acked: Vec<(String, u64)>,
    /// Every post it received, in the order received.
    received: Vec<(u64, String)>,
    updates: tokio::sync::mpsc::UnboundedReceiver<Update>,
    _client: Client,
}

impl Writer {
    /// Takes one update: a post received, or the ack of the post in flight.
    fn take(&mut self, update: Update, in_flight: &mut Option<(u128, String)>) {
        match update {
            Update::Room(Message::Posted(post)) => {
                self.received.push((post.meta.seq, post.text.to_string()));
            }
            Update::Sent { client_msg_id, ack } => {
                if let Some((id, text)) = in_flight.take() {
                    assert_eq!(id, client_msg_id, "{}: an ack for a post not sent", self.name);
                    self.acked.push((text, ack.seq));
                }
            }
            Update::SendFailed { error, .. } => panic!("{}: a post refused: {error}", self.name),
            _ => {}
        }
    }
}

/// Posts one message at a time, each after the last one's ack, until `until`.
async fn write(mut writer: Writer, client: Client, room: RoomId, until: Instant) -> Writer {
    for i in 0.. {
        if Instant::now() >= until {
            break;
        }
        let text = format!("{} {i}", writer.name);
        let id = client.send(room, &text, None).unwrap();
        let mut in_flight = Some((id, text));
        while in_flight.is_some() {
            let update = tokio::time::timeout(ACK_WAIT, writer.updates.recv()).await;
            let update = update.unwrap_or_else(|_| panic!("{}: no ack in 60 s", writer.name));
            let update = update.expect("the client runs");
            writer.take(update, &mut in_flight);
        }
    }
    writer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_a_node_killed_every_10_s_loses_and_repeats_nothing() {
    let postgres = TestPostgres::start();
    let nats = TestNats::start();
    let files = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (0..3)
        .map(|_| Node { dir: tempfile::tempdir().unwrap(), addr: free_port(), process: None })
        .collect();
    nodes[0].start(&postgres, &nats, files.path());
    // One identity for the cluster, as the operator distributes it.
    for node in &nodes[1..] {
        for name in ["server.key", "cert.pem", "cert-key.pem"] {
            std::fs::copy(nodes[0].dir.path().join(name), node.dir.path().join(name)).unwrap();
        }
    }
    for node in &mut nodes[1..] {
        node.start(&postgres, &nats, files.path());
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();

    // The writers, registered on different nodes; the first creates the room.
    let mut room = None;
    let mut credentials = Vec::new();
    for n in 0..WRITERS {
        let name = format!("w{n}");
        let (creds, conn) = session(addrs[n % 3], &name, true).await;
        match room {
            None => room = Some(create_room(&conn, "chaos").await),
            Some(room) => drop(conn.request_one(RoomJoin { room }).await.unwrap()),
        }
        credentials.push((name, creds));
    }
    let room = room.unwrap();

    let started = Instant::now();
    let until = started + RUN;
    let mut tasks = Vec::new();
    for (name, creds) in credentials {
        let config = ClientConfig {
            addrs: addrs.clone(),
            options: Options::new(Trust::AcceptAny, "localhost"),
            outbox: None,
            known_rooms: [(room, 0)].into(),
        };
        let (client, updates) = Client::start(config, creds).unwrap();
        let writer = Writer {
            name,
            acked: Vec::new(),
            received: Vec::new(),
            updates,
            _client: client.clone(),
        };
        tasks.push(tokio::spawn(write(writer, client, room, until)));
    }

    // The chaos: every 10 s the next node dies and comes back.
    let mut kills = 0;
    while started.elapsed() + KILL_EVERY <= RUN {
        tokio::time::sleep(KILL_EVERY).await;
        let node = &mut nodes[kills % 3];
        node.kill();
        node.start(&postgres, &nats, files.path());
        kills += 1;
    }
    let mut writers = Vec::new();
    for task in tasks {
        writers.push(task.await.unwrap());
    }

    // The log: every acked post once, at its acked seq, each sender's in order.
    let (_, reader) = session(addrs[0], "w0", false).await;
    let posts = history(&reader, room).await;
    let acked: usize = writers.iter().map(|w| w.acked.len()).sum();
    eprintln!("{kills} kills, {acked} posts acked in {:?}", started.elapsed());
    assert!(kills >= 10, "only {kills} kills");
    assert!(acked >= 200, "only {acked} posts acked: the test needs load");
    assert_eq!(posts.len(), acked, "the log holds exactly the acked posts");
    for writer in &writers {
        for (text, seq) in &writer.acked {
            assert_eq!(posts.get(seq), Some(text), "{text} at its acked seq {seq}");
        }
    }

    // Every client ends with every post, in order, once.
    let expected: Vec<(u64, String)> =
        posts.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect();
    for writer in &mut writers {
        let deadline = Instant::now() + Duration::from_secs(30);
        while writer.received.len() < expected.len() && Instant::now() < deadline {
            if let Ok(Some(update)) =
                tokio::time::timeout(Duration::from_secs(1), writer.updates.recv()).await
            {
                writer.take(update, &mut None);
            }
        }
        assert!(
            writer.received == expected,
            "{}: not every post, in order, once: {}",
            writer.name,
            differences(&writer.received, &expected)
        );
    }
    for node in &mut nodes {
        node.kill();
    }
}

/// What a client's received posts lack, repeat or disorder against the log: the seqs, short
/// enough for a CI log that cuts long output.
fn differences(received: &[(u64, String)], expected: &[(u64, String)]) -> String {
    let mut seen = BTreeMap::new();
    for (seq, _) in received {
        *seen.entry(*seq).or_insert(0) += 1;
    }
    let missing: Vec<u64> =
        expected.iter().map(|(s, _)| *s).filter(|s| !seen.contains_key(s)).collect();
    let repeated: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(s, _)| *s).collect();
    let disordered: Vec<u64> =
        received.windows(2).filter(|w| w[1].0 <= w[0].0).map(|w| w[1].0).collect();
    format!(
        "{} received of {}; missing seqs {missing:?}, repeated {repeated:?}, out of order {disordered:?}",
        received.len(),
        expected.len()
    )
}
