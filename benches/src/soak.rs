//! The `soak` workload (issue 20): a long mixed load that must leave the server as it found
//! it. R rooms of K members, each member the SDK's reconnecting `Client` (as the TUI uses it):
//! a member announces typing and posts, every fifth post gets a reaction from another member,
//! and every client drops its connection and resumes every 10–30 s; beside them a voice room
//! of speakers. Every `sample` seconds it records the server's RSS and open file descriptors
//! (BANTER_SERVER_PID) and the window's p99 delivery and ack latency. At the end every acked
//! post must have reached every member of its room exactly once; the verdict says how much
//! RSS and fds grew after the warm-up (the first fifth) and how p99 moved. `--plot FILE`
//! draws the curves as a PNG.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{Message, RoomCreate, RoomInfo, TypingState, Visibility};
use banter_client::{Client, ClientConfig, ConnectionState, Update};
use hdrhistogram::Histogram;
use serde_json::json;

use crate::{micros, options, run_id, server_rss_kib};

/// Fewer samples than this say nothing about growth (the warm-up is a fifth of them).
const MIN_SAMPLES: u64 = 10;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) rooms: usize,
    pub(crate) members: usize,
    pub(crate) seconds: u64,
    /// Posts per second in each room.
    pub(crate) rate: u64,
    /// Seconds between samples.
    pub(crate) sample: u64,
    /// Speakers in the voice room (0: no voice).
    pub(crate) speakers: usize,
    pub(crate) plot: Option<PathBuf>,
}

/// One sample of the server and of the latencies in the window before it.
#[derive(Debug, Clone)]
struct Sample {
    t_s: f64,
    rss_kib: u64,
    fds: u64,
    delivery_p99_us: u64,
    ack_p99_us: u64,
    delivered: u64,
    acked: u64,
}

