//! Request handling fuzzed in process (issue 7): arbitrary bytes as one request stream, served
//! by the same [`requests::serve`] as a QUIC request stream, on a connection that has not
//! authenticated or on one authenticated as the owner of a room — no sockets, a real store on
//! disk. The oracle: no panic, an answer that is whole frames, and a connection that is still
//! usable afterwards. Shared by the `requests` fuzz target and the regression test that replays
//! its corpus under `cargo test`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use banter_protocol::FrameDecoder;
use banter_protocol::bounded::{Blob, Text};
use banter_protocol::frame::DEFAULT_MAX_FRAME_SIZE;
use banter_protocol::message::{
    Frame, Hello, ListScope, Login, Message, Register, RoomCreate, RoomInfo, RoomList, Visibility,
};
use banter_protocol::session::{
    ClientConfig, ClientConnection, Greeting, ServerConnection, ServerEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Shared;
use crate::config::Config;
use crate::ratelimit::Limiter;
use crate::requests::{self, ConnCtx, RequestIo};
use crate::voice::VoiceLink;

/// One server for the whole fuzzing process, with a registered user who owns a room.
struct Harness {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    /// The fuzz user's access token; renewed when an input logged it out (LOGOUT,
    /// SESSION_REVOKE).
    access_token: Mutex<Vec<u8>>,
}

const USERNAME: &str = "fuzz";
const PASSWORD: &str = "fuzz password";

static CONNECTIONS: AtomicUsize = AtomicUsize::new(1);

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = std::env::temp_dir().join(format!("banter-fuzz-requests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config {
            data_dir: dir,
            argon2_memory_kib: 256,
            argon2_iterations: 1,
            admin_socket: false,
            ..Config::default()
        };
        // The fuzzer's requests come fast; rate limits would hide the handlers behind them.
        for bucket in config.rate.values_mut() {
            bucket.burst = u32::MAX;
            bucket.per_minute = u32::MAX;
        }
        let (shared, _) = runtime
            .block_on(async { Shared::open(config, crate::bus::Bus::Local) })
            .expect("the fuzz server's data dir opens");
        let register = Register {
            username: Text::new(USERNAME).expect("literal"),
            password: Text::new(PASSWORD).expect("literal"),
            device_name: Text::default(),
        };
        let answer = runtime.block_on(exchange(&connection(&shared), &frame(&register)));
        let Some(Message::AuthOk(auth)) = answer.into_iter().next() else {
            panic!("the fuzz user registers");
        };
        let access_token = Mutex::new(auth.access_token.to_vec());
        let harness = Harness { runtime, shared, access_token };
        let create = RoomCreate {
            name: Text::new("fuzzing").expect("literal"),
            topic: Text::default(),
            category: Text::default(),
            visibility: Visibility::Public,
            voice: true,
        };
        let ctx = harness.authenticated();
        let answer = harness.runtime.block_on(exchange(&ctx, &frame(&create)));
        assert!(matches!(answer.first(), Some(Message::RoomInfo(RoomInfo { .. }))), "{answer:?}");
        harness.disconnect(&ctx);
        harness
    })
}

fn frame(message: &impl Frame) -> Vec<u8> {
    let mut bytes = Vec::new();
    message.encode_frame(&mut bytes);
    bytes
}

/// A fresh connection's context, not authenticated.
fn connection(shared: &Arc<Shared>) -> ConnCtx {
    ConnCtx {
        shared: shared.clone(),
        protocol: Arc::new(Mutex::new(ServerConnection::new(&shared.protocol(), Instant::now()))),
        authed: OnceLock::new(),
        remote: "127.0.0.1:9".parse().expect("literal"),
        limiter: Limiter::new(&shared.account_limits.rates()),
        conn_id: CONNECTIONS.fetch_add(1, Ordering::Relaxed),
        voice: Arc::new(VoiceLink::detached()),
    }
}

