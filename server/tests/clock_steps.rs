//! Steps of the system clock (issue 20): banterd runs under libfaketime, whose offset file
//! lets the test step the wall clock banterd's process sees by ten minutes, forward and back,
//! while a user posts. The monotonic clock is left alone, as a real step leaves it. Room seqs
//! stay gap-free, a room's timestamps never go back and stay on real time, and access tokens
//! live their lifetime: not cut short by a step forward, not lengthened by a step back.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use banter_client::protocol::ErrorCode;
use banter_client::protocol::message::{History, Message};
use banter_client::{Event, RequestError};
use common::{PASSWORD, connect, create_room, free_port, login, post, start_adjusted};

/// The access token lifetime banterd runs with here: short, so expiry is seen in seconds.
const TOKEN_TTL: Duration = Duration::from_secs(5);
/// The step: ten minutes, far beyond any token lifetime here.
const STEP_S: i64 = 600;

fn faketime_library() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib").unwrap().flatten().find_map(|arch| {
        let path = arch.path().join("faketime/libfaketimeMT.so.1");
        path.exists().then_some(path)
    });
    found.expect("libfaketime (scripts/test installs the faketime package)")
}

/// The offset of the clock banterd sees, through libfaketime's timestamp file.
struct SteppedClock {
    file: PathBuf,
    metrics: SocketAddr,
}

impl SteppedClock {
    /// Steps the clock to `offset_s` from real time and waits until banterd's process sees
    /// it: the `Date` its HTTP listener sends shows it (the proof that the step reached the
    /// process at all). Returns the step banterd measured (`banter_clock_step_ms`).
    fn step(&self, offset_s: i64) -> i64 {
        std::fs::write(&self.file, format!("{offset_s:+}")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (date, step_ms) = self.scrape();
            let process_offset = date as i64 - real_now_ms() as i64 / 1000;
            if (process_offset - offset_s).abs() <= 2 {
                return step_ms;
            }
            assert!(Instant::now() < deadline, "the step never reached banterd's process");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `Date` of a /metrics answer (s since the epoch) and `banter_clock_step_ms`.
    fn scrape(&self) -> (u64, i64) {
        let mut stream = TcpStream::connect(self.metrics).unwrap();
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let date = text.lines().find_map(|l| l.strip_prefix("Date: ")).expect(&text);
        let date = httpdate::parse_http_date(date.trim()).unwrap();
        let date = date.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let line = text.lines().find(|l| l.starts_with("banter_clock_step_ms{"));
        let step = line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok());
        (date, step.expect(&text))
    }
}

fn real_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Logs in as ada on a new connection: a fresh access token, and when it was issued.
async fn fresh_token(addr: SocketAddr) -> (Vec<u8>, Instant) {
    let (conn, _events) = connect(addr).await;
    let auth = conn.login("ada", PASSWORD).await.unwrap();
    (auth.access_token.to_vec(), Instant::now())
}

/// Whether HELLO with `token` is accepted, or the code it is refused with.
async fn hello(addr: SocketAddr, token: &[u8]) -> Result<(), ErrorCode> {
    let (conn, mut events) = connect(addr).await;
    conn.hello(token);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap() {
            Some(Event::Welcome(_)) => return Ok(()),
            Some(Event::Rejected(error)) => return Err(error.code),
            Some(_) => {}
            None => panic!("closed before an answer to HELLO"),
        }
    }
}