impl Sample {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "t_s": self.t_s,
            "rss_kib": self.rss_kib,
            "fds": self.fds,
            "delivery_p99_us": self.delivery_p99_us,
            "ack_p99_us": self.ack_p99_us,
            "delivered": self.delivered,
            "acked": self.acked,
        })
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// The server's open file descriptors (BANTER_SERVER_PID), if known.
fn server_fds() -> Option<u64> {
    let pid = std::env::var("BANTER_SERVER_PID").ok()?;
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Figures the members' tasks share.
#[derive(Debug)]
struct Tally {
    start: Instant,
    delivery: Mutex<Histogram<u64>>,
    ack: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    acked: AtomicU64,
    duplicates: AtomicU64,
    send_failed: AtomicU64,
    /// Every acked post: room → seqs.
    posts: Mutex<HashMap<RoomId, Vec<u64>>>,
}

/// One member: its client, what it received, and when its posts went out.
#[derive(Debug)]
struct Member {
    client: Client,
    received: Arc<Mutex<HashMap<RoomId, HashSet<u64>>>>,
    sent_at: Arc<Mutex<HashMap<u128, Instant>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn start_member(
    servers: &crate::Servers,
    name: &str,
    tally: Arc<Tally>,
) -> anyhow::Result<Member> {
    let addrs = servers.0.to_vec();
    let (credentials, _) =
        Client::authenticate(&addrs, options(), name, "benchmark password", true)
            .await
            .with_context(|| format!("registering {name}"))?;
    let config = ClientConfig { addrs, options: options(), outbox: None, known_rooms: [].into() };
    let (client, mut updates) = Client::start(config, credentials)?;
    let received: Arc<Mutex<HashMap<RoomId, HashSet<u64>>>> = Arc::default();
    let sent_at: Arc<Mutex<HashMap<u128, Instant>>> = Arc::default();
    let (seen, sends) = (received.clone(), sent_at.clone());
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        while let Some(update) = updates.recv().await {
            match update {
                Update::Connection(ConnectionState::Connected) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Update::Room(Message::Posted(posted)) => {
                    let fresh =
                        lock(&seen).entry(posted.meta.room).or_default().insert(posted.meta.seq);
                    if !fresh {
                        tally.duplicates.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let sent = posted.text.split(':').next().and_then(|t| t.parse().ok());
                    if let Some(sent) = sent {
                        let latency = micros(tally.start).saturating_sub(sent).max(1);
                        lock(&tally.delivery).saturating_record(latency);
                    }
                    tally.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Update::Sent { client_msg_id, ack } => {
                    if let Some(at) = lock(&sends).remove(&client_msg_id) {
                        lock(&tally.ack).saturating_record(micros_since(at));
                    }
                    lock(&tally.posts).entry(ack.room).or_default().push(ack.seq);
                    tally.acked.fetch_add(1, Ordering::Relaxed);
                }
                Update::SendFailed { client_msg_id, .. } => {
                    lock(&sends).remove(&client_msg_id);
                    tally.send_failed.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), connected)
        .await
        .with_context(|| format!("{name} did not connect"))??;
    Ok(Member { client, received, sent_at })
}

fn micros_since(at: Instant) -> u64 {
    (at.elapsed().as_micros() as u64).max(1)
}

/// Posts in `room` at `rate` per second until `stop`: typing first, then the post; every
/// fifth post a reaction by another member to the room's latest acked post.
async fn post_in(
    room: RoomId,
    members: Arc<Vec<Member>>,
    tally: Arc<Tally>,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let short = Duration::from_secs(2);
    let mut posts = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let author = &members[posts as usize % members.len()];
        // Soft state: a typing notice lost to a reconnect is not an error.
        let _ = tokio::time::timeout(short, author.client.typing(room, TypingState::Active)).await;
        let text = format!("{:020}:soak {posts}", micros(tally.start));
        {
            // Under the lock, so that the ack (another task) cannot look before the time is in.
            let mut sent_at = lock(&author.sent_at);
            let id = author.client.send(room, &text, None)?;
            sent_at.insert(id, Instant::now());
        }
        posts += 1;
        if posts.is_multiple_of(5) {
            let latest = lock(&tally.posts).get(&room).and_then(|seqs| seqs.last().copied());
            if let Some(target) = latest {
                let reactor = &members[(posts as usize + 1) % members.len()];
                let react = reactor.client.react(room, target, "👍", true);
                let _ = tokio::time::timeout(short, react).await;
            }
        }
    }
    Ok(posts)
}

pub(crate) async fn run(
    servers: &crate::Servers,
    settings: Settings,
) -> anyhow::Result<serde_json::Value> {
    if settings.members < 2 || settings.rooms == 0 || settings.sample == 0 {
        bail!("soak needs --rooms ≥ 1, --members ≥ 2 and --sample ≥ 1");
    }
    if settings.seconds < settings.sample * MIN_SAMPLES {
        bail!("soak needs at least {MIN_SAMPLES} samples: --seconds ≥ {MIN_SAMPLES} × --sample");
    }
    server_rss_kib().context("soak samples the server: set BANTER_SERVER_PID")?;
    let run = run_id();
    let tally = Arc::new(Tally {
        start: Instant::now(),
        delivery: Mutex::new(histogram()),
        ack: Mutex::new(histogram()),
        delivered: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        send_failed: AtomicU64::new(0),
        posts: Mutex::default(),
    });
    let mut rooms = Vec::new();
    for r in 0..settings.rooms {
        let mut members = Vec::new();
        for m in 0..settings.members {
            members.push(start_member(servers, &format!("{run}r{r}m{m}"), tally.clone()).await?);
        }
        let create = RoomCreate {
            name: Text::new(format!("{run}-{r}"))?,
            topic: Text::default(),
            category: Text::default(),
            visibility: Visibility::Public,
            voice: false,
        };
        let room = match members[0].client.request(create).await?.into_iter().next() {
            Some(Message::RoomInfo(RoomInfo { room })) => room.room,
            other => bail!("ROOM_CREATE answered {other:?}"),
        };
        for member in &members[1..] {
            member.client.join(room).await?;
        }
        rooms.push((room, Arc::new(members)));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let voice = (settings.speakers > 0).then(|| {
        let (servers, speakers, seconds) = (servers.clone(), settings.speakers, settings.seconds);
        tokio::spawn(async move { crate::voice::run(&servers, speakers, 0, seconds, 80).await })
    });
    let mut tasks = Vec::new();
    let mut reconnects = Vec::new();
    for (n, (room, members)) in rooms.iter().enumerate() {
        let (members, tally, stop) = (members.clone(), tally.clone(), stop.clone());
        tasks.push(tokio::spawn(post_in(
            *room,
            members.clone(),
            tally,
            settings.rate,
            stop.clone(),
        )));
        for (m, member) in members.iter().enumerate() {
            let (client, stop) = (member.client.clone(), stop.clone());
            // Every 10–30 s, spread over the clients by a fixed stride (no two in step).
            let mut at = (n * settings.members + m) as u64 * 7_919;
            reconnects.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    at += 12_347;
                    tokio::time::sleep(Duration::from_millis(10_000 + at % 20_000)).await;
                    client.reconnect();
                }
            }));
        }
    }

    let mut samples = Vec::new();
    let started = Instant::now();
    let mut counted = (0, 0);
    while started.elapsed() < Duration::from_secs(settings.seconds) {
        tokio::time::sleep(Duration::from_secs(settings.sample)).await;
        let delivery = std::mem::replace(&mut *lock(&tally.delivery), histogram());
        let ack = std::mem::replace(&mut *lock(&tally.ack), histogram());
        let (delivered, acked) =
            (tally.delivered.load(Ordering::Relaxed), tally.acked.load(Ordering::Relaxed));
        let sample = Sample {
            t_s: started.elapsed().as_secs_f64(),
            rss_kib: server_rss_kib().unwrap_or(0),
            fds: server_fds().unwrap_or(0),
            delivery_p99_us: delivery.value_at_quantile(0.99),
            ack_p99_us: ack.value_at_quantile(0.99),
            delivered: delivered - counted.0,
            acked: acked - counted.1,
        };
        counted = (delivered, acked);
        eprintln!(
            "soak {:>6.0} s: rss {} KiB, {} fds, p99 delivery {} µs, ack {} µs, {} delivered",
            sample.t_s,
            sample.rss_kib,
            sample.fds,
            sample.delivery_p99_us,
            sample.ack_p99_us,
            sample.delivered
        );
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    let mut posted = 0;
    for task in tasks {
        posted += task.await??;
    }
    for task in reconnects {
        task.abort();
    }
    let voice = match voice {
        Some(task) => task.await??,
        None => serde_json::Value::Null,
    };

    // Every post queued gets acked (the outbox keeps it through reconnects), and every acked
    // post reaches every member of its room: wait for both, then count what is missing.
    let drained = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let acked = tally.acked.load(Ordering::Relaxed) + tally.send_failed.load(Ordering::Relaxed);
        let missing = missing_deliveries(&rooms, &tally);
        if (acked >= posted && missing == 0) || Instant::now() > drained {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (_, members) in &rooms {
        for member in members.iter() {
            member.client.close().await;
        }
    }
    let verdict = verdict(&samples);
    if let Some(path) = &settings.plot {
        plot(&samples, path).with_context(|| format!("drawing {}", path.display()))?;
    }
    Ok(json!({
        "rooms": settings.rooms,
        "members": settings.members,
        "seconds": settings.seconds,
        "posts": posted,
        "acked": tally.acked.load(Ordering::Relaxed),
        "send_failed": tally.send_failed.load(Ordering::Relaxed),
        "delivered": tally.delivered.load(Ordering::Relaxed),
        "missing": missing,
        "duplicates": tally.duplicates.load(Ordering::Relaxed),
        "verdict": verdict,
        "voice": voice,
        "samples": samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
    }))
}

/// Deliveries still missing: for each member, acked posts of its room it has not received.
fn missing_deliveries(rooms: &[(RoomId, Arc<Vec<Member>>)], tally: &Tally) -> u64 {
    let posts = lock(&tally.posts).clone();
    let mut missing = 0;
    for (room, members) in rooms {
        let Some(seqs) = posts.get(room) else { continue };
        for member in members.iter() {
            let received = lock(&member.received);
            let got = received.get(room);
            missing += seqs.iter().filter(|s| !got.is_some_and(|g| g.contains(s))).count() as u64;
        }
    }
    missing
}

/// Growth after the warm-up (the first fifth of the samples): RSS and fds at their highest
/// against where the warm-up left them; p99 delivery latency, the median window of the first
/// third after warm-up against the last third.
fn verdict(samples: &[Sample]) -> serde_json::Value {
    let warm = (samples.len() / 5).max(1).min(samples.len());
    let (Some(baseline), rest) = (samples.get(warm - 1), &samples[warm..]) else {
        return json!(null);
    };
    let third = (rest.len() / 3).max(1);
    let median = |window: &[Sample]| {
        let mut p99: Vec<u64> = window.iter().map(|s| s.delivery_p99_us).collect();
        p99.sort_unstable();
        p99.get(p99.len() / 2).copied().unwrap_or(0)
    };
    json!({
        "warmup_s": baseline.t_s,
        "rss_baseline_kib": baseline.rss_kib,
        "rss_growth_kib": rest.iter().map(|s| s.rss_kib).max().unwrap_or(0).saturating_sub(baseline.rss_kib),
        "fd_baseline": baseline.fds,
        "fd_growth": rest.iter().map(|s| s.fds).max().unwrap_or(0).saturating_sub(baseline.fds),
        "delivery_p99_first_us": median(&rest[..third.min(rest.len())]),
        "delivery_p99_last_us": median(&rest[rest.len().saturating_sub(third)..]),
    })
}

/// Where the plot's text font is read from (Debian's fonts-dejavu-core).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// A named line: its legend, color and points.
type Curve = (&'static str, plotters::style::RGBColor, Vec<(f64, f64)>);

/// Three panels over time, one above the other: RSS, open fds, p99 latencies.
fn plot(samples: &[Sample], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    static FONT_BYTES: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    if FONT_BYTES.get().is_none() {
        let bytes: &'static [u8] = Box::leak(
            std::fs::read(FONT).with_context(|| format!("the plot's font {FONT}"))?.into(),
        );
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| anyhow::anyhow!("{FONT} is not a usable font"))?;
        let _ = FONT_BYTES.set(bytes);
    }
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1000, 900)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((3, 1));
        let end = samples.last().map_or(1.0, |s| s.t_s).max(1.0);
        let series: [(&str, Vec<Curve>); 3] = [
            (
                "banterd RSS (MiB)",
                vec![("RSS", BLUE, points(samples, |s| s.rss_kib as f64 / 1024.0))],
            ),
            (
                "banterd open file descriptors",
                vec![("fds", GREEN, points(samples, |s| s.fds as f64))],
            ),
            (
                "p99 latency per window (ms)",
                vec![
                    ("delivery", RED, points(samples, |s| s.delivery_p99_us as f64 / 1000.0)),
                    ("ack", MAGENTA, points(samples, |s| s.ack_p99_us as f64 / 1000.0)),
                ],
            ),
        ];
        for (panel, (title, lines)) in panels.iter().zip(series) {
            let top = lines
                .iter()
                .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y))
                .fold(0.0f64, f64::max)
                .max(1.0)
                * 1.15;
            let mut chart = ChartBuilder::on(panel)
                .caption(title, ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..end, 0.0..top)?;
            chart.configure_mesh().x_desc("seconds").draw()?;
            for (name, color, points) in lines {
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
            }
            chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("{e}"))
}

fn points(samples: &[Sample], y: impl Fn(&Sample) -> f64) -> Vec<(f64, f64)> {
    samples.iter().map(|s| (s.t_s, y(s))).collect()
}
