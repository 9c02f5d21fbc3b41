//! How voice reaches one connection (spec §8.4): as QUIC datagrams, or as records on the
//! connection's voice tunnel stream when datagrams do not get through. The client decides;
//! the server follows: it uses the tunnel while the client has sent tunnel records in the last
//! [`TUNNEL_HOLD`], or always when the connection has no datagrams.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use banter_protocol::datagram::encode_tunnel_record;
use banter_protocol::stream::StreamType;
use bytes::Bytes;
use tokio::sync::mpsc;

/// A tunnel record from the client keeps the server's voice to it on the tunnel this long
/// (a client on the tunnel pings on it every second).
pub(crate) const TUNNEL_HOLD: Duration = Duration::from_secs(3);

/// Packets queued for the tunnel writer: a few hundred milliseconds of a busy room; beyond
/// that voice is dropped, never delayed.
const TUNNEL_QUEUE: usize = 64;

/// Which way a voice packet came or goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// A QUIC datagram.
    Datagram,
    /// A record on the voice tunnel stream.
    Tunnel,
}

/// Why a packet for this connection was not sent (a metrics label).
pub(crate) type Dropped = &'static str;

/// One connection's voice paths.
#[derive(Debug)]
pub(crate) struct VoiceLink {
    /// None for a link to nowhere (requests served without a QUIC connection, as in the
    /// request fuzz target): everything sent to it is dropped.
    conn: Option<quinn::Connection>,
    /// The client takes datagrams (its transport parameters, fixed by the handshake): read
    /// once here rather than from quinn's connection state for every relayed packet.
    datagrams: bool,
    /// The connection ended: it may not join voice again (see `Voice::join`).
    ended: AtomicBool,
    state: Mutex<LinkState>,
}

#[derive(Debug, Default)]
struct LinkState {
    /// When the client last sent a tunnel record.
    tunnel_heard: Option<Instant>,
    /// The tunnel writer's queue, once the tunnel is open.
    tunnel: Option<mpsc::Sender<Bytes>>,
}

impl VoiceLink {
    /// The link of an established connection.
    pub(crate) fn new(conn: quinn::Connection) -> Self {
        let datagrams = conn.max_datagram_size().is_some();
        Self { conn: Some(conn), datagrams, ended: AtomicBool::new(false), state: Mutex::default() }
    }

    /// A link that drops everything (a participant with no connection to send to).
    pub(crate) fn detached() -> Self {
        Self {
            conn: None,
            datagrams: false,
            ended: AtomicBool::new(false),
            state: Mutex::default(),
        }
    }

    /// Marks the connection ended, before it leaves voice for the last time.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Whether [`end`](Self::end) was called.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client sent a tunnel record: it is on the tunnel.
    pub(crate) fn heard_on_tunnel(&self, now: Instant) {
        self.lock().tunnel_heard = Some(now);
    }

    /// The path voice to this connection takes now.
    pub(crate) fn path(&self, now: Instant) -> Path {
        let recent = self.lock().tunnel_heard.is_some_and(|t| now.duration_since(t) < TUNNEL_HOLD);
        if recent || !self.datagrams { Path::Tunnel } else { Path::Datagram }
    }

    /// Sends one voice packet on the path in use.
    pub(crate) fn send(&self, packet: Bytes, now: Instant) -> Result<(), Dropped> {
        self.send_on(self.path(now), packet)
    }

    /// Sends one voice packet on `path` (an echo goes back the way its ping came).
    pub(crate) fn send_on(&self, path: Path, packet: Bytes) -> Result<(), Dropped> {
        let conn = self.conn.as_ref().ok_or("listener_unavailable")?;
        match path {
            Path::Datagram => conn.send_datagram(packet).map_err(|_| "listener_unavailable"),
            Path::Tunnel => {
                let mut state = self.lock();
                let queue = state.tunnel.get_or_insert_with(|| {
                    let (queue, packets) = mpsc::channel(TUNNEL_QUEUE);
                    tokio::spawn(write_tunnel(conn.clone(), packets));
                    queue
                });
                queue.try_send(packet).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => "tunnel_full",
                    mpsc::error::TrySendError::Closed(_) => "listener_unavailable",
                })
            }
        }
    }
}

/// Opens the tunnel stream and writes queued packets as records, several per write, until
/// the link goes away or the stream fails.
async fn write_tunnel(conn: quinn::Connection, mut packets: mpsc::Receiver<Bytes>) {
    let Ok(mut send) = conn.open_uni().await else { return };
    // With the control stream (3), above events (2): voice is the most time-critical data.
    let _ = send.set_priority(3);
    let mut bytes = Vec::new();
    StreamType::VOICE_TUNNEL.encode(&mut bytes);
    while let Some(packet) = packets.recv().await {
        encode_tunnel_record(&packet, &mut bytes);
        while let Ok(more) = packets.try_recv() {
            encode_tunnel_record(&more, &mut bytes);
        }
        if send.write_all(&bytes).await.is_err() {
            return;
        }
        bytes.clear();
    }
}
