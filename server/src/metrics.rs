//! Prometheus metrics, and the opt-in HTTP listener that serves them at `/metrics` beside a
//! health check at `/healthz`.
//!
//! Each part of the server owns the handles it updates (the commit writer its group sizes,
//! the hub its fan-out counters, the voice relay its packet counters; they are cheap atomic
//! handles); [`Metrics`] registers them all in one registry and adds what belongs to no single
//! part (connections, request latency by type, errors by code). Gauges of live state are read
//! at scrape time.
//!
//! The listener is a small blocking HTTP server on its own thread (`tiny_http`): scrapes are
//! rare, and keeping them off the async executor means a slow scraper never delays chat.
//! It binds to loopback unless configured otherwise.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{Store, keys};

/// One label, e.g. `request="POST"`.
pub(crate) type Label = [(&'static str, &'static str); 1];

/// Latencies from 100 µs to about 3 s.
pub(crate) fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Metrics that belong to no single part of the server.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Open QUIC connections (also the count the connection cap checks).
    pub(crate) connections: Gauge,
    /// QUIC handshakes completed, ever (how many connections clients make).
    pub(crate) handshakes: Counter,
    /// Time from a request's arrival to its answer, by request type.
    pub(crate) requests: Family<Label, Histogram, fn() -> Histogram>,
    /// Requests answered with ERROR, by error code.
    pub(crate) request_errors: Family<Label, Counter>,
    /// Failed logins and rejected access tokens.
    pub(crate) auth_failures: Counter,
    sessions: Gauge,
    rooms: Gauge,
    clock_step: Gauge,
}

impl Metrics {
    /// Registers everything, the parts' own metrics included.
    /// The node's metrics, each series labelled `node="<node>"` (a cluster's nodes are told
    /// apart in one Prometheus).
    pub(crate) fn new(
        node: String,
        store: &Store,
        hub: &crate::hub::Hub,
        voice: &crate::voice::Voice,
    ) -> Self {
        let connections = Gauge::default();
        let handshakes = Counter::default();
        let requests = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let request_errors = Family::default();
        let auth_failures = Counter::default();
        let (sessions, rooms, clock_step) = (Gauge::default(), Gauge::default(), Gauge::default());
        let commit = store.commit_metrics();
        let labels = std::iter::once((Cow::Borrowed("node"), Cow::Owned(node)));
        let mut registry = Registry::with_prefix_and_labels("banter", labels);
        registry.register("connections", "Open QUIC connections", connections.clone());
        registry.register("handshakes", "QUIC handshakes completed", handshakes.clone());
        registry.register("sessions", "Live and resumable sessions", sessions.clone());
        registry.register("rooms", "Rooms created", rooms.clone());
        registry.register(
            "clock_step_ms",
            "How far the system clock was stepped since banterd started (banterd keeps its own)",
            clock_step.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer (for POST: the ack latency, durable)",
            requests.clone(),
        );
        registry.register(
            "request_errors",
            "Requests answered with ERROR, by code",
            request_errors.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed logins and rejected access tokens",
            auth_failures.clone(),
        );
        registry.register(
            "commit_group_size",
            "Writes per group commit (one sync each)",
            commit.group_size.clone(),
        );
        registry.register(
            "commit_sync_seconds",
            "Time to apply and sync one group commit",
            commit.sync_seconds.clone(),
        );
        registry.register(
            "events_published",
            "Room log entries fanned out",
            hub.metrics.published.clone(),
        );
        registry.register(
            "events_delivered",
            "Room log entries queued to sessions",
            hub.metrics.delivered.clone(),
        );
        registry.register(
            "voice_packets_relayed",
            "Voice datagrams handed to QUIC for a listener",
            voice.metrics.relayed.clone(),
        );
        registry.register(
            "voice_packets_dropped",
            "Voice datagrams not relayed, by reason",
            voice.metrics.dropped.clone(),
        );
        Self {
            registry,
            connections,
            handshakes,
            requests,
            request_errors,
            auth_failures,
            sessions,
            rooms,
            clock_step,
        }
    }

