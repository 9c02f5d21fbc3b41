//! One QUIC connection to a banterd: the control stream driven by the sans-io
//! [`ClientConnection`], one request stream per request, and the server's events and ephemeral
//! streams delivered as [`Event`]s.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_protocol::bounded::{Blob, Text};
use banter_protocol::datagram::TunnelReader;
use banter_protocol::ids::{ResumeId, RoomId};
use banter_protocol::message::{
    self, AuthOk, Hello, KeyInfo, KeyList, KeyRemove, ListScope, Login, Member, Members, Message,
    Register, RoomList, RoomSummary, Search, SearchCursor, SearchHit,
};
use banter_protocol::session::{ClientConfig, ClientConnection, ClientEvent, Greeting};
use banter_protocol::settings::{
    FEATURE_POST_STREAMS, FEATURE_VOICE_DATAGRAMS, FEATURE_VOICE_TUNNEL, Limits,
};
use banter_protocol::stream::StreamType;
use banter_protocol::{ErrorCode, FrameDecoder};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::tls::{TlsSessions, Trust};

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The QUIC or TLS handshake failed (unreachable, wrong ALPN, a TLS error).
    #[error("connecting: {0}")]
    Handshake(String),
    /// The server's certificate is not trusted: it does not match the pin, or does not chain
    /// to the given CA for the server's name.
    #[error("the server's certificate is not trusted: {0}")]
    Untrusted(String),
    /// The connection dropped before the control stream was set up.
    #[error("connection lost: {0}")]
    Lost(#[from] quinn::ConnectionError),
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The server answered ERROR.
    #[error("{}", describe_refusal(*code, message))]
    Server {
        /// The error code.
        code: ErrorCode,
        /// Its explanation.
        message: String,
        /// When to retry (RATE_LIMITED).
        retry_after_ms: Option<u64>,
    },
    /// The connection or stream failed before an answer arrived.
    #[error("connection: {0}")]
    Connection(String),
    /// Connecting failed because the server's certificate is not trusted.
    #[error("the server's certificate is not trusted: {0}")]
    Untrusted(String),
    /// The answer did not decode, or was not what the request expects.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// Something on this side failed (reading or writing a local file).
    #[error("{0}")]
    Local(String),
}

impl From<&message::Error> for RequestError {
    fn from(error: &message::Error) -> Self {
        Self::Server {
            code: error.code,
            message: error.message.to_string(),
            retry_after_ms: error.retry_after_ms,
        }
    }
}

impl From<ConnectError> for RequestError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Untrusted(reason) => Self::Untrusted(reason),
            other => Self::Connection(other.to_string()),
        }
    }
}

/// A server's ERROR in words for a person: what the code means, then the server's own
/// explanation when it adds something (`not allowed (FORBIDDEN): cannot change one's own
/// role`).
pub(crate) fn describe_refusal(code: ErrorCode, message: &str) -> String {
    let meaning = match code {
        ErrorCode::FORBIDDEN => "not allowed: your role does not permit this",
        ErrorCode::ROOM_LOCKED => "the room is locked: only moderators may post",
        ErrorCode::BANNED => "you are banned here",
        ErrorCode::KICKED => "you were removed from the room",
        ErrorCode::NOT_FOUND => "not found",
        ErrorCode::RATE_LIMITED => "too fast: wait a moment",
        ErrorCode::AUTH_FAILED => "wrong username or password",
        ErrorCode::INVALID_REQUEST => "invalid",
        ErrorCode::CONFLICT => "conflict",
        ErrorCode::LIMIT_EXCEEDED => "limit reached",
        _ => "refused",
    };
    let name = code.name().map_or_else(|| format!("{:#x}", code.0), str::to_owned);
    // Messages that only restate the code ("forbidden") add nothing.
    let restated = message.replace(' ', "_").eq_ignore_ascii_case(&name) || message.is_empty();
    if restated { format!("{meaning} ({name})") } else { format!("{meaning} ({name}): {message}") }
}

