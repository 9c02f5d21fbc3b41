//! The interactive TUI in a real terminal (tmux): a message from another user appears in the
//! pane, and a message typed into the pane reaches the server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Env, start};

/// The tmux session; killed when dropped.
struct Tmux(String);

impl Tmux {
    fn capture(&self) -> String {
        let output =
            Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status =
            Command::new("tmux").args(["send-keys", "-t", &self.0]).args(keys).status().unwrap();
        assert!(status.success());
    }

    async fn wait_for(&self, what: &str) -> String {
        for _ in 0..100 {
            let screen = self.capture();
            if screen.contains(what) {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what:?} never appeared on screen:\n{}", self.capture());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Usually gone already (the test quits the TUI); ignore "can't find session".
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_shows_incoming_messages_and_sends_typed_ones() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    env.run_ok(&["create-room", "general", "--topic", "Say hi"]);
    env.run_ok(&["--profile", "grace", "join", "general"]);

    let session = Tmux(format!("banter-test-{}", std::process::id()));
    let command = format!(
        "env XDG_DATA_HOME={} HOME={} {} --server {} --profile grace",
        env.home.path().join("data").display(),
        env.home.path().display(),
        env!("CARGO_BIN_EXE_banter"),
        env.server,
    );
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session.0, "-x", "100", "-y", "30", &command])
        .status()
        .expect("tmux is installed (.ci/run installs it)");
    assert!(started.success());
    session.wait_for("[connected]").await;
    session.wait_for("grace joined").await;

    env.run_ok(&["send", "general", "hello from ada"]);
    let screen = session.wait_for("hello from ada").await;
    assert!(screen.contains("<ada>"), "{screen}");

    session.keys(&["hi from the pane", "Enter"]);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = env.run_ok(&["history", "general", "--limit", "5"]);
        if seen.contains("<grace> hi from the pane") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.contains("<grace> hi from the pane"), "{seen}");
    session.wait_for("hi from the pane").await;

    session.keys(&["/quit", "Enter"]);
    for _ in 0..50 {
        let alive = Command::new("tmux")
            .args(["has-session", "-t", &session.0])
            .output()
            .unwrap()
            .status
            .success();
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}
