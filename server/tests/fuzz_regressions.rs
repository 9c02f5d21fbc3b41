//! The `token` fuzz target's saved inputs (fuzz/regressions/token/), replayed through its
//! oracle under plain `cargo test`, so that a finding stays fixed. (The protocol targets are
//! replayed by banter-protocol's own regression test.)

#[test]
fn every_saved_token_input_passes_the_oracle() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/regressions/token");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        banter_server::auth::fuzz_tokens(&std::fs::read(&path).unwrap());
        replayed += 1;
    }
    assert!(replayed >= 3, "the seeds are there");
}