/// Starts banterd with its clock `offset_s` from real time.
fn start(dir: &Path, addr: SocketAddr, clock: &SteppedClock, offset_s: i64) -> common::Banterd {
    std::fs::write(&clock.file, format!("{offset_s:+}")).unwrap();
    let library = faketime_library();
    let metrics = clock.metrics.to_string();
    let ttl = TOKEN_TTL.as_secs().to_string();
    start_adjusted(dir, addr, &[], |command| {
        command
            .env("LD_PRELOAD", &library)
            .env("FAKETIME_TIMESTAMP_FILE", &clock.file)
            .env("FAKETIME_CACHE_DURATION", "1")
            // A real step moves the wall clock only.
            .env("DONT_FAKE_MONOTONIC", "1")
            .env("BANTER_METRICS", "true")
            .env("BANTER_METRICS_LISTEN", &metrics)
            .env("BANTER_ACCESS_TOKEN_TTL_S", &ttl);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_of_the_system_clock_move_neither_timestamps_nor_token_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let clock = SteppedClock { file: dir.path().join("faketime"), metrics };
    let data = dir.path().join("data");
    let mut server = start(&data, addr, &clock, 0);

    let (conn, _events, _) = login(addr, "ada", true).await;
    let room = create_room(&conn, "clock").await;

    // Posts between steps forward and back: seqs one after another, timestamps on real time.
    let mut acked = Vec::new();
    for (round, offset) in [0, STEP_S, -STEP_S, STEP_S, 0].into_iter().enumerate() {
        clock.step(offset);
        for i in 0..5 {
            let before = real_now_ms();
            let ack = loop {
                match post(&conn, room, &format!("{round}.{i}")).await {
                    Ok(ack) => break ack,
                    Err(RequestError::Server { code, .. }) if code == ErrorCode::RATE_LIMITED => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(error) => panic!("{error}"),
                }
            };
            let after = real_now_ms();
            assert!(
                (before.saturating_sub(1_000)..=after + 1_000).contains(&ack.ts.0),
                "post {round}.{i} at a clock offset of {offset} s: ts {} is not real time \
                 ({before}..{after})",
                ack.ts.0
            );
            acked.push(ack);
        }
    }
    let page = conn.request(History { room, before: None, limit: 100 }).await.unwrap();
    let mut entries: Vec<(u64, u64)> =
        page.iter().filter_map(|m| m.entry_meta().map(|meta| (meta.seq, meta.ts.0))).collect();
    entries.sort();
    let seqs: Vec<u64> = entries.iter().map(|(seq, _)| *seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "room seqs gap-free and unique");
    assert!(entries.windows(2).all(|w| w[0].1 <= w[1].1), "timestamps went back: {entries:?}");
    assert!(acked.iter().all(|ack| entries.contains(&(ack.seq, ack.ts.0))));
    assert!(page.iter().any(|m| matches!(m, Message::HistoryMessage(_))));

    // A token issued before a step forward still works after it, within its lifetime.
    clock.step(0);
    let (token, issued) = fresh_token(addr).await;
    let noticed = clock.step(STEP_S);
    assert!(issued.elapsed() < TOKEN_TTL, "the step took too long to take effect");
    assert_eq!(hello(addr, &token).await, Ok(()), "expired early by a step forward");

    // A token issued before a step back expires on time all the same.
    clock.step(0);
    let (token, issued) = fresh_token(addr).await;
    clock.step(-STEP_S);
    tokio::time::sleep((TOKEN_TTL + Duration::from_millis(500)).saturating_sub(issued.elapsed()))
        .await;
    assert_eq!(
        hello(addr, &token).await,
        Err(ErrorCode::TOKEN_EXPIRED),
        "lived long after a step back"
    );
    // And the steps were noticed, for the operator.
    assert!((noticed - STEP_S * 1000).abs() < 2_000, "banter_clock_step_ms was {noticed}");

    // Restarted on a clock ten minutes slow, banterd takes that clock; the room's next
    // timestamp is still not below its last.
    let last_ts = entries.last().unwrap().1;
    drop(conn);
    drop(server);
    server = start(&data, addr, &clock, -STEP_S);
    clock.step(-STEP_S);
    let (conn, _events, _) = login(addr, "ada", false).await;
    let ack = post(&conn, room, "after a restart").await.unwrap();
    assert_eq!(ack.seq, entries.last().unwrap().0 + 1);
    assert!(ack.ts.0 >= last_ts, "went back across a restart: {} < {last_ts}", ack.ts.0);
    drop(server);
}
