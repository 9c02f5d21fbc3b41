//! Entry points for criterion benchmarks of crate-private hot paths
//! (`benches/benches/server.rs`), so that the numbers in benches/README.md measure banterd's
//! own code. Not an API.

use std::sync::Arc;
use std::time::Duration;

use banter_protocol::ids::{ResumeId, RoomId, SessionId, UserId};
use banter_protocol::message::Hello;

use crate::hub::{Hub, Session, SessionLimits};
use crate::requests::{Appended, publish};
use crate::store::records::{EntryKind, LogEntry};

/// One room whose members each have an attached session, and a post to fan out to them.
#[derive(Debug)]
pub struct Fanout {
    hub: Hub,
    sessions: Vec<Arc<Session>>,
    post: Appended,
}

impl Fanout {
    /// A room of `members` members, one session each, with banterd's default buffer limits.
    pub fn new(members: usize) -> Self {
        let hub =
            Hub::new(SessionLimits::uncapped(1024 * 1024, Duration::from_secs(120), 512 * 1024));
        let room = RoomId(1);
        let sessions = (1..=members as u64)
            .map(|n| {
                hub.add_member(room, UserId(n));
                let id = ResumeId((u128::from(n)).to_be_bytes());
                hub.create_session(id, UserId(n), SessionId(n), n as usize, Hello::INTEREST_ALL)
            })
            .collect();
        let entry = LogEntry {
            ts: 1_790_000_000_000,
            sender: 1,
            kind: EntryKind::Posted { client_msg_id: 7, reply_to: None, text: "x".repeat(100) },
        };
        Self { hub, sessions, post: Appended { room, seq: 1, entry, anonymous: false } }
    }

    /// Publishes the post to every member as banterd does after its commit (encoded once,
    /// stamped per session), then takes every session's queue as its stream writer would and
    /// acknowledges it as the client's next PING would. Returns how many sessions had a frame
    /// to take.
    pub fn publish_one(&mut self) -> usize {
        self.post.seq += 1;
        publish(&self.hub, &self.post, None);
        let mut taken = 0;
        for session in &self.sessions {
            taken += session.take_events().map_or(0, |bytes| usize::from(!bytes.is_empty()));
            session.ack(u64::MAX);
        }
        taken
    }
}
