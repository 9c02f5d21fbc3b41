//! The client's view of one connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::bounded::Blob;
use crate::error::ErrorCode;
use crate::ids::ResumeId;
use crate::message::{Error, GoAway, Hello, Message, Ping, Resume, Resumed, Welcome, max};
use crate::session::{Close, ControlStream, EventCursor, unexpected};
use crate::settings::Limits;

/// What the client advertises and how often it pings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client's SETTINGS.
    pub limits: Limits,
    /// Time between PINGs (spec §7.4: 15 s).
    pub ping_interval: Duration,
    /// Delay of the first PING. The caller picks it at random in `0..ping_interval` so that
    /// many clients reconnecting together do not ping in lockstep.
    pub first_ping_delay: Duration,
    /// How long to wait for WELCOME / RESUMED before giving up.
    pub auth_timeout: Duration,
    /// `Some(n)`: send one GREASE frame after SETTINGS.
    pub grease: Option<u32>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            ping_interval: Duration::from_secs(15),
            first_ping_delay: Duration::from_secs(15),
            auth_timeout: Duration::from_secs(10),
            grease: None,
        }
    }
}

/// How the connection authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// Start a new session.
    Hello {
        /// The access token.
        access_token: Blob<{ max::TOKEN }>,
        /// Interest bits ([`Hello::INTEREST_ALL`]).
        interests: u64,
    },
    /// Resume a session.
    Resume {
        /// The access token.
        access_token: Blob<{ max::TOKEN }>,
        /// From the session's WELCOME.
        resume_id: ResumeId,
        /// The last event_seq processed.
        last_event_seq: u64,
        /// Interest bits.
        interests: u64,
    },
}

/// Something the client application must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server's SETTINGS arrived.
    PeerSettings(Limits),
    /// HELLO succeeded; a new session (event_seq starts at 1).
    Welcome(Welcome),
    /// RESUME succeeded; events replay from `replay_from`.
    Resumed(Resumed),
    /// Authentication failed: the ERROR says why (its code's action tells what to do next,
    /// e.g. RESUME_UNAVAILABLE → HELLO and catch up; TOKEN_EXPIRED → REFRESH).
    Rejected(Error),
    /// The server is going away; reconnect (to the hint, if any) and resume.
    GoAway(GoAway),
    /// A PONG arrived: the round-trip time of the PING it answers.
    RoundTrip(Duration),
    /// Close the connection.
    Close(Close),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Idle,
    Waiting { deadline: Instant },
    Done,
    Failed,
}

/// One connection, client side. See the [module docs](crate::session) for the calling
/// convention.
#[derive(Debug)]
pub struct ClientConnection {
    control: ControlStream,
    auth: Auth,
    cursor: EventCursor,
    epoch: Instant,
    next_ping: Instant,
    ping_interval: Duration,
    auth_timeout: Duration,
    /// The `last_event_seq` of our RESUME, if we sent one.
    resumed_after: Option<u64>,
    events: VecDeque<ClientEvent>,
    closed: bool,
    peer_limits: Option<Limits>,
}

impl ClientConnection {
    /// A new connection: SETTINGS are queued at once (the client does not wait for the
    /// server's, spec §5.1). A client that already holds a token calls
    /// [`greet`](Self::greet) right away; one that must log in first sends LOGIN on a request
    /// stream and greets with the token it gets.
    pub fn new(config: &ClientConfig, now: Instant) -> Self {
        Self {
            control: ControlStream::new(&config.limits, config.grease),
            auth: Auth::Idle,
            cursor: EventCursor::starting_after(0),
            epoch: now,
            next_ping: now + config.first_ping_delay,
            ping_interval: config.ping_interval,
            auth_timeout: config.auth_timeout,
            resumed_after: None,
            events: VecDeque::new(),
            closed: false,
            peer_limits: None,
        }
    }

    /// Sends HELLO or RESUME; WELCOME, RESUMED or a rejection follows as a [`ClientEvent`].
    /// Only the first call has an effect (spec §7.1: once per connection).
    pub fn greet(&mut self, now: Instant, greeting: Greeting) {
        if self.closed || self.auth != Auth::Idle {
            return;
        }
        match greeting {
            Greeting::Hello { access_token, interests } => {
                self.control.send(&Hello { access_token, interests });
                self.cursor = EventCursor::starting_after(0);
            }
            Greeting::Resume { access_token, resume_id, last_event_seq, interests } => {
                self.control.send(&Resume { access_token, resume_id, last_event_seq, interests });
                self.cursor = EventCursor::starting_after(last_event_seq);
                self.resumed_after = Some(last_event_seq);
            }
        }
        self.auth = Auth::Waiting { deadline: now + self.auth_timeout };
    }

