//! `seed`: fills a server with U users, R rooms and M messages, as fast as acks come back, for
//! the benchmarks that need a big data dir (start-up time, history and search at scale).
//! `clients` posters each own every `clients`-th room and post into their rooms in turn; the
//! other users only register (they exist, as in a real community, without all being members).
//!
//! Texts are eight words of a made-up vocabulary drawn log-uniformly (roughly Zipf's law: a
//! few words are in many messages, most in few), so that a search has a realistic number of
//! hits. With `--queries N`, a searcher who joined every room then waits until the last post
//! is findable (the index's lag behind the log) and runs N searches of each kind: a frequent
//! word, a phrase that one message holds, and a word narrowed by `from:` and `in:`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use banter_client::Connection;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::message::{RoomJoin, Search};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

use crate::{
    Servers, ask, connect_full, create_room, endpoint, options, percentiles, post, run_id,
};

/// Words in the seeded texts' vocabulary.
const VOCABULARY: u64 = 10_000;
/// Words per seeded text.
const WORDS: usize = 8;

/// The `n`th word of the vocabulary: its digits in base 16 as syllables.
fn word(n: u64) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "du", "sho", "gan", "bel", "tor",
        "fi", "zu",
    ];
    let mut out = String::from(SYLLABLES[(n % 16) as usize]);
    let mut rest = n / 16;
    while rest > 0 {
        out.push_str(SYLLABLES[(rest % 16) as usize]);
        rest /= 16;
    }
    out
}

/// The words of poster `p`'s message `i` (the same on every run).
fn words(p: usize, i: u64) -> Vec<String> {
    // splitmix64 of (p, i): a fixed stream per message.
    let mut state = (p as u64) << 40 ^ i;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..WORDS)
        .map(|_| {
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            // Log-uniform over 1..=VOCABULARY: word n is drawn about 1/n as often as word 1.
            word((VOCABULARY as f64).powf(u) as u64 - 1)
        })
        .collect()
}

pub(crate) async fn run(
    servers: &Servers,
    users: usize,
    rooms: usize,
    messages: u64,
    clients: usize,
    queries: u64,
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
    let searcher = if queries > 0 {
        let searcher = connect_full(servers.node(0), &format!("{run}s")).await?;
        for room in owned.iter().flatten() {
            ask(&searcher.conn, RoomJoin { room: *room }).await?;
        }
        Some(searcher)
    } else {
        None
    };
    let room_one = owned.get(1 % clients).and_then(|rooms| rooms.first()).copied();
    let posting = Instant::now();
    let per_poster = messages / clients as u64;
    let remainder = messages % clients as u64;
    let mut tasks = Vec::new();
    for (p, (user, rooms)) in posters.into_iter().zip(owned).enumerate() {
        let count = per_poster + u64::from((p as u64) < remainder);
        tasks.push(tokio::spawn(async move {
            for i in 0..count {
                let room = rooms[i as usize % rooms.len()];
                let text = words(p, i).join(" ");
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
    let mut result = serde_json::json!({
        "workload": "seed",
        "users": users.max(clients),
        "rooms": rooms,
        "messages": posted,
        "register_s": registered,
        "post_s": posting,
        "posts_per_s": posted as f64 / posting,
    });
    if let (Some(searcher), Some(room_one)) = (searcher, room_one) {
        let conn = &searcher.conn;
        // The index's lag: from the last ack until a fresh post is findable.
        let marker = format!("{run}marker");
        post(conn, room_one, u128::MAX, &marker).await?;
        let lag = Instant::now();
        while search(conn, &marker).await?.0 == 0 {
            anyhow::ensure!(lag.elapsed() < Duration::from_secs(600), "the index never caught up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        result["index_lag_s"] = lag.elapsed().as_secs_f64().into();
        let phrase = words(0, 0);
        let kinds = [
            ("word", word(20)),
            ("phrase", format!("\"{} {}\"", phrase[3], phrase[4])),
            ("filtered", format!("{} from:{run}p1 in:{run}-r1", word(2))),
        ];
        for (kind, query) in kinds {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut hits = 0;
            for _ in 0..queries {
                let started = Instant::now();
                hits = search(conn, &query).await?.0;
                latency.record(started.elapsed().as_micros() as u64)?;
            }
            result[kind] = serde_json::json!({ "query": query, "hits": hits, "latency": percentiles(&latency) });
        }
    }
    Ok(result)
}

/// One page of up to 50 hits for `query`: how many, and whether more follow.
async fn search(conn: &Connection, query: &str) -> anyhow::Result<(usize, bool)> {
    let (hits, next) = conn.search(Search::new(Text::new(query)?, 50)).await?;
    Ok((hits.len(), next.is_some()))
}
