//! One connection: drives the sans-io [`ServerConnection`] from the QUIC streams, runs each
//! request stream as its own task, and feeds the events and ephemeral streams from the
//! connection's [`Session`](crate::hub::Session).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use banter_protocol::ErrorCode;
use banter_protocol::datagram::TunnelReader;
use banter_protocol::session::{AuthRequest, ServerConnection, ServerEvent};
use banter_protocol::stream::StreamType;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::Shared;
use crate::hub::{ConnCommand, Session, Wakers};
use crate::ratelimit::Limiter;
use crate::requests::{self, ConnCtx, RequestIo, lock};
use crate::voice::{Path, VoiceLink};

/// Tunnel records waiting for the connection's loop to relay them.
const TUNNEL_BACKLOG: usize = 64;

enum ControlInput {
    Bytes(Vec<u8>),
    Closed,
    /// The client opened a second control stream.
    Duplicate,
}

fn code(code: ErrorCode) -> quinn::VarInt {
    quinn::VarInt::from_u64(code.0).unwrap_or(quinn::VarInt::from_u32(1))
}

/// Serves one established connection until it closes.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    mut shutdown: watch::Receiver<bool>,
) {
    let remote = conn.remote_address();
    let span =
        tracing::info_span!("conn", id = conn.stable_id(), %remote, user = tracing::field::Empty);
    async move {
        if let Err(error) = drive(&shared, &conn, remote, &mut shutdown).await {
            tracing::debug!(%error, "connection ended");
        }
    }
    .instrument(span)
    .await;
}

async fn drive(
    shared: &Arc<Shared>,
    conn: &quinn::Connection,
    remote: SocketAddr,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let conn_id = conn.stable_id();
    let protocol = Arc::new(Mutex::new(ServerConnection::new(&shared.protocol(), Instant::now())));
    let ctx = Arc::new(ConnCtx {
        shared: shared.clone(),
        protocol: protocol.clone(),
        authed: OnceLock::new(),
        remote,
        limiter: Limiter::new(&shared.account_limits.rates()),
        conn_id,
        voice: Arc::new(VoiceLink::new(conn.clone())),
    });

    let control = ControlWriter::spawn(conn.clone(), shared.config.control_stall_timeout_ms);

    let (control_tx, mut control_rx) = mpsc::channel::<ControlInput>(16);
    let (commands_tx, mut commands_rx) = mpsc::unbounded_channel::<ConnCommand>();
    let (tunnel_tx, mut tunnel_rx) = mpsc::channel::<Bytes>(TUNNEL_BACKLOG);
    let routes = UniRoutes {
        control: control_tx,
        // Set once the client's control stream is found; a second one is a protocol violation.
        control_claimed: Arc::default(),
        tunnel: tunnel_tx,
        commands: commands_tx.clone(),
        shared: shared.clone(),
    };
    let mut drain_deadline: Option<tokio::time::Instant> = None;

    let result = loop {
        let timer = lock(&protocol).poll_timeout().map(tokio::time::Instant::from_std);
        let deadline = match (timer, drain_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            stream = conn.accept_uni() => match stream {
                Ok(recv) => {
                    tokio::spawn(read_uni(recv, routes.clone()));
                }
                Err(_) => break Ok(()),
            },
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { request(ctx, send, recv).await }.in_current_span());
                }
                Err(_) => break Ok(()),
            },
            Some(input) = control_rx.recv() => match input {
                ControlInput::Bytes(bytes) => lock(&protocol).handle_control(Instant::now(), &bytes),
                ControlInput::Closed => lock(&protocol).handle_control_closed(),
                ControlInput::Duplicate => {
                    lock(&protocol).reject(ErrorCode::PROTOCOL_VIOLATION, "second control stream");
                }
            },
            Some(command) = commands_rx.recv() => match command {
                ConnCommand::Close(error, reason) => lock(&protocol).reject(error, &reason),
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                if drain_deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                    conn.close(code(ErrorCode::GOING_AWAY), b"server shutting down");
                    break Ok(());
                }
                lock(&protocol).handle_timeout(Instant::now());
            }
            changed = shutdown.changed(), if drain_deadline.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    lock(&protocol).go_away("", 1000);
                    drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                }
            }
            datagram = conn.read_datagram() => match datagram {
                Ok(datagram) if ctx.authed.get().is_some() => {
                    relay_voice(&ctx, &datagram, Path::Datagram);
                }
                Ok(_) => {} // before authentication: dropped (spec §8.2)
                Err(_) => break Ok(()),
            },
            Some(record) = tunnel_rx.recv() => {
                if ctx.authed.get().is_some() {
                    relay_voice(&ctx, &record, Path::Tunnel);
                }
            }
            _ = conn.closed() => break Ok(()),
        }

        let mut close = None;
        loop {
            let event = lock(&protocol).poll_event();
            match event {
                None => break,
                Some(ServerEvent::Authenticate(request)) => {
                    authenticate(&ctx, conn, &commands_tx, request);
                }
                Some(ServerEvent::EventsAcked(seq)) => {
                    if let Some(authed) = ctx.authed.get() {
                        authed.session.ack(seq);
                    }
                }
                Some(ServerEvent::PeerSettings(_)) => {}
                Some(ServerEvent::Close(c)) => close = Some(c),
            }
        }
        let outgoing = lock(&protocol).poll_transmit();
        if let Some(bytes) = outgoing {
            if !control.send(bytes) {
                // The writer gave up: the peer does not read, or (no close to send then) the
                // connection is already gone, and its close says how.
                if conn.close_reason().is_none() {
                    tracing::debug!("control stream not read; closing");
                    conn.close(code(ErrorCode::PROTOCOL_VIOLATION), CONTROL_NOT_READ);
                }
                break Ok(());
            }
        }
        if let Some(close) = close {
            // Give the ERROR frame a moment to reach the client before the close discards
            // unsent stream data; the close code says the same thing either way. The control
            // stream is never finished: a FIN on a critical stream would read as
            // CLOSED_CRITICAL_STREAM to a strict client (spec §3.2).
            let arrival = (conn.rtt() * 2 + Duration::from_millis(10)).min(CLOSE_GRACE);
            control.flush(CLOSE_GRACE).await;
            tokio::time::sleep(arrival).await;
            tracing::debug!(code = %close.code, reason = %close.reason, "closing");
            conn.close(code(close.code), close.reason.as_bytes());
            break Ok(());
        }
    };

    // The client closing with NO_ERROR is done with its session (spec §7.6).
    let finished = matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(close)) if close.error_code.into_inner() == 0
    );
    ctx.end(finished);
    result
}

