//! The connection state machines driven against each other in memory, with a virtual clock:
//! no sockets, no sleeps (spec §7).

use std::time::{Duration, Instant};

use banter_protocol::bounded::{Blob, Text};
use banter_protocol::frame::encode_raw;
use banter_protocol::ids::{ResumeId, Timestamp, UserId};
use banter_protocol::message::{self, EventFrame, Frame, Hello, Ping, Resumed, Welcome};
use banter_protocol::session::{
    AuthRequest, ClientConfig, ClientConnection, ClientEvent, Close, Greeting, ReplayBuffer,
    ServerConfig, ServerConnection, ServerEvent,
};
use banter_protocol::settings::Limits;
use banter_protocol::{ErrorCode, FrameType};

/// A client and a server connected by their control streams, and a virtual clock.
struct Pair {
    now: Instant,
    client: ClientConnection,
    server: ServerConnection,
    client_events: Vec<ClientEvent>,
    server_events: Vec<ServerEvent>,
}

fn token() -> Blob<1024> {
    Blob::new(b"good-token".to_vec()).unwrap()
}

fn welcome() -> Welcome {
    Welcome {
        resume_id: ResumeId([7; 16]),
        user: UserId(1),
        username: Text::new("ada").unwrap(),
        server_time: Timestamp(0),
    }
}

