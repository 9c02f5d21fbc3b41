//! `banter-bench seed --queries`, as CI runs it (small): the seeded texts are searchable, the
//! searcher waits for the index to catch up, and each kind of query finds what the generator
//! knows it posted. (The numbers at scale are in benches/README.md, not asserted here.)

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use banter_tests::child::Banterd;

#[test]
fn seeded_messages_are_found_by_every_kind_of_query() {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let addr = addr.to_string();
    let loose = OsStr::new("1000000/60000000");
    let mut env: Vec<(&str, &OsStr)> =
        ["BANTER_RATE_MESSAGE", "BANTER_RATE_AUTH", "BANTER_RATE_JOIN", "BANTER_RATE_SEARCH"]
            .into_iter()
            .map(|name| (name, loose))
            .collect();
    env.push(("BANTER_ARGON2_MEMORY_KIB", OsStr::new("1024")));
    env.push(("BANTER_ARGON2_ITERATIONS", OsStr::new("1")));
    let bench = Path::new(env!("CARGO_BIN_EXE_banter-bench"));
    let _server = Banterd::start(bench, &dir.path().join("data"), &addr, &env);

    let out = Command::new(bench)
        .args(["--server", &addr, "--accept-new-cert", "--json", "seed"])
        .args(["--users", "4", "--rooms", "6", "--messages", "3000", "--posters", "3"])
        .args(["--queries", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "banter-bench seed failed: {stderr}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["messages"], 3000, "{result}");
    assert!(result["index_lag_s"].as_f64().is_some_and(|lag| lag < 30.0), "{result}");
    for kind in ["word", "phrase", "filtered"] {
        let hits = result[kind]["hits"].as_u64().unwrap_or_else(|| panic!("{result}"));
        assert!(hits > 0, "{kind}: {result}");
        assert!(result[kind]["latency"]["p99_us"].as_u64().is_some_and(|p| p > 0), "{result}");
    }
}