/// How long a close waits, at most, for the ERROR frame before it to be written and to reach
/// the peer.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// The close reason for a peer that does not take its control stream.
const CONTROL_NOT_READ: &[u8] = b"control stream not read";

/// Chunks of control-stream bytes waiting for the writer: a peer that lets this many pile up
/// is not reading (the control stream carries a few small frames a minute).
const CONTROL_OUTBOX: usize = 64;

enum ControlOut {
    Bytes(Vec<u8>),
    /// Say when everything queued before this is written (handed to QUIC).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The server's control stream, opened and written by a task of its own, so that a peer that
/// never lets it open (a uni-stream limit of 0) or never reads it cannot park the
/// connection's loop: the login deadline, close orders and revocation keep running on timers
/// nothing else waits on. A write that does not complete within the stall timeout, or an
/// outbox that fills, closes the connection (PROTOCOL_VIOLATION).
struct ControlWriter {
    outbox: mpsc::Sender<ControlOut>,
}

impl ControlWriter {
    fn spawn(conn: quinn::Connection, stall_timeout_ms: u64) -> Self {
        let (outbox, pending) = mpsc::channel(CONTROL_OUTBOX);
        let stall = Duration::from_millis(stall_timeout_ms);
        tokio::spawn(Self::run(conn, pending, stall).in_current_span());
        Self { outbox }
    }

    /// Queues bytes for the peer; false when the peer has let the outbox fill.
    fn send(&self, bytes: Vec<u8>) -> bool {
        match self.outbox.try_send(ControlOut::Bytes(bytes)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        }
    }

    /// Waits, at most `bound`, until what is queued is written.
    async fn flush(&self, bound: Duration) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        let _ = tokio::time::timeout(bound, async {
            if self.outbox.send(ControlOut::Flush(done)).await.is_ok() {
                let _ = flushed.await;
            }
        })
        .await;
    }

