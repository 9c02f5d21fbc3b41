//! MARK_READ, MARK_DELIVERED, TYPING_SET, PRESENCE_SET (spec §6.5): soft state. Markers are
//! durable and monotonic; typing and presence live only in memory.

use banter_protocol::ErrorCode;
use banter_protocol::ids::RoomId;
use banter_protocol::message::{
    DeliveredUpTo, Done, Hello, MarkDelivered, MarkRead, MarkerOk, Message, PresenceSet,
    PresenceStatus, ReadUpTo, TypingSet,
};

use super::events::check_direct_block;
use super::{ConnCtx, RequestError, Result, check_text};
use crate::authz::Action;
use crate::store::keys;
use crate::store::records::MarkerRecord;

/// Which marker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    Read { private: bool },
    Delivered,
}

async fn mark(ctx: &ConnCtx, room: RoomId, seq: u64, marker: Marker) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    let (record, _) = ctx.authorize(room, Action::Participate)?;
    check_direct_block(ctx, &record, user)?;
    // Markers never point past what exists (the database's head: in a cluster, this node
    // may not have delivered another node's newest entry yet).
    let seq = seq.min(record.last_seq);
    let shared = ctx.shared.clone();
    let stored = ctx
        .shared
        .store
        .write(
            move |txn| {
                let key = keys::marker(room, user);
                let mut record: MarkerRecord = txn.get(&key)?.unwrap_or_default();
                let slot = match marker {
                    Marker::Read { .. } => &mut record.read,
                    Marker::Delivered => &mut record.delivered,
                };
                let moved = seq > *slot;
                *slot = (*slot).max(seq);
                let stored = *slot;
                if moved {
                    txn.put(key, &record);
                }
                Ok::<_, RequestError>((stored, moved))
            },
            move |(stored, moved)| {
                if moved {
                    match marker {
                        Marker::Read { private: false } => shared.tell_room(
                            room,
                            None,
                            Hello::INTEREST_RECEIPTS,
                            &ReadUpTo { room, user, seq: stored },
                        ),
                        // Private markers sync to the user's own devices only.
                        Marker::Read { private: true } => {
                            shared.tell_user(user, &ReadUpTo { room, user, seq: stored })
                        }
                        Marker::Delivered => shared.tell_room(
                            room,
                            None,
                            Hello::INTEREST_RECEIPTS,
                            &DeliveredUpTo { room, user, seq: stored },
                        ),
                    }
                }
                stored
            },
        )
        .await?;
    Ok(vec![MarkerOk { room, seq: stored }.into()])
}

pub(super) async fn mark_read(ctx: &ConnCtx, r: MarkRead) -> Result<Vec<Message>> {
    mark(ctx, r.room, r.seq, Marker::Read { private: r.private }).await
}

pub(super) async fn mark_delivered(ctx: &ConnCtx, r: MarkDelivered) -> Result<Vec<Message>> {
    mark(ctx, r.room, r.seq, Marker::Delivered).await
}

pub(super) fn typing(ctx: &ConnCtx, r: TypingSet) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("typing")?;
    let (record, _) = ctx.authorize(r.room, Action::Participate)?;
    check_direct_block(ctx, &record, user)?;
    ctx.shared.typing(r.room, user, r.state);
    Ok(vec![Done {}.into()])
}

pub(super) fn presence(ctx: &ConnCtx, r: PresenceSet) -> Result<Vec<Message>> {
    let authed = ctx.authed()?;
    ctx.rate("presence")?;
    if r.status == PresenceStatus::Offline {
        return Err(RequestError::new(
            ErrorCode::INVALID_REQUEST,
            "use Invisible to appear offline",
        ));
    }
    check_text("status text", &r.text, false)?;
    ctx.shared.hub.set_status(&authed.session, r.status, r.text.into_string());
    Ok(vec![Done {}.into()])
}
