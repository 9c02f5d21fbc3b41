//! INVITE_CREATE, INVITE_USE and ROOM_INVITE (spec §6.3): the ways into a private room, and
//! shareable links to public ones.

use banter_protocol::ErrorCode;
use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{AuditAction, Invite, InviteCreate, InviteUse, Message, RoomInvite};

use super::moderation::audit;
use super::rooms::{acked, add_to_room, commit_membership, info};
use super::{ConnCtx, RequestError, Result, authorize_in, banned_in, text};
use crate::authz::Action;
use crate::store::records::{CONTACT_FRIEND, InviteRecord};
use crate::store::{Txn, keys};
use crate::wall_clock;

/// Characters of an invite code: 36 symbols, so 10 of them carry about 51 bits.
const CODE_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const CODE_LEN: usize = 10;

/// A fresh code from the system's cryptographic random source (rejection sampling keeps every
/// symbol equally likely).
fn new_code() -> Result<String> {
    let random = ring::rand::SystemRandom::new();
    let mut code = String::with_capacity(CODE_LEN);
    while code.len() < CODE_LEN {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&random, &mut bytes)
            .map_err(|_| RequestError::new(ErrorCode::INTERNAL, "no randomness"))?;
        for byte in bytes {
            // 252 = 7 × 36: the bytes above it would favour the first symbols.
            if byte < 252 && code.len() < CODE_LEN {
                code.push(char::from(CODE_ALPHABET[usize::from(byte % 36)]));
            }
        }
    }
    Ok(code)
}

/// Checks `action` (inviting or adding someone) by `user` inside a write, and that the room
/// is not a direct room.
fn authorize_invite(txn: &Txn<'_>, room: RoomId, user: UserId, action: Action) -> Result<()> {
    let (record, _) = authorize_in(txn, room, user, action)?;
    if record.direct {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "direct rooms take no invites"));
    }
    Ok(())
}

pub(super) async fn create(ctx: &ConnCtx, r: InviteCreate) -> Result<Vec<Message>> {
    let creator = ctx.authed()?.user;
    ctx.rate("join")?;
    if r.max_uses == Some(0) {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "an invite admits at least one"));
    }
    let code = new_code()?;
    let now = wall_clock().0;
    let expires = r.expires_in_s.map(|s| now.saturating_add(s.saturating_mul(1000)));
    let record = InviteRecord {
        room: r.room.0,
        creator: creator.0,
        created: now,
        uses: 0,
        max_uses: r.max_uses,
        expires,
    };
    let (key, room, reason) = (keys::invite(&code), r.room, invite_terms(&code, &record));
    ctx.shared
        .store
        .write(
            move |txn| {
                authorize_invite(txn, room, creator, Action::Invite)?;
                txn.put(key, &record);
                audit(txn, creator, AuditAction::INVITE_CREATE, Some(room), None, &reason)
            },
            |()| (),
        )
        .await?;
    Ok(vec![
        Invite {
            code: text(&code),
            room: r.room,
            max_uses: r.max_uses,
            expires: expires.map(Timestamp),
        }
        .into(),
    ])
}

/// How an invite reads in the audit log.
fn invite_terms(code: &str, invite: &InviteRecord) -> String {
    let uses = invite.max_uses.map_or_else(|| "unlimited uses".into(), |n| format!("{n} uses"));
    let expiry = invite.expires.map_or_else(|| "no expiry".into(), |e| format!("expires {e}"));
    format!("code {code}, {uses}, {expiry}")
}

pub(super) async fn accept(ctx: &ConnCtx, r: InviteUse) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("join")?;
    let code = r.code.to_ascii_lowercase();
    let invite: InviteRecord = ctx
        .shared
        .store
        .get(&keys::invite(&code))?
        .ok_or_else(|| RequestError::new(ErrorCode::NOT_FOUND, "no such invite"))?;
    let room = RoomId(invite.room);
    let max_rooms = ctx.shared.config.max_rooms_per_user;
    commit_membership(ctx, move |txn| {
        let (_, standing) = authorize_in(txn, room, user, Action::JoinByInvite)?;
        if standing.member.is_some() {
            return Ok(Vec::new()); // already in: nothing used up
        }
        // Checked inside the commit, so that two last uses cannot both get in.
        let key = keys::invite(&code);
        let mut invite: InviteRecord = txn.get(&key)?.ok_or(ErrorCode::NOT_FOUND)?;
        if invite.expires.is_some_and(|e| e <= wall_clock().0) {
            return Err(RequestError::new(ErrorCode::NOT_FOUND, "invite expired"));
        }
        if invite.max_uses.is_some_and(|max| invite.uses >= max) {
            return Err(RequestError::new(ErrorCode::NOT_FOUND, "invite used up"));
        }
        invite.uses += 1;
        txn.put(key, &invite);
        Ok(vec![add_to_room(txn, room, user, user, max_rooms)?])
    })
    .await?;
    info(ctx, room, user)
}

pub(super) async fn add_user(ctx: &ConnCtx, r: RoomInvite) -> Result<Vec<Message>> {
    let inviter = ctx.authed()?.user;
    ctx.rate("join")?;
    let user = ctx.user_named(&r.username)?;
    // Someone who blocks the inviter looks like no one (spec §6.8).
    if ctx.shared.hub.blocks(user, inviter) {
        return Err(RequestError::new(ErrorCode::NOT_FOUND, "no such user"));
    }
    let room = r.room;
    let max_rooms = ctx.shared.config.max_rooms_per_user;
    let appended = commit_membership(ctx, move |txn| {
        // Consent: the added user counts the inviter as a friend; else only a moderator may.
        let consented = txn.get::<u8>(&keys::contact(user, inviter))? == Some(CONTACT_FRIEND);
        authorize_invite(txn, room, inviter, Action::AddMember { consented })?;
        if banned_in(txn, room, user)? {
            return Err(RequestError::new(ErrorCode::BANNED, "that user is banned from the room"));
        }
        if txn.contains(&keys::member(room, user))? {
            return Err(RequestError::new(ErrorCode::CONFLICT, "already a member"));
        }
        audit(txn, inviter, AuditAction::MEMBER_ADD, Some(room), Some(user), "")?;
        Ok(vec![add_to_room(txn, room, inviter, user, max_rooms)?])
    })
    .await?;
    Ok(acked(&appended, ctx, room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_symbols_of_the_alphabet_and_differ() {
        let a = new_code().unwrap();
        let b = new_code().unwrap();
        assert_eq!(a.len(), CODE_LEN);
        assert!(a.bytes().all(|c| CODE_ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }
}
