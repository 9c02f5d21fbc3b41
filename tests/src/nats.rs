//! A NATS server of a test's own (`nats-server` on a free loopback port), stopped by its
//! process id when the test is done. Without `nats-server` installed (scripts/test installs
//! it) the test fails and says so (it never skips).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server, stopped on drop.
#[derive(Debug)]
pub struct TestNats {
    child: Child,
    port: u16,
}

impl TestNats {
    /// Starts nats-server on a port it picks itself (no race with other tests for a free
    /// port); returns once it accepts connections.
    pub fn start() -> Self {
        let (child, port) = launch(None);
        Self { child, port }
    }

    /// Starts it again after [`stop`](Self::stop), on the same port.
    pub fn restart(&mut self) {
        self.child = launch(Some(self.port)).0;
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (what a NATS outage looks like to the nodes).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts nats-server on `port` (or one it picks); returns it, and its port, once it
/// accepts connections. The port is read from what the server itself says it listens on, so
/// a port another test's server holds can never be taken for this one's.
fn launch(port: Option<u16>) -> (Child, u16) {
    let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
    let mut child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "nats-server is not installed: the cluster tests need it (scripts/test installs it)",
        );
    let stderr = child.stderr.take().expect("piped");
    let (found, listening) = std::sync::mpsc::channel();
    // Reads the log for the port, then drains it (a full pipe would stall the server).
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.split("Listening for client connections on ").nth(1) {
                let port = at.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                if let (Some(found), Some(port)) = (found.take(), port) {
                    let _ = found.send(port);
                }
            }
        }
    });
    let port = listening
        .recv_timeout(Duration::from_secs(10))
        .expect("nats-server did not start listening within 10 s");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not accept connections within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}
