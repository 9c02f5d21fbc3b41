//! SEARCH (spec §6.10): the query parsed, names resolved, and every room to search authorized
//! now with the one function everything else uses (`Action::Read`, as HISTORY); the index is
//! then asked on a blocking thread and only sees those rooms. A search by sender finds
//! anonymous posts by their author only when it is confined to one room where the caller
//! may reveal authors (`Action::RevealAuthor`, as REVEAL_AUTHOR); every such search is
//! audited, hits or none, before the answer leaves.

use banter_protocol::ErrorCode;
use banter_protocol::bounded::{List, Text};
use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{
    AuditAction, Highlight, Message, Search, SearchCursor, SearchEnd, SearchHit,
};

use super::moderation::audit;
use super::{ConnCtx, RequestError, Result, authorize_in, prefetch_standings, user_id};
use crate::authz::Action;
use crate::search::{Hit, Plan, query, words};
use crate::store::keys;

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
    let candidates = match r.room {
        Some(room) => vec![room],
        None => {
            let mine = keys::ids(keys::tag::USER_ROOM, &[user.0]);
            let keys = store.keys_with_prefix(&mine, MAX_ROOMS)?;
            keys.iter().map(|key| RoomId(keys::id_at(key, 9))).collect()
        }
    };
    // Every room's records in one batch, then the same checks as everywhere else over them.
    let records = prefetch_standings(store, &candidates, user)?;
    let mut rooms = Vec::with_capacity(candidates.len());
    for room in candidates {
        match authorize_in(&records, room, user, Action::Read) {
            Ok((record, _)) => {
                let named = parsed.rooms.is_empty()
                    || parsed.rooms.iter().any(|name| name.eq_ignore_ascii_case(&record.name));
                if named {
                    rooms.push(room);
                }
            }
            // A room named in the request must be readable; the others are skipped.
            Err(refused) if r.room.is_some() => return Err(refused),
            Err(_) => {}
        }
    }

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
    // A search by sender confined to one room (by Room or `in:`) where the caller may
    // reveal authors finds anonymous posts by their author: audited below, whatever it
    // finds (an empty answer says who did not write a post as surely as a hit says who did).
    let confined = r.room.is_some() || !parsed.rooms.is_empty();
    let revealing: Option<(RoomId, Vec<UserId>)> = match (&senders, rooms.as_slice()) {
        (Some(senders), [room])
            if confined && authorize_in(&records, *room, user, Action::RevealAuthor).is_ok() =>
        {
            Some((*room, senders.clone()))
        }
        _ => None,
    };
    let plan = Plan {
        rooms,
        revealing: revealing.iter().map(|(room, _)| *room).collect(),
        senders,
        after: parsed.after.max(r.after.map(|t| t.0)),
        before: match (parsed.before, r.before.map(|t| t.0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        files_only: parsed.files_only,
        required: parsed.required.iter().map(|text| words::terms(text)).collect(),
        excluded: parsed.excluded.iter().map(|text| words::terms(text)).collect(),
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
    if let Some((room, senders)) = revealing {
        audit_reveal(ctx, user, &r.query, room, &senders, &hits).await?;
    }
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

/// One REVEAL_AUTHOR audit entry per sender a revealing search asked for (as the request
/// of that name writes), naming the query and the anonymous posts it revealed, if any;
/// committed before the answer is sent.
async fn audit_reveal(
    ctx: &ConnCtx,
    moderator: UserId,
    query: &str,
    room: RoomId,
    senders: &[UserId],
    hits: &[Hit],
) -> Result<()> {
    let query: String = query.chars().take(100).collect();
    let entries: Vec<(UserId, String)> = senders
        .iter()
        .map(|&sender| {
            let seqs: Vec<u64> = hits
                .iter()
                .filter(|hit| hit.revealed && hit.sender == sender)
                .map(|hit| hit.seq)
                .collect();
            let mut listed: Vec<String> =
                seqs.iter().take(AUDITED_SEQS).map(ToString::to_string).collect();
            if seqs.len() > AUDITED_SEQS {
                listed.push(format!("and {} more", seqs.len() - AUDITED_SEQS));
            }
            let found = if listed.is_empty() {
                "no anonymous post".to_owned()
            } else {
                format!("seq {}", listed.join(", "))
            };
            (sender, format!("search {query:?}: {found}"))
        })
        .collect();
    ctx.shared
        .store
        .write(
            move |txn| {
                for (sender, reason) in &entries {
                    let action = AuditAction::REVEAL_AUTHOR;
                    audit(txn, moderator, action, Some(room), Some(*sender), reason)?;
                }
                Ok::<_, RequestError>(())
            },
            |()| (),
        )
        .await?;
    Ok(())
}
