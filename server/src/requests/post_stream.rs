//! Post streams (spec §3.1.1): a request stream that begins with POST may carry more POSTs,
//! answered in order. One stream for a burst of posts saves a stream's open and close per
//! post, and lets many posts and their acks share packets; a client that posts one message
//! at a time sees no difference.
//!
//! The server reads ahead at most [`READ_AHEAD`] unanswered posts ([`READ_AHEAD_BYTES`] of
//! text); beyond that it stops reading until an answer is handed to quinn, so a client that
//! sends posts and never reads the acks is held once they fill its stream window, and is then
//! reset by the answer write timeout, like any request whose answer is not taken.
//! Each post is admitted, rate-limited and authorized on its own, exactly as on a stream of
//! its own; once one is refused, every later one is refused too ([`StreamOrder`]), so what a
//! stream took is always a prefix of what it sent, and a client that resends from the
//! refused post on keeps its order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Keeps what a post stream takes a prefix of what was sent (spec §3.1.1): once one post is
/// refused, every later one is too. A post can be refused in three places, each ordered
/// before the same step of the later posts: its checks before the writer (run on its first
/// poll, which comes before the next post's), its job on the writer thread (run before the
/// next post's job), and its group's commit (counted before the next group's jobs run).
#[derive(Debug)]
pub(super) struct StreamOrder {
    /// The position of the first post refused so far (`u64::MAX`: none).
    first_refused: AtomicU64,
    /// The writer's count of failed group commits, and its value when the stream's posts
    /// began to flow: a failure since may have taken one of them. Failures of groups that held
    /// none of them refuse the rest of the stream too; they are rare, and a refused post is
    /// only resent.
    failures: Arc<AtomicU64>,
    failures_before: u64,
}

impl StreamOrder {
    fn new(ctx: &ConnCtx) -> Arc<Self> {
        let failures = ctx.shared.store.commit_failures();
        let failures_before = failures.load(Ordering::SeqCst);
        Arc::new(Self { first_refused: AtomicU64::new(u64::MAX), failures, failures_before })
    }
}

/// A post's place in its stream.
#[derive(Debug, Clone)]
pub(super) struct InStream {
    pub(super) order: Arc<StreamOrder>,
    pub(super) position: u64,
}

impl InStream {
    /// REQUEST_CANCELLED when an earlier post of the stream may not have been taken (the
    /// caller notes that refusal like any other).
    pub(super) fn check(&self) -> Result<()> {
        let order = &self.order;
        if order.first_refused.load(Ordering::SeqCst) < self.position
            || order.failures.load(Ordering::SeqCst) != order.failures_before
        {
            return Err(RequestError::new(
                ErrorCode::REQUEST_CANCELLED,
                "an earlier post on this stream was not taken",
            ));
        }
        Ok(())
    }

    /// This post was refused.
    pub(super) fn refused(&self) {
        self.order.first_refused.fetch_min(self.position, Ordering::SeqCst);
    }
}

/// Whether the client said it finishes its post streams (FEATURE_POST_STREAMS): only then does
/// the server wait for more POSTs after the first instead of answering and finishing.
pub(super) fn offered(ctx: &ConnCtx) -> bool {
    lock(&ctx.protocol).peer_limits().is_some_and(|l| l.features & FEATURE_POST_STREAMS != 0)
}

/// Serves a post stream whose first POST is `first`; returns the code to stop reading with
/// when a frame was malformed or oversized.
///
/// Posts after the first are handled concurrently but in the order they arrived:
/// `FuturesOrdered` polls each new post first in arrival order, and a post runs its checks
/// and queues its write at the storage writer (whose queue is first in, first out) on that
/// first poll, so posts commit
/// in stream order and the answers are written in the same order.
pub(super) async fn serve(ctx: &ConnCtx, first: Post, io: &mut RequestIo<'_>) -> Option<ErrorCode> {
    // The first post on its own, as on a stream of its own: most streams carry only one.
    let (first, _) = answer(ctx, Ok(first), None, 0).await;
    let refused = first.is_err();
    let (bytes, mut stop) = encode_answer(ctx, first);
    if io.write(&bytes).await.is_err() {
        return stop;
    }
    // Nothing after a refused post is taken: stop reading here (spec §3.1.1).
    if refused {
        io.finish().await;
        return Some(stop.unwrap_or(ErrorCode::NO_ERROR));
    }
    let order = StreamOrder::new(ctx);
    let mut position = 0;
    let mut pending = FuturesOrdered::new();
    let mut held = 0;
    let mut reading = true;
    loop {
        let idle = pending.is_empty();
        let more = reading && pending.len() < READ_AHEAD && held < READ_AHEAD_BYTES;
        tokio::select! {
            biased;
            Some((answer, size)) = pending.next() => {
                let answer: Result<Vec<Message>> = answer;
                held -= size;
                if answer.is_err() && reading {
                    // The later posts will all be refused: read no more of them.
                    reading = false;
                    stop = stop.or(Some(ErrorCode::NO_ERROR));
                }
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
                    position += 1;
                    let place = InStream { order: order.clone(), position };
                    pending.push_back(answer(ctx, Ok(post), Some(place), size));
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
                    stop = Some(ErrorCode::NO_ERROR);
                    let error = RequestError::new(
                        ErrorCode::PROTOCOL_VIOLATION,
                        format!("{:?} on a post stream: only POST may follow a POST", other.frame_type()),
                    );
                    pending.push_back(answer(ctx, Err(error), None, 0));
                }
                Some(Err(error)) => {
                    reading = false;
                    // A stream reset after whole posts leaves nothing more to answer; a
                    // malformed frame is answered in its place.
                    if error.code != ErrorCode::REQUEST_CANCELLED {
                        pending.push_back(answer(ctx, Err(error), None, 0));
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
/// with the `size` it holds of [`READ_AHEAD_BYTES`]. A refusal is noted at its `place`.
async fn answer(
    ctx: &ConnCtx,
    post: Result<Post>,
    place: Option<InStream>,
    size: usize,
) -> (Result<Vec<Message>>, usize) {
    let answer = async {
        let post = post?;
        if let Some(place) = &place {
            place.check()?;
        }
        let started = admit(ctx, Post::TYPE)?;
        let answer = events::post(ctx, post, place.clone()).await;
        observe(ctx, Post::TYPE, started);
        answer
    };
    let answer = answer.await;
    if let (Err(_), Some(place)) = (&answer, &place) {
        place.refused();
    }
    (answer, size)
}
