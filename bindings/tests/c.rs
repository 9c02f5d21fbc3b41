//! The C ABI from C (and Python): the header compiles as C99 and C++, and the example chat
//! client, built with the system C compiler against libbanter, chats with a Rust client
//! through a real banterd, with no leaks under valgrind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use banter_client::protocol::message::Message;
use banter_tests::{TestServer, TestUser};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where libbanter.so is: next to this test's deps/ directory. `cargo test` builds only the
/// rlib of this crate, so the shared library is built here, once, with the same profile.
fn lib_dir() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "banter-ffi", "--lib"])
            .current_dir(crate_dir())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building libbanter failed");
    });
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    assert!(dir.join("libbanter.so").exists(), "libbanter.so not built in {}", dir.display());
    dir
}

fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Builds examples/chat.c; returns the binary.
fn build_example(out: &Path) -> PathBuf {
    let binary = out.join("chat");
    let lib = lib_dir();
    let status = Command::new(compiler())
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("examples/chat.c"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lbanter", "-o"])
        .arg(&binary)
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success(), "examples/chat.c did not compile");
    binary
}

#[test]
fn the_header_compiles_as_c99_and_as_cpp() {
    let header = crate_dir().join("include/banter.h");
    let c = Command::new(compiler())
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-x", "c"])
        .arg(&header)
        .status()
        .unwrap();
    assert!(c.success(), "banter.h is not valid C99");
    let cpp = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()))
        .args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++"])
        .arg(&header)
        .status()
        .unwrap();
    assert!(cpp.success(), "banter.h is not valid C++");
}

/// Runs a chat example (C binary or Python) as `ada` while grace, a Rust client, answers it.
async fn chat_with(grace: &mut TestUser, program: Command) -> String {
    let mut program = program;
    let child = program.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Grace answers as soon as ada's message arrives.
    let answered = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Message::Posted(p) = grace.next_room_event().await {
                if p.text.as_str() == "hello from C" {
                    return p.meta.room;
                }
            }
        }
    })
    .await
    .expect("ada's message reached grace");
    grace.post(answered, "hello C, this is grace").await.unwrap();
    let output =
        tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn setup() -> (TestServer, TestUser) {
    let server = TestServer::start().await;
    let grace = server.user("grace").await;
    grace.create_voice_room("lobby").await;
    (server, grace)
}

/// The examples' arguments: register ada, post "hello from C" to lobby.
fn example_args(server: &TestServer) -> [String; 6] {
    [
        &*server.addr().to_string(),
        "ada",
        "correct horse battery",
        "lobby",
        "hello from C",
        "--register",
    ]
    .map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_program_chats_with_a_rust_client_through_banterd() {
    let (server, mut grace) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let binary = build_example(dir.path());
    let mut program = Command::new(&binary);
    program.args(example_args(&server)).args(["--expect", "hello C"]);
    let stdout = chat_with(&mut grace, program).await;
    assert!(stdout.contains("sent #"), "{stdout}");
    // A frame comes every 20 ms while in voice; the example pulls 25 times with a 40 ms
    // timeout, so nearly all pulls get one (a loaded machine may delay a few ticks).
    let heard: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("voice: ")?.split(' ').next()?.parse().ok())
        .expect("the voice cycle ran");
    assert!(heard >= 15, "only {heard} of 25 voice frames pulled: {stdout}");
    assert!(stdout.contains("<grace> hello C, this is grace"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_program_leaks_nothing_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is required (.ci/run installs it)");
    }
    let (server, mut grace) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let binary = build_example(dir.path());
    let mut program = Command::new("valgrind");
    program
        .args([
            "--quiet",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=3",
        ])
        .arg(format!("--suppressions={}", crate_dir().join("tests/valgrind.supp").display()))
        .arg(&binary)
        .args(example_args(&server))
        .args(["--expect", "hello C"]);
    let stdout = chat_with(&mut grace, program).await;
    assert!(stdout.contains("<grace> hello C, this is grace"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_ctypes_example_sends_through_banterd() {
    let (server, mut grace) = setup().await;
    let mut program = Command::new("python3");
    program
        .arg(crate_dir().join("examples/chat.py"))
        .args(example_args(&server))
        .env("LIBBANTER", lib_dir().join("libbanter.so"));
    let stdout = chat_with(&mut grace, program).await;
    assert!(stdout.contains("sent #"), "{stdout}");
}

/// Builds examples/manage.c the way its README says, with `pkg-config banter` (the .pc file
/// pointed at this build's library and header).
fn build_with_pkg_config(out: &Path) -> PathBuf {
    let pc = std::fs::read_to_string(crate_dir().join("banter.pc")).unwrap();
    let lib = lib_dir();
    let pc: String = pc
        .lines()
        .map(|line| match line.split_once('=') {
            Some(("libdir", _)) => format!("libdir={}\n", lib.display()),
            Some(("includedir", _)) => {
                format!("includedir={}\n", crate_dir().join("include").display())
            }
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(out.join("banter.pc"), pc).unwrap();
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "banter"])
        .env("PKG_CONFIG_PATH", out)
        .output()
        .expect("pkg-config (.ci/run installs it)");
    assert!(flags.status.success(), "{}", String::from_utf8_lossy(&flags.stderr));
    let flags = String::from_utf8(flags.stdout).unwrap();
    let binary = out.join("manage");
    let status = Command::new(compiler())
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(crate_dir().join("examples/manage.c"))
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&binary)
        .status()
        .unwrap();
    assert!(status.success(), "examples/manage.c did not compile with {flags}");
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_program_built_with_pkg_config_runs_a_community() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let binary = build_with_pkg_config(dir.path());
    let file = dir.path().join("agenda.txt");
    let content = "1. welcome\n2. budget\n".repeat(20_000);
    std::fs::write(&file, &content).unwrap();
    let output = Command::new(&binary)
        .arg(server.addr().to_string())
        .arg("correct horse battery")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    for line in [
        "guest joined room",
        "contact guest asks to be friends",
        "shared at #",
        "fetched into",
        "moderated: role, kick, add, ban, unban",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    let total = content.len();
    assert!(stderr.contains(&format!("upload {total}/{total}")), "{stderr}");
    assert!(stderr.contains(&format!("download {total}/{total}")), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.path().join("agenda.txt.copy")).unwrap(), content);
}
