//! SEARCH (spec §6.10): the query parsed, names resolved, and every room to search authorized
//! now with the one function everything else uses (`Action::Read`, as HISTORY); the index is
//! then asked on a blocking thread and only sees those rooms. A search by sender finds
//! anonymous posts by their author only in rooms where the caller may reveal authors
//! (`Action::RevealAuthor`, as REVEAL_AUTHOR), and each such reveal is audited before the
//! answer leaves.

use banter_protocol::ErrorCode;
use banter_protocol::bounded::{List, Text};
use std::collections::BTreeMap;

use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{
    AuditAction, Highlight, Message, Search, SearchCursor, SearchEnd, SearchHit,
};

use super::moderation::audit;
use super::{ConnCtx, RequestError, Result, user_id};
use crate::authz::Action;
use crate::search::{Hit, Plan, query};
use crate::store::keys;
use crate::store::records::RoomRecord;

/// Rooms one user's search may cover, at most (well above `max_rooms_per_user`'s default).
const MAX_ROOMS: usize = 10_000;

pub(super) async fn search(ctx: &ConnCtx, r: Search) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    let Some(index) = ctx.shared.search.clone() else {
        return Err(RequestError::new(
            ErrorCode::UNSUPPORTED_EXTENSION,
            "this server has no search",
        ));
    };
    ctx.rate("search")?;
    let parsed =
        query::parse(&r.query).map_err(|why| RequestError::new(ErrorCode::INVALID_REQUEST, why))?;
    let filtered =
        r.room.is_some() || r.sender.is_some() || r.after.is_some() || r.before.is_some();
    if parsed.is_empty() && !filtered {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "nothing to search for"));
    }

    let store = &ctx.shared.store;
    let rooms = match r.room {
        Some(room) => {
            ctx.authorize(room, Action::Read)?;
            vec![room]
        }
        None => {
            let mine = keys::ids(keys::tag::USER_ROOM, &[user.0]);
            let keys = store.keys_with_prefix(&mine, MAX_ROOMS)?;
            let rooms = keys.iter().map(|key| RoomId(keys::id_at(key, 9)));
            rooms.filter(|room| ctx.authorize(*room, Action::Read).is_ok()).collect()
        }
    };
    let rooms = if parsed.rooms.is_empty() {
        rooms
    } else {
        let mut named = Vec::new();
        for room in rooms {
            let Some(record) = store.get::<RoomRecord>(&keys::room(room))? else { continue };
            if parsed.rooms.iter().any(|name| name.eq_ignore_ascii_case(&record.name)) {
                named.push(room);
            }
        }
        named
    };

    let from = if parsed.from.is_empty() {
        None
    } else {
        let mut users = Vec::new();
        for name in &parsed.from {
            users.extend(user_id(store, name)?);
        }
        Some(users)
    };
    let senders = match (from, r.sender) {
        (None, None) => None,
        (Some(users), None) => Some(users),
        (None, Some(sender)) => Some(vec![sender]),
        (Some(users), Some(sender)) => Some(users.into_iter().filter(|u| *u == sender).collect()),
    };
    // Where the caller may reveal authors, a search by sender reveals them: audited below.
    let revealing = if senders.is_some() {
        rooms
            .iter()
            .copied()
            .filter(|room| ctx.authorize(*room, Action::RevealAuthor).is_ok())
            .collect()
    } else {
        Vec::new()
    };
    let plan = Plan {
        rooms,
        revealing,
        senders,
        after: parsed.after.max(r.after.map(|t| t.0)),
        before: match (parsed.before, r.before.map(|t| t.0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        files_only: parsed.files_only,
        required: parsed.required,
        excluded: parsed.excluded,
        cursor: r.cursor.map(|c| (c.ts.0, c.room, c.seq)),
        limit: u64::from(r.limit).clamp(1, ctx.shared.config.max_history_page) as usize,
        caller: user,
    };
    let searched = tokio::task::spawn_blocking(move || index.search(&plan)).await;
    let (hits, next) = searched
        .map_err(|e| RequestError::new(ErrorCode::INTERNAL, e.to_string()))?
        .map_err(|e| {
            tracing::error!(error = %e, "search failed");
            RequestError::new(ErrorCode::INTERNAL, "search failed")
        })?;
    audit_reveals(ctx, user, &r.query, &hits).await?;
    let mut out: Vec<Message> = hits
        .into_iter()
        .map(|hit| {
            let highlights = hit
                .highlights
                .iter()
                .map(|&(start, end)| Highlight { start: start as u32, end: end as u32 })
                .collect();
            SearchHit {
                room: hit.room,
                seq: hit.seq,
                sender: hit.sender,
                ts: Timestamp(hit.ts),
                file: hit.file,
                snippet: Text::new(hit.snippet).expect("cut to the protocol's bound"),
                highlights: List::new(highlights).expect("cut to the protocol's bound"),
            }
            .into()
        })
        .collect();
    let next = next.map(|(ts, room, seq)| SearchCursor { ts: Timestamp(ts), room, seq });
    out.push(SearchEnd { next }.into());
    Ok(out)
}

/// Seqs one audit entry names, at most.
const AUDITED_SEQS: usize = 20;

/// One audit entry per room and author that the hits revealed (REVEAL_AUTHOR, as the
/// request of that name writes), committed before the answer is sent.
async fn audit_reveals(ctx: &ConnCtx, moderator: UserId, query: &str, hits: &[Hit]) -> Result<()> {
    let mut revealed: BTreeMap<(RoomId, UserId), Vec<u64>> = BTreeMap::new();
    for hit in hits.iter().filter(|hit| hit.revealed) {
        revealed.entry((hit.room, hit.sender)).or_default().push(hit.seq);
    }
    if revealed.is_empty() {
        return Ok(());
    }
    let query: String = query.chars().take(100).collect();
    ctx.shared
        .store
        .write(
            move |txn| {
                for ((room, author), seqs) in &revealed {
                    let mut listed: Vec<String> =
                        seqs.iter().take(AUDITED_SEQS).map(ToString::to_string).collect();
                    if seqs.len() > AUDITED_SEQS {
                        listed.push(format!("and {} more", seqs.len() - AUDITED_SEQS));
                    }
                    let reason = format!("search {query:?}: seq {}", listed.join(", "));
                    audit(
                        txn,
                        moderator,
                        AuditAction::REVEAL_AUTHOR,
                        Some(*room),
                        Some(*author),
                        &reason,
                    )?;
                }
                Ok::<_, RequestError>(())
            },
            |()| (),
        )
        .await?;
    Ok(())
}
