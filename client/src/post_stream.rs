//! Post streams (spec §3.1.1): many POSTs on one request stream, answered in order. For a
//! client that posts in bursts (a bridge, a bot, an import): posts and their acks share
//! packets and no stream is opened per post. A person typing gains nothing from it; one POST
//! per request ([`Connection::request_one`]) stays the simple way.

use banter_protocol::message::{EventAck, Message, Post};
use banter_protocol::settings::FEATURE_POST_STREAMS;
use banter_protocol::{FrameDecoder, frame::DEFAULT_MAX_FRAME_SIZE};

use crate::connection::{Connection, RequestError};

/// An open post stream. Answers come back in the order the posts were sent; the server reads
/// at most 32 posts ahead of the answers it has written, so keep the answers read.
#[derive(Debug)]
pub struct PostStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    unanswered: usize,
    ended: bool,
}

impl Connection {
    /// Opens a post stream, or `None` when the server does not offer them (its SETTINGS lack
    /// FEATURE_POST_STREAMS, or have not arrived yet): then post each on its own request.
    pub async fn post_stream(&self) -> Result<Option<PostStream>, RequestError> {
        if self.server_features().is_none_or(|f| f & FEATURE_POST_STREAMS == 0) {
            return Ok(None);
        }
        let (send, recv) =
            self.quic().open_bi().await.map_err(|e| RequestError::Connection(e.to_string()))?;
        Ok(Some(PostStream {
            send,
            recv,
            decoder: FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE),
            unanswered: 0,
            ended: false,
        }))
    }
}

impl PostStream {
    /// Sends a post; [`answer`](Self::answer) returns its answer, in the order sent.
    pub async fn send(&mut self, post: Post) -> Result<(), RequestError> {
        let mut bytes = Vec::new();
        Message::Post(post).encode(&mut bytes);
        self.send.write_all(&bytes).await.map_err(|e| RequestError::Connection(e.to_string()))?;
        self.unanswered += 1;
        Ok(())
    }

    /// Posts sent whose answers have not been returned yet.
    pub fn unanswered(&self) -> usize {
        self.unanswered
    }

    /// The answer to the oldest unanswered post: its ack, or the server's ERROR for it
    /// ([`RequestError::Server`]). Every post sent gets exactly one answer from here.
    ///
    /// After an ERROR the server takes none of the later posts of the stream (spec §3.1.1):
    /// they are answered REQUEST_CANCELLED, or not at all. [`RequestError::Connection`] means
    /// the stream ended before that post was answered: it may or may not have taken effect.
    /// Either way, send the posts from the first one not acked on, in order and with the same
    /// client_msg_id, on a new stream.
    pub async fn answer(&mut self) -> Result<EventAck, RequestError> {
        if self.unanswered == 0 {
            return Err(RequestError::Local("no post is waiting for an answer".into()));
        }
        let message = self.next_frame().await;
        self.unanswered -= 1;
        match message? {
            Message::EventAck(ack) => Ok(ack),
            Message::Error(error) => Err(RequestError::from(&error)),
            other => {
                Err(RequestError::Protocol(format!("{:?} in answer to a POST", other.frame_type())))
            }
        }
    }

    async fn next_frame(&mut self) -> Result<Message, RequestError> {
        loop {
            if let Some(message) =
                self.decoder.next_message().map_err(|e| RequestError::Protocol(e.to_string()))?
            {
                return Ok(message);
            }
            if self.ended {
                return Err(RequestError::Connection(format!(
                    "post stream ended with {} posts unanswered",
                    self.unanswered
                )));
            }
            let mut buf = [0u8; 16 * 1024];
            match self.recv.read(&mut buf).await {
                Ok(Some(n)) => self.decoder.push(&buf[..n]),
                Ok(None) => self.ended = true,
                Err(e) => return Err(RequestError::Connection(e.to_string())),
            }
        }
    }

    /// Sends no more posts; the answers still come. The server ends the stream once it has
    /// answered them all.
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }
}
