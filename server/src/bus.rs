//! News between nodes (issue 17). A node that commits an entry announces it on the bus; every
//! other node delivers it to its own sessions ([`crate::fanout`]). The bus may lose or delay
//! messages, and the design does not care: a gap is filled from the database, and the rooms
//! this node's sessions are in are checked against the database's heads every
//! `bus_head_check_ms`, so an entry whose announcement was lost arrives within that bound.
//! With one node there is nobody to tell.
//!
//! NATS core pub/sub (at most once) is enough for that: one subject per room,
//! `banter.room.<id>`, carrying the committed entry (postcard) and the announcing node.

use std::sync::{Arc, Weak, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use banter_protocol::ids::RoomId;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::config::{BusKind, Config};
use crate::requests::Appended;
use crate::store::keys;
use crate::store::records::{LogEntry, RoomRecord};
use crate::{Shared, StartError};

/// The subjects of rooms' entries.
const SUBJECTS: &str = "banter.room.>";

fn subject(room: RoomId) -> String {
    format!("banter.room.{}", room.0)
}

/// One committed entry, as announced.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    /// The announcing node (a random id per process), so that it skips its own.
    node: u64,
    room: u64,
    seq: u64,
    anonymous: bool,
    entry: LogEntry,
}

/// Where committed entries are announced.
#[derive(Debug, Default)]
pub(crate) enum Bus {
    /// One node: nobody else to tell.
    #[default]
    Local,
    /// NATS: announcements queue for the publishing task (the writer never waits on it).
    Nats {
        /// This process's id in announcements.
        node: u64,
        outbox: mpsc::UnboundedSender<(RoomId, Vec<u8>)>,
    },
}

/// A connected bus, before the server has its shared state: what [`serve`] runs on.
pub(crate) struct Connected {
    client: async_nats::Client,
    subscriber: async_nats::Subscriber,
    outbox: mpsc::UnboundedReceiver<(RoomId, Vec<u8>)>,
    node: u64,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Bus {
    /// The bus the configuration names; for NATS, connected and subscribed.
    pub(crate) async fn connect(config: &Config) -> Result<(Self, Option<Connected>), StartError> {
        match config.bus {
            BusKind::Local => Ok((Self::Local, None)),
            BusKind::Nats => {
                let client = async_nats::connect(&config.nats_url).await.map_err(|e| {
                    StartError::Config(format!("NATS at {:?}: {e}", config.nats_url))
                })?;
                let subscriber = client
                    .subscribe(SUBJECTS)
                    .await
                    .map_err(|e| StartError::Config(format!("NATS subscribe: {e}")))?;
                let (outbox_tx, outbox) = mpsc::unbounded_channel();
                let node = crate::rand_u64();
                let connected = Connected { client, subscriber, outbox, node };
                Ok((Self::Nats { node, outbox: outbox_tx }, Some(connected)))
            }
        }
    }

    /// Announces an entry this node committed (never blocks the writer).
    pub(crate) fn announce(&self, appended: &Appended) {
        let Self::Nats { node, outbox } = self else { return };
        let announcement = Announcement {
            node: *node,
            room: appended.room.0,
            seq: appended.seq,
            anonymous: appended.anonymous,
            entry: appended.entry.clone(),
        };
        match postcard::to_stdvec(&announcement) {
            Ok(bytes) => {
                let _ = outbox.send((appended.room, bytes));
            }
            Err(error) => tracing::warn!(%error, "could not encode an announcement"),
        }
    }
}

/// Runs the bus for `shared`: a task publishing this node's announcements, a task taking the
/// others', and a thread delivering those (it reads the database to fill gaps, which must not
/// block the async runtime) and checking room heads. All end with the server.
pub(crate) fn serve(shared: &Arc<Shared>, bus: Connected, mut shutdown: watch::Receiver<bool>) {
    let Connected { client, mut subscriber, mut outbox, node } = bus;
    tokio::spawn(async move {
        while let Some((room, bytes)) = outbox.recv().await {
            // At most once: a lost announcement is found by the receivers' head checks.
            if let Err(error) = client.publish(subject(room), bytes.into()).await {
                tracing::debug!(%error, "announcement not published");
            }
        }
    });
    let (arrivals, inbox) = std_mpsc::channel::<Vec<u8>>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                message = subscriber.next() => match message {
                    Some(message) => {
                        if arrivals.send(message.payload.to_vec()).is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    });
    let shared = Arc::downgrade(shared);
    let every = Duration::from_millis(shared_config(&shared).map_or(1000, |c| c.bus_head_check_ms));
    let spawned = std::thread::Builder::new()
        .name("banter-bus".into())
        .spawn(move || deliver_arrivals(&shared, &inbox, node, every));
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the bus thread");
    }
}

fn shared_config(shared: &Weak<Shared>) -> Option<Config> {
    shared.upgrade().map(|shared| shared.config.clone())
}

/// Delivers other nodes' announcements, and checks heads every `every`; ends when the
/// server is gone.
fn deliver_arrivals(
    shared: &Weak<Shared>,
    inbox: &std_mpsc::Receiver<Vec<u8>>,
    node: u64,
    every: Duration,
) {
    let mut next_check = Instant::now() + every;
    loop {
        let wait = next_check.saturating_duration_since(Instant::now());
        let arrival = inbox.recv_timeout(wait);
        let Some(shared) = shared.upgrade() else { return };
        match arrival {
            Ok(bytes) => match postcard::from_bytes::<Announcement>(&bytes) {
                Ok(a) if a.node != node => {
                    let appended = Appended {
                        room: RoomId(a.room),
                        seq: a.seq,
                        entry: a.entry,
                        anonymous: a.anonymous,
                    };
                    shared.fanout.arrived(&shared, &appended);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "an announcement that does not decode"),
            },
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next_check {
            check_heads(&shared);
            next_check = Instant::now() + every;
        }
    }
}

/// Fills whatever the database holds beyond what was delivered, for every room a session
/// here is in.
fn check_heads(shared: &Shared) {
    for room in shared.hub.rooms_with_local_sessions() {
        match shared.store.get::<RoomRecord>(&keys::room(room)) {
            Ok(Some(record)) if record.last_seq > shared.hub.head(room) => {
                shared.fanout.fill(shared, room, record.last_seq);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "head check failed; next time");
                return;
            }
        }
    }
}
