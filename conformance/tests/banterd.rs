//! The conformance runner against banterd (in process, loopback, test-friendly limits): every
//! MUST passes, and the JUnit report says so.

use std::process::Command;

use banter_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banterd_passes_every_must_of_the_conformance_run() {
    // A short login deadline and lost-answer grace keep §7.1's and §6.2's checks quick.
    let server = TestServer::start_with(|config| {
        config.auth_timeout_ms = 2_000;
        config.refresh_grace_s = 1;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("conformance.xml");
    let addr = server.addr().to_string();
    let junit_arg = junit.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_banter-conformance"))
            .args([&addr, "--accept-any-certificate", "--junit"])
            .arg(&junit_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    eprintln!("{table}");
    assert!(
        output.status.success(),
        "a MUST failed:\n{table}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(table.contains(" MUST failed") && table.contains(", 0 MUST failed"), "{table}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"0\""), "{xml}");
    let checks = xml.matches("<testcase ").count();
    assert!(checks >= 100, "{checks} checks");
}
