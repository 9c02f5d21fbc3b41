//! A PostgreSQL server of a test's own: `initdb` in a temporary directory, listening on a
//! free loopback port (and a socket in that directory), stopped by its process id when the
//! test is done. PostgreSQL refuses to run as root, so under root it runs as the `postgres`
//! user. The binaries come from the distribution's package (`/usr/lib/postgresql/N/bin`) or
//! the PATH; without them the test fails and says so (it never skips).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL, stopped on drop.
#[derive(Debug)]
pub struct TestPostgres {
    dir: tempfile::TempDir,
    port: u16,
    /// The postmaster.
    pid: u32,
    /// What we started: the postmaster, or `runuser` waiting for it.
    child: std::process::Child,
}

/// Where `initdb` and `postgres` are.
fn bin_dir() -> PathBuf {
    let packaged = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|versions| {
        let mut bins: Vec<PathBuf> = versions
            .filter_map(|v| Some(v.ok()?.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists())
            .collect();
        bins.sort();
        bins.pop()
    });
    let on_path = || {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("postgres").exists()))
    };
    packaged.or_else(on_path).expect(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres, none on PATH): \
         the cluster tests need it (scripts/test installs it)",
    )
}

/// The uid and gid of `user`.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, user]).output().expect("id runs");
        assert!(out.status.success(), "no user {user}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a number")
    };
    (id("-u"), id("-g"))
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `program ARGS`, as the `postgres` user when we are root.
fn command(program: &Path, args: &[&str]) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program).args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl TestPostgres {
    /// Creates a database cluster and starts it; returns once it accepts connections.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        if running_as_root() {
            let (uid, gid) = ids_of("postgres");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let data_arg = data.to_str().expect("a UTF-8 path");
        let initdb = command(
            &bin.join("initdb"),
            &["-D", data_arg, "-U", "banter", "--auth=trust", "-E", "UTF8", "--no-sync"],
        )
        .stdout(Stdio::null())
        .output()
        .expect("initdb runs");
        assert!(initdb.status.success(), "initdb: {}", String::from_utf8_lossy(&initdb.stderr));
        let port = free_port();
        let (child, pid) = launch(&bin, &data, dir.path(), port);
        Self { dir, port, pid, child }
    }

    /// Stops the server (fast shutdown) and waits for it to go: a database outage.
    pub fn stop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown. Then wait for the process to go.
        let signal = |name: &str| {
            let _ = Command::new("kill").args([name, &self.pid.to_string()]).status();
        };
        signal("-INT");
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(self.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(self.pid) {
            signal("-KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again after [`stop`](Self::stop), on the same data and port.
    pub fn restart(&mut self) {
        let data = self.dir.path().join("data");
        (self.child, self.pid) = launch(&bin_dir(), &data, self.dir.path(), self.port);
    }

    /// Connection settings for the `postgres` database as the superuser `banter`.
    pub fn url(&self) -> String {
        format!("host=127.0.0.1 port={} user=banter dbname=postgres", self.port)
    }

    /// Where the cluster lives.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the postmaster on `data`, listening on `port` (and a socket in `socket_dir`); returns
/// once it accepts connections, with what was started and the postmaster's pid.
fn launch(bin: &Path, data: &Path, socket_dir: &Path, port: u16) -> (std::process::Child, u32) {
    let data_arg = data.to_str().expect("a UTF-8 path");
    let socket_dir = socket_dir.to_str().expect("a UTF-8 path");
    let port_arg = port.to_string();
    let child = command(
        &bin.join("postgres"),
        &["-D", data_arg, "-p", &port_arg, "-k", socket_dir, "-c", "listen_addresses=127.0.0.1"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("postgres starts");
    // Ready once pg_isready says it accepts connections (not merely that the port is
    // open: it refuses logins while starting up). The postmaster's own pid (not
    // runuser's) is the first line of postmaster.pid.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port_arg, "-U", "banter"])
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not start within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|started| started.lines().next()?.trim().parse().ok())
        .expect("postmaster.pid names the server");
    (child, pid)
}
