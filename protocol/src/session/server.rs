//! The server's view of one connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::bounded::{Blob, Text};
use crate::error::ErrorCode;
use crate::frame::FrameType;
use crate::ids::{ResumeId, UserId};
use crate::message::{
    self, Error, Frame, GoAway, Message, PRE_AUTH_REQUESTS, Pong, Resumed, Welcome, max,
};
use crate::session::{Close, ControlStream, unexpected};
use crate::settings::Limits;

/// What the server advertises and enforces per connection.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's SETTINGS.
    pub limits: Limits,
    /// How long a connection may stay unauthenticated (spec §7.1).
    pub auth_timeout: Duration,
    /// `Some(n)`: send one GREASE frame after SETTINGS (spec §10.5), `n` chosen by the caller.
    pub grease: Option<u32>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { limits: Limits::default(), auth_timeout: Duration::from_secs(10), grease: None }
    }
}

/// What the client asked to authenticate with; the application checks the token (and, for
/// resume, the replay buffer) and answers with [`ServerConnection::accept_hello`],
/// [`ServerConnection::accept_resume`] or [`ServerConnection::reject`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// HELLO: a new session.
    Hello {
        /// The access token.
        access_token: Blob<{ max::TOKEN }>,
        /// Interest bits.
        interests: u64,
    },
    /// RESUME: an earlier session.
    Resume {
        /// The access token.
        access_token: Blob<{ max::TOKEN }>,
        /// The session.
        resume_id: ResumeId,
        /// Replay after this.
        last_event_seq: u64,
        /// Interest bits.
        interests: u64,
    },
}

/// Something the server application must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The client's SETTINGS arrived; its limits now apply to what we send.
    PeerSettings(Limits),
    /// Verify this and answer.
    Authenticate(AuthRequest),
    /// The client acknowledged events up to this event_seq (trim the replay buffer).
    EventsAcked(u64),
    /// Close the connection.
    Close(Close),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Waiting for HELLO or RESUME, until the deadline.
    Waiting { deadline: Instant },
    /// The application is checking the token.
    Checking { deadline: Instant },
    /// Authenticated as this user.
    Done { user: UserId },
}

/// One connection, server side. See the [module docs](crate::session) for the calling
/// convention.
#[derive(Debug)]
pub struct ServerConnection {
    control: ControlStream,
    auth: Auth,
    peer_limits: Option<Limits>,
    events: VecDeque<ServerEvent>,
    draining: bool,
    closed: bool,
}

impl ServerConnection {
    /// A new connection; SETTINGS are queued for sending at once.
    pub fn new(config: &ServerConfig, now: Instant) -> Self {
        Self {
            control: ControlStream::new(&config.limits, config.grease),
            auth: Auth::Waiting { deadline: now + config.auth_timeout },
            peer_limits: None,
            events: VecDeque::new(),
            draining: false,
            closed: false,
        }
    }

    /// Bytes read from the client's control stream.
    pub fn handle_control(&mut self, _now: Instant, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.control.decoder.push(bytes);
        loop {
            match self.control.next() {
                Ok(Some(message)) => {
                    if let Err(close) = self.on_message(message) {
                        return self.close(close);
                    }
                }
                Ok(None) => return,
                Err(close) => return self.close(close),
            }
        }
    }

    /// The client closed or reset its control stream (spec §3.2: a connection error).
    pub fn handle_control_closed(&mut self) {
        self.close(Close::new(ErrorCode::CLOSED_CRITICAL_STREAM, "control stream closed"));
    }

