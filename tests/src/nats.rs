//! A NATS server of a test's own (`nats-server` on a free loopback port), stopped by its
//! process id when the test is done. Without `nats-server` installed (scripts/test installs
//! it) the test fails and says so (it never skips).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server, stopped on drop.
#[derive(Debug)]
pub struct TestNats {
    child: Child,
    port: u16,
}

impl TestNats {
    /// Starts nats-server; returns once it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .unwrap()
            .port();
        Self { child: launch(port), port }
    }

    /// Starts it again after [`stop`](Self::stop), on the same port.
    pub fn restart(&mut self) {
        self.child = launch(self.port);
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

/// Starts nats-server on `port`; returns once it accepts connections.
fn launch(port: u16) -> Child {
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "nats-server is not installed: the cluster tests need it (scripts/test installs it)",
        );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}
