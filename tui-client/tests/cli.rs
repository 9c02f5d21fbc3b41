//! The `banter` subcommands as scripts use them: a real banterd (in process, loopback) and the
//! real `banter` binary, with its own XDG data dir.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{Env, metric, start, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_through_the_cli_and_tail_json_feeds_a_script() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);

    // First contact without --accept-new-cert and without a terminal: refused, exit 6, and
    // the fingerprint is shown so the user can compare it with banterd's.
    let refused = env.with_password(&["register", "ada"], "correct horse");
    assert_eq!(refused.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&server.fingerprint()));

    let ok = env.with_password(&["--accept-new-cert", "register", "ada"], "correct horse");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // The password can come from the environment too.
    let grace = env
        .banter(&["--profile", "grace", "register", "grace"])
        .env("BANTER_PASSWORD", "battery staple")
        .output()
        .unwrap();
    assert!(grace.status.success());

    env.run_ok(&["create-room", "general", "--category", "Lobby"]);
    env.run_ok(&["--profile", "grace", "join", "#general"]);

    // Grace tails as JSON from after the two joins (so nothing is missed however fast the
    // sends below are); the script reads one object per line.
    let mut tail = env
        .banter(&[
            "--profile",
            "grace",
            "--json",
            "tail",
            "general",
            "--after",
            "2",
            "--count",
            "3",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let ack = env.run_ok(&["--json", "send", "general", "hello grace"]);
    let ack: serde_json::Value = serde_json::from_str(ack.trim()).unwrap();
    assert!(ack["room"].is_u64() && ack["seq"].is_u64() && ack["id"].is_string());

    let mut send = env
        .banter(&["--json", "send", "general", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(send.stdin.as_mut().unwrap(), "line one\nline two").unwrap();
    drop(send.stdin.take());
    let sent = send.wait_with_output().unwrap();
    assert!(sent.status.success());
    let acks: Vec<serde_json::Value> = String::from_utf8(sent.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(acks.len(), 2, "one ack line per input line");
    assert!(acks[0]["seq"].as_u64() < acks[1]["seq"].as_u64());

    let lines: Vec<serde_json::Value> = BufReader::new(tail.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(tail.wait().unwrap().success());
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hello grace", "line one", "line two"]);
    for line in &lines {
        assert_eq!(line["sender"], "ada");
        assert!(line["seq"].is_u64() && line["ts"].is_u64());
    }

    let history = env.run_ok(&["--profile", "grace", "history", "general", "--limit", "3"]);
    assert!(history.contains("<ada> line two"), "{history}");
    // Search: plain lines with the match marked, JSON with the highlight ranges (the index
    // commits within about a second of an ack).
    let mut found = String::new();
    for _ in 0..50 {
        found = env.run_ok(&["--profile", "grace", "search", "LINE two"]);
        if !found.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        found.contains("#general #") && found.ends_with("<ada> **line** **two**\n"),
        "{found:?}"
    );
    let json = env.run_ok(&["--json", "search", "\"line one\"", "--room", "general"]);
    let hit: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (hit["snippet"].as_str(), hit["sender_name"].as_str()),
        (Some("line one"), Some("ada"))
    );
    assert_eq!(hit["highlights"], serde_json::json!([[0, 4], [5, 8]]));
    let rooms = env.run_ok(&["--json", "rooms"]);
    assert!(rooms.contains("\"name\":\"general\""));

    // Meaningful exit codes.
    assert_eq!(env.run(&["join", "no-such-room"]).status.code(), Some(5));
    assert_eq!(env.run(&["--profile", "nobody", "rooms"]).status.code(), Some(4));
    let wrong = env.with_password(&["--profile", "x", "login", "ada"], "wrong password");
    assert_eq!(wrong.status.code(), Some(4));
    // A server whose certificate no longer matches the pin is refused until the pin is fixed.
    let known = env.home.path().join("data/banter/known_servers.toml");
    let pinned = std::fs::read_to_string(&known).unwrap();
    let other = vec!["00"; 32].join(":");
    std::fs::write(&known, format!("[servers]\n\"{}\" = \"{other}\"\n", env.server)).unwrap();
    let changed = env.run(&["rooms"]);
    assert_eq!(changed.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(stderr.contains("changed since it was pinned"), "{stderr}");
    std::fs::write(&known, pinned).unwrap();

    env.run_ok(&["logout"]);
    assert_eq!(env.run(&["rooms"]).status.code(), Some(4));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_friends_and_blocks_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    let registered =
        env.with_password(&["--profile", "carol", "register", "carol"], "carol's secret");
    assert!(registered.status.success());
    fn grace<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--profile", "grace"], args].concat()
    }
    fn carol<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--profile", "carol"], args].concat()
    }

    // A one-use invite into a private room.
    env.run_ok(&["create-room", "secret", "--private"]);
    let code = env.run_ok(&["invite", "secret", "--uses", "1"]).trim().to_owned();
    assert!(code.len() >= 10 && code.chars().all(|c| c.is_ascii_alphanumeric()), "{code}");
    assert!(env.run_ok(&grace(&["accept-invite", &code])).contains("secret"));
    let used = env.run(&carol(&["accept-invite", &code]));
    assert_eq!(used.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&used.stderr).contains("invite used up"));
    // Or added directly.
    assert_eq!(env.run_ok(&["add", "secret", "carol"]).trim(), "added carol to secret");
    assert!(env.run_ok(&carol(&["rooms"])).contains("secret"));

    // Friends by request; a block shows only on the blocker's side.
    env.run_ok(&["friend", "grace"]);
    assert_eq!(env.run_ok(&grace(&["contacts"])).trim(), "ada\trequest received");
    env.run_ok(&grace(&["friend", "ada"]));
    assert_eq!(env.run_ok(&["contacts"]).trim(), "grace\tfriend");
    env.run_ok(&["block", "grace"]);
    assert_eq!(env.run_ok(&["contacts"]).trim(), "grace\tblocked");
    assert_eq!(env.run_ok(&grace(&["contacts"])).trim(), "");
    let json = env.run_ok(&["--json", "contacts"]);
    assert!(json.contains(r#""state":"blocked""#) && json.contains(r#""username":"grace""#));
    env.run_ok(&["unblock", "grace"]);
    assert_eq!(env.run_ok(&["contacts"]).trim(), "");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_keys_are_made_registered_listed_and_removed_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    let file = data.path().join("bot.key");
    let file = file.to_str().unwrap();
    let made = env.run_ok(&["keys", "add", file]);
    assert!(made.starts_with("made a new key in"), "{made}");
    let public = made.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(public.len(), 64, "{made}");
    assert!(env.run_ok(&["keys"]).starts_with(&format!("{public}\tadded ")));
    let twice = env.run(&["key-add", file]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already registered"));
    env.run_ok(&["keys", "remove", &public]);
    assert_eq!(env.run_ok(&["keys", "list"]).trim(), "");
    assert!(env.run_ok(&["key-add", file]).starts_with("registered "), "the file is reused");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_shared_and_fetched_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    env.run_ok(&["create-room", "files"]);
    env.run_ok(&["--profile", "grace", "join", "files"]);
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("report.txt");
    let content: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&original, &content).unwrap();

    let shared = env.run_ok(&["--json", "upload", "files", original.to_str().unwrap()]);
    let seq = shared.split("\"seq\":").nth(1).unwrap().trim_end_matches(['}', '\n']).to_owned();
    // Saved under its shared name in the working directory, byte for byte.
    let inbox = work.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let fetched = env
        .banter(&["--profile", "grace", "download", "files", &seq])
        .current_dir(&inbox)
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{}", String::from_utf8_lossy(&fetched.stderr));
    assert_eq!(std::fs::read(inbox.join("report.txt")).unwrap(), content);
    let copy = work.path().join("copy.txt");
    env.run_ok(&[
        "--profile",
        "grace",
        "download",
        "files",
        &seq,
        "--output",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&copy).unwrap(), content);
    let tail = env.run_ok(&["history", "files"]);
    assert!(tail.contains("report.txt"), "{tail}");
    let not_a_file = env.run(&["download", "files", "1"]);
    assert_eq!(not_a_file.status.code(), Some(1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_is_one_connection_that_ends_its_session_when_done() {
    let data = tempfile::tempdir().unwrap();
    let server = start_with(data.path(), |c| {
        c.metrics = true;
        c.metrics_listen = "127.0.0.1:0".parse().unwrap();
    })
    .await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    env.run_ok(&["create-room", "general"]);
    // The session count settles once the server has seen each close.
    let settled_sessions = || {
        let mut sessions = metric(&server, "sessions");
        for _ in 0..100 {
            if sessions == 0.0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            sessions = metric(&server, "sessions");
        }
        sessions
    };
    assert_eq!(settled_sessions(), 0.0, "every command so far ended its session");

    let handshakes = metric(&server, "handshakes_total");
    let ack = env.run_ok(&["--json", "send", "general", "one round trip"]);
    let ack: serde_json::Value = serde_json::from_str(ack.trim()).unwrap();
    assert_eq!(metric(&server, "handshakes_total"), handshakes + 1.0, "one connection");
    assert_eq!(settled_sessions(), 0.0, "nothing left resumable on the server");
    let (round_trip, total) = (ack["round_trip_ms"].as_f64(), ack["total_ms"].as_f64());
    assert!(round_trip.unwrap() > 0.0 && total.unwrap() >= round_trip.unwrap(), "{ack}");

    // Every command: one connection each, and no session left behind.
    let handshakes = metric(&server, "handshakes_total");
    env.run_ok(&["--profile", "grace", "join", "general"]);
    env.run_ok(&["--profile", "grace", "send", "general", "hi"]);
    env.run_ok(&["history", "general", "--all"]);
    assert_eq!(metric(&server, "handshakes_total"), handshakes + 3.0);
    assert_eq!(settled_sessions(), 0.0);

    // With SSLKEYLOGFILE set (and only then) the client writes its TLS secrets there, for
    // Wireshark.
    let keylog = env.home.path().join("keys.log");
    let logged = env.banter(&["rooms"]).env("SSLKEYLOGFILE", &keylog).output().unwrap();
    assert!(logged.status.success());
    let secrets = std::fs::read_to_string(&keylog).unwrap();
    assert!(secrets.contains("CLIENT_TRAFFIC_SECRET_0"), "{secrets}");

    // A remembered room id that is wrong (the room went, another took its name) is looked
    // up again rather than posted to blindly.
    let profile = env.home.path().join("data/banter/profiles/default.toml");
    let stored = std::fs::read_to_string(&profile).unwrap();
    assert!(stored.contains("general = "), "{stored}");
    let wrong =
        stored.lines().map(|l| if l.starts_with("general = ") { "general = 999" } else { l });
    std::fs::write(&profile, wrong.collect::<Vec<_>>().join("\n")).unwrap();
    let sent = env.run_ok(&["send", "general", "found again"]);
    assert!(sent.starts_with("sent to general as #"), "{sent}");
    assert!(std::fs::read_to_string(&profile).unwrap().contains("general = 1\n"));
    // Leaving forgets it.
    env.run_ok(&["leave", "general"]);
    assert!(!std::fs::read_to_string(&profile).unwrap().contains("general = "));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_people_and_rooms_are_managed_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path()).await;
    let env = Env::new(&server);
    env.register_ada_and("grace");
    fn grace<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--profile", "grace"], args].concat()
    }
    let seq = |out: String| -> String {
        let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        value["seq"].as_u64().unwrap().to_string()
    };
    env.run_ok(&["create-room", "ops", "--voice"]);
    env.run_ok(&grace(&["join", "ops"]));
    let hello = seq(env.run_ok(&grace(&["--json", "send", "ops", "helo"])));
    assert!(env.run_ok(&grace(&["edit", "ops", &hello, "hello"])).starts_with("edited #"));
    env.run_ok(&["react", "ops", &hello, ":tada:"]);
    assert_eq!(env.run(&["react", "ops", &hello, ":no_such_emoji:"]).status.code(), Some(2));
    let doomed = seq(env.run_ok(&grace(&["--json", "send", "ops", "oops"])));
    env.run_ok(&["delete", "ops", &doomed]);
    let history = env.run_ok(&["--json", "history", "ops", "--all"]);
    let entries: Vec<serde_json::Value> =
        history.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let message = |seq: &str| {
        let seq: u64 = seq.parse().unwrap();
        entries.iter().find(|e| e["seq"] == seq && e["type"] == "message").unwrap()
    };
    assert_eq!(message(&hello)["text"], "hello");
    assert_eq!(message(&hello)["edited"], true);
    assert_eq!(message(&doomed)["deleted"], true);
    assert!(history.contains("🎉"), "{history}");

    // A direct message opens the conversation for both.
    env.run_ok(&["dm", "grace", "psst"]);
    let rooms = env.run_ok(&grace(&["--json", "rooms"]));
    assert!(rooms.contains(r#""direct":true"#), "{rooms}");

    // The moderator's acts, and the audit log that records them.
    assert_eq!(env.run(&grace(&["kick", "ops", "ada"])).status.code(), Some(5), "not hers");
    env.run_ok(&["role", "ops", "grace", "moderator"]);
    env.run_ok(&["slow", "ops", "30"]);
    env.run_ok(&["lock", "ops"]);
    env.run_ok(&["unlock", "ops"]);
    // Voice moderation acts on who is in voice: the refusal says so.
    let mute = env.run(&["mute", "ops", "grace"]);
    assert_eq!(mute.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&mute.stderr).contains("not in this room's voice"));
    env.run_ok(&["kick", "ops", "grace", "--reason", "cool off"]);
    env.run_ok(&["ban", "ops", "grace", "--reason", "again"]);
    assert_eq!(env.run(&grace(&["join", "ops"])).status.code(), Some(5), "banned");
    // Not a member any more: found by name in the room's log.
    env.run_ok(&["unban", "ops", "grace"]);
    env.run_ok(&grace(&["join", "ops"]));
    let audit = env.run_ok(&["audit", "ops"]);
    for act in [
        "ada kick grace (cool off)",
        "ada ban grace (again)",
        "ada unban grace",
        "ada role_set grace (role moderator)",
        "ada room_configure (slow mode 30 s, locked",
    ] {
        assert!(audit.contains(act), "{act}: {audit}");
    }
    server.shutdown().await;
}
