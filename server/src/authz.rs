//! The one authorization function (spec §6.7). Every request path that touches a room asks
//! [`authorize`] with the caller's [`Standing`]; nothing else decides who may do what. Most
//! chat-server CVEs are one path that forgot its check; keeping the policy in one table keeps
//! it testable as a role × action matrix (a unit test here, and over QUIC in
//! `tests/tests/moderation.rs`, which is why it is public).

use banter_protocol::ErrorCode;
use banter_protocol::message::Role;

/// What the caller is, as far as one room is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The caller's role in the room, if a member.
    pub member: Option<Role>,
    /// The caller's server-wide role.
    pub server_role: Role,
    /// An active ban on the caller in this room.
    pub banned: bool,
    /// The room is private (only members may see it).
    pub private: bool,
    /// The room is locked (only moderators may post).
    pub locked: bool,
    /// The room is archived (nobody may post or change it).
    pub archived: bool,
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read history, catch up, list members, see the room.
    Read,
    /// Join the room (a private one only by invitation).
    Join,
    /// Delete one's own messages, set markers and typing, join voice.
    Participate,
    /// Post, edit, react (refused in a locked room below moderator).
    Post,
    /// Change the topic (refused in a locked room below moderator).
    SetTopic,
    /// Change the room's settings (slow mode, lock).
    Configure,
    /// Make an invite code or add a user (members in public rooms, moderators in private).
    Invite,
    /// Learn who wrote an (anonymous) entry.
    RevealAuthor,
    /// Act on another user who holds `target` rank: delete their message, kick, ban, unban,
    /// moderate their voice.
    Moderate {
        /// The target's effective rank in the room.
        target: Role,
    },
}

/// A user's effective rank in a room: their room role (member when none), or their server
/// role where that is admin or owner (server staff carry their rank into every room).
pub fn effective_rank(member: Option<Role>, server_role: Role) -> Role {
    let server = if server_role >= Role::ADMIN { server_role } else { Role::MEMBER };
    member.unwrap_or(Role::MEMBER).max(server)
}

/// Every action, with `Moderate` against the three ranks that decide it: what the matrix
/// tests (here and over QUIC) walk. `Join` comes last: it changes the caller's standing.
pub const ACTIONS: [Action; 11] = [
    Action::Read,
    Action::Participate,
    Action::Post,
    Action::SetTopic,
    Action::Configure,
    Action::Invite,
    Action::RevealAuthor,
    Action::Moderate { target: Role::MEMBER },
    Action::Moderate { target: Role::MODERATOR },
    Action::Moderate { target: Role::OWNER },
    Action::Join,
];

impl Standing {
    /// The caller's effective rank in the room.
    pub fn rank(&self) -> Role {
        effective_rank(self.member, self.server_role)
    }

    fn is_staff(&self) -> bool {
        self.server_role >= Role::ADMIN
    }
}

