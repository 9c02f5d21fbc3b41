//! The `rooms` workload: R rooms of K members each (R·K connections), every room busy at once
//! with mixed traffic: a member announces typing, posts (the text carries its send time),
//! and every fifth post gets a reaction from another member. Measures deliveries of posts to
//! every member, delivery and ack latency, and the server's CPU, so that cost per room and per
//! member shows next to the one-room `fanout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use banter_client::Event;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::message::{Message, Post, React, RoomJoin, TypingSet, TypingState};
use hdrhistogram::Histogram;

use crate::{CpuMeter, ask, connect_many, create_room, micros, percentiles, run_id};

pub(crate) async fn run(
    servers: &crate::Servers,
    rooms: usize,
    members: usize,
    seconds: u64,
    rate: u64,
) -> anyhow::Result<serde_json::Value> {
    let run = run_id();
    let mut users = connect_many(servers, &format!("{run}m"), rooms * members).await?;
    let mut groups = Vec::with_capacity(rooms);
    for r in 0..rooms {
        let group: Vec<_> = users.drain(..members).collect();
        let room = create_room(&group[0].0, &format!("{run}-{r}"), false).await?;
        for (conn, _) in &group[1..] {
            ask(conn, RoomJoin { room }).await?;
        }
        groups.push((room, group));
    }
    // Let the joins' events drain before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut posters = Vec::new();
    let cpu = CpuMeter::start();
    for (room, group) in groups {
        let conns: Vec<_> = group.iter().map(|(conn, _)| conn.clone()).collect();
        for (conn, mut events) in group {
            let delivered = delivered.clone();
            readers.push(tokio::spawn(async move {
                let _keep = conn;
                let mut latency =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
                let until = tokio::time::Instant::now() + Duration::from_secs(seconds + 3);
                while let Ok(Some(event)) = tokio::time::timeout_at(until, events.recv()).await {
                    if let Event::Room(Message::Posted(posted)) = event {
                        let sent: u64 =
                            posted.text.split(':').next().and_then(|t| t.parse().ok()).unwrap_or(0);
                        let _ = latency.record(micros(start).saturating_sub(sent).max(1));
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latency
            }));
        }
        posters.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
            let mut acks = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut posts = 0u64;
            for i in 0..seconds * rate {
                tick.tick().await;
                let author = &conns[i as usize % conns.len()];
                let typing = TypingSet { room, state: TypingState::Active };
                ask(author, typing).await?;
                let sent = Instant::now();
                let text = format!("{:020}:{}", micros(start), "r".repeat(60));
                let request = Post {
                    room,
                    client_msg_id: u128::from(i) + 1,
                    text: Text::new(text)?,
                    reply_to: None,
                    anonymous: false,
                };
                let Message::EventAck(ack) = ask(author, request).await? else {
                    anyhow::bail!("a post was not acknowledged");
                };
                let _ = acks.record(sent.elapsed().as_micros().max(1) as u64);
                posts += 1;
                if i % 5 == 4 {
                    let reactor = &conns[(i as usize + 1) % conns.len()];
                    let emoji = Text::new("+1")?;
                    ask(reactor, React { room, target: ack.seq, emoji, on: true }).await?;
                }
            }
            anyhow::Ok((posts, acks))
        }));
    }
    let mut posts = 0;
    let mut acks = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for poster in posters {
        let (n, h) = poster.await??;
        posts += n;
        acks.add(h).ok();
    }
    let sending = start.elapsed();
    let cpu = cpu.percent();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for reader in readers {
        latency.add(reader.await?).ok();
    }
    let delivered = delivered.load(Ordering::Relaxed);
    let expected = posts * members as u64;
    Ok(serde_json::json!({
        "workload": "rooms",
        "rooms": rooms,
        "members": members,
        "seconds": seconds,
        "posts_per_room_per_s": rate,
        "posts": posts,
        "deliveries": delivered,
        "lost": expected.saturating_sub(delivered),
        "deliveries_per_s": delivered as f64 / sending.as_secs_f64(),
        "delivery_latency": percentiles(&latency),
        "ack_latency": percentiles(&acks),
        "cpu_percent_while_sending": cpu,
    }))
}