impl Pair {
    fn new(greeting: Greeting) -> Self {
        let now = Instant::now();
        let client_config = ClientConfig { grease: Some(3), ..ClientConfig::default() };
        let server_config = ServerConfig { grease: Some(5), ..ServerConfig::default() };
        Self {
            now,
            client: {
                let mut client = ClientConnection::new(&client_config, now);
                client.greet(now, greeting);
                client
            },
            server: ServerConnection::new(&server_config, now),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    fn hello() -> Self {
        Self::new(Greeting::Hello { access_token: token(), interests: Hello::INTEREST_ALL })
    }

    /// Moves bytes both ways, delivering them one byte at a time to exercise reassembly,
    /// until nothing is left to move.
    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit() {
                for byte in bytes {
                    self.server.handle_control(self.now, &[byte]);
                }
                moved = true;
            }
            while let Some(bytes) = self.server.poll_transmit() {
                for byte in bytes {
                    self.client.handle_control(self.now, &[byte]);
                }
                moved = true;
            }
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
                moved = true;
            }
            while let Some(event) = self.server.poll_event() {
                self.server_events.push(event);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances the clock to the earliest timer, fires it, and drives.
    fn advance_to_next_timer(&mut self) {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer is armed");
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.drive();
    }

    fn take_auth_request(&mut self) -> AuthRequest {
        let position = self
            .server_events
            .iter()
            .position(|e| matches!(e, ServerEvent::Authenticate(_)))
            .expect("the server was asked to authenticate");
        match self.server_events.remove(position) {
            ServerEvent::Authenticate(request) => request,
            _ => unreachable!(),
        }
    }

    fn server_closed(&self) -> Option<&Close> {
        self.server_events.iter().find_map(|e| match e {
            ServerEvent::Close(close) => Some(close),
            _ => None,
        })
    }

    fn client_closed(&self) -> Option<&Close> {
        self.client_events.iter().find_map(|e| match e {
            ClientEvent::Close(close) => Some(close),
            _ => None,
        })
    }
}

#[test]
fn hello_exchanges_settings_and_welcomes_the_client() {
    let mut pair = Pair::hello();
    pair.drive();
    assert!(matches!(pair.server_events[0], ServerEvent::PeerSettings(_)));
    assert!(matches!(pair.client_events[0], ClientEvent::PeerSettings(_)));
    assert_eq!(
        pair.take_auth_request(),
        AuthRequest::Hello { access_token: token(), interests: Hello::INTEREST_ALL }
    );
    assert!(!pair.client.is_authenticated());

    pair.server.accept_hello(welcome());
    pair.drive();
    assert!(pair.client.is_authenticated());
    assert_eq!(pair.server.user(), Some(UserId(1)));
    assert!(pair.client_events.contains(&ClientEvent::Welcome(welcome())));
    assert_eq!(pair.server_closed(), None);
    assert_eq!(pair.client_closed(), None);
}

#[test]
fn requests_before_authentication_are_limited_to_the_login_family() {
    let mut pair = Pair::hello();
    pair.drive();
    assert_eq!(pair.server.admit_request(message::Login::TYPE), Ok(()));
    assert_eq!(pair.server.admit_request(message::Register::TYPE), Ok(()));
    assert_eq!(pair.server.admit_request(message::Post::TYPE), Err(ErrorCode::NOT_AUTHENTICATED));
    // Server-to-client types and follow-up frames never open a request stream.
    assert_eq!(pair.server.admit_request(Welcome::TYPE), Err(ErrorCode::PROTOCOL_VIOLATION));
    assert_eq!(
        pair.server.admit_request(message::KeyProof::TYPE),
        Err(ErrorCode::PROTOCOL_VIOLATION)
    );
    assert_eq!(pair.server.admit_request(FrameType(0x3f00)), Err(ErrorCode::PROTOCOL_VIOLATION));

    pair.take_auth_request();
    pair.server.accept_hello(welcome());
    pair.drive();
    assert_eq!(pair.server.admit_request(message::Post::TYPE), Ok(()));
}

#[test]
fn a_connection_that_never_authenticates_is_closed_at_the_deadline() {
    let mut server = ServerConnection::new(&ServerConfig::default(), Instant::now());
    let deadline = server.poll_timeout().unwrap();
    server.handle_timeout(deadline - Duration::from_millis(1));
    assert!(std::iter::from_fn(|| server.poll_event()).next().is_none());
    server.handle_timeout(deadline);
    let events: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(
        matches!(&events[..], [ServerEvent::Close(c)] if c.code == ErrorCode::NOT_AUTHENTICATED)
    );
    // An ERROR frame tells the client why before the close.
    let mut decoder = banter_protocol::FrameDecoder::new(65536);
    decoder.push(&server.poll_transmit().unwrap());
    let sent: Vec<_> = std::iter::from_fn(|| decoder.next_message().unwrap()).collect();
    assert!(sent.iter().any(|m| matches!(m, banter_protocol::Message::Error(e) if e.code == ErrorCode::NOT_AUTHENTICATED)));
}

#[test]
fn rejected_tokens_reach_the_client_as_an_error_with_its_code() {
    let mut pair = Pair::hello();
    pair.drive();
    pair.take_auth_request();
    pair.server.reject(ErrorCode::TOKEN_EXPIRED, "token expired");
    pair.drive();
    let rejected = pair.client_events.iter().find_map(|e| match e {
        ClientEvent::Rejected(error) => Some(error.code),
        _ => None,
    });
    assert_eq!(rejected, Some(ErrorCode::TOKEN_EXPIRED));
    assert_eq!(pair.server_closed().unwrap().code, ErrorCode::TOKEN_EXPIRED);
}

#[test]
fn a_first_frame_other_than_settings_closes_with_missing_settings() {
    let mut server = ServerConnection::new(&ServerConfig::default(), Instant::now());
    let mut bytes = Vec::new();
    Ping { t: 1, ack_event_seq: 0 }.encode_frame(&mut bytes);
    server.handle_control(Instant::now(), &bytes);
    let close = std::iter::from_fn(|| server.poll_event()).find_map(|e| match e {
        ServerEvent::Close(close) => Some(close),
        _ => None,
    });
    assert_eq!(close.unwrap().code, ErrorCode::MISSING_SETTINGS);
}

#[test]
fn a_second_hello_or_a_server_only_frame_is_a_protocol_violation() {
    let mut pair = Pair::hello();
    pair.drive();
    let mut bytes = Vec::new();
    Hello { access_token: token(), interests: 0 }.encode_frame(&mut bytes);
    pair.server.handle_control(pair.now, &bytes);
    pair.drive();
    assert_eq!(pair.server_closed().unwrap().code, ErrorCode::PROTOCOL_VIOLATION);

    let mut pair = Pair::hello();
    pair.drive();
    let mut bytes = Vec::new();
    welcome().encode_frame(&mut bytes);
    pair.server.handle_control(pair.now, &bytes);
    pair.drive();
    assert_eq!(pair.server_closed().unwrap().code, ErrorCode::PROTOCOL_VIOLATION);
}

#[test]
fn oversized_and_malformed_control_frames_close_with_the_mapped_code() {
    let mut pair = Pair::hello();
    pair.drive();
    let mut bytes = Vec::new();
    banter_protocol::varint::encode(0x02, &mut bytes);
    banter_protocol::varint::encode(1 << 20, &mut bytes);
    pair.server.handle_control(pair.now, &bytes);
    pair.drive();
    assert_eq!(pair.server_closed().unwrap().code, ErrorCode::FRAME_TOO_LARGE);

    let mut pair = Pair::hello();
    pair.drive();
    let mut bytes = Vec::new();
    encode_raw(Ping::TYPE, &[0x01], &mut bytes); // PING missing a field
    pair.server.handle_control(pair.now, &bytes);
    pair.drive();
    assert_eq!(pair.server_closed().unwrap().code, ErrorCode::FRAME_ERROR);
}

#[test]
fn pings_carry_the_events_ack_and_measure_round_trips() {
    let mut pair = Pair::hello();
    pair.drive();
    pair.take_auth_request();
    pair.server.accept_hello(welcome());
    pair.drive();
    for seq in 1..=5 {
        pair.client.handle_event_seq(seq);
    }
    // The first ping is due after first_ping_delay (the default config: 15 s).
    pair.advance_to_next_timer();
    assert!(pair.server_events.contains(&ServerEvent::EventsAcked(5)));
    assert!(pair.client_events.iter().any(|e| matches!(e, ClientEvent::RoundTrip(_))));
    // The next one follows ping_interval later.
    let before = pair.now;
    pair.advance_to_next_timer();
    assert_eq!(pair.now - before, Duration::from_secs(15));
}

#[test]
fn an_event_seq_gap_from_the_server_closes_the_connection() {
    let mut pair = Pair::hello();
    pair.drive();
    pair.take_auth_request();
    pair.server.accept_hello(welcome());
    pair.drive();
    pair.client.handle_event_seq(1);
    pair.client.handle_event_seq(3);
    pair.drive();
    assert_eq!(pair.client_closed().unwrap().code, ErrorCode::PROTOCOL_VIOLATION);
    assert_eq!(pair.client.last_event_seq(), 1);
}

#[test]
fn resume_replays_exactly_the_unacknowledged_events() {
    let t0 = Instant::now();
    let mut buffer = ReplayBuffer::new(Duration::from_secs(120), 1 << 20);
    for i in 0..10 {
        buffer.push(t0, |seq| vec![i, seq as u8].into());
    }
    buffer.ack(4);
    let replayed = |after| buffer.replay_after(after).map(|f| f.cloned().collect::<Vec<_>>());

    let resume_id = ResumeId([9; 16]);
    let mut pair = Pair::new(Greeting::Resume {
        access_token: token(),
        resume_id,
        last_event_seq: 6,
        interests: Hello::INTEREST_ALL,
    });
    pair.drive();
    let AuthRequest::Resume { last_event_seq, resume_id: asked, .. } = pair.take_auth_request()
    else {
        panic!("expected RESUME")
    };
    assert_eq!((asked, last_event_seq), (resume_id, 6));
    let replay = replayed(last_event_seq).unwrap();
    let expected: Vec<EventFrame> = (7..=10).map(|seq| vec![seq - 1, seq].into()).collect();
    assert_eq!(replay, expected);
    // Replay is deterministic: asking again gives the same frames.
    assert_eq!(replayed(6).unwrap(), replay);

    pair.server.accept_resume(
        UserId(1),
        Resumed { replay_from: last_event_seq + 1, server_time: Timestamp(0) },
    );
    pair.drive();
    assert!(pair.client.is_authenticated());
    for seq in 7..=10 {
        pair.client.handle_event_seq(seq);
    }
    pair.drive();
    assert_eq!(pair.client_closed(), None);
    assert_eq!(pair.client.last_event_seq(), 10);

    // Events already acknowledged and trimmed cannot be replayed.
    assert!(replayed(2).is_err());
    // Nor can events the server never sent.
    assert!(replayed(11).is_err());
}

#[test]
fn replay_buffer_forgets_after_the_window_and_beyond_its_budget() {
    let t0 = Instant::now();
    // Room for two 40-byte frames with their bookkeeping, not three.
    let mut buffer =
        ReplayBuffer::new(Duration::from_secs(60), 2 * (40 + ReplayBuffer::ENTRY_BYTES));
    buffer.push(t0, |_| vec![0; 40].into());
    buffer.push(t0, |_| vec![0; 40].into());
    assert!(buffer.replay_after(0).is_ok());
    buffer.push(t0, |_| vec![0; 40].into()); // over the budget: the oldest goes
    assert!(buffer.replay_after(0).is_err());
    assert_eq!(buffer.replay_after(1).unwrap().len(), 2);
    buffer.trim(t0 + Duration::from_secs(61));
    assert!(buffer.replay_after(1).is_err());
    assert_eq!(buffer.replay_after(3).unwrap().len(), 0);
    assert_eq!(buffer.buffered_bytes(), 0);
}

#[test]
fn a_flood_of_tiny_frames_is_held_to_the_budget_with_its_bookkeeping() {
    let t0 = Instant::now();
    let budget = 64 * 1024;
    let mut buffer = ReplayBuffer::new(Duration::from_secs(60), budget);
    for _ in 0..100_000 {
        buffer.push(t0, |_| vec![0; 4].into());
    }
    assert!(buffer.buffered_bytes() <= budget);
    // What is kept, frames and entries together, fits the budget: a count of frame bytes
    // alone would have kept 16,384 of these.
    let oldest_point = (0..100_000).find(|&last| buffer.replay_after(last).is_ok()).unwrap();
    let kept = buffer.replay_after(oldest_point).unwrap().len();
    assert_eq!(kept, budget / (4 + ReplayBuffer::ENTRY_BYTES));
    // An entry (sequence number, time, the frame's handle) takes well over 64 bytes.
    assert!(kept <= budget / 64, "{kept} entries kept");
}

#[test]
fn frames_not_yet_written_stay_past_the_budget_and_the_window() {
    let t0 = Instant::now();
    let mut buffer =
        ReplayBuffer::new(Duration::from_secs(60), 2 * (40 + ReplayBuffer::ENTRY_BYTES));
    buffer.keep_after(0);
    for _ in 0..5 {
        buffer.push(t0, |_| vec![0; 40].into());
    }
    buffer.trim(t0 + Duration::from_secs(61));
    assert_eq!(buffer.replay_after(0).unwrap().len(), 5, "nothing written yet, nothing dropped");
    // Written up to 3: those may go, the rest stays.
    buffer.keep_after(3);
    buffer.trim(t0 + Duration::from_secs(61));
    assert!(buffer.replay_after(2).is_err());
    assert_eq!(buffer.replay_after(3).unwrap().len(), 2);
}

#[test]
fn a_resumed_answer_from_the_wrong_point_is_rejected_by_the_client() {
    let mut pair = Pair::new(Greeting::Resume {
        access_token: token(),
        resume_id: ResumeId([1; 16]),
        last_event_seq: 6,
        interests: 0,
    });
    pair.drive();
    pair.take_auth_request();
    pair.server.accept_resume(UserId(1), Resumed { replay_from: 3, server_time: Timestamp(0) });
    pair.drive();
    assert_eq!(pair.client_closed().unwrap().code, ErrorCode::PROTOCOL_VIOLATION);
}

#[test]
fn go_away_reaches_the_client_and_refuses_new_requests() {
    let mut pair = Pair::hello();
    pair.drive();
    pair.take_auth_request();
    pair.server.accept_hello(welcome());
    pair.server.go_away("", 3000);
    pair.drive();
    assert!(
        pair.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::GoAway(g) if g.drain_ms == 3000))
    );
    assert_eq!(pair.server.admit_request(message::Post::TYPE), Err(ErrorCode::GOING_AWAY));
}

