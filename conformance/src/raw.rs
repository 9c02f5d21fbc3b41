//! The raw client: QUIC connections with Banter's TLS and ALPN, and the checks' own bytes on
//! them. Also a few helpers over the SDK for setting up (users, sessions, rooms).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use banter_client::protocol::bounded::{Blob, Text};
use banter_client::protocol::frame::FrameDecoder;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{
    AuthOk, EventAck, Hello, Message, Post, RoomCreate, Visibility, Welcome,
};
use banter_client::protocol::session::{ClientConfig, ClientConnection, Greeting};
use banter_client::protocol::settings::Limits;
use banter_client::protocol::stream::StreamType;
use banter_client::protocol::{ErrorCode, Frame};
use banter_client::{Connection, Event};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::Target;

/// How long a check waits for one answer.
pub const WAIT: Duration = Duration::from_secs(5);

/// The password of every user the checks make.
pub const PASSWORD: &str = "conformance password";

/// A username no earlier run used: `prefix` and a number from the clock and a counter.
pub fn fresh_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() % 1_000_000_000);
    format!("{prefix}{stamp}{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A client message id no other post of this run (or an earlier one) used.
pub fn fresh_id() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos << 32) | u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn client_endpoint() -> Result<quinn::Endpoint, String> {
    quinn::Endpoint::client("0.0.0.0:0".parse().expect("literal")).map_err(|e| e.to_string())
}

/// A QUIC connection to the target and nothing else (no stream opened).
pub async fn connect(target: &Target) -> Result<quinn::Connection, String> {
    let endpoint = client_endpoint()?;
    Connection::connect_raw(&endpoint, target.addr, target.options.clone())
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// A SETTINGS frame with the client's defaults.
pub fn client_settings() -> Vec<u8> {
    let mut bytes = Vec::new();
    Limits::default().to_settings().encode_frame(&mut bytes);
    bytes
}

/// Opens the client's CONTROL stream and writes `frames` on it (after the stream type).
pub async fn open_control(
    conn: &quinn::Connection,
    frames: &[u8],
) -> Result<quinn::SendStream, String> {
    let mut control = conn.open_uni().await.map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    StreamType::CONTROL.encode(&mut bytes);
    bytes.extend_from_slice(frames);
    control.write_all(&bytes).await.map_err(|e| e.to_string())?;
    Ok(control)
}

/// SETTINGS and HELLO with `token`, as a correct client greets.
pub fn settings_and_hello(token: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let mut session = ClientConnection::new(&ClientConfig::default(), now);
    let access_token = Blob::new(token.to_vec()).unwrap_or_default();
    session.greet(now, Greeting::Hello { access_token, interests: Hello::INTEREST_ALL });
    let mut bytes = Vec::new();
    while let Some(chunk) = session.poll_transmit() {
        bytes.extend(chunk);
    }
    bytes
}

/// The server's CONTROL stream, read frame by frame.
#[derive(Debug)]
pub struct ServerControl {
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl ServerControl {
    /// Waits for the server's CONTROL stream (skipping its other unidirectional streams).
    pub async fn accept(conn: &quinn::Connection) -> Result<Self, String> {
        loop {
            let mut recv = tokio::time::timeout(WAIT, conn.accept_uni())
                .await
                .map_err(|_| "the server opened no CONTROL stream".to_owned())?
                .map_err(|e| format!("no CONTROL stream: {e}"))?;
            let mut kind = [0u8; 1];
            recv.read_exact(&mut kind).await.map_err(|e| e.to_string())?;
            if kind[0] == 0x00 {
                return Ok(Self { recv, decoder: FrameDecoder::new(1 << 20) });
            }
        }
    }

    /// The next frame, or how the stream ended: `Ok(None)` for a FIN, `Err` for a reset or
    /// the connection's end (with its description).
    pub async fn next(&mut self) -> Result<Option<Message>, String> {
        let mut buf = vec![0u8; 4096];
        loop {
            if let Some(message) = self.decoder.next_message().map_err(|e| e.to_string())? {
                return Ok(Some(message));
            }
            match tokio::time::timeout(WAIT, self.recv.read(&mut buf)).await {
                Err(_) => return Err("nothing on the CONTROL stream in time".into()),
                Ok(Ok(Some(n))) => self.decoder.push(&buf[..n]),
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => return Err(format!("control stream ended: {e}")),
            }
        }
    }
}

/// The application close code the server ended the connection with (waiting at most
/// `wait`); `None` if it stayed open or ended otherwise.
pub async fn closed_with(conn: &quinn::Connection, wait: Duration) -> Option<ErrorCode> {
    match tokio::time::timeout(wait, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => {
            Some(ErrorCode(close.error_code.into_inner()))
        }
        _ => None,
    }
}

/// Expects the server to close with `code` within `wait`.
pub async fn expect_close(
    conn: &quinn::Connection,
    code: ErrorCode,
    wait: Duration,
) -> crate::Outcome {
    match closed_with(conn, wait).await {
        Some(got) if got == code => Ok(()),
        Some(got) => Err(format!("closed with {got}, not {code}")),
        None => Err(format!("not closed with {code} within {wait:?}")),
    }
}

/// Writes `bytes` as a request stream (then finishes it) and reads the whole answer.
pub async fn request_raw(conn: &quinn::Connection, bytes: &[u8]) -> Result<Vec<Message>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    // The server may stop reading early (that can be the point); a failed write is fine.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    read_answer(&mut recv).await
}

/// Reads a request stream's answer to its end.
pub async fn read_answer(recv: &mut quinn::RecvStream) -> Result<Vec<Message>, String> {
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, recv.read(&mut buf)).await {
            Err(_) => return Err(format!("the answer did not end in time (got {out:?})")),
            Ok(Ok(Some(n))) => {
                decoder.push(&buf[..n]);
                while let Some(message) = decoder.next_message().map_err(|e| e.to_string())? {
                    out.push(message);
                }
            }
            Ok(Ok(None)) => return Ok(out),
            Ok(Err(e)) => return Err(format!("answer stream failed: {e} (got {out:?})")),
        }
    }
}

