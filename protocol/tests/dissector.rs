//! The Wireshark dissector's tables (`contrib/wireshark/banter.lua`, between its GENERATED
//! markers) against the code: every frame type with its body's layout, traced from the wire
//! types themselves (serde-reflection), and the names of stream types, settings, error
//! codes, roles and audit actions. The block is rewritten by `BANTER_BLESS=1 cargo test -p
//! banter-protocol --test dissector`; without it the test fails on any difference, so the
//! dissector cannot drift from the wire.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use banter_protocol::ErrorCode;
use banter_protocol::message::*;
use banter_protocol::settings::{SettingId, Settings};
use banter_protocol::stream::StreamType;
use serde_reflection::{ContainerFormat, Format, Registry, Tracer, TracerConfig, VariantFormat};

const BEGIN: &str = "-- BEGIN GENERATED";
const END: &str = "-- END GENERATED";

/// A frame type, its registered name, and its body's container (`None`: SETTINGS).
type FrameRow = (u64, &'static str, Option<String>);

/// Traces every body. Enums nested in bodies are traced first and whole: tracing a body
/// explores each option and list once, so it would see one variant of an enum inside them.
struct Trace {
    tracer: Tracer,
    frames: Vec<FrameRow>,
}

impl BodyVisitor for Trace {
    fn postcard<T: Frame + serde::de::DeserializeOwned>(&mut self) {
        let (format, _) = self.tracer.trace_simple_type::<T>().expect("a wire type traces");
        let Format::TypeName(name) = format else { panic!("{}: not a struct", T::NAME) };
        self.frames.push((T::TYPE.0, T::NAME, Some(name)));
    }

    fn settings(&mut self) {
        self.frames.push((Settings::TYPE.0, Settings::NAME, None));
    }
}

fn trace() -> (Registry, Vec<FrameRow>) {
    let mut tracer = Tracer::new(TracerConfig::default());
    macro_rules! enums {
        ($($name:ident),*) => { $(tracer.trace_simple_type::<$name>().unwrap();)* };
    }
    enums!(
        ContactAction,
        ContactState,
        ListScope,
        MembershipChange,
        PresenceStatus,
        RoomKind,
        TypingState,
        Visibility,
        VoiceAction
    );
    let mut trace = Trace { tracer, frames: Vec::new() };
    visit_bodies(&mut trace);
    let registry = trace
        .tracer
        .registry()
        .unwrap_or_else(|e| panic!("{e}: an enum inside a body is missing from `enums!` above"));
    for (name, container) in &registry {
        if let ContainerFormat::Enum(variants) = container {
            let indices: Vec<u32> = variants.keys().copied().collect();
            let dense: Vec<u32> = (0..variants.len() as u32).collect();
            assert_eq!(indices, dense, "{name}: not every variant traced; add it to `enums!`");
        }
    }
    (registry, trace.frames)
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// A format as the dissector's Lua reads it: primitives and type names as strings,
/// compounds as tables.
fn lua(format: &Format) -> String {
    match format {
        Format::TypeName(name) => quoted(name),
        Format::Bool => quoted("bool"),
        Format::U8 => quoted("u8"),
        Format::U16 | Format::U32 | Format::U64 => quoted("varint"),
        Format::U128 => quoted("u128"),
        Format::Str => quoted("str"),
        Format::Bytes => quoted("bytes"),
        Format::Option(inner) => format!("{{\"opt\", {}}}", lua(inner)),
        Format::Seq(inner) => format!("{{\"seq\", {}}}", lua(inner)),
        Format::Tuple(items) => {
            let items: Vec<String> = items.iter().map(lua).collect();
            format!("{{\"tuple\", {}}}", items.join(", "))
        }
        Format::TupleArray { content, size } if **content == Format::U8 => {
            format!("{{\"raw\", {size}}}")
        }
        other => panic!("{other:?}: the dissector has no reader for this; add one to banter.lua"),
    }
}

/// How a leaf shows in the tree (a ProtoField type), or `None` for a subtree.
fn leaf_kind(format: &Format, registry: &Registry) -> Option<&'static str> {
    match format {
        Format::Bool => Some("bool"),
        Format::U8 | Format::U16 | Format::U32 | Format::U64 => Some("uint"),
        Format::U128 | Format::Str => Some("string"),
        Format::Bytes | Format::TupleArray { .. } => Some("bytes"),
        Format::Option(inner) => leaf_kind(inner, registry),
        Format::TypeName(name) => match &registry[name] {
            ContainerFormat::NewTypeStruct(inner) => leaf_kind(inner, registry),
            ContainerFormat::Enum(_) => Some("uint"),
            _ => None,
        },
        _ => None,
    }
}

/// `last_event_seq` → `Last Event Seq`, as the spec writes field names.
fn title(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn render() -> String {
    let (registry, frames) = trace();
    let mut out = String::new();
    writeln!(out, "{BEGIN} by protocol/tests/dissector.rs from the wire types: do not edit.")
        .unwrap();

    out.push_str("-- Frame types: name, and the body's type (SETTINGS has its own layout).\n");
    out.push_str("local FRAME_TYPES = {\n");
    for (value, name, body) in &frames {
        let body = body.as_deref().map_or_else(|| "nil".to_owned(), quoted);
        writeln!(out, "  [0x{value:02x}] = {{{}, {body}}},", quoted(name)).unwrap();
    }
    out.push_str("}\n");

    // One filter field per (name, kind): `banter.room` everywhere a room id is; a name used
    // with two kinds gets the kind appended the second time (`banter.code_string`).
    let mut fields: BTreeMap<(String, &str), String> = BTreeMap::new();
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    let mut field_for = |name: &str, kind: &'static str| -> String {
        fields
            .entry((name.to_owned(), kind))
            .or_insert_with(|| match taken.get(name) {
                Some(_) => format!("banter.{name}_{kind}"),
                None => {
                    taken.insert(name.to_owned(), kind);
                    format!("banter.{name}")
                }
            })
            .clone()
    };
    let mut types = String::new();
    for (name, container) in &registry {
        let layout = match container {
            ContainerFormat::Struct(members) => {
                let members: Vec<String> = members
                    .iter()
                    .map(|m| {
                        let field = leaf_kind(&m.value, &registry)
                            .map_or_else(|| "nil".to_owned(), |k| quoted(&field_for(&m.name, k)));
                        format!("{{{}, {}, {field}}}", quoted(&title(&m.name)), lua(&m.value))
                    })
                    .collect();
                format!("{{\"struct\", {{{}}}}}", members.join(", "))
            }
            ContainerFormat::NewTypeStruct(inner) => format!("{{\"newtype\", {}}}", lua(inner)),
            ContainerFormat::Enum(variants) => {
                let names: Vec<String> = variants
                    .iter()
                    .map(|(index, variant)| {
                        assert!(
                            matches!(variant.value, VariantFormat::Unit),
                            "{name}::{}: the dissector reads unit variants only",
                            variant.name
                        );
                        format!("[{index}] = {}", quoted(&variant.name))
                    })
                    .collect();
                format!("{{\"enum\", {{{}}}}}", names.join(", "))
            }
            other => panic!("{name}: {other:?} has no reader in banter.lua"),
        };
        writeln!(types, "  {name} = {layout},").unwrap();
    }
    out.push_str(
        "-- Body types (postcard, spec §4.3): struct members are {label, format, field}.\n",
    );
    out.push_str("local TYPES = {\n");
    out.push_str(&types);
    out.push_str("}\n");
    out.push_str("-- Filter fields: abbreviation, label, kind.\n");
    out.push_str("local FIELDS = {\n");
    let mut by_abbrev: Vec<(&String, &(String, &str))> =
        fields.iter().map(|(key, abbrev)| (abbrev, key)).collect();
    by_abbrev.sort();
    for (abbrev, (name, kind)) in by_abbrev {
        writeln!(out, "  {{{}, {}, {}}},", quoted(abbrev), quoted(&title(name)), quoted(kind))
            .unwrap();
    }
    out.push_str("}\n");

    let table = |out: &mut String, name: &str, entries: Vec<(u64, &str)>| {
        writeln!(out, "local {name} = {{").unwrap();
        for (value, label) in entries {
            writeln!(out, "  [0x{value:02x}] = {},", quoted(label)).unwrap();
        }
        out.push_str("}\n");
    };
    out.push_str("-- Names of values (newtypes are keyed by type name in VALUE_NAMES).\n");
    let stream_types = StreamType::ALL.iter().map(|t| (t.0, t.name().unwrap())).collect();
    table(&mut out, "STREAM_TYPES", stream_types);
    let settings = SettingId::ALL.iter().map(|s| (s.0, s.name().unwrap())).collect();
    table(&mut out, "SETTING_IDS", settings);
    let codes = ErrorCode::ALL.iter().map(|c| (c.0, c.name().unwrap())).collect();
    table(&mut out, "ERROR_CODES", codes);
    let roles = (0..=u8::MAX).filter_map(|r| Role(r).name().map(|n| (u64::from(r), n))).collect();
    table(&mut out, "ROLES", roles);
    let actions =
        (0..=u16::MAX).filter_map(|a| AuditAction(a).name().map(|n| (u64::from(a), n))).collect();
    table(&mut out, "AUDIT_ACTIONS", actions);
    out.push_str(
        "local VALUE_NAMES = { ErrorCode = ERROR_CODES, Role = ROLES, AuditAction = AUDIT_ACTIONS }\n",
    );
    out.push_str(END);
    out
}

fn dissector_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contrib/wireshark/banter.lua")
}

#[test]
fn the_dissector_tables_match_the_wire_types() {
    let path = dissector_path();
    let committed = std::fs::read_to_string(&path).unwrap();
    let (start, end) = match (committed.find(BEGIN), committed.find(END)) {
        (Some(start), Some(end)) => (start, end + END.len()),
        _ => panic!("{}: no {BEGIN} … {END} block", path.display()),
    };
    let rendered = render();
    if std::env::var_os("BANTER_BLESS").is_some() {
        let updated = format!("{}{rendered}{}", &committed[..start], &committed[end..]);
        std::fs::write(&path, updated).unwrap();
    } else {
        assert!(
            committed[start..end] == rendered,
            "banter.lua's tables differ from the wire types: re-run with BANTER_BLESS=1"
        );
    }
}
