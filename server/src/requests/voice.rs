//! VOICE_JOIN, VOICE_LEAVE, VOICE_SELF, VOICE_REQUEST_SPEAK, VOICE_MODERATE (spec §6.6).

use std::time::{Duration, Instant};

use banter_protocol::ErrorCode;
use banter_protocol::bounded::List;
use banter_protocol::message::{
    AuditAction, CodecParams, Done, Message, Role, VoiceAction, VoiceJoin, VoiceJoined, VoiceLeave,
    VoiceModerate, VoiceRequestSpeak, VoiceSelf,
};

use super::{ConnCtx, RequestError, Result, audit, authorize_moderation_in, text};
use crate::announce_voice;
use crate::authz::Action;
use crate::store::keys;
use crate::voice::{Decided, Moderation, VoiceError};
use crate::wall_clock;

impl From<VoiceError> for RequestError {
    fn from(error: VoiceError) -> Self {
        match error {
            VoiceError::NotInVoice => {
                Self::new(ErrorCode::INVALID_REQUEST, "not in this room's voice")
            }
            VoiceError::NoSuchParticipant => Self::new(ErrorCode::NOT_FOUND, "no such participant"),
        }
    }
}

pub(super) async fn join(ctx: &ConnCtx, r: VoiceJoin) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("voice")?;
    let (record, standing) = ctx.authorize(r.room, Action::Participate)?;
    if !record.voice {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "this room has no voice"));
    }
    // On a stage, members wait for a moderator to let them speak (spec §6.3).
    let suppressed = ctx.room_settings(r.room)?.stage && standing.rank() < Role::MODERATOR;
    let decision = ctx.shared.store.get(&keys::voice_decision(r.room, user))?.unwrap_or_default();
    let (source, roster, notices) = ctx
        .shared
        .voice
        .join(r.room, ctx.conn_id, user, ctx.voice.clone(), suppressed, decision)
        .map_err(|_| RequestError::from(ErrorCode::REQUEST_CANCELLED))?;
    announce_voice(&ctx.shared, notices);
    ctx.shared.bus.voice_ready(&ctx.shared.voice, r.room).await;
    let max_bitrate = ctx.shared.protocol().limits.voice_max_bitrate;
    let roster = roster.into_iter().take(List::<(), 256>::MAX).collect();
    Ok(vec![
        VoiceJoined {
            room: r.room,
            source,
            codec: CodecParams {
                codec: text("opus"),
                sample_rate: 48_000,
                channels: 1,
                frame_ms: 20,
                max_bitrate: u32::try_from(max_bitrate).unwrap_or(u32::MAX),
            },
            roster: List::new(roster).expect("taken up to the limit"),
        }
        .into(),
    ])
}

pub(super) fn leave(ctx: &ConnCtx, r: VoiceLeave) -> Result<Vec<Message>> {
    ctx.authed()?;
    // Only the named room's voice: a late VOICE_LEAVE of a room the client has since moved
    // from must not end its call in the next one.
    let notices = ctx.shared.voice.leave_room(r.room, ctx.conn_id).ok_or(VoiceError::NotInVoice)?;
    announce_voice(&ctx.shared, notices);
    Ok(vec![Done {}.into()])
}

pub(super) fn set_self(ctx: &ConnCtx, r: VoiceSelf) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("voice")?;
    let notice = ctx.shared.voice.set_self(r.room, ctx.conn_id, user, r.mute, r.deaf)?;
    announce_voice(&ctx.shared, vec![notice]);
    Ok(vec![Done {}.into()])
}

pub(super) fn request_speak(ctx: &ConnCtx, r: VoiceRequestSpeak) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("voice")?;
    let notice =
        ctx.shared.voice.request_speak(r.room, ctx.conn_id, user, r.raise, wall_clock())?;
    announce_voice(&ctx.shared, vec![notice]);
    Ok(vec![Done {}.into()])
}

/// VOICE_MODERATE: stored (so it holds when they join again, on any node), applied to every
/// participant of the user in the room on every node, audited as VOICE with the action as the reason (spec §6.6).
pub(super) async fn moderate(ctx: &ConnCtx, r: VoiceModerate) -> Result<Vec<Message>> {
    let actor = ctx.authed()?.user;
    ctx.rate("voice")?;
    let shared = ctx.shared.clone();
    let (room, target, action) = (r.room, r.user, r.action);
    let (moderated, decided) = ctx
        .shared
        .store
        .write(
            move |txn| {
                authorize_moderation_in(txn, room, actor, target)?;
                shared.voice.check_moderation_target(room, target)?;
                let key = keys::voice_decision(room, target);
                let decision = txn.get::<Moderation>(&key)?.unwrap_or_default().after(action);
                txn.put(key, &decision);
                audit(
                    txn,
                    actor,
                    AuditAction::VOICE,
                    Some(room),
                    Some(target),
                    action_name(action),
                )?;
                Ok((shared, Decided { room, target, actor, action, decision }))
            },
            // Applied once stored and audited (a refused or conflicting group changes
            // nothing); a target who left voice meanwhile finds it when they join again.
            move |(shared, decided)| (shared.voice.moderate(decided), decided),
        )
        .await?;
    if moderated.elsewhere {
        ctx.shared.bus.voice_moderated(decided);
        // Answered once the target's nodes show the decision (one bus hop), so that a mute
        // is in force when the moderator is told it is done; at most a second with the bus
        // slow or down.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !ctx.shared.voice.decided_everywhere(&decided) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    announce_voice(&ctx.shared, moderated.notices);
    Ok(vec![Done {}.into()])
}

/// The audit reason of a voice moderation act.
fn action_name(action: VoiceAction) -> &'static str {
    match action {
        VoiceAction::GrantSpeak => "grant speak",
        VoiceAction::RevokeSpeak => "revoke speak",
        VoiceAction::ServerMute => "server mute",
        VoiceAction::ServerUnmute => "server unmute",
    }
}