/// The ERROR code an answer ends with.
pub fn error_code(answer: &[Message]) -> Option<ErrorCode> {
    match answer.last() {
        Some(Message::Error(error)) => Some(error.code),
        _ => None,
    }
}

/// Expects an answer that is one ERROR with `code`.
pub fn expect_error(answer: &[Message], code: ErrorCode) -> crate::Outcome {
    match error_code(answer) {
        Some(got) if got == code => Ok(()),
        _ => Err(format!("expected ERROR {code}, got {answer:?}")),
    }
}

/// A registered user with a live session through the SDK.
#[derive(Debug)]
pub struct User {
    pub conn: Connection,
    pub events: UnboundedReceiver<Event>,
    pub auth: AuthOk,
    pub welcome: Welcome,
    pub name: String,
}

impl Drop for User {
    /// Closes the connection (the SDK's connection lives on while its tasks hold it).
    fn drop(&mut self) {
        self.conn.close();
    }
}

impl User {
    /// Registers a fresh user (`prefix` + a number) and says HELLO.
    pub async fn new(target: &Target, prefix: &str) -> Result<Self, String> {
        let name = fresh_name(prefix);
        let (conn, events) = Connection::connect(target.addr, target.options.clone())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let auth = conn.register(&name, PASSWORD).await.map_err(|e| format!("REGISTER: {e}"))?;
        Self::greet(conn, events, auth, name).await
    }

    /// Logs in again (a second device of the same user).
    pub async fn again(&self, target: &Target) -> Result<Self, String> {
        let (conn, events) = Connection::connect(target.addr, target.options.clone())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let auth = conn.login(&self.name, PASSWORD).await.map_err(|e| format!("LOGIN: {e}"))?;
        Self::greet(conn, events, auth, self.name.clone()).await
    }

    async fn greet(
        conn: Connection,
        mut events: UnboundedReceiver<Event>,
        auth: AuthOk,
        name: String,
    ) -> Result<Self, String> {
        conn.hello(&auth.access_token);
        let welcome = loop {
            match tokio::time::timeout(WAIT, events.recv()).await {
                Ok(Some(Event::Welcome(welcome))) => break welcome,
                Ok(Some(Event::Rejected(error))) => {
                    return Err(format!("HELLO refused: {error:?}"));
                }
                Ok(Some(_)) => {}
                _ => return Err("no WELCOME".into()),
            }
        };
        Ok(Self { conn, events, auth, welcome, name })
    }

    /// Creates a room (public unless `private`; with voice if `voice`).
    pub async fn room(&self, private: bool, voice: bool) -> Result<RoomId, String> {
        let request = RoomCreate {
            name: Text::new(fresh_name("room")).map_err(|e| e.to_string())?,
            topic: Text::default(),
            category: Text::default(),
            visibility: if private { Visibility::Private } else { Visibility::Public },
            voice,
        };
        match self.conn.request_one(request).await {
            Ok(Message::RoomInfo(info)) => Ok(info.room.room),
            other => Err(format!("ROOM_CREATE: {other:?}")),
        }
    }

    /// Sends `post`; its EVENT_ACK.
    pub async fn send(&self, post: Post) -> Result<EventAck, String> {
        match self.conn.request_one(post).await {
            Ok(Message::EventAck(ack)) => Ok(ack),
            other => Err(format!("POST: {other:?}")),
        }
    }

    /// Posts `text` to `room` ([`post_request`]); its EVENT_ACK.
    pub async fn post(&self, room: RoomId, text: &str) -> Result<EventAck, String> {
        self.send(post_request(room, text)).await
    }

    /// The next frame on the EVENTS stream.
    pub async fn next_entry(&mut self) -> Result<Message, String> {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Some(Event::Room(message))) => return Ok(message),
                Ok(Some(_)) => {}
                _ => return Err("no EVENTS frame in time".into()),
            }
        }
    }
}

/// A POST of `text` to `room` with a fresh client message id, neither a reply nor anonymous.
pub fn post_request(room: RoomId, text: &str) -> Post {
    Post {
        room,
        client_msg_id: fresh_id(),
        text: Text::new(text).unwrap_or_default(),
        reply_to: None,
        anonymous: false,
    }
}

/// A frame's whole bytes.
pub fn frame(message: impl Into<Message>) -> Vec<u8> {
    let mut bytes = Vec::new();
    message.into().encode(&mut bytes);
    bytes
}