    /// Bytes read from the server's control stream.
    pub fn handle_control(&mut self, now: Instant, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.control.decoder.push(bytes);
        loop {
            match self.control.next() {
                Ok(Some(message)) => {
                    if let Err(close) = self.on_message(now, message) {
                        return self.close(close);
                    }
                }
                Ok(None) => return,
                Err(close) => return self.close(close),
            }
        }
    }

    /// The server closed or reset its control stream.
    pub fn handle_control_closed(&mut self) {
        self.close(Close::new(ErrorCode::CLOSED_CRITICAL_STREAM, "control stream closed"));
    }

    fn on_message(&mut self, now: Instant, message: Message) -> Result<(), Close> {
        let waiting = matches!(self.auth, Auth::Waiting { .. });
        match message {
            Message::Settings(settings) => {
                let limits = Limits::from_settings(&settings).map_err(|e| {
                    Close::new(ErrorCode::PROTOCOL_VIOLATION, format!("SETTINGS: {e}"))
                })?;
                self.peer_limits = Some(limits.clone());
                self.events.push_back(ClientEvent::PeerSettings(limits));
            }
            Message::Welcome(welcome) if waiting => {
                // The cursor was set by `greet`; events may already have advanced it (the
                // events stream and the control stream are not ordered with each other).
                self.auth = Auth::Done;
                self.events.push_back(ClientEvent::Welcome(welcome));
            }
            Message::Resumed(resumed) if waiting && self.resumed_after.is_some() => {
                // Compared with what we asked for, not the cursor: replayed events may already
                // have been processed (the two streams are not ordered with each other).
                let expected = self.resumed_after.unwrap_or_default() + 1;
                if resumed.replay_from != expected {
                    return Err(Close::new(
                        ErrorCode::PROTOCOL_VIOLATION,
                        format!(
                            "RESUMED from {} but asked after {}",
                            resumed.replay_from,
                            expected - 1
                        ),
                    ));
                }
                self.auth = Auth::Done;
                self.events.push_back(ClientEvent::Resumed(resumed));
            }
            Message::Error(error) if waiting => {
                self.auth = Auth::Failed;
                self.events.push_back(ClientEvent::Rejected(error));
            }
            Message::Error(error) => {
                // After authentication an ERROR on the control stream precedes a close
                // (revoked session, kicked off the server).
                self.events.push_back(ClientEvent::Rejected(error));
            }
            Message::Ping(ping) => self.control.send(&crate::message::Pong { t: ping.t }),
            Message::Pong(pong) => {
                let sent = self.epoch + Duration::from_micros(pong.t);
                self.events.push_back(ClientEvent::RoundTrip(now.saturating_duration_since(sent)));
            }
            Message::GoAway(go_away) => self.events.push_back(ClientEvent::GoAway(go_away)),
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }

    /// An event_seq read from the events stream, in order. A gap or repeat is the server's
    /// fault and closes the connection.
    pub fn handle_event_seq(&mut self, event_seq: u64) {
        if let Err(close) = self.cursor.advance(event_seq) {
            self.close(close);
        }
    }

    /// The last event_seq processed (for RESUME after a reconnect).
    pub fn last_event_seq(&self) -> u64 {
        self.cursor.last()
    }

    /// Timer expiry: PINGs go out, and an unanswered HELLO/RESUME times out.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Auth::Waiting { deadline } = self.auth {
            if now >= deadline {
                return self.close(Close::new(ErrorCode::NOT_AUTHENTICATED, "no WELCOME in time"));
            }
        }
        if now >= self.next_ping {
            let t = now.saturating_duration_since(self.epoch).as_micros() as u64;
            self.control.send(&Ping { t, ack_event_seq: self.cursor.last() });
            self.next_ping = now + self.ping_interval;
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        match self.auth {
            Auth::Waiting { deadline } => Some(deadline.min(self.next_ping)),
            _ => Some(self.next_ping),
        }
    }

    /// Bytes to write to our control stream.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.control.take_outbox()
    }

    /// The next thing for the application to do.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The server's limits and features, once its SETTINGS arrived.
    pub fn peer_limits(&self) -> Option<&Limits> {
        self.peer_limits.as_ref()
    }

    /// Whether WELCOME or RESUMED arrived.
    pub fn is_authenticated(&self) -> bool {
        self.auth == Auth::Done
    }

    fn close(&mut self, close: Close) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(ClientEvent::Close(close));
        }
    }
}
