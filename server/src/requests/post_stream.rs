//! Post streams (spec §3.1.1): a request stream that begins with POST may carry more POSTs,
//! answered in order. One stream for a burst of posts saves a stream's open and close per
//! post, and lets many posts and their acks share packets; a client that posts one message
//! at a time sees no difference.
//!
//! The server reads ahead at most [`READ_AHEAD`] unanswered posts ([`READ_AHEAD_BYTES`] of
//! text); beyond that it stops reading, so a client that sends posts and never reads the
//! acks is held by QUIC flow control and then reset by the answer write timeout, like any
//! request whose answer is not taken.
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

/// Text bytes of unanswered posts the server holds from one stream. With [`READ_AHEAD`] and
/// the stream limit, this bounds what one connection can make the server hold for posts it
/// does not take the answers of (32 streams × 80 KiB at most), close to what a stream per
/// post allowed (32 streams × one 16 KiB post).
pub(crate) const READ_AHEAD_BYTES: usize = 64 * 1024;

/// Whether the client said it finishes its post streams (FEATURE_POST_STREAMS): only then does
/// the server wait for more POSTs after the first instead of answering and finishing.
pub(super) fn offered(ctx: &ConnCtx) -> bool {
    lock(&ctx.protocol).peer_limits().is_some_and(|l| l.features & FEATURE_POST_STREAMS != 0)
}

/// Serves a post stream whose first POST is `first`; returns the code to stop reading with
/// when a frame was malformed or oversized.
///
/// Posts after the first are handled concurrently but in the order they arrived:
/// `FuturesOrdered` polls each new post first in arrival order, and a post runs its checks and queues its write at the
/// storage writer (whose queue is first in, first out) on that first poll, so posts commit
/// in stream order and the answers are written in the same order.
pub(super) async fn serve(ctx: &ConnCtx, first: Post, io: &mut RequestIo<'_>) -> Option<ErrorCode> {
    // The first post on its own, as on a stream of its own: most streams carry only one.
    let (bytes, mut stop) = encode_answer(ctx, answer(ctx, Ok(first), 0).await.0);
    if io.write(&bytes).await.is_err() {
        return stop;
    }
    let mut pending = FuturesOrdered::new();
    let mut held = 0;
    let mut reading = true;
    loop {
        let idle = pending.is_empty();
        let more = reading && pending.len() < READ_AHEAD && held < READ_AHEAD_BYTES;
        tokio::select! {
            biased;
            Some((answer, size)) = pending.next() => {
                held -= size;
                let (bytes, malformed) = encode_answer(ctx, answer);
                stop = stop.or(malformed);
                if io.write(&bytes).await.is_err() {
                    return stop;
                }
            }
            next = next_frame(io, idle), if more => match next {
                Some(Ok(Some(Message::Post(post)))) => {
                    let size = post.text.len();
                    held += size;
                    pending.push_back(answer(ctx, Ok(post), size));
                }
                Some(Ok(None)) => reading = false,
                // Idle for the bound: the stream is done; a post the client sends now is not
                // read, so it goes unanswered and the client retries it (spec §3.1.1).
                None => {
                    reading = false;
                    stop = Some(ErrorCode::NO_ERROR);
                }
                Some(Ok(Some(other))) => {
                    reading = false;
                    let error = RequestError::new(
                        ErrorCode::PROTOCOL_VIOLATION,
                        format!("{:?} on a post stream: only POST may follow a POST", other.frame_type()),
                    );
                    pending.push_back(answer(ctx, Err(error), 0));
                }
                Some(Err(error)) => {
                    reading = false;
                    // A stream reset after whole posts leaves nothing more to answer; a
                    // malformed frame is answered in its place.
                    if error.code != ErrorCode::REQUEST_CANCELLED {
                        pending.push_back(answer(ctx, Err(error), 0));
                    }
                }
            },
            else => break,
        }
    }
    io.finish().await;
    stop
}

/// The client's next frame, `None` when the stream has been `idle` (no post waiting for its
/// answer) for the bound.
async fn next_frame(io: &mut RequestIo<'_>, idle: bool) -> Option<Result<Option<Message>>> {
    if idle {
        tokio::time::timeout(REQUEST_READ_TIMEOUT, io.next_or_end()).await.ok()
    } else {
        Some(io.next_or_end().await)
    }
}

/// One post's answer, or the error that stands in the stream where a post should have been;
/// with the `size` it holds of [`READ_AHEAD_BYTES`].
async fn answer(ctx: &ConnCtx, post: Result<Post>, size: usize) -> (Result<Vec<Message>>, usize) {
    let answer = async {
        let post = post?;
        let started = admit(ctx, Post::TYPE)?;
        let answer = events::post(ctx, post).await;
        observe(ctx, Post::TYPE, started);
        answer
    };
    (answer.await, size)
}