#[test]
fn settings_out_of_range_close_the_connection() {
    let bad = Limits { max_frame_size: 1000, ..Limits::default() };
    let mut client = ClientConnection::new(
        &ClientConfig { limits: bad, ..ClientConfig::default() },
        Instant::now(),
    );
    let mut server = ServerConnection::new(&ServerConfig::default(), Instant::now());
    server.handle_control(Instant::now(), &client.poll_transmit().unwrap());
    let close = std::iter::from_fn(|| server.poll_event()).find_map(|e| match e {
        ServerEvent::Close(close) => Some(close),
        _ => None,
    });
    assert_eq!(close.unwrap().code, ErrorCode::PROTOCOL_VIOLATION);
}

#[test]
fn closing_the_control_stream_is_a_connection_error() {
    let mut pair = Pair::hello();
    pair.drive();
    pair.server.handle_control_closed();
    pair.drive();
    assert_eq!(pair.server_closed().unwrap().code, ErrorCode::CLOSED_CRITICAL_STREAM);
}

#[test]
fn events_processed_before_welcome_or_resumed_arrive_are_not_a_gap() {
    // The events stream and the control stream are independent: replayed (or first) events
    // may be processed before the control stream's RESUMED (or WELCOME).
    let mut pair = Pair::new(Greeting::Resume {
        access_token: token(),
        resume_id: ResumeId([2; 16]),
        last_event_seq: 6,
        interests: 0,
    });
    pair.drive();
    pair.take_auth_request();
    pair.client.handle_event_seq(7);
    pair.client.handle_event_seq(8);
    pair.server.accept_resume(UserId(1), Resumed { replay_from: 7, server_time: Timestamp(0) });
    pair.drive();
    assert_eq!(pair.client_closed(), None);
    assert_eq!(pair.client.last_event_seq(), 8);

    let mut pair = Pair::hello();
    pair.drive();
    pair.take_auth_request();
    pair.client.handle_event_seq(1);
    pair.server.accept_hello(welcome());
    pair.drive();
    pair.client.handle_event_seq(2);
    pair.drive();
    assert_eq!(pair.client_closed(), None);
    assert_eq!(pair.client.last_event_seq(), 2);
}
