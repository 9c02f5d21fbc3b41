//! The interactive TUI in a real terminal (tmux): a message from another user appears in the
//! pane, a message typed into the pane reaches the server, and a moderator's slash commands
//! (settings, kick, audit, invite, files) do what they say, and a voice call shows who talks.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, start};

/// The tmux session; killed when dropped.
struct Tmux(String);

impl Tmux {
    /// Starts `banter` (with `args`) for `env`'s server in a 100×30 tmux pane, and waits until
    /// it is connected.
    async fn start(env: &Env, args: &str) -> Self {
        static SESSIONS: AtomicUsize = AtomicUsize::new(0);
        let number = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let session = Self(format!("banter-test-{}-{number}", std::process::id()));
        let command = format!(
            "env XDG_DATA_HOME={} HOME={} {} --server {} {args}",
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
        session
    }

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

    let session = Tmux::start(&env, "--profile grace").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_runs_the_room_from_the_tui() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    env.run_ok(&["create-room", "general"]);
    env.run_ok(&["--profile", "grace", "join", "general"]);
    let session = Tmux::start(&env, "").await;
    session.wait_for("grace joined").await;

    // Room settings: the status bar shows them once the server has them.
    session.keys(&["/slow 30", "Enter"]);
    session.wait_for("slow 30 s").await;
    session.keys(&["/lock", "Enter"]);
    session.wait_for("│ locked").await;
    // Anonymous posts are not allowed here: the refusal is shown in words.
    session.keys(&["/anon who am I", "Enter"]);
    let screen = session.wait_for("this room does not allow anonymous").await;
    assert!(!screen.contains("unsent"), "a refused post is not left pending:\n{screen}");

    // Kick grace, read it back in the audit log, add her again.
    session.keys(&["/kick grace being rude", "Enter"]);
    session.wait_for("kicked grace").await;
    assert!(!env.run_ok(&["--profile", "grace", "rooms"]).contains("general"));
    session.keys(&["/audit", "Enter"]);
    session.wait_for("ada kick grace (being rude)").await;
    session.keys(&["/invite grace", "Enter"]);
    session.wait_for("added grace").await;
    assert!(env.run_ok(&["--profile", "grace", "rooms"]).contains("general"));

    // Share a file and fetch it back.
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("notes.txt");
    std::fs::write(&original, "meeting notes\n".repeat(1000)).unwrap();
    session.keys(&[&format!("/upload {}", original.display()), "Enter"]);
    let screen = session.wait_for("shared notes.txt").await;
    let seq: String = screen
        .split("/download ")
        .nth(1)
        .expect("the file's notice names its seq")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let copy = work.path().join("copy.txt");
    session.keys(&[&format!("/download {seq} {}", copy.display()), "Enter"]);
    session.wait_for("saved").await;
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&original).unwrap());

    session.keys(&["/quit", "Enter"]);
    server.shutdown().await;
}

/// The names in the voice list of the members column (right of the pane's last border).
fn voice_panel(screen: &str) -> Vec<String> {
    let column: Vec<String> = screen
        .lines()
        .map(|l| l.rsplit('│').next().unwrap_or_default().trim().to_owned())
        .collect();
    let Some(start) = column.iter().position(|l| l == "voice") else { return Vec::new() };
    column[start + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim_start_matches('♪').trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_call_in_the_tui_shows_who_talks_and_follows_the_keys() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.ada_and_bob_in_voice_room("talk");
    let session = Tmux::start(&env, "").await;
    session.wait_for("bob joined").await;

    session.keys(&["/voice", "Enter"]);
    let screen = session.wait_for("voice talk: listening").await;
    assert!(screen.contains("F4 talk on/off"), "tmux reports no key releases:\n{screen}");
    // Bob speaks a WAV file from the CLI: the pane marks him talking, then he leaves voice.
    let speech = env.wav("speech.wav", &banter_codec::speech_like(100));
    let mut bob = env
        .banter(&["--profile", "bob", "voice", "talk", "--input", speech.to_str().unwrap()])
        .args(["--seconds", "3"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    session.wait_for("♪ bob").await;
    assert!(tokio::task::spawn_blocking(move || bob.wait()).await.unwrap().unwrap().success());
    for _ in 0..50 {
        if voice_panel(&session.capture()) == ["ada"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let screen = session.capture();
    assert_eq!(voice_panel(&screen), ["ada"], "bob left voice:\n{screen}");

    // Talk, mute (which stops talking), deafen, then leave.
    session.keys(&["F4"]);
    session.wait_for("voice talk: talking").await;
    session.keys(&["F5"]);
    session.wait_for("voice talk: muted").await;
    session.keys(&["F6"]);
    session.wait_for("voice talk: deafened").await;
    session.wait_for("ada deaf").await;
    session.keys(&["/voice", "Enter"]);
    let screen = session.wait_for("left voice").await;
    assert!(!screen.contains("voice talk:"), "{screen}");
    session.keys(&["/quit", "Enter"]);
    server.shutdown().await;
}
