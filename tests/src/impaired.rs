//! A lossy, jittery network between clients and the server: a UDP relay on loopback that
//! drops a share of the packets each way and delays the rest by a random time, so packets
//! also arrive out of order. QUIC sees a real bad path (its own retransmissions included).
//! Many clients may share it toward the server; answers go to the one heard from last.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

/// How bad the path is.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Share of the client's packets dropped (0.0..=1.0).
    pub loss_to_server: f64,
    /// Share of the server's packets dropped (0.0..=1.0).
    pub loss_to_client: f64,
    /// Each packet that gets through waits a uniformly random time up to this.
    pub jitter: Duration,
}

impl Impairment {
    /// The same loss both ways.
    pub fn symmetric(loss: f64, jitter: Duration) -> Self {
        Self { loss_to_server: loss, loss_to_client: loss, jitter }
    }
}

/// The relay; stops when dropped.
#[derive(Debug)]
pub struct ImpairedPath {
    addr: SocketAddr,
    impairment: Arc<Mutex<Impairment>>,
    task: tokio::task::JoinHandle<()>,
}

impl ImpairedPath {
    /// Relays to `server`; clients connect to [`addr`](Self::addr) instead. One client.
    pub async fn start(server: SocketAddr, impairment: Impairment) -> Self {
        let outer = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let inner = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let addr = outer.local_addr().expect("local address");
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let random = Arc::new(Mutex::new(0x9e37_79b9_7f4a_7c15_u64));
        let impairment = Arc::new(Mutex::new(impairment));
        let now = impairment.clone();
        let task = tokio::spawn(async move {
            let mut up = [0u8; 65_536];
            let mut down = [0u8; 65_536];
            loop {
                // Which way, and to whom.
                let (packet, to, from_client) = tokio::select! {
                    Ok((n, from)) = outer.recv_from(&mut up) => {
                        *client.lock().unwrap() = Some(from);
                        (up[..n].to_vec(), Some(server), true)
                    }
                    Ok((n, _)) = inner.recv_from(&mut down) => {
                        (down[..n].to_vec(), *client.lock().unwrap(), false)
                    }
                };
                let Some(to) = to else { continue };
                let (drop, delay) = {
                    let impairment = *now.lock().unwrap();
                    let loss = if from_client {
                        impairment.loss_to_server
                    } else {
                        impairment.loss_to_client
                    };
                    let mut state = random.lock().unwrap();
                    let a = next(&mut state);
                    let b = next(&mut state);
                    (unit(a) < loss, impairment.jitter.mul_f64(unit(b)))
                };
                if drop {
                    continue;
                }
                let socket = if from_client { inner.clone() } else { outer.clone() };
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = socket.send_to(&packet, to).await;
                });
            }
        });
        Self { addr, impairment, task }
    }

    /// Changes how bad the path is from now on.
    pub fn set(&self, impairment: Impairment) {
        *self.impairment.lock().unwrap() = impairment;
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ImpairedPath {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// xorshift64*: reproducible runs, no dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn unit(value: u64) -> f64 {
    (value >> 11) as f64 / (1u64 << 53) as f64
}
