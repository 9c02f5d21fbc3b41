//! Post streams (spec §3.1.1): a request stream that begins with POST may carry more POSTs,
//! answered in order. One stream for a burst of posts saves a stream's open and close per
//! post, and lets many posts and their acks share packets; a client that posts one message
//! at a time sees no difference.
//!
//! The server reads ahead at most [`READ_AHEAD`] unanswered posts; beyond that it stops
//! reading, so a client that sends posts and never reads the acks is held by QUIC flow control
//! and then reset by the answer write timeout, like any request whose answer is not taken.
//! Each post is admitted, rate-limited and authorized on its own, exactly as on a stream of
//! its own.

use banter_protocol::ErrorCode;
use banter_protocol::message::Frame as _;
use banter_protocol::message::{Message, Post};
use banter_protocol::settings::FEATURE_POST_STREAMS;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;

use super::{
    ConnCtx, REQUEST_READ_TIMEOUT, RequestError, RequestIo, Result, admit, encode_answer, events,
    lock, observe,
};

/// Unanswered posts the server holds from one stream (spec §3.1.1).
pub(crate) const READ_AHEAD: usize = 32;

/// Whether the client said it finishes its post streams (FEATURE_POST_STREAMS): only then does
/// the server wait for more POSTs after the first instead of answering and finishing.
pub(super) fn offered(ctx: &ConnCtx) -> bool {
    lock(&ctx.protocol).peer_limits().is_some_and(|l| l.features & FEATURE_POST_STREAMS != 0)
}

/// Serves a post stream whose first POST is `first`; returns the code to stop reading with
/// when a frame was malformed or oversized.
///
/// Posts after the first are handled concurrently but in the order they arrived: `FuturesOrdered` polls each
/// new post first in arrival order, and a post runs its checks and queues its write at the
/// storage writer (whose queue is first in, first out) on that first poll, so posts commit
/// in stream order and the answers are written in the same order.
pub(super) async fn serve(ctx: &ConnCtx, first: Post, io: &mut RequestIo<'_>) -> Option<ErrorCode> {
    // The first post on its own, as on a stream of its own: most streams carry only one.
    let (bytes, mut stop) = encode_answer(ctx, answer(ctx, Ok(first)).await);
    if io.write(&bytes).await.is_err() {
        return stop;
    }
    let mut pending = FuturesOrdered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            Some(answer) = pending.next() => {
                let (bytes, malformed) = encode_answer(ctx, answer);
                stop = stop.or(malformed);
                if io.write(&bytes).await.is_err() {
                    return stop;
                }
            }
            next = tokio::time::timeout(REQUEST_READ_TIMEOUT, io.next_or_end()),
                if reading && pending.len() < READ_AHEAD => match next {
                Ok(Ok(Some(Message::Post(post)))) => pending.push_back(answer(ctx, Ok(post))),
                Ok(Ok(None)) => reading = false,
                // Idle for the bound: the stream is done; a post the client sends now is not
                // read, so it goes unanswered and the client retries it (spec §3.1.1).
                Err(_) => {
                    reading = false;
                    stop = Some(ErrorCode::NO_ERROR);
                }
                Ok(Ok(Some(other))) => {
                    reading = false;
                    let error = RequestError::new(
                        ErrorCode::PROTOCOL_VIOLATION,
                        format!("{:?} on a post stream: only POST may follow a POST", other.frame_type()),
                    );
                    pending.push_back(answer(ctx, Err(error)));
                }
                Ok(Err(error)) => {
                    reading = false;
                    // A stream reset after whole posts leaves nothing more to answer; a
                    // malformed frame is answered in its place.
                    if error.code != ErrorCode::REQUEST_CANCELLED {
                        pending.push_back(answer(ctx, Err(error)));
                    }
                }
            },
            else => break,
        }
    }
    io.finish().await;
    stop
}

/// One post's answer, or the error that stands in the stream where a post should have been.
async fn answer(ctx: &ConnCtx, post: Result<Post>) -> Result<Vec<Message>> {
    let post = post?;
    let started = admit(ctx, Post::TYPE)?;
    let answer = events::post(ctx, post).await;
    observe(ctx, Post::TYPE, started);
    answer
}