    async fn run(
        conn: quinn::Connection,
        mut pending: mpsc::Receiver<ControlOut>,
        stall: Duration,
    ) {
        // (A connection that is already gone keeps the close it has: the peer's own.)
        let stalled = || {
            if conn.close_reason().is_none() {
                conn.close(code(ErrorCode::PROTOCOL_VIOLATION), CONTROL_NOT_READ);
            }
        };
        let Ok(Some(mut send)) =
            tokio::time::timeout(stall, open(&conn, StreamType::CONTROL, 3)).await
        else {
            stalled();
            return;
        };
        while let Some(out) = pending.recv().await {
            match out {
                ControlOut::Bytes(bytes) => {
                    match tokio::time::timeout(stall, send.write_all(&bytes)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return,
                        Err(_) => {
                            stalled();
                            return;
                        }
                    }
                }
                ControlOut::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}

/// Relays one voice packet that came by `via`: listeners get it on their own paths, a ping's
/// echo goes back the same way. Voice is loss-tolerant: a full or closed target misses a frame.
fn relay_voice(ctx: &ConnCtx, packet: &[u8], via: Path) {
    let now = Instant::now();
    let voice = &ctx.shared.voice;
    if via == Path::Tunnel {
        ctx.voice.heard_on_tunnel(now);
    }
    let relayed = voice.relay(ctx.conn_id, packet, now);
    if let Some(echo) = relayed.echo {
        if let Err(reason) = ctx.voice.send_on(via, echo) {
            voice.metrics.drop(reason);
        }
    }
    for (target, packet) in relayed.to {
        match target.send(packet, now) {
            Ok(()) => {
                voice.metrics.relayed.inc();
            }
            Err(reason) => voice.metrics.drop(reason),
        }
    }
    if let Some((room, packet)) = relayed.to_other_nodes {
        if let Err(reason) = ctx.shared.bus.voice_packet(room, packet) {
            voice.metrics.drop(reason);
        }
    }
    crate::announce_voice(&ctx.shared, relayed.notice.into_iter().collect());
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where a client's unidirectional streams lead.
#[derive(Clone)]
struct UniRoutes {
    control: mpsc::Sender<ControlInput>,
    control_claimed: Arc<std::sync::atomic::AtomicBool>,
    /// Voice tunnel records, relayed by the connection's loop like datagrams.
    tunnel: mpsc::Sender<Bytes>,
    commands: mpsc::UnboundedSender<ConnCommand>,
    /// The server, whose voice metrics count tunnel records dropped on arrival.
    shared: Arc<Shared>,
}

/// Reads a client's unidirectional stream: the control stream is forwarded, the voice tunnel
/// split into records, anything else stopped with UNKNOWN_STREAM (spec §3.2). A second
/// control stream closes the connection.
async fn read_uni(mut recv: quinn::RecvStream, routes: UniRoutes) {
    let UniRoutes { control, control_claimed: claimed, .. } = routes.clone();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 4096];
    let (kind, used) = loop {
        match StreamType::decode(&head) {
            Ok(found) => break found,
            Err(_) if head.len() >= 8 => return,
            Err(_) => {}
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    };
    if kind == StreamType::VOICE_TUNNEL {
        return read_tunnel(recv, &head[used..], routes).await;
    }
    if kind != StreamType::CONTROL {
        let _ = recv.stop(code(ErrorCode::UNKNOWN_STREAM));
        return;
    }
    if claimed.swap(true, std::sync::atomic::Ordering::SeqCst) {
        // The driver sees this as its control stream ending: CLOSED_CRITICAL_STREAM would be
        // wrong, so say what happened.
        let _ = recv.stop(code(ErrorCode::PROTOCOL_VIOLATION));
        let _ = control.send(ControlInput::Duplicate).await;
        return;
    }
    if head.len() > used && control.send(ControlInput::Bytes(head[used..].to_vec())).await.is_err()
    {
        return;
    }
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                if control.send(ControlInput::Bytes(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            // The connection itself ended: its close says why; the stream did not close.
            Err(quinn::ReadError::ConnectionLost(_)) => return,
            _ => {
                let _ = control.send(ControlInput::Closed).await;
                return;
            }
        }
    }
}

/// Splits a voice tunnel stream into records for the relay. A record over the datagram limit
/// closes the connection with FRAME_TOO_LARGE (spec §8.4); a full relay queue drops records,
/// as a congested path drops datagrams.
async fn read_tunnel(mut recv: quinn::RecvStream, first: &[u8], routes: UniRoutes) {
    let mut reader = TunnelReader::new();
    reader.push(first);
    let mut buf = vec![0u8; 4096];
    loop {
        loop {
            match reader.next_record() {
                Ok(Some(record)) => match routes.tunnel.try_send(record) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        routes.shared.voice.metrics.drop("tunnel_backlog");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                },
                Ok(None) => break,
                Err(error) => {
                    let _ =
                        routes.commands.send(ConnCommand::Close(error.code(), error.to_string()));
                    return;
                }
            }
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => reader.push(&buf[..n]),
            _ => return,
        }
    }
}

/// Checks a HELLO or RESUME and answers it; once in, the session's events and ephemeral
/// queues get their streams.
fn authenticate(
    ctx: &Arc<ConnCtx>,
    conn: &quinn::Connection,
    commands: &mpsc::UnboundedSender<ConnCommand>,
    request: AuthRequest,
) {
    let Some((authed, wakers)) = requests::attach_session(ctx, request) else { return };
    ctx.shared.hub.register_connection(authed.login, ctx.conn_id, commands.clone());
    for queue in [Outgoing::Events, Outgoing::Ephemeral] {
        let writer = session_writer(
            conn.clone(),
            authed.session.clone(),
            wakers.clone(),
            ctx.conn_id,
            queue,
        );
        tokio::spawn(writer.in_current_span());
    }
}

async fn open(
    conn: &quinn::Connection,
    kind: StreamType,
    priority: i32,
) -> Option<quinn::SendStream> {
    let mut send = conn.open_uni().await.ok()?;
    send.set_priority(priority).ok()?;
    let mut prefix = Vec::new();
    kind.encode(&mut prefix);
    send.write_all(&prefix).await.ok()?;
    Some(send)
}

/// One of a session's two outgoing queues, each drained onto its own stream.
#[derive(Debug, Clone, Copy)]
enum Outgoing {
    /// Numbered events, above requests in priority.
    Events,
    /// Soft state (presence, typing, markers), at the lowest priority.
    Ephemeral,
}

/// Writes one outgoing queue of the session, many frames per write so they pack into few
/// packets, until the session moves to another connection or this one closes.
async fn session_writer(
    conn: quinn::Connection,
    session: Arc<Session>,
    wakers: Wakers,
    conn_id: usize,
    queue: Outgoing,
) {
    let (kind, priority, wake) = match queue {
        Outgoing::Events => (StreamType::EVENTS, 2, wakers.events),
        Outgoing::Ephemeral => (StreamType::EPHEMERAL, 0, wakers.ephemeral),
    };
    let Some(mut send) = open(&conn, kind, priority).await else { return };
    loop {
        if !session.is_attached_to(conn_id) {
            // Resumed elsewhere: this connection is being closed (SESSION_REPLACED). The
            // stream stays open until then; a FIN on a critical stream would be an error of
            // its own (spec §3.2).
            conn.closed().await;
            drop(send);
            return;
        }
        let taken = match queue {
            Outgoing::Events => session
                .take_events()
                .map(|bytes| if bytes.is_empty() { Vec::new() } else { vec![bytes] }),
            Outgoing::Ephemeral => Ok(session.take_ephemeral()),
        };
        let Ok(mut frames) = taken else {
            conn.close(code(ErrorCode::RESUME_UNAVAILABLE), b"events stream fell too far behind");
            return;
        };
        if frames.is_empty() {
            tokio::select! {
                () = wake.notified() => continue,
                _ = conn.closed() => return,
            }
        }
        if send.write_all_chunks(&mut frames).await.is_err() {
            return;
        }
    }
}

/// One request stream, served by [`requests::serve`]; a malformed request also stops the
/// client's side of the stream, and an answer the client does not read in time is reset
/// (its buffered bytes are dropped).
async fn request(ctx: Arc<ConnCtx>, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    send.set_priority(1).ok();
    let max_frame_size = ctx.shared.protocol().limits.max_frame_size;
    let write_timeout = Duration::from_millis(ctx.shared.config.answer_write_timeout_ms);
    let (stop, timed_out) = {
        let mut io = RequestIo::new(&mut send, &mut recv, max_frame_size, write_timeout);
        let stop = requests::serve(&ctx, &mut io).await;
        (stop, io.timed_out())
    };
    if timed_out {
        let _ = send.reset(code(ErrorCode::REQUEST_CANCELLED));
    }
    if let Some(error) = stop.or_else(|| timed_out.then_some(ErrorCode::REQUEST_CANCELLED)) {
        let _ = recv.stop(code(error));
    }
}
