//! The one authorization function (spec §6.7). Every request path that touches a room or a
//! role asks [`authorize`] with the caller's [`Standing`]; nothing else decides who may do
//! what. A request that changes something asks again inside its write, against the standing
//! read there, so that a demotion, kick or ban that commits first wins. Most chat-server CVEs
//! are one path that forgot its check; keeping the policy in one table keeps it testable as a
//! role × action matrix (a unit test here, and over QUIC in `tests/tests/moderation.rs`, which
//! is why it is public).

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
    /// Make an invite code (members in public rooms, moderators in private).
    Invite,
    /// Add another user to the room directly, as a member: only with the user's consent (they
    /// count the caller as a friend; in a private room the caller moderates it), or as
    /// server staff. Being a room's owner is no consent: anyone can own a room.
    AddMember {
        /// The added user counts the caller as a friend.
        consented: bool,
    },
    /// Join with an invite code: the code stands in for membership of a private room.
    JoinByInvite,
    /// Delete a message: one's own (`author` None) as a member, another's as a moderator
    /// outranking its `author`; never in an archived room.
    Delete {
        /// The rank of the message's author, when it is someone else.
        author: Option<Role>,
    },
    /// Read the audit log: a room's (moderators), or the server's (with a server standing,
    /// admins).
    ReadAudit,
    /// Give `target` (who holds `target_rank`) the role `role`: below the caller's own rank,
    /// by an admin or owner; OWNER transfers ownership and only an owner may do that.
    SetRole {
        /// The role to give.
        role: Role,
        /// The target's effective rank now.
        target_rank: Role,
    },
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
    /// The standing for server-wide acts (server roles, the server audit log): no room.
    pub fn server(server_role: Role) -> Self {
        Self {
            member: None,
            server_role,
            banned: false,
            private: false,
            locked: false,
            archived: false,
        }
    }

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
    // does not leak), except to server staff and the holder of an invite code.
    if standing.private && !member && !standing.is_staff() && action != Action::JoinByInvite {
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
        Action::Join | Action::JoinByInvite if standing.archived && !member => {
            Err(ErrorCode::ROOM_LOCKED)
        }
        Action::Join | Action::JoinByInvite => Ok(()),
        Action::Post
        | Action::SetTopic
        | Action::Configure
        | Action::Invite
        | Action::AddMember { .. }
        | Action::Delete { .. }
        | Action::Moderate { .. }
        | Action::SetRole { .. }
            if standing.archived =>
        {
            Err(ErrorCode::ROOM_LOCKED)
        }
        Action::Post | Action::SetTopic if member && standing.locked && !moderator => {
            Err(ErrorCode::ROOM_LOCKED)
        }
        Action::Participate | Action::Post | Action::SetTopic if member => Ok(()),
        Action::Configure | Action::RevealAuthor if moderator => Ok(()),
        Action::Invite if member && (!standing.private || moderator) => Ok(()),
        Action::AddMember { consented }
            if member && (standing.is_staff() || consented && (moderator || !standing.private)) =>
        {
            Ok(())
        }
        Action::Delete { author: None } if member => Ok(()),
        Action::Moderate { target } | Action::Delete { author: Some(target) }
            if moderator && standing.rank() > target =>
        {
            Ok(())
        }
        Action::ReadAudit if moderator => Ok(()),
        Action::SetRole { role: Role::OWNER, .. } if standing.rank() == Role::OWNER => Ok(()),
        Action::SetRole { role, target_rank }
            if role != Role::OWNER
                && standing.rank() >= Role::ADMIN
                && standing.rank() > role
                && standing.rank() > target_rank =>
        {
            Ok(())
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
                                    // Not in ACTIONS: tested one by one below.
                                    _ => unreachable!("{action:?} is not in ACTIONS"),
                                };
                                let archived_out = archived
                                    && (matches!(
                                        action,
                                        Action::Post
                                            | Action::SetTopic
                                            | Action::Configure
                                            | Action::Invite
                                            | Action::Moderate { .. }
                                    ) || action == Action::Join
                                        && member.is_none()
                                        && !private);
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
    fn roles_are_set_below_the_setters_rank_and_ownership_passes_only_from_an_owner() {
        let room_owner = standing(Some(Role::OWNER), Role::MEMBER, false, false);
        let room_admin = standing(Some(Role::ADMIN), Role::MEMBER, false, false);
        let moderator = standing(Some(Role::MODERATOR), Role::MEMBER, false, false);
        let set = |role, target_rank| Action::SetRole { role, target_rank };
        assert_eq!(authorize(&room_owner, set(Role::OWNER, Role::MODERATOR)), Ok(()));
        assert_eq!(authorize(&room_owner, set(Role::ADMIN, Role::MEMBER)), Ok(()));
        assert_eq!(
            authorize(&room_admin, set(Role::OWNER, Role::MEMBER)),
            Err(ErrorCode::FORBIDDEN),
            "only an owner transfers ownership"
        );
        assert_eq!(authorize(&room_admin, set(Role::MODERATOR, Role::MEMBER)), Ok(()));
        assert_eq!(
            authorize(&room_admin, set(Role::ADMIN, Role::MEMBER)),
            Err(ErrorCode::FORBIDDEN)
        );
        assert_eq!(
            authorize(&room_admin, set(Role::MEMBER, Role::ADMIN)),
            Err(ErrorCode::FORBIDDEN),
            "not on an equal"
        );
        assert_eq!(
            authorize(&moderator, set(Role::MEMBER, Role::MEMBER)),
            Err(ErrorCode::FORBIDDEN)
        );
        // Server scope: the server role alone decides.
        assert_eq!(
            authorize(&Standing::server(Role::ADMIN), set(Role::MODERATOR, Role::MEMBER)),
            Ok(())
        );
        assert_eq!(
            authorize(&Standing::server(Role::MODERATOR), set(Role::MEMBER, Role::MEMBER)),
            Err(ErrorCode::FORBIDDEN)
        );
        assert_eq!(authorize(&Standing::server(Role::ADMIN), Action::ReadAudit), Ok(()));
        assert_eq!(
            authorize(&Standing::server(Role::MODERATOR), Action::ReadAudit),
            Err(ErrorCode::FORBIDDEN)
        );
    }

    #[test]
    fn adding_someone_takes_their_consent_or_server_staff_and_archives_refuse_changes() {
        let member = standing(Some(Role::MEMBER), Role::MEMBER, false, false);
        let moderator = standing(Some(Role::MODERATOR), Role::MEMBER, false, false);
        let owner = standing(Some(Role::OWNER), Role::MEMBER, false, true);
        let staff = standing(Some(Role::MEMBER), Role::ADMIN, false, true);
        let add = |consented| Action::AddMember { consented };
        assert_eq!(authorize(&member, add(false)), Err(ErrorCode::FORBIDDEN));
        assert_eq!(authorize(&member, add(true)), Ok(()));
        // Anyone can own a room: owning one is no licence to put people in it.
        assert_eq!(authorize(&moderator, add(false)), Err(ErrorCode::FORBIDDEN));
        assert_eq!(authorize(&owner, add(false)), Err(ErrorCode::FORBIDDEN));
        assert_eq!(authorize(&owner, add(true)), Ok(()));
        assert_eq!(authorize(&staff, add(false)), Ok(()));
        let private_member = standing(Some(Role::MEMBER), Role::MEMBER, false, true);
        assert_eq!(authorize(&private_member, add(true)), Err(ErrorCode::FORBIDDEN));

        // An invite code stands in for membership of a private room, but not for a ban.
        let outsider = standing(None, Role::MEMBER, false, true);
        assert_eq!(authorize(&outsider, Action::JoinByInvite), Ok(()));
        assert_eq!(authorize(&outsider, Action::Join), Err(ErrorCode::NOT_FOUND));
        let banned = standing(None, Role::MEMBER, true, true);
        assert_eq!(authorize(&banned, Action::JoinByInvite), Err(ErrorCode::BANNED));

        let archived = |s: Standing| Standing { archived: true, ..s };
        for action in [
            Action::JoinByInvite,
            add(true),
            Action::Invite,
            Action::Delete { author: None },
            Action::Delete { author: Some(Role::MEMBER) },
            Action::Moderate { target: Role::MEMBER },
            Action::SetRole { role: Role::MEMBER, target_rank: Role::MEMBER },
        ] {
            let who = if action == Action::JoinByInvite { outsider } else { moderator };
            assert_eq!(
                authorize(&archived(who), action),
                Err(ErrorCode::ROOM_LOCKED),
                "{action:?}"
            );
        }
        assert_eq!(authorize(&member, Action::Delete { author: None }), Ok(()));
        assert_eq!(
            authorize(&member, Action::Delete { author: Some(Role::MEMBER) }),
            Err(ErrorCode::FORBIDDEN)
        );
        assert_eq!(authorize(&moderator, Action::Delete { author: Some(Role::MEMBER) }), Ok(()));
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