    /// The request's type name as a label value.
    pub(crate) fn request_label(frame_type: banter_protocol::FrameType) -> Label {
        [(
            "request",
            banter_protocol::message::registry_entry(frame_type).map_or("unknown", |i| i.name),
        )]
    }

    /// Counts an ERROR answer (or a rejected HELLO/RESUME); AUTH_FAILED also counts as an
    /// authentication failure.
    pub(crate) fn count_error(&self, code: banter_protocol::ErrorCode) {
        use banter_protocol::ErrorCode;
        self.request_errors.get_or_create(&[("code", code.name().unwrap_or("unknown"))]).inc();
        if code == ErrorCode::AUTH_FAILED {
            self.auth_failures.inc();
        }
    }

    /// The OpenMetrics text of every metric, with live gauges read now.
    fn render(&self, store: &Store, hub: &crate::hub::Hub) -> String {
        self.sessions.set(i64::try_from(hub.session_count()).unwrap_or(i64::MAX));
        let rooms = store.get::<u64>(&keys::meta("room")).ok().flatten().unwrap_or(0);
        self.rooms.set(i64::try_from(rooms).unwrap_or(i64::MAX));
        self.clock_step.set(crate::clock::system_step_ms());
        let mut text = String::new();
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The running HTTP listener; stopped by [`MetricsServer::stop`].
pub(crate) struct MetricsServer {
    http: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub(crate) addr: SocketAddr,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Binds `addr` and serves `/metrics` and `/healthz` from a thread.
    pub(crate) fn start(
        addr: SocketAddr,
        shared: Arc<crate::Shared>,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<Self> {
        let http = Arc::new(tiny_http::Server::http(addr).map_err(std::io::Error::other)?);
        let addr = http.server_addr().to_ip().ok_or_else(|| std::io::Error::other("not IP"))?;
        let serving = http.clone();
        let thread = std::thread::Builder::new()
            .name("banter-metrics".into())
            .spawn(move || serve(&serving, &shared, &runtime))?;
        Ok(Self { http, thread: Some(thread), addr })
    }

    /// Stops accepting and waits for the thread.
    pub(crate) fn stop(mut self) {
        self.http.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(http: &tiny_http::Server, shared: &crate::Shared, runtime: &tokio::runtime::Handle) {
    for request in http.incoming_requests() {
        let (status, content_type, body) = match (request.method(), request.url()) {
            (tiny_http::Method::Get, "/metrics") => (
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                shared.metrics.render(&shared.store, &shared.hub),
            ),
            (tiny_http::Method::Get, "/healthz") => match healthy(shared, runtime) {
                Ok(()) => (200, "text/plain; charset=utf-8", "ok\n".to_owned()),
                Err(why) => (503, "text/plain; charset=utf-8", format!("{why}\n")),
            },
            _ => (404, "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n".into()),
        };
        let header = tiny_http::Header::from_bytes("Content-Type", content_type)
            .expect("a valid static header");
        let response =
            tiny_http::Response::from_string(body).with_status_code(status).with_header(header);
        let _ = request.respond(response);
    }
}

/// Healthy: the storage writer completes a (writeless) group commit within two seconds, and
/// the bus between nodes (if any) is connected.
fn healthy(shared: &crate::Shared, runtime: &tokio::runtime::Handle) -> Result<(), String> {
    let store = shared.store.clone();
    let committed = runtime.block_on(async move {
        let empty = store.write(|_| Ok::<_, ()>(()), |()| ());
        tokio::time::timeout(Duration::from_secs(2), empty).await
    });
    match committed {
        Ok(Ok(())) => shared.bus.reachable(),
        Ok(Err(error)) => Err(format!("storage: {error}")),
        Err(_) => Err("storage writer not responding within 2 s".into()),
    }
}
