//! The voice participants of other nodes (cluster mode), as their nodes announce them: each
//! node's participants per room, with a lifetime that the node's periodic roster renews. A
//! node that stops announcing (it died) is forgotten when the lifetime ends, and its
//! participants leave every roster here.

use std::collections::HashMap;
use std::time::Instant;

use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::VoiceParticipant;

use super::VoiceNotice;

/// One node's participants in one room.
#[derive(Debug)]
struct Group {
    participants: Vec<VoiceParticipant>,
    expires: Instant,
}

/// Other nodes' participants, by room, then by node.
#[derive(Debug, Default)]
pub(super) struct RemoteRosters {
    rooms: HashMap<RoomId, HashMap<u64, Group>>,
}

fn left(room: RoomId, participant: VoiceParticipant) -> VoiceNotice {
    VoiceNotice::State { room, actor: participant.user, participant, present: false }
}

fn joined(room: RoomId, participant: VoiceParticipant) -> VoiceNotice {
    VoiceNotice::State { room, actor: participant.user, participant, present: true }
}

impl RemoteRosters {
    /// Everyone in `room`'s voice on other nodes.
    pub(super) fn participants(&self, room: RoomId) -> impl Iterator<Item = &VoiceParticipant> {
        let nodes = self.rooms.get(&room).into_iter().flat_map(HashMap::values);
        nodes.flat_map(|group| group.participants.iter())
    }

    /// Whether `user` is in `room`'s voice on another node.
    pub(super) fn has_user(&self, room: RoomId, user: UserId) -> bool {
        self.participants(room).any(|p| p.user == user)
    }

    /// A participant of `node` joined, changed or left.
    pub(super) fn apply(
        &mut self,
        node: u64,
        room: RoomId,
        participant: VoiceParticipant,
        present: bool,
        expires: Instant,
    ) {
        let nodes = self.rooms.entry(room).or_default();
        let group = nodes.entry(node).or_insert(Group { participants: Vec::new(), expires });
        group.participants.retain(|p| p.source != participant.source);
        if present {
            group.participants.push(participant);
        }
        if group.participants.is_empty() {
            nodes.remove(&node);
        }
        if nodes.is_empty() {
            self.rooms.remove(&room);
        }
    }

    /// `node`'s whole roster, as it announces it periodically: it replaces what was known of
    /// that node, renewing its lifetime. The notices say what changed (announcements of
    /// single changes that the bus lost).
    pub(super) fn replace(
        &mut self,
        node: u64,
        rosters: Vec<(RoomId, Vec<VoiceParticipant>)>,
        expires: Instant,
    ) -> Vec<VoiceNotice> {
        let mut announced: HashMap<RoomId, Vec<VoiceParticipant>> = rosters.into_iter().collect();
        let mut notices = Vec::new();
        for (&room, nodes) in &mut self.rooms {
            if !announced.contains_key(&room) {
                if let Some(gone) = nodes.remove(&node) {
                    notices.extend(gone.participants.into_iter().map(|p| left(room, p)));
                }
            }
        }
        for (room, participants) in announced.drain() {
            let nodes = self.rooms.entry(room).or_default();
            let before = nodes.remove(&node).map(|g| g.participants).unwrap_or_default();
            for p in &before {
                if !participants.iter().any(|now| now.source == p.source) {
                    notices.push(left(room, p.clone()));
                }
            }
            for p in &participants {
                if !before.contains(p) {
                    notices.push(joined(room, p.clone()));
                }
            }
            if !participants.is_empty() {
                nodes.insert(node, Group { participants, expires });
            }
        }
        self.rooms.retain(|_, nodes| !nodes.is_empty());
        notices
    }

    /// Forgets the nodes whose lifetime ended by `now`: their participants left.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<VoiceNotice> {
        let mut notices = Vec::new();
        for (&room, nodes) in &mut self.rooms {
            nodes.retain(|_, group| {
                let alive = group.expires > now;
                if !alive {
                    notices.extend(group.participants.drain(..).map(|p| left(room, p)));
                }
                alive
            });
        }
        self.rooms.retain(|_, nodes| !nodes.is_empty());
        notices
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use banter_protocol::ids::SourceId;
    use banter_protocol::message::VoiceState;

    use super::*;

    fn participant(user: u64, source: u32) -> VoiceParticipant {
        VoiceParticipant {
            user: UserId(user),
            source: SourceId(source),
            state: VoiceState {
                self_mute: false,
                self_deaf: false,
                server_mute: false,
                suppressed: false,
                requested_to_speak: None,
            },
        }
    }

    fn present(notices: &[VoiceNotice]) -> Vec<(u32, bool)> {
        notices
            .iter()
            .map(|n| match n {
                VoiceNotice::State { participant, present, .. } => (participant.source.0, *present),
                VoiceNotice::Speaking { .. } => panic!("a roster change is not speech"),
            })
            .collect()
    }

    #[test]
    fn a_roster_announcement_replaces_the_nodes_participants_and_says_what_was_missed() {
        let (room, other_room) = (RoomId(1), RoomId(2));
        let now = Instant::now();
        let later = now + Duration::from_secs(3);
        let mut rosters = RemoteRosters::default();
        rosters.apply(7, room, participant(1, 10), true, later);
        rosters.apply(7, other_room, participant(2, 11), true, later);
        rosters.apply(8, room, participant(3, 12), true, later);
        // Node 7 lost the announcements that 2 left and 4 joined.
        let notices =
            rosters.replace(7, vec![(room, vec![participant(1, 10), participant(4, 13)])], later);
        let mut seen = present(&notices);
        seen.sort_unstable();
        assert_eq!(seen, vec![(11, false), (13, true)]);
        let mut sources: Vec<u32> = rosters.participants(room).map(|p| p.source.0).collect();
        sources.sort_unstable();
        assert_eq!(sources, vec![10, 12, 13], "node 8's participant stays");
        assert_eq!(rosters.participants(other_room).count(), 0);
        assert!(rosters.has_user(room, UserId(4)));
    }

    #[test]
    fn a_silent_nodes_participants_leave_when_its_lifetime_ends() {
        let room = RoomId(1);
        let now = Instant::now();
        let mut rosters = RemoteRosters::default();
        rosters.apply(7, room, participant(1, 10), true, now + Duration::from_secs(1));
        rosters.apply(8, room, participant(2, 11), true, now + Duration::from_secs(5));
        assert!(rosters.expire(now).is_empty());
        let notices = rosters.expire(now + Duration::from_secs(2));
        assert_eq!(present(&notices), vec![(10, false)]);
        assert!(rosters.has_user(room, UserId(2)) && !rosters.has_user(room, UserId(1)));
        rosters.apply(8, room, participant(2, 11), false, now);
        assert_eq!(rosters.participants(room).count(), 0, "the last one left");
    }
}
