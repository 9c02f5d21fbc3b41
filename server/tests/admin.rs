//! The operator's commands against a running banterd child (issue 9): accounts managed from
//! the console take effect on live connections, and backup while serving → restore → check →
//! serve keeps every acknowledged message, the accounts and the certificate.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::message::{History, Kick, ListScope, Message, Post, RoomJoin};
use banter_client::{Event, RequestError};
use common::{
    PASSWORD, banterd, create_room, free_port, history, login, start, start_adjusted, start_with,
    try_login,
};

/// Runs `banterd ARGS --data-dir DIR` with `stdin` as its standard input.
fn admin(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = banterd(args, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// [`admin`] that must succeed; its standard output.
fn admin_ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let output = admin(dir, args, stdin);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "banterd {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn code(error: RequestError) -> ErrorCode {
    error.code().unwrap_or_else(|| panic!("expected a server error, got {error:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_account_management_reaches_live_connections() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let _server = start(dir.path(), addr);
    let (ada, _ada_events, _) = login(addr, "ada", true).await;
    let room = create_room(&ada, "general").await;
    let (bob, mut bob_events, bob_id) = login(addr, "bob", true).await;
    bob.request_one(RoomJoin { room }).await.unwrap();

    // Accounts made at the console log in over QUIC.
    let created = admin_ok(dir.path(), &["user", "add", "carol"], "carol's password\n");
    assert!(created.contains("created user 3 (carol, member)"), "{created}");
    let (carol, _carol_events, _) =
        try_login(addr, "carol", "carol's password", false).await.unwrap();
    let listed = admin_ok(dir.path(), &["user", "list"], "");
    for row in ["1\tada\towner\tactive", "2\tbob\tmember\tactive", "3\tcarol\tmember\tactive"] {
        assert!(listed.contains(row), "{row:?} missing from {listed}");
    }
    let taken = admin(dir.path(), &["user", "add", "BOB"], "another password\n");
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("username taken"));
    let short = admin(dir.path(), &["user", "add", "dan"], "short\n");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 bytes"));

    // A member cannot kick; promoted to server admin from the console, carol can, in a room
    // she is not even a member of.
    let kick = || Kick { room, user: bob_id, reason: Text::new("spam").unwrap() };
    assert_eq!(code(carol.request_one(kick()).await.unwrap_err()), ErrorCode::FORBIDDEN);
    admin_ok(dir.path(), &["user", "promote", "carol", "--role", "admin"], "");
    carol.request_one(kick()).await.unwrap();
    bob.request_one(RoomJoin { room }).await.unwrap();

    // Disabling bob closes his live connection and refuses his logins; enabling restores them.
    admin_ok(dir.path(), &["user", "disable", "bob"], "");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match bob_events.recv().await {
                Some(Event::Closed { code, .. }) => return code,
                None => return None,
                _ => {}
            }
        }
    })
    .await
    .expect("bob's connection closes");
    assert_eq!(closed, Some(ErrorCode::SESSION_REVOKED));
    let refused = try_login(addr, "bob", PASSWORD, false).await.map(|_| ()).unwrap_err();
    assert_eq!(code(refused), ErrorCode::AUTH_FAILED);
    admin_ok(dir.path(), &["user", "enable", "bob"], "");
    try_login(addr, "bob", PASSWORD, false).await.unwrap();

    // A password reset ends the old password.
    admin_ok(dir.path(), &["user", "passwd", "carol"], "a new password\n");
    let old = try_login(addr, "carol", "carol's password", false).await.map(|_| ()).unwrap_err();
    assert_eq!(code(old), ErrorCode::AUTH_FAILED);
    try_login(addr, "carol", "a new password", false).await.unwrap();

    // Rooms made at the console are there for clients.
    admin_ok(dir.path(), &["room", "create", "announcements", "--topic", "news"], "");
    let rooms = admin_ok(dir.path(), &["room", "list"], "");
    assert!(rooms.contains("1\tgeneral\tpublic\t2"), "{rooms}");
    assert!(rooms.contains("2\tannouncements\tpublic\t0"), "{rooms}");

    // Every console act, and carol's kick, is in the audit log, newest first.
    let audit = admin_ok(dir.path(), &["audit"], "");
    let actions: Vec<(&str, &str, &str)> = audit
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            (cells[2], cells[3], cells[5])
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("(console)", "ROOM_CREATE", "-"),
            ("(console)", "PASSWORD_RESET", "carol"),
            ("(console)", "USER_ENABLE", "bob"),
            ("(console)", "USER_DISABLE", "bob"),
            ("carol", "KICK", "bob"),
            ("(console)", "ROLE_SET", "carol"),
            ("(console)", "USER_CREATE", "carol"),
        ]
    );

    // An archived room is read-only for everyone, the server owner included, and unlisted.
    assert!(admin_ok(dir.path(), &["room", "archive", "general"], "").contains("archived"));
    assert!(admin_ok(dir.path(), &["room", "list"], "").contains("general\tpublic,archived"));
    let post = |text: &str| Post {
        room,
        client_msg_id: u128::from(text.len() as u32) << 64,
        text: Text::new(text).unwrap(),
        reply_to: None,
        anonymous: false,
    };
    assert_eq!(code(ada.request_one(post("anyone?")).await.unwrap_err()), ErrorCode::ROOM_LOCKED);
    let (erin, _erin_events, _) = login(addr, "erin", true).await;
    let listed = erin.rooms(ListScope::Public).await.unwrap();
    assert!(listed.iter().all(|r| r.room != room), "archived rooms are not listed");
    // Members still read it.
    let page = ada.request(History { room, before: None, limit: 10 }).await.unwrap();
    assert!(page.iter().any(|m| matches!(m, Message::Membership(_))), "{page:?}");
    admin_ok(dir.path(), &["room", "unarchive", "general"], "");
    ada.request_one(post("back")).await.unwrap();
    assert!(erin.rooms(ListScope::Public).await.unwrap().iter().any(|r| r.room == room));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_then_restore_check_and_serve_keeps_every_acked_message() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let server = start(dir.path(), addr);
    let (ada, _events, _) = login(addr, "ada", true).await;
    let room = create_room(&ada, "general").await;
    // A shared file goes along with the records.
    let attachment = dir.path().join("attachment.bin");
    let attachment_bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(&attachment, &attachment_bytes).unwrap();
    let file_seq = ada.upload(room, "attachment.bin", &attachment).await.unwrap().seq;

    // A writer posts without pause while the backup is taken.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let acked_count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = acked_count.clone();
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0u128.. {
            let post = Post {
                room,
                client_msg_id: i + 1,
                text: Text::new(format!("m{i}")).unwrap(),
                reply_to: None,
                anonymous: false,
            };
            match ada.request_one(post).await.unwrap() {
                Message::EventAck(ack) => {
                    acked.push(ack.seq);
                    counter.store(acked.len(), std::sync::atomic::Ordering::SeqCst);
                }
                other => panic!("{other:?}"),
            }
            if *stopped.borrow_and_update() {
                return acked;
            }
        }
        unreachable!()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backup = dir.path().join("backup");
    // Everything acked before the backup starts must be in it.
    let acked_before = acked_count.load(std::sync::atomic::Ordering::SeqCst);
    let (path, backup_dir) = (dir.path().to_owned(), backup.clone());
    let stdout = tokio::task::spawn_blocking(move || {
        admin_ok(&path, &["backup", backup_dir.to_str().unwrap()], "")
    })
    .await
    .unwrap();
    assert!(stdout.contains("backup of"), "{stdout}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(true).unwrap();
    let acked = writer.await.unwrap();
    assert!(acked.len() > 50, "only {} posts: the backup was not taken under load", acked.len());

    // A backup refuses to overwrite another.
    let again = admin(dir.path(), &["backup", backup.to_str().unwrap()], "");
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // Restore into a new data dir; restore runs the integrity check.
    let restored = dir.path().join("restored");
    let output = admin_ok(&restored, &["restore", backup.to_str().unwrap()], "");
    assert!(output.contains("ok: every room log is gap-free"), "{output}");
    assert!(admin(&restored, &["restore", backup.to_str().unwrap()], "").status.code() != Some(0));

    // Served from the restored dir (same certificate), history is gap-free and holds every
    // post acknowledged before the backup began.
    let fingerprint = server.fingerprint.clone();
    drop(server);
    let restored_addr = free_port();
    let second = start(&restored, restored_addr);
    assert_eq!(second.fingerprint, fingerprint, "the restored server keeps its certificate");
    let (reader, _events, _) = login(restored_addr, "ada", false).await;
    let fetched = dir.path().join("fetched.bin");
    reader.download(room, file_seq, &fetched).await.unwrap();
    assert_eq!(std::fs::read(&fetched).unwrap(), attachment_bytes, "the shared file came back");
    let posts = history(&reader, room).await;
    let seqs: Vec<u64> = posts.keys().copied().collect();
    let first = file_seq + 1;
    assert_eq!(seqs, (first..seqs.len() as u64 + first).collect::<Vec<_>>(), "gap-free");
    let in_backup = posts.len();
    assert!(in_backup >= acked_before, "{acked_before} acked before the backup, {in_backup} in it");
    for (i, seq) in acked.iter().enumerate().take(in_backup) {
        assert_eq!(posts.get(seq), Some(&format!("m{i}")), "acked post {i} at seq {seq}");
    }
    assert!(in_backup <= acked.len());
    drop(second);

    // With no server running, the commands open the data dir themselves.
    let check = admin_ok(&restored, &["check"], "");
    assert!(check.contains("ok:"), "{check}");
    assert!(admin_ok(&restored, &["user", "list"], "").contains("1\tada\towner\tactive"));
}