impl RequestError {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Something the server pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A frame from the events stream (room log entries, LIVE_PAUSED), in event_seq order.
    Room(Message),
    /// A frame from the ephemeral stream (presence, typing, markers, voice state).
    Ephemeral(Message),
    /// HELLO succeeded.
    Welcome(message::Welcome),
    /// RESUME succeeded.
    Resumed(message::Resumed),
    /// HELLO or RESUME failed, or the session was ended (ERROR on the control stream).
    Rejected(message::Error),
    /// The server is going away.
    GoAway(message::GoAway),
    /// The connection closed.
    Closed {
        /// The application error code, when the peer (or we) closed with one.
        code: Option<ErrorCode>,
        /// Why, for humans.
        reason: String,
    },
}

fn closed_event(error: &quinn::ConnectionError) -> Event {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => Event::Closed {
            code: Some(ErrorCode(close.error_code.into_inner())),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        other => Event::Closed { code: None, reason: other.to_string() },
    }
}

/// A close code as QUIC carries it (every code the spec names fits a varint).
fn close_code(code: ErrorCode) -> quinn::VarInt {
    quinn::VarInt::from_u64(code.0).unwrap_or(quinn::VarInt::MAX)
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct Options {
    /// How to trust the server's certificate.
    pub trust: Trust,
    /// The name the certificate is checked for (SNI).
    pub server_name: String,
    /// Accept voice as QUIC datagrams (the default). Without, voice comes and goes on the
    /// voice tunnel stream (spec §8.4), as on a network that drops them.
    pub datagrams: bool,
    /// How often an otherwise quiet connection sends a QUIC PING (default 1 s), so that a
    /// dead path is noticed and the server's idle timeout never ends a live client.
    pub keep_alive: Duration,
    /// A connection that hears nothing for this long is dead (default 3.5 s): the server
    /// vanished or the network went. The smaller of this and the server's idle timeout
    /// applies. QUIC restarts the timer when it sends the first PING after hearing from the
    /// peer, so a dead path is noticed within `keep_alive + idle_timeout` (4.5 s); a live
    /// path survives two lost PINGs in a row (and a spurious loss only costs a resume).
    pub idle_timeout: Duration,
    /// TLS session tickets, shared by this value's clones: a reconnect resumes the TLS
    /// session (a cheaper handshake for both sides) when the server gave a ticket.
    pub tls_sessions: TlsSessions,
}

impl Options {
    /// Options that check the certificate by `trust` for `server_name`, with datagrams.
    pub fn new(trust: Trust, server_name: impl Into<String>) -> Self {
        Self {
            trust,
            server_name: server_name.into(),
            datagrams: true,
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_millis(3_500),
            tls_sessions: TlsSessions::default(),
        }
    }
}

/// An open connection. Its clones share it; when the last one is dropped, the connection
/// closes (with NO_ERROR, as [`Connection::close`]): the tasks that read its streams hold
/// the QUIC connection too, and would otherwise keep it (and its keep-alives) going.
#[derive(Debug, Clone)]
pub struct Connection {
    conn: quinn::Connection,
    session: Arc<Mutex<ClientConnection>>,
    greet: mpsc::UnboundedSender<()>,
    fingerprint: Option<[u8; 32]>,
    endpoint: quinn::Endpoint,
    voice_tunnel: VoiceInbox,
    _last_handle: Arc<CloseOnDrop>,
}

/// Closes the connection when the last [`Connection`] handle goes.
#[derive(Debug)]
struct CloseOnDrop(quinn::Connection);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(close_code(ErrorCode::NO_ERROR), b"bye");
    }
}

/// Where records of the server's voice tunnel go: the joined voice session, if any.
pub(crate) type VoiceInbox = Arc<Mutex<Option<mpsc::Sender<Bytes>>>>;

