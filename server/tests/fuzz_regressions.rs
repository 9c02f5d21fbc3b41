//! The server's fuzz targets replayed under plain `cargo test`, so that a finding stays fixed:
//! the `token` target's saved inputs (fuzz/regressions/token/), and for the `requests` target
//! its saved inputs (fuzz/regressions/requests/) plus every golden frame of spec/vectors sent
//! as a request on a fresh and on an authenticated connection. (The protocol targets are
//! replayed by banter-protocol's own regression test.)

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn saved(target: &str) -> Vec<Vec<u8>> {
    let dir = root().join("fuzz/regressions").join(target);
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        inputs.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(inputs.len() >= 3, "the seeds of {target} are there");
    inputs
}

#[test]
fn every_saved_token_input_passes_the_oracle() {
    for input in saved("token") {
        banter_server::auth::fuzz_tokens(&input);
    }
}

#[test]
fn every_golden_frame_and_saved_input_is_served_as_a_request() {
    let mut frames = Vec::new();
    for file in ["frames.vectors", "invalid.vectors"] {
        let text = std::fs::read_to_string(root().join("spec/vectors").join(file)).unwrap();
        for hex in text.lines().filter_map(|l| l.strip_prefix("hex: ")) {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(3)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            frames.push(bytes);
        }
    }
    assert!(frames.len() > 70, "vectors found: {}", frames.len());
    for bytes in &frames {
        for connection in [0u8, 1] {
            let mut input = vec![connection];
            input.extend_from_slice(bytes);
            banter_server::fuzzing::request_stream(&input);
        }
    }
    for input in saved("requests") {
        banter_server::fuzzing::request_stream(&input);
    }
}
