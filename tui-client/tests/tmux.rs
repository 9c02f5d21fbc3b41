//! The interactive TUI in a real terminal (tmux): a message from another user appears in the
//! pane, a message typed into the pane reaches the server, a moderator's slash commands
//! (settings, kick, audit, invite, files) do what they say, a voice call shows who talks,
//! messages are replied to, edited, reacted to and deleted by keys, a search hit opens in its
//! room, and a server killed with kill -9 is noticed and its restart found with the outbox
//! delivered.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, banterd, free_address, start};

/// The tmux session, on a tmux server of its own (its own socket, `-L`): with one shared
/// server, a test whose session ended could take the server down just as another test's
/// `new-session` reached it ("server exited unexpectedly"). Killed when dropped.
struct Tmux(String);

impl Tmux {
    /// A tmux command for this session's server.
    fn tmux(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.0]);
        command
    }

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
        let started = session
            .tmux()
            .args(["new-session", "-d", "-s", &session.0, "-x", "100", "-y", "30", &command])
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(started.success());
        session.wait_for("[connected]").await;
        session
    }

    fn capture(&self) -> String {
        let output = self.tmux().args(["capture-pane", "-p", "-t", &self.0]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The pane with its colours, as SGR escape sequences.
    fn capture_styled(&self) -> String {
        let output =
            self.tmux().args(["capture-pane", "-p", "-e", "-t", &self.0]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = self.tmux().args(["send-keys", "-t", &self.0]).args(keys).status().unwrap();
        assert!(status.success());
    }

    async fn wait_for(&self, what: &str) -> String {
        self.wait_until(what, Duration::from_secs(10)).await
    }

    async fn wait_until(&self, what: &str, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            let screen = self.capture();
            if screen.contains(what) {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what:?} did not appear on screen within {limit:?}:\n{}", self.capture());
    }

    async fn wait_gone(&self, what: &str) -> String {
        for _ in 0..100 {
            let screen = self.capture();
            if !screen.contains(what) {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what:?} stayed on screen:\n{}", self.capture());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Usually gone already (the test quits the TUI, and the server goes with its last
        // session); ignore "no server running".
        let _ = self.tmux().arg("kill-server").output();
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
        let alive = session
            .tmux()
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

/// The room's history as JSON entries, once `done` holds for them (the TUI's requests are
/// asynchronous).
async fn history_until(
    env: &Env,
    room: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let mut entries = Vec::new();
    for _ in 0..100 {
        let out = env.run_ok(&["--json", "history", room, "--all"]);
        entries = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if done(&entries) {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("history of {room} never got there: {entries:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_replied_to_edited_reacted_to_and_deleted_by_keys() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    env.run_ok(&["create-room", "random"]);
    env.run_ok(&["create-room", "general"]);
    env.run_ok(&["--profile", "grace", "join", "general"]);
    let lunch = env.run_ok(&["--profile", "grace", "--json", "send", "general", "ada: lunch?"]);
    let lunch: serde_json::Value = serde_json::from_str(lunch.trim()).unwrap();
    let session = Tmux::start(&env, "").await;
    session.wait_for("<grace> ada: lunch?").await;
    // A mention of ada is drawn black on yellow in ada's buffer.
    let styled = session.capture_styled();
    let line = styled.lines().find(|l| l.contains("lunch?")).unwrap();
    let yellow_background = ["43mada: lunch?", "48;5;3mada: lunch?"];
    assert!(yellow_background.iter().any(|sgr| line.contains(sgr)), "{line:?}");

    // Up on the empty input selects the newest message; r replies to it.
    session.keys(&["Up"]);
    session.wait_for("▶   <grace> ada: lunch?").await;
    session.keys(&["r"]);
    session.wait_for("↪ replying to <grace> ada: lunch?").await;
    session.keys(&["sure", "Enter"]);
    let entries = history_until(&env, "general", |e| e.iter().any(|m| m["text"] == "sure")).await;
    let reply = entries.iter().find(|m| m["text"] == "sure").unwrap();
    assert_eq!(reply["reply_to"], lunch["seq"], "{reply}");

    // e edits our own message, with its text in the input.
    session.wait_for("<ada> sure").await;
    session.keys(&["Up", "e"]);
    session.wait_for("✎ editing <ada> sure").await;
    session.keys(&[" thing", "Enter"]);
    history_until(&env, "general", |e| {
        e.iter().any(|m| m["text"] == "sure thing" && m["edited"] == true)
    })
    .await;
    // + reacts by shortcode; Enter on the reply jumps to the original.
    session.wait_for("sure thing (edited)").await;
    session.keys(&["Up", "+", "tada:", "Enter"]);
    history_until(&env, "general", |e| {
        e.iter().any(|m| m["text"] == "sure thing" && m["reactions"][0]["emoji"] == "🎉")
    })
    .await;
    session.keys(&["Up", "Enter"]);
    session.wait_for("▶   <grace> ada: lunch?").await;
    // d asks first; y deletes.
    session.keys(&["Down", "d"]);
    session.wait_for("delete this message?").await;
    session.keys(&["y"]);
    history_until(&env, "general", |e| {
        e.iter().any(|m| m["seq"] == reply["seq"] && m["deleted"] == true)
    })
    .await;
    session.wait_for("(message deleted)").await;

    // /join of a room already joined switches to it, and what is typed next goes there.
    session.keys(&["/join random", "Enter"]);
    session.wait_for("│ random").await;
    session.keys(&["in random now", "Enter"]);
    history_until(&env, "random", |e| e.iter().any(|m| m["text"] == "in random now")).await;

    // /help opens the overlay, which scrolls; Esc closes it.
    session.keys(&["/help", "Enter"]);
    session.wait_for("/me ACTION").await;
    session.keys(&["PageDown", "PageDown"]);
    session.wait_for("/kick USER [WHY]").await;
    session.keys(&["Escape"]);
    session.wait_gone("/kick USER [WHY]").await;
    session.keys(&["/quit", "Enter"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_hit_opens_selected_in_its_room() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    env.run_ok(&["create-room", "general"]);
    env.run_ok(&["create-room", "random"]);
    env.run_ok(&["--profile", "grace", "join", "random"]);
    env.run_ok(&["--profile", "grace", "send", "random", "the zanzibar plan is on"]);
    env.run_ok(&["--profile", "grace", "send", "random", "after it"]);
    // The index commits within about a second of the post.
    for _ in 0..100 {
        if env.run_ok(&["search", "zanzibar"]).contains("**zanzibar**") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = Tmux::start(&env, "").await;
    session.wait_for("│ general").await;

    session.keys(&["/search zanzibar", "Enter"]);
    let screen = session.wait_for("search: zanzibar (1 hit)").await;
    assert!(screen.contains("▶ #random") && screen.contains("<grace>"), "{screen}");
    assert!(screen.contains("the zanzibar plan is on"), "{screen}");
    // Enter: random, with the message selected.
    session.keys(&["Enter"]);
    session.wait_for("▶   <grace> the zanzibar plan is on").await;
    let screen = session.wait_for("│ random").await;
    assert!(screen.contains("after it") && !screen.contains("search:"), "{screen}");
    session.keys(&["/quit", "Enter"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_with_kill_9_is_noticed_and_its_restart_delivers_the_outbox() {
    let data = tempfile::tempdir().unwrap();
    let addr = free_address();
    let server = banterd(data.path(), &addr, &[]);
    let env = Env::at(addr.clone());
    env.register_ada_and("grace");
    env.run_ok(&["create-room", "general"]);
    let session = Tmux::start(&env, "").await;

    // No close comes from a killed server: the keep-alives go unanswered, and the status
    // bar says so within 5 s (keep-alive 1 s + idle timeout 3.5 s).
    server.kill_9();
    let screen = session.wait_until("[reconnecting (attempt", Duration::from_secs(5)).await;
    assert!(!screen.contains("[connected]"), "{screen}");
    session.keys(&["typed while it was down", "Enter"]);
    session.wait_for("1 unsent").await;

    // Back up (same data dir, same port): the line goes out within about two seconds.
    let restarted = std::time::Instant::now();
    let _server = banterd(data.path(), &addr, &[]);
    session.wait_until("[connected]", Duration::from_secs(4)).await;
    history_until(&env, "general", |e| e.iter().any(|m| m["text"] == "typed while it was down"))
        .await;
    let delivered = restarted.elapsed();
    eprintln!("outbox delivered {delivered:?} after the restart");
    assert!(delivered < Duration::from_secs(4), "{delivered:?}");
    session.wait_gone("unsent").await;
    session.keys(&["/quit", "Enter"]);
}