#[test]
fn restore_refuses_a_damaged_backup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An offline server's data dir: created by one short run.
    let addr = free_port();
    drop(start(&data, addr));
    let backup = dir.path().join("backup");
    admin_ok(&data, &["backup", backup.to_str().unwrap()], "");
    let records = backup.join("records.bin");
    let mut bytes = std::fs::read(&records).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&records, bytes).unwrap();
    let output = admin(&dir.path().join("restored"), &["restore", backup.to_str().unwrap()], "");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("damaged"));
}

/// `AA:BB:...` as banterd prints fingerprints.
fn colon_hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_the_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("banterd.toml");
    std::fs::write(&config, "").unwrap();
    let addr = free_port();
    let server = start_with(&data, addr, &["--config", config.to_str().unwrap()]);
    let (before, _events, _) = login(addr, "ada", true).await;
    assert_eq!(colon_hex(before.fingerprint().unwrap()), server.fingerprint);
    let room = create_room(&before, "general").await;

    // The operator installs a new certificate and tightens the edit limit, then sends SIGHUP.
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(data.join("cert.pem"), renewed.cert.pem()).unwrap();
    std::fs::write(data.join("cert-key.pem"), renewed.signing_key.serialize_pem()).unwrap();
    std::fs::write(&config, "[rate.edit]\nburst = 2\nper_minute = 1\n").unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());

    // New connections get the new certificate; the live one carries on.
    let renewed_fingerprint = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (conn, _events) = common::connect(addr).await;
            let fingerprint = colon_hex(conn.fingerprint().unwrap());
            if fingerprint != server.fingerprint {
                return fingerprint;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the new certificate is served");
    let digest = ring::digest::digest(&ring::digest::SHA256, renewed.cert.der());
    assert_eq!(renewed_fingerprint, colon_hex(digest.as_ref().try_into().unwrap()));
    let post = |text: &str| Post {
        room,
        client_msg_id: u128::from(text.len() as u32),
        text: Text::new(text).unwrap(),
        reply_to: None,
        anonymous: false,
    };
    let seq = match before.request_one(post("still here")).await.unwrap() {
        Message::EventAck(ack) => ack.seq,
        other => panic!("{other:?}"),
    };

    // The new edit limit holds at once: a burst of two, then RATE_LIMITED.
    let edit = |n: u32| banter_client::protocol::message::Edit {
        room,
        target: seq,
        text: Text::new(format!("edit {n}")).unwrap(),
    };
    before.request_one(edit(1)).await.unwrap();
    before.request_one(edit(2)).await.unwrap();
    let limited = before.request_one(edit(3)).await.unwrap_err();
    assert_eq!(code(limited), ErrorCode::RATE_LIMITED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_keeps_the_tokens_it_signed_valid() {
    use banter_client::protocol::bounded::Blob;
    use banter_client::protocol::message::Refresh;

    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start(dir.path(), addr);
    let (conn, _events) = common::connect(addr).await;
    let before = conn.register("ada", PASSWORD).await.unwrap();
    drop(conn);
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let said = admin_ok(dir.path(), &["rotate-key"], "");
    assert!(said.contains("server.key.previous"), "{said}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("server.key.previous")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the old key stays private");
    let _server = start(dir.path(), addr);

    // The access token signed by the old key still opens a session.
    let (conn, mut events) = common::connect(addr).await;
    conn.hello(&before.access_token);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap() {
            Some(Event::Welcome(_)) => break,
            Some(Event::Rejected(e)) => panic!("an old access token was refused: {e:?}"),
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    // The refresh token derived under the old key still refreshes, into tokens of the new key.
    let (conn, _events) = common::connect(addr).await;
    let refresh = Refresh { refresh_token: Blob::new(before.refresh_token.to_vec()).unwrap() };
    let Message::AuthOk(after) = conn.request_one(refresh).await.unwrap() else { panic!() };
    assert_ne!(after.access_token[1..9], before.access_token[1..9], "signed by the new key");
    // A second rotation drops the first key: its access token no longer verifies.
    drop(_server);
    admin_ok(dir.path(), &["rotate-key"], "");
    let _server = start(dir.path(), addr);
    let (conn, mut events) = common::connect(addr).await;
    conn.hello(&before.access_token);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap() {
            Some(Event::Rejected(_)) | None => break,
            Some(Event::Welcome(_)) => panic!("a key two rotations old still verifies"),
            Some(_) => {}
        }
    }
}

/// Issue 15: banterd writes its TLS secrets to $SSLKEYLOGFILE when it is set (so Wireshark
/// can read a capture), and nowhere when it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_secrets_go_to_sslkeylogfile_only_when_it_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let keylog = dir.path().join("keys.log");
    let addr = free_port();
    let server = start_adjusted(&dir.path().join("data"), addr, &[], |command| {
        command.env("SSLKEYLOGFILE", &keylog);
    });
    let (conn, _events, _) = login(addr, "ada", true).await;
    conn.close_and_flush().await;
    let logged = std::fs::read_to_string(&keylog).unwrap();
    assert!(logged.contains("SERVER_HANDSHAKE_TRAFFIC_SECRET"), "{logged}");
    assert!(logged.contains("SERVER_TRAFFIC_SECRET_0"), "{logged}");
    drop(server);

    let quiet = tempfile::tempdir().unwrap();
    let addr = free_port();
    let _server = start_adjusted(&quiet.path().join("data"), addr, &[], |command| {
        command.env_remove("SSLKEYLOGFILE").current_dir(quiet.path());
    });
    login(addr, "ada", true).await;
    let files: Vec<_> =
        std::fs::read_dir(quiet.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["data"], "nothing but the data dir");
}
