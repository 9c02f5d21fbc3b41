//! The Wireshark dissector (`contrib/wireshark/banter.lua`) on a real session: banterd writes
//! its TLS secrets to a key log (SSLKEYLOGFILE), dumpcap records loopback, and tshark with
//! the dissector decodes the frames of every stream and the voice datagrams.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Env, banterd, free_address};

fn dissector() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/wireshark/banter.lua")
}

/// dumpcap recording `port` on loopback into `file`, from the moment it says it is.
struct Capture(Child);

impl Capture {
    fn start(port: &str, file: &Path) -> Self {
        let child = Command::new("dumpcap")
            .args(["-i", "lo", "-f", &format!("udp port {port}"), "-w"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dumpcap runs (scripts/test installs tshark, which brings it)");
        let mut capture = Self(child);
        let stderr = capture.0.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            if line.unwrap().starts_with("Capturing on") {
                std::thread::spawn(move || for _ in lines {});
                return capture;
            }
        }
        panic!("dumpcap did not start");
    }

    /// Ends the capture the way Ctrl+C does, so the file is complete, once the last packets
    /// have had a moment to get from the kernel to dumpcap.
    fn stop(mut self) {
        std::thread::sleep(Duration::from_millis(500));
        let pid = self.0.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        assert!(self.0.wait().unwrap().success());
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tshark over `capture` with the dissector: for each field, every value it took.
fn decode(
    capture: &Path,
    keylog: &Path,
    port: &str,
    fields: &[&str],
) -> BTreeMap<String, Vec<String>> {
    let mut command = Command::new("tshark");
    command
        .arg("-r")
        .arg(capture)
        .arg("-X")
        .arg(format!("lua_script:{}", dissector().display()))
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keylog.display()))
        .args(["-d", &format!("udp.port=={port},quic"), "-T", "fields"])
        .args(["-E", "occurrence=a", "-E", "aggregator=\u{1f}", "-E", "separator=\u{1e}"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().expect("tshark runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tshark: {stderr}");
    assert!(!stderr.contains("Lua"), "the dissector failed to load: {stderr}");
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        for (field, column) in fields.iter().zip(line.split('\u{1e}')) {
            let found = column.split('\u{1f}').filter(|v| !v.is_empty()).map(str::to_owned);
            values.entry((*field).to_owned()).or_default().extend(found);
        }
    }
    values
}

fn count(values: &[String], wanted: &str) -> usize {
    values.iter().filter(|v| *v == wanted).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_with_the_dissector_decodes_a_recorded_session() {
    let dir = tempfile::tempdir().unwrap();
    let keylog = dir.path().join("keys.log");
    let capture_file = dir.path().join("session.pcapng");
    let addr = free_address();
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let capture = Capture::start(&port, &capture_file);
    let data = dir.path().join("data");
    let server = banterd(&data, &addr, &[("SSLKEYLOGFILE", keylog.as_os_str())]);

    // The session: two users, a post, history, and a second of speech relayed between them.
    let env = Env::at(addr);
    env.ada_and_bob_in_voice_room("talk");
    let speech = env.wav("speech.wav", &banter_codec::speech_like(50));
    let heard = env.home.path().join("heard.wav");
    // Bob is connected (in voice) when ada posts, so the POSTED pushed to him is in the
    // capture: the one pushed back to ada races her `send` closing once it has its ack.
    let listener = env
        .banter(&["--profile", "bob", "voice", "talk", "--seconds", "5", "--output"])
        .arg(&heard)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    env.run_ok(&["send", "talk", "hello wireshark"]);
    env.run_ok(&["--profile", "bob", "history", "talk"]);
    env.run_ok(&["voice", "talk", "--seconds", "2", "--input", speech.to_str().unwrap()]);
    let listened = tokio::task::spawn_blocking(move || listener.wait_with_output());
    assert!(listened.await.unwrap().unwrap().status.success());
    capture.stop();
    drop(server);

    let values = decode(
        &capture_file,
        &keylog,
        &port,
        &[
            "banter.frame.name",
            "banter.stream",
            "banter.username",
            "banter.text",
            "banter.name",
            "banter.codec",
            "banter.malformed",
            "banter_voice.kind",
            "banter_voice.source",
            "banter_voice.malformed",
        ],
    );
    let names = &values["banter.frame.name"];
    for expected in [
        "SETTINGS",
        "REGISTER",
        "AUTH_OK",
        "HELLO",
        "WELCOME",
        "ROOM_CREATE",
        "ROOM_INFO",
        "ROOM_JOIN",
        "MEMBERSHIP",
        "POST",
        "EVENT_ACK",
        "POSTED",
        "HISTORY",
        "HISTORY_MESSAGE",
        "PAGE_END",
        "VOICE_JOIN",
        "VOICE_JOINED",
        "VOICE_STATE",
        "VOICE_LEAVE",
    ] {
        assert!(names.iter().any(|n| n == expected), "no {expected} in {names:?}");
    }
    let streams = &values["banter.stream"];
    for kind in ["CONTROL", "EVENTS", "EPHEMERAL", "REQUEST"] {
        assert!(streams.iter().any(|s| s == kind), "no {kind} stream in {streams:?}");
    }
    // Field values: who, what was said (as posted, as pushed, as read back), which room.
    assert!(
        count(&values["banter.username"], "ada") >= 1
            && count(&values["banter.username"], "bob") >= 1
    );
    assert!(count(&values["banter.text"], "hello wireshark") >= 3, "{:?}", values["banter.text"]);
    assert!(values["banter.name"].iter().any(|n| n == "talk"));
    assert!(values["banter.codec"].iter().any(|c| c == "opus"));
    // A second of speech at 20 ms a frame, sent and relayed: frames both ways, each with the
    // speaker's source id on the way out of the server.
    let kinds = &values["banter_voice.kind"];
    assert!(count(kinds, "0x01") >= 50, "{} OPUS_FRAMEs", count(kinds, "0x01"));
    assert!(values["banter_voice.source"].iter().any(|s| s != "0"), "no relayed frame");
    // Nothing the dissector could not read.
    assert!(values.get("banter.malformed").is_none_or(Vec::is_empty));
    assert!(values.get("banter_voice.malformed").is_none_or(Vec::is_empty));
}
