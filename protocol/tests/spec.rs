//! spec/PROTOCOL.md against the code: every registry table lists exactly what the code
//! registers, and every frame type has its own section (R28: the spec and the code cannot
//! drift apart silently).

use banter_protocol::ErrorCode;
use banter_protocol::message::{AuditAction, Direction, REGISTRY, StreamKind};
use banter_protocol::settings::SettingId;
use banter_protocol::stream::StreamType;

fn spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/PROTOCOL.md");
    std::fs::read_to_string(path).unwrap()
}

/// The data rows of the table between `<!-- registry:NAME -->` markers, as cell lists.
fn table(spec: &str, name: &str) -> Vec<Vec<String>> {
    let start = spec.find(&format!("<!-- registry:{name} -->")).expect("registry marker");
    let end = spec.find(&format!("<!-- /registry:{name} -->")).expect("registry end marker");
    spec[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("|---") && !l.contains("| name |"))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

fn hex(value: u64) -> String {
    format!("{value:#04x}")
}

#[test]
fn frame_registry_table_matches_the_code() {
    let spec = spec();
    let rows = table(&spec, "frames");
    let expected: Vec<Vec<String>> = REGISTRY
        .iter()
        .map(|info| {
            let dir = match info.direction {
                Direction::ClientToServer => "C",
                Direction::ServerToClient => "S",
                Direction::Both => "B",
            };
            let streams: Vec<&str> = info
                .streams
                .iter()
                .map(|s| match s {
                    StreamKind::Control => "ctl",
                    StreamKind::Request => "req",
                    StreamKind::Response => "rsp",
                    StreamKind::Events => "ev",
                    StreamKind::Ephemeral => "eph",
                })
                .collect();
            vec![hex(info.frame_type.0), info.name.to_owned(), dir.to_owned(), streams.join(", ")]
        })
        .collect();
    let got: Vec<Vec<String>> = rows.into_iter().map(|r| r[..4].to_vec()).collect();
    assert_eq!(got, expected);
}

#[test]
fn every_frame_type_has_a_section_with_its_number() {
    let spec = spec();
    for info in REGISTRY {
        let needle = format!("{} ({})", info.name, hex(info.frame_type.0));
        assert!(
            spec.lines().any(|l| l.starts_with("#### ") && l.contains(&needle)),
            "no `#### ...{needle}...` section in spec/PROTOCOL.md"
        );
    }
}

#[test]
fn stream_setting_and_error_registries_match_the_code() {
    let spec = spec();
    let streams: Vec<Vec<String>> =
        StreamType::ALL.iter().map(|t| vec![hex(t.0), t.name().unwrap().to_owned()]).collect();
    assert_eq!(table(&spec, "streams"), streams);

    let settings: Vec<Vec<String>> =
        SettingId::ALL.iter().map(|s| vec![hex(s.0), s.name().unwrap().to_owned()]).collect();
    assert_eq!(table(&spec, "settings"), settings);

    let errors: Vec<Vec<String>> =
        ErrorCode::ALL.iter().map(|c| vec![hex(c.0), c.name().unwrap().to_owned()]).collect();
    assert_eq!(table(&spec, "errors"), errors);
}

#[test]
fn audit_action_registry_matches_the_code() {
    let rows = table(&spec(), "audit");
    assert!(!rows.is_empty());
    for (i, row) in rows.iter().enumerate() {
        let value: u16 = row[0].parse().unwrap();
        assert_eq!(usize::from(value), i + 1, "audit actions are numbered from 1 without gaps");
        assert_eq!(AuditAction(value).name(), Some(row[1].as_str()));
    }
    let next = u16::try_from(rows.len() + 1).unwrap();
    assert_eq!(AuditAction(next).name(), None, "every action the code names is in the spec");
}

#[test]
fn no_registered_value_is_grease() {
    for t in StreamType::ALL {
        assert!(!t.is_grease());
    }
    for s in SettingId::ALL {
        assert!(!banter_protocol::grease::is_grease(s.0));
    }
}
