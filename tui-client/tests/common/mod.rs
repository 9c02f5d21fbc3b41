//! Shared by the CLI and tmux tests: a banterd in process and the real `banter` binary with
//! its own XDG data dir.
#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use banter_server::Server;
use banter_server::config::Config;
pub(crate) use banter_tests::child::Banterd;

pub(crate) struct Env {
    pub(crate) server: String,
    pub(crate) home: tempfile::TempDir,
}

impl Env {
    /// A fresh client home (XDG data dir) talking to `server`.
    pub(crate) fn new(server: &Server) -> Self {
        Self::at(server.local_addr().to_string())
    }

    /// A fresh client home for the server at `address` (a banterd process, say).
    pub(crate) fn at(address: String) -> Self {
        Self { server: address, home: tempfile::tempdir().unwrap() }
    }

    /// Registers ada in the default profile (trusting the new certificate) and `other` in a
    /// profile of the same name: the two users most tests start from.
    pub(crate) fn register_ada_and(&self, other: &str) {
        let ada = self.with_password(&["--accept-new-cert", "register", "ada"], "correct horse");
        assert!(ada.status.success(), "{}", String::from_utf8_lossy(&ada.stderr));
        let second = self.with_password(&["--profile", other, "register", other], "battery staple");
        assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    }

    pub(crate) fn banter(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_banter"));
        command
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("HOME", self.home.path())
            .env_remove("BANTER_PASSWORD")
            .env_remove("BANTER_PROFILE")
            .args(["--server", &self.server])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Ada and bob (as `register_ada_and`) in a voice room `room` that ada created.
    pub(crate) fn ada_and_bob_in_voice_room(&self, room: &str) {
        self.register_ada_and("bob");
        self.run_ok(&["create-room", room, "--voice"]);
        self.run_ok(&["--profile", "bob", "join", room]);
    }

    /// Writes `frames` as a 48 kHz mono 16-bit WAV file in the home dir; returns its path.
    pub(crate) fn wav(&self, name: &str, frames: &[banter_codec::Frame]) -> std::path::PathBuf {
        let path = self.home.path().join(name);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        for sample in frames.iter().flatten() {
            writer.write_sample(*sample).unwrap();
        }
        writer.finalize().unwrap();
        path
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.banter(args).output().unwrap()
    }

    pub(crate) fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "banter {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub(crate) fn with_password(&self, args: &[&str], password: &str) -> Output {
        let mut child = self
            .banter(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    }
}

pub(crate) async fn start(dir: &Path) -> Server {
    start_with(dir, |_| {}).await
}

/// [`start`], with `change` applied to the configuration first.
pub(crate) async fn start_with(dir: &Path, change: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        ..Config::default()
    };
    for bucket in config.rate.values_mut() {
        bucket.burst = 10_000;
    }
    change(&mut config);
    Server::start(config).await.unwrap()
}

/// The value of an unlabelled metric (`banter_NAME{node=…} VALUE`) from the server's
/// /metrics.
pub(crate) fn metric(server: &Server, name: &str) -> f64 {
    use std::io::Read;
    let addr = server.metrics_addr().expect("metrics on");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find(|line| line.starts_with(&format!("banter_{name}{{")))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A banterd process on `addr` (the binary beside `banter`); killed with SIGKILL when dropped.
pub(crate) fn banterd(dir: &Path, addr: &str, env: &[(&str, &std::ffi::OsStr)]) -> Banterd {
    Banterd::start(Path::new(env!("CARGO_BIN_EXE_banter")), dir, addr, env)
}

/// A free UDP port on loopback, as `127.0.0.1:PORT`.
pub(crate) fn free_address() -> String {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}