    fn on_message(&mut self, message: Message) -> Result<(), Close> {
        match message {
            Message::Settings(settings) => {
                let limits = Limits::from_settings(&settings).map_err(|e| {
                    Close::new(ErrorCode::PROTOCOL_VIOLATION, format!("SETTINGS: {e}"))
                })?;
                self.peer_limits = Some(limits.clone());
                self.events.push_back(ServerEvent::PeerSettings(limits));
            }
            Message::Ping(ping) => {
                self.control.send(&Pong { t: ping.t });
                if matches!(self.auth, Auth::Done { .. }) && ping.ack_event_seq > 0 {
                    self.events.push_back(ServerEvent::EventsAcked(ping.ack_event_seq));
                }
            }
            Message::Pong(_) => {}
            Message::Hello(hello) => self.begin_auth(AuthRequest::Hello {
                access_token: hello.access_token,
                interests: hello.interests,
            })?,
            Message::Resume(resume) => self.begin_auth(AuthRequest::Resume {
                access_token: resume.access_token,
                resume_id: resume.resume_id,
                last_event_seq: resume.last_event_seq,
                interests: resume.interests,
            })?,
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }

    fn begin_auth(&mut self, request: AuthRequest) -> Result<(), Close> {
        let Auth::Waiting { deadline } = self.auth else {
            return Err(Close::new(ErrorCode::PROTOCOL_VIOLATION, "HELLO/RESUME sent twice"));
        };
        self.auth = Auth::Checking { deadline };
        self.events.push_back(ServerEvent::Authenticate(request));
        Ok(())
    }

    /// The application accepted a HELLO: WELCOME goes out.
    pub fn accept_hello(&mut self, welcome: Welcome) {
        if self.finish_auth(welcome.user) {
            self.control.send(&welcome);
        }
    }

    /// The application accepted a RESUME: RESUMED goes out; the driver then replays events
    /// from `resumed.replay_from` on the new events stream.
    pub fn accept_resume(&mut self, user: UserId, resumed: Resumed) {
        if self.finish_auth(user) {
            self.control.send(&resumed);
        }
    }

    fn finish_auth(&mut self, user: UserId) -> bool {
        if self.closed || !matches!(self.auth, Auth::Checking { .. }) {
            return false;
        }
        self.auth = Auth::Done { user };
        true
    }

    /// The application refused the HELLO or RESUME (or revoked the session later): an ERROR
    /// frame explains, then the connection closes with the same code.
    pub fn reject(&mut self, code: ErrorCode, message: &str) {
        self.reject_with(Error::new(code, message));
    }

    /// As [`reject`](Self::reject), saying after how many ms a retry may succeed
    /// (RATE_LIMITED, SERVER_BUSY).
    pub fn reject_with_retry(&mut self, code: ErrorCode, message: &str, retry_after_ms: u64) {
        let mut error = Error::new(code, message);
        error.retry_after_ms = Some(retry_after_ms);
        self.reject_with(error);
    }

    fn reject_with(&mut self, error: Error) {
        if self.closed {
            return;
        }
        let close = Close::new(error.code, error.message.as_str());
        self.control.send(&error);
        self.close(close);
    }

    /// Starts a graceful shutdown: GO_AWAY goes out and new requests are refused with
    /// GOING_AWAY (spec §7.6). The driver closes with GOING_AWAY after `drain_ms`.
    pub fn go_away(&mut self, reconnect_hint: &str, drain_ms: u64) {
        if self.closed || self.draining {
            return;
        }
        self.draining = true;
        let hint = Text::new(reconnect_hint).unwrap_or_default();
        self.control.send(&GoAway { reconnect_hint: hint, drain_ms });
    }

    /// Decides whether a request stream whose first frame has type `frame_type` may proceed
    /// (spec §7.1). On `Err`, the driver answers ERROR with that code and finishes the stream.
    pub fn admit_request(&self, frame_type: FrameType) -> Result<(), ErrorCode> {
        let is_request = message::registry_entry(frame_type).is_some_and(|i| i.is_request());
        if !is_request || frame_type == message::KeyProof::TYPE {
            return Err(ErrorCode::PROTOCOL_VIOLATION);
        }
        if self.closed || self.draining {
            return Err(ErrorCode::GOING_AWAY);
        }
        match self.auth {
            Auth::Done { .. } => Ok(()),
            _ if PRE_AUTH_REQUESTS.contains(&frame_type) => Ok(()),
            _ => Err(ErrorCode::NOT_AUTHENTICATED),
        }
    }

    /// Timer expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Auth::Waiting { deadline } | Auth::Checking { deadline } = self.auth {
            if now >= deadline {
                self.reject(ErrorCode::NOT_AUTHENTICATED, "authentication timed out");
            }
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.auth {
            _ if self.closed => None,
            Auth::Waiting { deadline } | Auth::Checking { deadline } => Some(deadline),
            Auth::Done { .. } => None,
        }
    }

    /// Bytes to write to our control stream.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.control.take_outbox()
    }

    /// The next thing for the application to do.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The authenticated user, once HELLO or RESUME was accepted.
    pub fn user(&self) -> Option<UserId> {
        match self.auth {
            Auth::Done { user } => Some(user),
            _ => None,
        }
    }

    /// The client's limits, once its SETTINGS arrived.
    pub fn peer_limits(&self) -> Option<&Limits> {
        self.peer_limits.as_ref()
    }

    /// Whether GO_AWAY was sent.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    fn close(&mut self, close: Close) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(ServerEvent::Close(close));
        }
    }
}
