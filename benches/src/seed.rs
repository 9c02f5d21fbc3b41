//! `seed`: fills a server with U users, R rooms and M messages, as fast as acks come back, for
//! the benchmarks that need a big data dir (start-up time, history and search at scale).
//! `clients` posters each own every `clients`-th room and post into their rooms in turn; the
//! other users only register (they exist, as in a real community, without all being members).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use banter_client::Connection;
use tokio::sync::Semaphore;

use crate::{Servers, connect_full, create_room, endpoint, options, post, run_id};

pub(crate) async fn run(
    servers: &Servers,
    users: usize,
    rooms: usize,
    messages: u64,
    clients: usize,
) -> anyhow::Result<serde_json::Value> {
    let run = run_id();
    let started = Instant::now();
    let clients = clients.clamp(1, rooms.max(1));
    // The posters, connected for the whole run.
    let mut posters = Vec::with_capacity(clients);
    for i in 0..clients {
        posters.push(connect_full(servers.node(i), &format!("{run}p{i}")).await?);
    }
    // Everyone else registers and goes (32 at a time).
    let permits = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in clients..users {
        let (permits, addr, name) = (permits.clone(), servers.node(i), format!("{run}u{i}"));
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await?;
            let (conn, _events) = Connection::connect_on(endpoint(), addr, options()).await?;
            conn.register(&name, "benchmark password")
                .await
                .with_context(|| format!("registering {name}"))?;
            conn.close();
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let registered = started.elapsed().as_secs_f64();
    // Rooms, owned round-robin by the posters.
    let mut owned: Vec<Vec<banter_client::protocol::ids::RoomId>> = vec![Vec::new(); clients];
    for r in 0..rooms {
        let poster = r % clients;
        owned[poster]
            .push(create_room(&posters[poster].conn, &format!("{run}-r{r}"), false).await?);
    }
    let posting = Instant::now();
    let per_poster = messages / clients as u64;
    let remainder = messages % clients as u64;
    let mut tasks = Vec::new();
    for (p, (user, rooms)) in posters.into_iter().zip(owned).enumerate() {
        let count = per_poster + u64::from((p as u64) < remainder);
        tasks.push(tokio::spawn(async move {
            for i in 0..count {
                let room = rooms[i as usize % rooms.len()];
                let text = format!("seeded message {i} of poster {p}: the quick brown fox");
                post(&user.conn, room, (p as u128) << 64 | u128::from(i), &text).await?;
            }
            user.conn.close();
            anyhow::Ok(count)
        }));
    }
    let mut posted = 0;
    for task in tasks {
        posted += task.await??;
    }
    let posting = posting.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "workload": "seed",
        "users": users.max(clients),
        "rooms": rooms,
        "messages": posted,
        "register_s": registered,
        "post_s": posting,
        "posts_per_s": posted as f64 / posting,
    }))
}
