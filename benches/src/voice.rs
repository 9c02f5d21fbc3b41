//! The `voice` workload: S speakers and L listeners in one voice room; every speaker sends a
//! datagram every 20 ms (an 80-byte payload, about Opus at 32 kbit/s, as murmurd's load in
//! `../shared/tools/peers/mumble_load.py`), and everyone else receives it through banterd.
//! The payload carries the send time, so each receipt gives the latency through the relay;
//! banterd never decodes Opus, so no encoding is spent in the generator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use banter_client::protocol::datagram::{MAX_HEADER_LEN, VoiceHeader};
use banter_client::protocol::message::{Message, RoomJoin, VoiceJoin};
use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::{CpuMeter, ask, connect_many, create_room, micros, percentiles, run_id};

/// Packets per second per speaker (20 ms frames).
const PACKETS_PER_SECOND: u64 = 50;

pub(crate) async fn run(
    servers: &crate::Servers,
    speakers: usize,
    listeners: usize,
    seconds: u64,
    payload: usize,
) -> anyhow::Result<serde_json::Value> {
    if payload < 8 {
        bail!("--payload must hold the 8-byte send time");
    }
    let run = run_id();
    let users = connect_many(servers, &format!("{run}v"), speakers + listeners).await?;
    let room = create_room(&users[0].0, &run, true).await?;
    for (conn, _) in &users[1..] {
        ask(conn, RoomJoin { room }).await?;
    }
    for (conn, _) in &users {
        match ask(conn, VoiceJoin { room }).await? {
            Message::VoiceJoined(_) => {}
            other => bail!("expected VOICE_JOINED, got {other:?}"),
        }
    }
    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let measuring = Duration::from_secs(seconds);
    let mut receivers = Vec::new();
    for (conn, _) in &users {
        let (quic, received) = (conn.quic().clone(), received.clone());
        receivers.push(tokio::spawn(async move {
            let mut latency =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            // Until the speakers stopped and the last packets had time to arrive.
            let until = tokio::time::Instant::now() + measuring + Duration::from_secs(2);
            while let Ok(Ok(datagram)) = tokio::time::timeout_at(until, quic.read_datagram()).await
            {
                let Ok((_, payload)) = VoiceHeader::parse(&datagram) else { continue };
                let Some(stamp) = payload.first_chunk::<8>() else { continue };
                let sent = u64::from_be_bytes(*stamp);
                let _ = latency.record(micros(start).saturating_sub(sent).max(1));
                received.fetch_add(1, Ordering::Relaxed);
            }
            latency
        }));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let cpu = CpuMeter::start();
    let mut senders = Vec::new();
    for (conn, _) in users.iter().take(speakers) {
        let (quic, sent) = (conn.quic().clone(), sent.clone());
        senders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / PACKETS_PER_SECOND));
            let mut packet = vec![0u8; MAX_HEADER_LEN + payload];
            for sequence in 0..seconds * PACKETS_PER_SECOND {
                tick.tick().await;
                let header = VoiceHeader::opus(0, sequence as u16, false);
                let n = header.write(&mut packet).unwrap_or(0);
                packet[n..n + 8].copy_from_slice(&micros(start).to_be_bytes());
                if quic.send_datagram(Bytes::copy_from_slice(&packet[..n + payload])).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for sender in senders {
        sender.await?;
    }
    let sending = start.elapsed();
    let cpu = cpu.percent();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for receiver in receivers {
        latency.add(receiver.await?).ok();
    }
    drop(users);
    let sent = sent.load(Ordering::Relaxed);
    let received = received.load(Ordering::Relaxed);
    // Each packet goes to every participant but its speaker.
    let expected = sent * (speakers + listeners - 1) as u64;
    Ok(serde_json::json!({
        "workload": "voice",
        "speakers": speakers,
        "listeners": listeners,
        "seconds": seconds,
        "payload_bytes": payload,
        "packets_sent": sent,
        "relays_expected": expected,
        "relays_received": received,
        "loss_percent": 100.0 * expected.saturating_sub(received) as f64 / expected.max(1) as f64,
        "relayed_per_s": received as f64 / sending.as_secs_f64(),
        "latency": percentiles(&latency),
        "cpu_percent_while_sending": cpu,
    }))
}