impl Harness {
    /// A connection that said SETTINGS and HELLO as the fuzz user and was let in.
    fn authenticated(&self) -> ConnCtx {
        if let Some(ctx) = self.hello() {
            return ctx;
        }
        // An earlier input ended the login: log in again.
        let login = Login {
            username: Text::new(USERNAME).expect("literal"),
            password: Text::new(PASSWORD).expect("literal"),
            device_name: Text::default(),
        };
        let answer = self.runtime.block_on(exchange(&connection(&self.shared), &frame(&login)));
        let Some(Message::AuthOk(auth)) = answer.into_iter().next() else {
            panic!("the fuzz user logs in again");
        };
        *self.access_token.lock().unwrap_or_else(|e| e.into_inner()) = auth.access_token.to_vec();
        self.hello().expect("a fresh login's HELLO is let in")
    }

    /// A connection that said SETTINGS and HELLO with the current token, if let in.
    fn hello(&self) -> Option<ConnCtx> {
        let ctx = connection(&self.shared);
        let token = self.access_token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = Instant::now();
        let mut client = ClientConnection::new(&ClientConfig::default(), now);
        client.greet(
            now,
            Greeting::Hello {
                access_token: Blob::new(token).expect("a token fits"),
                interests: Hello::INTEREST_ALL,
            },
        );
        let control = client.poll_transmit().expect("SETTINGS and HELLO");
        let request = {
            let mut protocol = ctx.protocol.lock().unwrap_or_else(|e| e.into_inner());
            protocol.handle_control(now, &control);
            std::iter::from_fn(|| protocol.poll_event()).find_map(|event| match event {
                ServerEvent::Authenticate(request) => Some(request),
                _ => None,
            })
        };
        let request = request.expect("HELLO is asked to be authenticated");
        requests::attach_session(&ctx, request)?;
        Some(ctx)
    }

    /// Ends the connection as banterd does, then forgets its session at once (the fuzzer
    /// makes millions; a live server forgets them after the resume window).
    fn disconnect(&self, ctx: &ConnCtx) {
        ctx.end(false);
        let window = Duration::from_millis(self.shared.config.resume_window_ms);
        self.shared.hub.expire_sessions(Instant::now() + window + Duration::from_secs(1));
    }
}

/// Sends `bytes` as a whole request stream and returns the answer's frames. Panics if the
/// answer is not whole, well-formed frames: the server never writes anything else.
async fn exchange(ctx: &ConnCtx, bytes: &[u8]) -> Vec<Message> {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let (mut recv, mut send) = tokio::io::split(server);
    let max = ctx.shared.protocol().limits.max_frame_size;
    let serve = async {
        let mut io = RequestIo::new(&mut send, &mut recv, max, Duration::from_secs(10));
        requests::serve(ctx, &mut io).await;
    };
    let talk = async {
        // The request, then the end of the stream; then everything the server answers.
        let _ = client.write_all(bytes).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        answer
    };
    let ((), answer) = tokio::join!(serve, talk);
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
    decoder.push(&answer);
    let mut frames = Vec::new();
    while let Some(message) = decoder.next_message().expect("the server writes valid frames") {
        frames.push(message);
    }
    decoder.finish().expect("the server writes whole frames");
    frames
}

/// One fuzz input: the first byte picks an authenticated (even) or a fresh connection, the
/// rest is the request stream. Afterwards the connection must still answer a request.
pub fn request_stream(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else { return };
    let harness = harness();
    let ctx = if selector % 2 == 0 { harness.authenticated() } else { connection(&harness.shared) };
    harness.runtime.block_on(async {
        let answer = exchange(&ctx, stream).await;
        assert!(answer.len() <= 1 || !matches!(answer[0], Message::Error(_)), "{answer:?}");
        // The next request on the same connection is served as usual.
        let rooms = RoomList { scope: ListScope::Joined, after: None, limit: 1 };
        let next = exchange(&ctx, &frame(&rooms)).await;
        assert!(!next.is_empty(), "ROOM_LIST is answered");
    });
    harness.disconnect(&ctx);
}
