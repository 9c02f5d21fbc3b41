//! CONTACT_SET and CONTACT_LIST (spec §6.8): friend requests, friends and blocks. Each side
//! of a relationship is stored on its own (`user ‖ other → state`); the transitions are one
//! pure function, so that every case is tested without a server.

use banter_protocol::ErrorCode;
use banter_protocol::bounded::List;
use banter_protocol::ids::UserId;
use banter_protocol::message::{
    Contact, ContactAction, ContactEntry, ContactListPage, ContactSet, ContactState, Done, Message,
};

use super::{ConnCtx, RequestError, Result, text};
use crate::store::keys;
use crate::store::records::{CONTACT_BLOCKED, CONTACT_FRIEND, UserRecord};

fn code(state: ContactState) -> u8 {
    match state {
        ContactState::Friend => CONTACT_FRIEND,
        ContactState::Outgoing => 1,
        ContactState::Incoming => 2,
        ContactState::Blocked => CONTACT_BLOCKED,
    }
}

fn state(code: u8) -> Option<ContactState> {
    Some(match code {
        CONTACT_FRIEND => ContactState::Friend,
        1 => ContactState::Outgoing,
        2 => ContactState::Incoming,
        CONTACT_BLOCKED => ContactState::Blocked,
        _ => return None,
    })
}

type Sides = (Option<ContactState>, Option<ContactState>);

/// The caller's side and the other's after `action`, from both sides before it.
fn transition(
    mine: Option<ContactState>,
    theirs: Option<ContactState>,
    action: ContactAction,
) -> Result<Sides> {
    use ContactState::{Blocked, Friend, Incoming, Outgoing};
    let keep_block = |side: Option<ContactState>| side.filter(|s| *s == Blocked);
    Ok(match action {
        ContactAction::Request => match (mine, theirs) {
            (Some(Blocked), _) => {
                return Err(RequestError::new(
                    ErrorCode::CONFLICT,
                    "you block them: unblock first",
                ));
            }
            (Some(Friend), _) => (mine, theirs),
            // They block the caller: the request stays pending and never reaches them.
            (_, Some(Blocked)) => (Some(Outgoing), theirs),
            (Some(Incoming), _) => (Some(Friend), Some(Friend)),
            _ => (Some(Outgoing), Some(Incoming)),
        },
        ContactAction::Accept => match mine {
            Some(Incoming) => (Some(Friend), Some(Friend)),
            _ => return Err(RequestError::new(ErrorCode::NOT_FOUND, "no request from them")),
        },
        ContactAction::Remove => (keep_block(mine), keep_block(theirs)),
        ContactAction::Block => (Some(Blocked), keep_block(theirs)),
        ContactAction::Unblock => (mine.filter(|s| *s != Blocked), theirs),
    })
}

pub(super) async fn set(ctx: &ConnCtx, r: ContactSet) -> Result<Vec<Message>> {
    let me = ctx.authed()?.user;
    ctx.rate("join")?;
    let other = ctx.user_named(&r.username)?;
    if other == me {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "that is you"));
    }
    let action = r.action;
    let (before, after) = ctx
        .shared
        .store
        .write(
            move |txn| {
                let (mine_key, theirs_key) = (keys::contact(me, other), keys::contact(other, me));
                let read = |key: &[u8]| -> Result<Option<ContactState>> {
                    Ok(txn.get::<u8>(key)?.and_then(state))
                };
                let before = (read(&mine_key)?, read(&theirs_key)?);
                let after = transition(before.0, before.1, action)?;
                for (key, side) in [(mine_key, after.0), (theirs_key, after.1)] {
                    match side {
                        Some(s) => txn.put(key, &code(s)),
                        None => txn.delete(key),
                    }
                }
                Ok((before, after))
            },
            |v| v,
        )
        .await?;
    if (before.0 == Some(ContactState::Blocked)) != (after.0 == Some(ContactState::Blocked)) {
        ctx.shared.set_block(me, other, after.0 == Some(ContactState::Blocked));
    }
    let name = |user: UserId| -> Result<String> {
        Ok(ctx
            .shared
            .store
            .get::<UserRecord>(&keys::user(user))?
            .map(|u| u.username)
            .unwrap_or_default())
    };
    if before.0 != after.0 {
        let contact = Contact { user: other, username: text(&name(other)?), state: after.0 };
        ctx.shared.tell_user(me, &contact);
    }
    // The blocked side of a block is never told; a request to a blocker never arrives.
    if before.1 != after.1 && action != ContactAction::Block {
        let contact = Contact { user: me, username: text(&name(me)?), state: after.1 };
        ctx.shared.tell_user(other, &contact);
    }
    Ok(vec![Done {}.into()])
}

pub(super) fn list(ctx: &ConnCtx) -> Result<Vec<Message>> {
    let me = ctx.authed()?.user;
    let prefix = keys::ids(keys::tag::CONTACT, &[me.0]);
    let limit = List::<ContactEntry, 1000>::MAX;
    let stored = ctx.shared.store.range::<u8>(&prefix, &keys::prefix_end(&prefix), false, limit)?;
    let mut contacts = Vec::with_capacity(stored.len());
    for (key, code) in stored {
        let user = UserId(keys::id_at(&key, 9));
        let Some(state) = state(code) else { continue };
        let username = ctx.shared.store.get::<UserRecord>(&keys::user(user))?.map(|u| u.username);
        contacts.push(ContactEntry { user, username: text(&username.unwrap_or_default()), state });
    }
    Ok(vec![
        ContactListPage { contacts: List::new(contacts).expect("read up to the limit") }.into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContactAction::*;
    use ContactState::{Blocked, Friend, Incoming, Outgoing};

    fn after(
        mine: Option<ContactState>,
        theirs: Option<ContactState>,
        action: ContactAction,
    ) -> Sides {
        transition(mine, theirs, action).unwrap()
    }

    #[test]
    fn a_request_and_its_acceptance_make_friends_and_removal_ends_it_for_both() {
        assert_eq!(after(None, None, Request), (Some(Outgoing), Some(Incoming)));
        assert_eq!(after(Some(Incoming), Some(Outgoing), Accept), (Some(Friend), Some(Friend)));
        // Asking someone who asked first is accepting.
        assert_eq!(after(Some(Incoming), Some(Outgoing), Request), (Some(Friend), Some(Friend)));
        assert_eq!(after(Some(Friend), Some(Friend), Request), (Some(Friend), Some(Friend)));
        assert_eq!(after(Some(Friend), Some(Friend), Remove), (None, None));
        assert_eq!(after(Some(Outgoing), Some(Incoming), Remove), (None, None));
        assert!(transition(None, None, Accept).is_err());
        assert!(transition(Some(Outgoing), Some(Incoming), Accept).is_err());
    }

    #[test]
    fn blocks_end_friendships_outlive_removals_and_swallow_requests() {
        assert_eq!(after(Some(Friend), Some(Friend), Block), (Some(Blocked), None));
        assert_eq!(after(None, Some(Blocked), Block), (Some(Blocked), Some(Blocked)));
        assert_eq!(after(Some(Blocked), Some(Blocked), Remove), (Some(Blocked), Some(Blocked)));
        assert_eq!(after(Some(Blocked), None, Unblock), (None, None));
        assert_eq!(after(None, Some(Blocked), Unblock), (None, Some(Blocked)));
        // A request to someone who blocks the caller stays pending on the caller's side only.
        assert_eq!(after(None, Some(Blocked), Request), (Some(Outgoing), Some(Blocked)));
        assert!(transition(Some(Blocked), None, Request).is_err());
    }
}