/// Allows or refuses, with the error code the request gets.
pub fn authorize(standing: &Standing, action: Action) -> Result<(), ErrorCode> {
    let member = standing.member.is_some();
    // A private room is invisible to non-members (NOT_FOUND, not FORBIDDEN, so its existence
    // does not leak), except to server staff.
    if standing.private && !member && !standing.is_staff() {
        return Err(ErrorCode::NOT_FOUND);
    }
    if standing.banned && !standing.is_staff() {
        return Err(ErrorCode::BANNED);
    }
    let moderator = standing.rank() >= Role::MODERATOR;
    match action {
        Action::Read if member || !standing.private || standing.is_staff() => Ok(()),
        // Private rooms are joined by invitation only, server staff included.
        Action::Join if standing.private && !member => Err(ErrorCode::FORBIDDEN),
        Action::Join => Ok(()),
        Action::Post | Action::SetTopic | Action::Configure if standing.archived => {
            Err(ErrorCode::ROOM_LOCKED)
        }
        Action::Post | Action::SetTopic if member && standing.locked && !moderator => {
            Err(ErrorCode::ROOM_LOCKED)
        }
        Action::Participate | Action::Post | Action::SetTopic if member => Ok(()),
        Action::Configure | Action::RevealAuthor if moderator => Ok(()),
        Action::Invite if member && (!standing.private || moderator) => Ok(()),
        Action::Moderate { target } => {
            let rank = standing.rank();
            if rank >= Role::MODERATOR && rank > target {
                Ok(())
            } else {
                Err(ErrorCode::FORBIDDEN)
            }
        }
        _ => Err(ErrorCode::FORBIDDEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: [Option<Role>; 5] =
        [None, Some(Role::MEMBER), Some(Role::MODERATOR), Some(Role::ADMIN), Some(Role::OWNER)];

    fn standing(member: Option<Role>, server_role: Role, banned: bool, private: bool) -> Standing {
        Standing { member, server_role, banned, private, locked: false, archived: false }
    }

    /// The whole matrix: every room role × server role × ban × visibility × action, against
    /// the policy written out independently of `authorize`.
    #[test]
    fn role_action_matrix() {
        for member in ROLES {
            for server_role in [Role::MEMBER, Role::ADMIN, Role::OWNER] {
                for banned in [false, true] {
                    let variants = [
                        (false, false, false),
                        (true, false, false),
                        (false, true, false),
                        (false, false, true),
                    ];
                    for (private, locked, archived) in variants {
                        let s = Standing {
                            locked,
                            archived,
                            ..standing(member, server_role, banned, private)
                        };
                        let staff = server_role >= Role::ADMIN;
                        for action in ACTIONS {
                            let expected = if private && member.is_none() && !staff {
                                Err(ErrorCode::NOT_FOUND)
                            } else if banned && !staff {
                                Err(ErrorCode::BANNED)
                            } else {
                                let rank = member.unwrap_or(Role::MEMBER).max(if staff {
                                    server_role
                                } else {
                                    Role::MEMBER
                                });
                                let moderator = rank >= Role::MODERATOR;
                                let allowed = match action {
                                    Action::Read => member.is_some() || !private || staff,
                                    Action::Join => member.is_some() || !private,
                                    Action::Participate => member.is_some(),
                                    Action::Post | Action::SetTopic => member.is_some(),
                                    Action::Configure | Action::RevealAuthor => moderator,
                                    Action::Invite => member.is_some() && (!private || moderator),
                                    Action::Moderate { target } => moderator && rank > target,
                                };
                                let archived_out = archived
                                    && matches!(
                                        action,
                                        Action::Post | Action::SetTopic | Action::Configure
                                    );
                                let locked_out = locked
                                    && !moderator
                                    && member.is_some()
                                    && matches!(action, Action::Post | Action::SetTopic);
                                if archived_out || locked_out {
                                    Err(ErrorCode::ROOM_LOCKED)
                                } else if allowed {
                                    Ok(())
                                } else {
                                    Err(ErrorCode::FORBIDDEN)
                                }
                            };
                            assert_eq!(authorize(&s, action), expected, "{s:?} {action:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_moderator_cannot_act_on_an_equal_or_an_admin() {
        let moderator = standing(Some(Role::MODERATOR), Role::MEMBER, false, false);
        assert_eq!(authorize(&moderator, Action::Moderate { target: Role::MEMBER }), Ok(()));
        assert_eq!(
            authorize(&moderator, Action::Moderate { target: Role::MODERATOR }),
            Err(ErrorCode::FORBIDDEN)
        );
        assert_eq!(
            authorize(&moderator, Action::Moderate { target: Role::ADMIN }),
            Err(ErrorCode::FORBIDDEN)
        );
        let member = standing(Some(Role::MEMBER), Role::MEMBER, false, false);
        assert_eq!(
            authorize(&member, Action::Moderate { target: Role::MEMBER }),
            Err(ErrorCode::FORBIDDEN)
        );
    }
}