fn lock(session: &Mutex<ClientConnection>) -> std::sync::MutexGuard<'_, ClientConnection> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    /// Connects; the returned receiver yields everything the server pushes.
    pub async fn connect(
        addr: SocketAddr,
        options: Options,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Event>), ConnectError> {
        let bind: SocketAddr =
            if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal address");
        let endpoint =
            quinn::Endpoint::client(bind).map_err(|e| ConnectError::Handshake(e.to_string()))?;
        Self::connect_on(&endpoint, addr, options).await
    }

    /// A client endpoint (one UDP socket for many connections, for [`connect_on`]) with
    /// `buffer_bytes` of kernel buffer each way, as much as the kernel grants: load generators
    /// and many-account clients send and receive in bursts the default buffers drop.
    ///
    /// [`connect_on`]: Self::connect_on
    pub fn endpoint(bind: SocketAddr, buffer_bytes: usize) -> std::io::Result<quinn::Endpoint> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
        let _ = socket.set_recv_buffer_size(buffer_bytes);
        let _ = socket.set_send_buffer_size(buffer_bytes);
        socket.bind(&bind.into())?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| std::io::Error::other("no async runtime for the endpoint"))?;
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket.into(), runtime)
    }

    /// Only the QUIC connection, with Banter's TLS (certificate trust, ALPN) and transport
    /// settings: no control stream and nothing read. For tools and tests that speak the
    /// protocol themselves (a client that never reads its events, say).
    pub async fn connect_raw(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        options: Options,
    ) -> Result<quinn::Connection, ConnectError> {
        handshake(endpoint, addr, &options).await
    }

    /// Connects through an existing client endpoint (one UDP socket for many connections, as a
    /// load generator or a multi-account client wants).
    pub async fn connect_on(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        options: Options,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Event>), ConnectError> {
        let conn = handshake(endpoint, addr, &options).await?;
        let fingerprint = peer_fingerprint(&conn);

        let now = Instant::now();
        // The first ping at a random point of the interval, so reconnect storms do not ping
        // in lockstep (spec §6.1 PING).
        let mut random = [0u8; 2];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        let first_ping_delay =
            Duration::from_millis(u64::from(u16::from_be_bytes(random)) % 15_000);
        let mut features = FEATURE_VOICE_TUNNEL | FEATURE_POST_STREAMS;
        if options.datagrams {
            features |= FEATURE_VOICE_DATAGRAMS;
        }
        let client_config = ClientConfig {
            first_ping_delay,
            limits: Limits { features, ..Limits::default() },
            ..ClientConfig::default()
        };
        let session = Arc::new(Mutex::new(ClientConnection::new(&client_config, now)));
        let mut control = conn.open_uni().await?;
        let mut prefix = Vec::new();
        StreamType::CONTROL.encode(&mut prefix);
        control.write_all(&prefix).await.map_err(|e| ConnectError::Handshake(e.to_string()))?;

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (greet_tx, greet_rx) = mpsc::unbounded_channel();
        let voice_tunnel = VoiceInbox::default();
        let streams = ServerStreams {
            conn: conn.clone(),
            session: session.clone(),
            events: events_tx,
            voice_tunnel: voice_tunnel.clone(),
        };
        tokio::spawn(drive(streams, control, greet_rx));
        let endpoint = endpoint.clone();
        Ok((
            Self {
                _last_handle: Arc::new(CloseOnDrop(conn.clone())),
                conn,
                session,
                greet: greet_tx,
                fingerprint,
                endpoint,
                voice_tunnel,
            },
            events_rx,
        ))
    }

    /// The SHA-256 fingerprint of the server's certificate (to pin it). After a resumed
    /// handshake, the certificate of the session it resumed.
    pub fn fingerprint(&self) -> Option<[u8; 32]> {
        self.fingerprint
    }

    /// Sends HELLO with an access token; WELCOME (or a rejection) arrives as an [`Event`].
    pub fn hello(&self, access_token: &[u8]) {
        self.greet(Greeting::Hello {
            access_token: blob(access_token),
            interests: Hello::INTEREST_ALL,
        });
    }

    /// Sends RESUME; RESUMED (or a rejection) arrives as an [`Event`].
    pub fn resume(&self, access_token: &[u8], resume_id: ResumeId, last_event_seq: u64) {
        self.greet(Greeting::Resume {
            access_token: blob(access_token),
            resume_id,
            last_event_seq,
            interests: Hello::INTEREST_ALL,
        });
    }

    fn greet(&self, greeting: Greeting) {
        lock(&self.session).greet(Instant::now(), greeting);
        let _ = self.greet.send(());
    }

    /// The last event_seq processed (for RESUME on another connection).
    pub fn last_event_seq(&self) -> u64 {
        lock(&self.session).last_event_seq()
    }

    /// The feature bits of the server's SETTINGS, once they arrived.
    pub fn server_features(&self) -> Option<u64> {
        lock(&self.session).peer_limits().map(|limits| limits.features)
    }

    /// Sends a request and collects every answer frame. An ERROR answer is
    /// [`RequestError::Server`].
    pub async fn request(&self, request: impl Into<Message>) -> Result<Vec<Message>, RequestError> {
        let request = request.into();
        let (mut send, mut recv) =
            self.conn.open_bi().await.map_err(|e| RequestError::Connection(e.to_string()))?;
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        send.write_all(&bytes).await.map_err(|e| RequestError::Connection(e.to_string()))?;
        let _ = send.finish();
        let answer = read_all(&mut recv).await?;
        match answer.last() {
            Some(Message::Error(error)) => Err(RequestError::from(error)),
            _ => Ok(answer),
        }
    }

    /// Sends a request whose answer is exactly one frame.
    pub async fn request_one(&self, request: impl Into<Message>) -> Result<Message, RequestError> {
        let mut answer = self.request(request).await?;
        match (answer.pop(), answer.is_empty()) {
            (Some(message), true) => Ok(message),
            _ => Err(RequestError::Protocol("expected one answer frame".into())),
        }
    }

    /// Every room in a scope, following ROOM_LIST pages to the end.
    pub async fn rooms(&self, scope: ListScope) -> Result<Vec<RoomSummary>, RequestError> {
        let mut rooms = Vec::new();
        let mut after = None;
        loop {
            let Message::RoomListPage(page) =
                self.request_one(RoomList { scope, after, limit: 100 }).await?
            else {
                return Err(RequestError::Protocol("unexpected answer to ROOM_LIST".into()));
            };
            after = page.rooms.last().map(|r| r.room);
            let more = page.more;
            rooms.extend(page.rooms.into_vec());
            if !more || after.is_none() {
                return Ok(rooms);
            }
        }
    }

    /// A room by id, `#name` or name (case-insensitive): the caller's rooms first, then public
    /// ones.
    pub async fn find_room(&self, spec: &str) -> Result<Option<RoomSummary>, RequestError> {
        let name = spec.trim_start_matches('#');
        for scope in [ListScope::Joined, ListScope::Public] {
            let rooms = self.rooms(scope).await?;
            let found = rooms
                .into_iter()
                .find(|r| r.name.eq_ignore_ascii_case(name) || name.parse() == Ok(r.room.0));
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Every member of a room, following MEMBERS pages to the end.
    pub async fn members(&self, room: RoomId) -> Result<Vec<Member>, RequestError> {
        let mut members = Vec::new();
        let mut after = None;
        loop {
            let Message::MembersPage(page) =
                self.request_one(Members { room, after, limit: 100 }).await?
            else {
                return Err(RequestError::Protocol("unexpected answer to MEMBERS".into()));
            };
            after = page.members.last().map(|m| m.user);
            let more = page.more;
            members.extend(page.members.into_vec());
            if !more || after.is_none() {
                return Ok(members);
            }
        }
    }

    /// One page of a SEARCH (spec §6.10): its hits, newest first, and the cursor that
    /// continues after them (set it as the next request's `cursor`), if more may follow.
    /// Fails with UNSUPPORTED_EXTENSION on a server without search.
    pub async fn search(
        &self,
        request: Search,
    ) -> Result<(Vec<SearchHit>, Option<SearchCursor>), RequestError> {
        let mut hits = Vec::new();
        for message in self.request(request).await? {
            match message {
                Message::SearchHit(hit) => hits.push(hit),
                Message::SearchEnd(end) => return Ok((hits, end.next)),
                other => {
                    return Err(RequestError::Protocol(format!("unexpected {other:?} in SEARCH")));
                }
            }
        }
        Err(RequestError::Protocol("SEARCH answered without SEARCH_END".into()))
    }

    /// REGISTER.
    pub async fn register(&self, username: &str, password: &str) -> Result<AuthOk, RequestError> {
        let request = Register {
            username: text(username)?,
            password: text(password)?,
            device_name: text("banter")?,
        };
        auth_ok(self.request_one(request).await?)
    }

    /// LOGIN.
    pub async fn login(&self, username: &str, password: &str) -> Result<AuthOk, RequestError> {
        let request = Login {
            username: text(username)?,
            password: text(password)?,
            device_name: text("banter")?,
        };
        auth_ok(self.request_one(request).await?)
    }

    /// KEY_LOGIN (spec §6.2.3): `sign` gets the bytes to sign (see
    /// [`key_login_signed_bytes`](banter_protocol::message::key_login_signed_bytes)) and returns
    /// the ed25519 signature made with the key whose public half is `public_key`.
    pub async fn key_login(
        &self,
        username: &str,
        public_key: [u8; 32],
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<AuthOk, RequestError> {
        use banter_protocol::message::{KeyLogin, key_login_signed_bytes};
        // Usernames are case-insensitive; the server checks the signature over its own
        // (lower-case) spelling.
        let username = username.to_ascii_lowercase();
        let request =
            KeyLogin { username: text(&username)?, public_key, device_name: text("banter")? };
        let signed = |nonce: &[u8; 32]| key_login_signed_bytes(nonce, &username);
        auth_ok(self.prove_key(request, signed, sign).await?)
    }

    /// KEY_ADD (spec §6.2): registers `public_key` for KEY_LOGIN to this connection's account
    /// (`username`), proving possession: `sign` gets the bytes to sign (see
    /// [`key_add_signed_bytes`](banter_protocol::message::key_add_signed_bytes)).
    pub async fn add_key(
        &self,
        username: &str,
        public_key: [u8; 32],
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<(), RequestError> {
        use banter_protocol::message::{KeyAdd, key_add_signed_bytes};
        let username = username.to_ascii_lowercase();
        let signed = |nonce: &[u8; 32]| key_add_signed_bytes(nonce, &username);
        match self.prove_key(KeyAdd { public_key }, signed, sign).await? {
            Message::Done(_) => Ok(()),
            other => Err(unexpected("DONE", &other)),
        }
    }

    /// KEY_LIST: the account's login keys, oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, RequestError> {
        match self.request_one(KeyList {}).await? {
            Message::KeyListPage(page) => Ok(page.keys.into_vec()),
            other => Err(unexpected("KEY_LIST_PAGE", &other)),
        }
    }

    /// KEY_REMOVE: unregisters one of the account's login keys.
    pub async fn remove_key(&self, public_key: [u8; 32]) -> Result<(), RequestError> {
        self.request_one(KeyRemove { public_key }).await.map(|_| ())
    }

    /// Sends `request` on a stream of its own, answers the server's KEY_CHALLENGE with a
    /// KEY_PROOF of `sign(signed(nonce))`, and returns the server's answer to that (KEY_LOGIN
    /// and KEY_ADD, spec §6.2).
    async fn prove_key(
        &self,
        request: impl message::Frame,
        signed: impl FnOnce(&[u8; 32]) -> Vec<u8>,
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<Message, RequestError> {
        use banter_protocol::message::{Frame as _, KeyProof, Signature};
        let failed = |e: &dyn std::fmt::Display| RequestError::Connection(e.to_string());
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| failed(&e))?;
        let mut bytes = Vec::new();
        request.encode_frame(&mut bytes);
        send.write_all(&bytes).await.map_err(|e| failed(&e))?;
        let mut decoder = FrameDecoder::new(banter_protocol::frame::DEFAULT_MAX_FRAME_SIZE);
        let mut buf = vec![0u8; 4096];
        let challenge = loop {
            match decoder.next_message().map_err(|e| RequestError::Protocol(e.to_string()))? {
                Some(Message::KeyChallenge(challenge)) => break challenge,
                Some(Message::Error(error)) => return Err(RequestError::from(&error)),
                Some(other) => return Err(unexpected("KEY_CHALLENGE", &other)),
                None => {}
            }
            match recv.read(&mut buf).await.map_err(|e| failed(&e))? {
                Some(n) => decoder.push(&buf[..n]),
                None => {
                    return Err(RequestError::Protocol("stream ended before KEY_CHALLENGE".into()));
                }
            }
        };
        bytes.clear();
        KeyProof { signature: Signature(sign(&signed(&challenge.nonce))) }.encode_frame(&mut bytes);
        send.write_all(&bytes).await.map_err(|e| failed(&e))?;
        let _ = send.finish();
        let mut answer = Vec::new();
        decoder_drain(&mut decoder, &mut answer)?;
        answer.extend(read_all(&mut recv).await?);
        match answer.pop() {
            Some(Message::Error(error)) => Err(RequestError::from(&error)),
            Some(message) => Ok(message),
            None => Err(RequestError::Protocol("no answer to KEY_PROOF".into())),
        }
    }

    /// Closes the connection with NO_ERROR: the client is done, and the server ends its
    /// session at once (spec §7.6).
    pub fn close(&self) {
        self.conn.close(close_code(ErrorCode::NO_ERROR), b"bye");
    }

    /// [`Connection::close`], then gives the close a moment (at most 250 ms; it goes out at
    /// once, the rest is QUIC's closing period) so that a process exiting next still ends its
    /// session on the server at once.
    pub async fn close_and_flush(&self) {
        self.close();
        let _ = tokio::time::timeout(Duration::from_millis(250), self.endpoint.wait_idle()).await;
    }

    /// Closes the connection with GOING_AWAY: the session stays resumable for the server's
    /// resume window (spec §7.6), as when the network goes.
    pub fn suspend(&self) {
        self.conn.close(close_code(ErrorCode::GOING_AWAY), b"back soon");
    }

    /// Moves the connection to a new local UDP socket (as when the device changes network).
    /// QUIC migrates the connection: chat and voice go on without a reconnect.
    pub fn rebind(&self) -> std::io::Result<()> {
        let local = self.endpoint.local_addr()?;
        let bind: SocketAddr =
            if local.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal address");
        self.endpoint.rebind(std::net::UdpSocket::bind(bind)?)
    }

    /// The local address (changes after [`rebind`](Self::rebind)).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Where the server's voice tunnel records go.
    pub(crate) fn voice_inbox(&self) -> &VoiceInbox {
        &self.voice_tunnel
    }

    /// The underlying QUIC connection (for tests that misbehave on purpose).
    pub fn quic(&self) -> &quinn::Connection {
        &self.conn
    }
}

fn blob(bytes: &[u8]) -> Blob<{ message::max::TOKEN }> {
    Blob::new(bytes.to_vec()).unwrap_or_default()
}

fn text<const N: usize>(s: &str) -> Result<Text<N>, RequestError> {
    Text::new(s).map_err(|e| RequestError::Protocol(e.to_string()))
}

fn auth_ok(message: Message) -> Result<AuthOk, RequestError> {
    match message {
        Message::AuthOk(ok) => Ok(ok),
        other => Err(unexpected("AUTH_OK", &other)),
    }
}

/// An answer of the wrong type.
fn unexpected(expected: &str, got: &Message) -> RequestError {
    RequestError::Protocol(format!("expected {expected}, got {:?}", got.frame_type()))
}

/// Reads frames until the stream ends.
async fn read_all(recv: &mut quinn::RecvStream) -> Result<Vec<Message>, RequestError> {
    let mut decoder = FrameDecoder::new(banter_protocol::frame::DEFAULT_MAX_FRAME_SIZE);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => decoder.push(&buf[..n]),
            Ok(None) => break,
            Err(e) => {
                // A reset after an ERROR frame still delivers the frame we already read.
                decoder_drain(&mut decoder, &mut out)?;
                if out.is_empty() {
                    return Err(RequestError::Connection(e.to_string()));
                }
                return Ok(out);
            }
        }
        decoder_drain(&mut decoder, &mut out)?;
    }
    decoder_drain(&mut decoder, &mut out)?;
    decoder.finish().map_err(|e| RequestError::Protocol(e.to_string()))?;
    Ok(out)
}

