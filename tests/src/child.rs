//! banterd as a child process, for tests outside banter-server (whose own tests find it as
//! `CARGO_BIN_EXE_banterd`): the binary beside the calling test's own, built if a partial build
//! left it out; killed with SIGKILL when dropped, so a failing test leaves nothing behind.

use std::ffi::OsStr;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The banterd binary in the target dir of `beside`, any binary of the calling test's build
/// (`env!("CARGO_BIN_EXE_…")`); built there if missing.
pub fn banterd_binary(beside: &Path) -> PathBuf {
    let path = beside.with_file_name("banterd");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "-p", "banter-server", "--bin", "banterd"])
            .status()
            .expect("cargo runs");
        assert!(built.success() && path.exists(), "cannot build banterd at {}", path.display());
    }
    path
}

/// A running `banterd run`.
#[derive(Debug)]
pub struct Banterd(Child);

impl Banterd {
    /// Starts `banterd run` on `addr` with its data in `dir` (cheap password hashing, and
    /// the `env` given), and waits until it serves.
    pub fn start(beside: &Path, dir: &Path, addr: &str, env: &[(&str, &OsStr)]) -> Self {
        let mut child = Command::new(banterd_binary(beside))
            .args(["run", "--listen", addr, "--data-dir"])
            .arg(dir)
            .env("BANTER_ARGON2_MEMORY_KIB", "256")
            .env("BANTER_ARGON2_ITERATIONS", "1")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("banterd starts");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let server = Self(child);
        while let Some(Ok(line)) = lines.next() {
            if line.starts_with("certificate SHA-256 fingerprint") {
                // Keep reading its output on a thread, so it never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return server;
            }
        }
        panic!("banterd did not start");
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Kills it at once (SIGKILL) and waits for it.
    pub fn kill_9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Banterd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
