//! Replays the fuzz targets' oracles over every golden vector in spec/vectors and every saved
//! input in fuzz/regressions, under plain `cargo test` (spec §11, issue 7).

use std::path::PathBuf;

use banter_protocol::fuzzing;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bytes of every record in every vectors file.
fn vector_inputs() -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(root().join("spec/vectors")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            if let Some(hex) = line.strip_prefix("hex: ") {
                inputs.push(hex::decode(hex.replace(' ', "")).unwrap());
            }
        }
    }
    inputs
}

fn saved(target: &str) -> Vec<Vec<u8>> {
    let dir = root().join("fuzz/regressions").join(target);
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        inputs.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(!inputs.is_empty(), "{} is empty", dir.display());
    inputs
}

#[test]
fn every_vector_and_saved_input_passes_every_oracle() {
    let vectors = vector_inputs();
    assert!(vectors.len() > 70, "vectors found: {}", vectors.len());
    for bytes in &vectors {
        let mut unsplit = vec![0, 0];
        unsplit.extend_from_slice(bytes);
        fuzzing::decode_stream(&unsplit);
        fuzzing::voice_datagram(bytes);
        fuzzing::voice_tunnel(&unsplit);
        fuzzing::settings_body(bytes.get(2..).unwrap_or_default());
        fuzzing::session_ops(bytes);
    }
    saved("decode_frame").iter().for_each(|b| fuzzing::decode_stream(b));
    saved("voice_datagram").iter().for_each(|b| {
        fuzzing::voice_datagram(b);
        fuzzing::voice_tunnel(b);
    });
    saved("settings").iter().for_each(|b| fuzzing::settings_body(b));
    saved("session").iter().for_each(|b| fuzzing::session_ops(b));
}