fn decoder_drain(decoder: &mut FrameDecoder, out: &mut Vec<Message>) -> Result<(), RequestError> {
    while let Some(message) =
        decoder.next_message().map_err(|e| RequestError::Protocol(e.to_string()))?
    {
        out.push(message);
    }
    Ok(())
}

/// The SHA-256 fingerprint of the certificate the connection's TLS session was made with
/// (rustls reports the resumed session's certificate on a resumed handshake).
fn peer_fingerprint(conn: &quinn::Connection) -> Option<[u8; 32]> {
    let identity = conn.peer_identity()?;
    let certificates =
        identity.downcast_ref::<Vec<rustls::pki_types::CertificateDer<'static>>>()?;
    certificates.first().map(|certificate| crate::tls::fingerprint(certificate))
}

/// Banter's QUIC client configuration for `options`: certificate trust, ALPN, transport
/// settings, TLS session tickets. For tools and tests that make the connection themselves
/// (and may change the transport, as a hostile client would).
pub fn quic_config(options: &Options) -> Result<quinn::ClientConfig, ConnectError> {
    let tls = options
        .tls_sessions
        .tls_config(&options.trust)
        .map_err(|e| ConnectError::Handshake(format!("CA certificates: {e}")))?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ConnectError::Handshake(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    if options.keep_alive.is_zero() || options.idle_timeout <= options.keep_alive {
        return Err(ConnectError::Handshake(
            "the keep-alive must be above zero and below the idle timeout".into(),
        ));
    }
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(options.keep_alive));
    // The first RTT guess paces the handshake's retransmissions: 100 ms (not QUIC's 333 ms)
    // resends a lost Initial after ~0.3 s, ~1 s, ~2.3 s, so a server that comes back is
    // found quickly; paths slower than that merely resend one small packet early.
    transport.initial_rtt(Duration::from_millis(100));
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(options.idle_timeout)
            .map_err(|e| ConnectError::Handshake(format!("idle timeout: {e}")))?,
    ));
    transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(8));
    transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(0));
    transport.receive_window(quinn::VarInt::from_u32(8 * 1024 * 1024));
    // With a key log someone reads the wire: one packet per send (a capture on this host sees
    // a segmentation-offload batch as one datagram Wireshark cannot split).
    transport.enable_segmentation_offload(std::env::var_os("SSLKEYLOGFILE").is_none());
    if !options.datagrams {
        transport.datagram_receive_buffer_size(None);
    }
    config.transport_config(Arc::new(transport));
    Ok(config)
}

