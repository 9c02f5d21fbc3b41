//! ROLE_SET and AUDIT_QUERY (spec §6.7), and the one writer of audit entries. Kicks and bans
//! live with the other membership changes in `rooms`.

use banter_protocol::ErrorCode;
use banter_protocol::bounded::List;
use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{
    AuditAction, AuditEntry, AuditPage, AuditQuery, Done, Message, Role, RoleSet,
};

use super::{ConnCtx, RequestError, Result, rank_in, server_role_in, standing_in, text};
use crate::authz::{Action, Standing, authorize};
use crate::store::records::{AuditRecord, MemberRecord, UserRecord};
use crate::store::{Txn, keys};
use crate::wall_clock;

fn forbidden(what: &str) -> RequestError {
    RequestError::new(ErrorCode::FORBIDDEN, what)
}

/// The actor of acts made at the server console (spec §10.8).
pub(crate) const CONSOLE: UserId = UserId(0);

/// The audit reason of a role change: the role's name.
pub(crate) fn role_reason(role: Role) -> String {
    format!("role {}", role.name().map_or_else(|| role.0.to_string(), str::to_owned))
}

/// Appends one entry to the audit log, inside the transaction that made the change.
pub(crate) fn audit(
    txn: &mut Txn<'_>,
    actor: UserId,
    action: AuditAction,
    room: Option<RoomId>,
    target: Option<UserId>,
    reason: &str,
) -> Result<()> {
    let id = txn.next_id("audit")?;
    if let Some(room) = room {
        txn.put(keys::room_audit(room, id), &());
    }
    txn.put(
        keys::audit(id),
        &AuditRecord {
            ts: wall_clock().0,
            actor: actor.0,
            action: action.0,
            room: room.map(|r| r.0),
            target: target.map(|t| t.0),
            reason: reason.to_owned(),
        },
    );
    Ok(())
}

pub(super) async fn role_set(ctx: &ConnCtx, r: RoleSet) -> Result<Vec<Message>> {
    let actor = ctx.authed()?.user;
    if r.user == actor {
        return Err(forbidden("cannot change one's own role"));
    }
    let (room, user, role) = (r.room, r.user, r.role);
    ctx.shared
        .store
        .write(
            move |txn| {
                // Decided here, inside the write: a demotion or another transfer that commits
                // first is seen (two transfers at once cannot make two owners).
                let (standing, target_rank) = match room {
                    Some(room) => (standing_in(txn, room, actor)?.1, rank_in(txn, room, user)?),
                    None => {
                        (Standing::server(server_role_in(txn, actor)?), server_role_in(txn, user)?)
                    }
                };
                authorize(&standing, Action::SetRole { role, target_rank })?;
                let demoted = if role == Role::OWNER {
                    Some(if room.is_some() { Role::MODERATOR } else { Role::ADMIN })
                } else {
                    None
                };
                match room {
                    Some(room) => {
                        if !txn.contains(&keys::member(room, user))? {
                            return Err(RequestError::new(ErrorCode::NOT_FOUND, "not a member"));
                        }
                        txn.put(keys::member(room, user), &MemberRecord { role: role.0 });
                        if let Some(demoted) = demoted {
                            // Only a member with the OWNER room role is demoted; a server
                            // owner acting in a room keeps their server role.
                            if let Some(mut own) =
                                txn.get::<MemberRecord>(&keys::member(room, actor))?
                            {
                                if Role(own.role) == Role::OWNER {
                                    own.role = demoted.0;
                                    txn.put(keys::member(room, actor), &own);
                                }
                            }
                        }
                    }
                    None => {
                        let mut record: UserRecord =
                            txn.get(&keys::user(user))?.ok_or(ErrorCode::NOT_FOUND)?;
                        record.role = role.0;
                        txn.put(keys::user(user), &record);
                        if let Some(demoted) = demoted {
                            let mut own: UserRecord =
                                txn.get(&keys::user(actor))?.ok_or(ErrorCode::NOT_FOUND)?;
                            own.role = demoted.0;
                            txn.put(keys::user(actor), &own);
                        }
                    }
                }
                audit(txn, actor, AuditAction::ROLE_SET, room, Some(user), &role_reason(role))?;
                Ok::<_, RequestError>(())
            },
            |()| (),
        )
        .await?;
    Ok(vec![Done {}.into()])
}

pub(super) fn audit_query(ctx: &ConnCtx, r: AuditQuery) -> Result<Vec<Message>> {
    let actor = ctx.authed()?.user;
    ctx.rate("audit")?;
    let standing = match r.room {
        Some(room) => ctx.standing(room)?.1,
        None => Standing::server(server_role_in(&ctx.shared.store, actor)?),
    };
    authorize(&standing, Action::ReadAudit)?;
    let limit = usize::from(r.limit).clamp(1, List::<AuditEntry, 100>::MAX);
    let before = r.before.unwrap_or(u64::MAX);
    // Newest first, one page (and one more, to tell whether another follows): a room's
    // entries through its index, the server's from the log itself.
    let ids: Vec<u64> = match r.room {
        Some(room) => ctx
            .shared
            .store
            .range::<()>(
                &keys::room_audit(room, 0),
                &keys::room_audit(room, before),
                true,
                limit + 1,
            )?
            .into_iter()
            .map(|(key, ())| keys::id_at(&key, 9))
            .collect(),
        None => ctx
            .shared
            .store
            .range::<AuditRecord>(&keys::audit(0), &keys::audit(before), true, limit + 1)?
            .into_iter()
            .map(|(key, _)| keys::id_at(&key, 1))
            .collect(),
    };
    let more = ids.len() > limit;
    let mut entries = Vec::with_capacity(limit);
    for id in ids.into_iter().take(limit) {
        let Some(record) = ctx.shared.store.get::<AuditRecord>(&keys::audit(id))? else { continue };
        entries.push(AuditEntry {
            id,
            ts: Timestamp(record.ts),
            actor: UserId(record.actor),
            action: AuditAction(record.action),
            room: record.room.map(RoomId),
            target: record.target.map(UserId),
            reason: text(&record.reason),
        });
    }
    Ok(vec![AuditPage { entries: List::new(entries).expect("at most the limit"), more }.into()])
}