async fn handshake(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    options: &Options,
) -> Result<quinn::Connection, ConnectError> {
    let config = quic_config(options)?;
    endpoint
        .connect_with(config, addr, &options.server_name)
        .map_err(|e| ConnectError::Handshake(e.to_string()))?
        .await
        .map_err(|e| match crate::tls::refused_certificate(&e) {
            Some(refused) if refused.pin_mismatch && matches!(options.trust, Trust::Pinned(_)) => {
                ConnectError::Untrusted(crate::tls::PIN_MISMATCH.to_owned())
            }
            Some(refused) => ConnectError::Untrusted(refused.reason),
            None => ConnectError::Handshake(e.to_string()),
        })
}

/// Runs the connection: the control stream both ways, the server's unidirectional streams,
/// and the ping timer.
async fn drive(
    streams: ServerStreams,
    mut control: quinn::SendStream,
    mut greet: mpsc::UnboundedReceiver<()>,
) {
    let ServerStreams { conn, session, events, .. } = streams.clone();
    let (control_in_tx, mut control_in) = mpsc::channel::<Option<Vec<u8>>>(16);
    let mut have_control = false;
    let closed = loop {
        let timer = lock(&session).poll_timeout().map(tokio::time::Instant::from_std);
        // Set when the connection ended; reported after what was read before it.
        let mut ended = None;
        tokio::select! {
            stream = conn.accept_uni() => match stream {
                Ok(recv) => {
                    let (kind_tx, kind_rx) = oneshot::channel();
                    tokio::spawn(read_server_stream(recv, streams.clone(), control_in_tx.clone(), kind_tx, have_control));
                    if let Ok(StreamType::CONTROL) = kind_rx.await {
                        have_control = true;
                    }
                }
                Err(e) => ended = Some(closed_event(&e)),
            },
            Some(bytes) = control_in.recv() => match bytes {
                Some(bytes) => lock(&session).handle_control(Instant::now(), &bytes),
                None => {
                    // A server finishes its control stream just before it closes the
                    // connection (after an ERROR); report its close, not our own.
                    if let Ok(error) = tokio::time::timeout(Duration::from_secs(1), conn.closed()).await {
                        break closed_event(&error);
                    }
                    lock(&session).handle_control_closed();
                }
            },
            Some(()) = greet.recv() => {}
            () = async { match timer { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                lock(&session).handle_timeout(Instant::now());
            }
            error = conn.closed() => ended = Some(closed_event(&error)),
        }
        if ended.is_some() {
            // The ERROR that says why a server closed travels on the control stream and can
            // still be on its way through the reader when the close arrives: take it first.
            while let Ok(Some(Some(bytes))) =
                tokio::time::timeout(Duration::from_millis(200), control_in.recv()).await
            {
                lock(&session).handle_control(Instant::now(), &bytes);
            }
        }
        let mut close = None;
        loop {
            let event = lock(&session).poll_event();
            let Some(event) = event else { break };
            let forwarded = match event {
                ClientEvent::Welcome(w) => Event::Welcome(w),
                ClientEvent::Resumed(r) => Event::Resumed(r),
                ClientEvent::Rejected(e) => Event::Rejected(e),
                ClientEvent::GoAway(g) => Event::GoAway(g),
                ClientEvent::Close(c) => {
                    close = Some(c);
                    continue;
                }
                ClientEvent::PeerSettings(_) | ClientEvent::RoundTrip(_) => continue,
            };
            let _ = events.send(forwarded);
        }
        if let Some(ended) = ended {
            break ended;
        }
        let outgoing = lock(&session).poll_transmit();
        if let Some(bytes) = outgoing {
            if let Err(error) = control.write_all(&bytes).await {
                break Event::Closed { code: None, reason: format!("control stream: {error}") };
            }
        }
        if let Some(close) = close {
            conn.close(
                quinn::VarInt::from_u64(close.code.0).unwrap_or_default(),
                close.reason.as_bytes(),
            );
            break Event::Closed { code: Some(close.code), reason: close.reason };
        }
    };
    let _ = events.send(closed);
}

/// Where the server's unidirectional streams lead.
#[derive(Clone)]
struct ServerStreams {
    conn: quinn::Connection,
    session: Arc<Mutex<ClientConnection>>,
    events: mpsc::UnboundedSender<Event>,
    voice_tunnel: VoiceInbox,
}

/// Reads one server unidirectional stream: reports its type, then forwards its frames (or
/// its voice tunnel records).
async fn read_server_stream(
    mut recv: quinn::RecvStream,
    streams: ServerStreams,
    control: mpsc::Sender<Option<Vec<u8>>>,
    kind_tx: oneshot::Sender<StreamType>,
    have_control: bool,
) {
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (kind, used) = loop {
        if let Ok(found) = StreamType::decode(&head) {
            break found;
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    };
    let _ = kind_tx.send(kind);
    let rest = head.split_off(used);
    let ServerStreams { conn, session, events, voice_tunnel } = streams;
    match kind {
        StreamType::CONTROL if !have_control => {
            let _ = control.send(Some(rest)).await;
            loop {
                match recv.read(&mut buf).await {
                    Ok(Some(n)) => {
                        if control.send(Some(buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                    _ => {
                        let _ = control.send(None).await;
                        return;
                    }
                }
            }
        }
        StreamType::EVENTS | StreamType::EPHEMERAL => {
            let numbered = kind == StreamType::EVENTS;
            let mut decoder = FrameDecoder::new(banter_protocol::frame::DEFAULT_MAX_FRAME_SIZE);
            decoder.push(&rest);
            loop {
                while let Ok(Some(message)) = decoder.next_message() {
                    if numbered {
                        if let Some(seq) = message.event_seq() {
                            lock(&session).handle_event_seq(seq);
                        }
                        let _ = events.send(Event::Room(message));
                    } else {
                        let _ = events.send(Event::Ephemeral(message));
                    }
                }
                match recv.read(&mut buf).await {
                    Ok(Some(n)) => decoder.push(&buf[..n]),
                    _ => return,
                }
            }
        }
        StreamType::VOICE_TUNNEL => {
            let mut reader = TunnelReader::new();
            reader.push(&rest);
            loop {
                loop {
                    match reader.next_record() {
                        Ok(Some(record)) => {
                            let inbox = voice_tunnel.lock().unwrap_or_else(|e| e.into_inner());
                            // Not in voice, or the session is behind: voice is dropped.
                            if let Some(inbox) = inbox.as_ref() {
                                let _ = inbox.try_send(record);
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            let code = quinn::VarInt::from_u64(error.code().0).unwrap_or_default();
                            conn.close(code, error.to_string().as_bytes());
                            return;
                        }
                    }
                }
                match recv.read(&mut buf).await {
                    Ok(Some(n)) => reader.push(&buf[..n]),
                    _ => return,
                }
            }
        }
        _ => {
            let _ =
                recv.stop(quinn::VarInt::from_u64(ErrorCode::UNKNOWN_STREAM.0).unwrap_or_default());
        }
    }
}
