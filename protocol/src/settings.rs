//! SETTINGS (spec §5): the first frame on each control stream, a list of key/value pairs that
//! declares limits and features. Each side sends its own without waiting for the peer's.
//!
//! The body is not postcard but a run of QUIC varints, so that any implementation can skip an
//! entry it does not know (MoQT's parity rule):
//!
//! ```text
//! Setting {
//!   Id (i),
//!   Value (i),                 when Id is even
//!   Length (i), Value (..),    when Id is odd
//! }
//! ```

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::bounded::{List, Text};
use crate::error::DecodeError;
use crate::frame::DEFAULT_MAX_FRAME_SIZE;
use crate::varint;

/// A setting identifier. Open: unknown ids are kept and ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SettingId(pub u64);

macro_rules! setting_ids {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        impl SettingId {
            $($(#[$doc])* pub const $name: Self = Self($value);)*
            /// Every registered id.
            pub const ALL: &'static [Self] = &[$(Self::$name),*];
            /// The registered name, if any.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($value => Some(stringify!($name)),)* _ => None }
            }
        }
    };
}

setting_ids! {
    /// Bytes: a postcard `List<Text<16>, 8>` of voice codec names, preferred first (`"opus"`).
    VOICE_CODECS = 0x01;
    /// Varint: the largest frame body this side accepts. Default and minimum 65536.
    MAX_FRAME_SIZE = 0x02;
    /// Bytes: a postcard `List<RateLimit, 32>`; the server's per-class request limits.
    RATE_LIMITS = 0x03;
    /// Varint: the longest message text, in bytes, the server accepts. Default 4000.
    MAX_MESSAGE_BYTES = 0x04;
    /// Bytes: UTF-8 display name of the server.
    SERVER_NAME = 0x05;
    /// Varint: the largest `limit` a HISTORY or CATCH_UP request may ask for. Default 100.
    MAX_HISTORY_PAGE = 0x06;
    /// Varint: how long, in ms, the server keeps a session's events for RESUME. Default 120000.
    RESUME_WINDOW_MS = 0x08;
    /// Varint: the highest voice bitrate, bit/s, the server relays per speaker. Default 64000.
    VOICE_MAX_BITRATE = 0x0a;
    /// Varint: voice frame duration in ms. Default 20.
    VOICE_FRAME_MS = 0x0c;
    /// Varint: a bit set of optional features (the `FEATURE_*` constants).
    FEATURES = 0x0e;
}

impl SettingId {
    /// Even ids carry a varint, odd ids length-prefixed bytes.
    pub fn takes_bytes(self) -> bool {
        self.0 & 1 == 1
    }
}

impl fmt::Debug for SettingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "SettingId({:#x})", self.0),
        }
    }
}

/// Feature bit: the sender can send and receive voice as QUIC datagrams.
pub const FEATURE_VOICE_DATAGRAMS: u64 = 1 << 0;
/// Feature bit: the sender accepts the voice tunnel stream (type 0x03) as a fallback.
pub const FEATURE_VOICE_TUNNEL: u64 = 1 << 1;
/// Feature bit (servers): the sender answers SEARCH (spec §6.10).
pub const FEATURE_SEARCH: u64 = 1 << 2;
/// Feature bit: post streams (spec §3.1.1). From a server: it answers further POSTs on a
/// stream opened by a POST. From a client: it finishes every post stream it opens, so the
/// server may wait for that finish before ending its answers.
pub const FEATURE_POST_STREAMS: u64 = 1 << 3;

/// The most entries one SETTINGS frame may carry.
pub const MAX_ENTRIES: usize = 256;

/// One setting's value: a varint for even ids, bytes for odd ids.
#[derive(Clone, PartialEq, Eq)]
pub enum SettingValue {
    /// The value of an even id.
    Int(u64),
    /// The value of an odd id.
    Bytes(Vec<u8>),
}

impl fmt::Debug for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "Int({v})"),
            Self::Bytes(bytes) => {
                write!(f, "Bytes(")?;
                for byte in bytes {
                    write!(f, "{byte:02x}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Which setting.
    pub id: SettingId,
    /// Its value; the variant always matches the id's parity.
    pub value: SettingValue,
}

/// The SETTINGS frame: entries in the order sent, unknown ones included.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    entries: Vec<Setting>,
}

/// As a list of `{id, value}` entries in the order sent (a value is an integer or bytes):
/// what tools that show frames (the JSON test vectors) print. SETTINGS is not postcard on the
/// wire; this is only its value, for reading.
impl Serialize for Settings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq as _, SerializeStruct as _};
        struct Entry<'a>(&'a Setting);
        impl Serialize for Entry<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut entry = serializer.serialize_struct("Setting", 2)?;
                entry.serialize_field("id", &self.0.id.0)?;
                match &self.0.value {
                    SettingValue::Int(value) => entry.serialize_field("value", value)?,
                    SettingValue::Bytes(bytes) => {
                        entry.serialize_field("value", &serde_bytes_ref(bytes))?;
                    }
                }
                entry.end()
            }
        }
        let mut entries = serializer.serialize_seq(Some(self.entries.len()))?;
        for setting in &self.entries {
            entries.serialize_element(&Entry(setting))?;
        }
        entries.end()
    }
}

/// Bytes that serialize as bytes (not as a sequence of numbers).
fn serde_bytes_ref(bytes: &[u8]) -> impl Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }
    Bytes(bytes)
}

/// A value does not match its id's parity (local misuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("setting {0:?} takes the other kind of value")]
pub struct WrongKind(pub SettingId);

impl Settings {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a varint setting; the id must be even.
    pub fn set_int(&mut self, id: SettingId, value: u64) -> Result<(), WrongKind> {
        if id.takes_bytes() || value > varint::MAX {
            return Err(WrongKind(id));
        }
        self.put(id, SettingValue::Int(value));
        Ok(())
    }

    /// Adds (or replaces) a bytes setting; the id must be odd.
    pub fn set_bytes(&mut self, id: SettingId, value: Vec<u8>) -> Result<(), WrongKind> {
        if !id.takes_bytes() {
            return Err(WrongKind(id));
        }
        self.put(id, SettingValue::Bytes(value));
        Ok(())
    }

    fn put(&mut self, id: SettingId, value: SettingValue) {
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(entry) => entry.value = value,
            None => self.entries.push(Setting { id, value }),
        }
    }

    /// The entries in order.
    pub fn entries(&self) -> &[Setting] {
        &self.entries
    }

    /// A varint setting's value.
    pub fn int(&self, id: SettingId) -> Option<u64> {
        self.entries.iter().find(|e| e.id == id).and_then(|e| match e.value {
            SettingValue::Int(v) => Some(v),
            SettingValue::Bytes(_) => None,
        })
    }

    /// A bytes setting's value.
    pub fn bytes(&self, id: SettingId) -> Option<&[u8]> {
        self.entries.iter().find(|e| e.id == id).and_then(|e| match &e.value {
            SettingValue::Bytes(v) => Some(v.as_slice()),
            SettingValue::Int(_) => None,
        })
    }

    /// Appends the SETTINGS body (no frame header).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        for entry in &self.entries {
            varint::encode(entry.id.0, out);
            match &entry.value {
                SettingValue::Int(v) => varint::encode(*v, out),
                SettingValue::Bytes(b) => {
                    varint::encode(b.len() as u64, out);
                    out.extend_from_slice(b);
                }
            }
        }
    }

    /// Decodes a complete SETTINGS body.
    pub fn decode_body(mut body: &[u8]) -> Result<Self, DecodeError> {
        // In a complete body, running out of bytes is truncation, not "need more".
        let read = |bytes: &[u8]| varint::decode(bytes).map_err(|_| DecodeError::Truncated);
        let mut settings = Self::new();
        while !body.is_empty() {
            let (id, n) = read(body)?;
            body = &body[n..];
            let id = SettingId(id);
            let value = if id.takes_bytes() {
                let (len, n) = read(body)?;
                let bytes = usize::try_from(len)
                    .ok()
                    .and_then(|len| body.get(n..n.checked_add(len)?))
                    .ok_or(DecodeError::Truncated)?;
                body = &body[n + bytes.len()..];
                SettingValue::Bytes(bytes.to_vec())
            } else {
                let (value, n) = read(body)?;
                body = &body[n..];
                SettingValue::Int(value)
            };
            if settings.entries.iter().any(|e| e.id == id) {
                return Err(DecodeError::DuplicateSetting(id.0));
            }
            if settings.entries.len() == MAX_ENTRIES {
                return Err(DecodeError::TooManySettings);
            }
            settings.entries.push(Setting { id, value });
        }
        Ok(settings)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Settings {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut settings = Self::new();
        for _ in 0..u.int_in_range(0..=8)? {
            let id = SettingId(u.int_in_range(0..=varint::MAX)?);
            if id.takes_bytes() {
                let len = u.int_in_range(0..=32)?;
                settings.put(id, SettingValue::Bytes(u.bytes(len)?.to_vec()));
            } else {
                settings.put(id, SettingValue::Int(u.int_in_range(0..=varint::MAX)?));
            }
        }
        Ok(settings)
    }
}

/// One rate-limit class as advertised in `RATE_LIMITS` (spec §5.3): a token bucket of
/// `burst` tokens refilled at `per_minute` tokens a minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct RateLimit {
    /// The action class: `message`, `edit`, `react`, `typing`, `presence`, `join`, `history`,
    /// `voice`, `auth`; unknown classes are ignored by clients.
    pub class: Text<16>,
    /// Bucket size.
    pub burst: u32,
    /// Refill rate.
    pub per_minute: u32,
}

/// The settings a side advertised, read with their defaults (spec §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body the side accepts.
    pub max_frame_size: u64,
    /// Longest message text the server accepts.
    pub max_message_bytes: u64,
    /// Largest history or catch-up page.
    pub max_history_page: u64,
    /// How long the server keeps events for resume.
    pub resume_window_ms: u64,
    /// Highest voice bitrate relayed per speaker.
    pub voice_max_bitrate: u64,
    /// Voice frame duration.
    pub voice_frame_ms: u64,
    /// Optional features (`FEATURE_*`).
    pub features: u64,
    /// Voice codecs, preferred first.
    pub voice_codecs: Vec<String>,
    /// The server's rate limits.
    pub rate_limits: Vec<RateLimit>,
    /// The server's display name.
    pub server_name: Option<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_bytes: 4000,
            max_history_page: 100,
            resume_window_ms: 120_000,
            voice_max_bitrate: 64_000,
            voice_frame_ms: 20,
            features: 0,
            voice_codecs: Vec::new(),
            rate_limits: Vec::new(),
            server_name: None,
        }
    }
}

impl Limits {
    /// Reads a peer's SETTINGS over the defaults. Fails when a known setting is out of range
    /// (spec §5.2: a connection error of type PROTOCOL_VIOLATION).
    pub fn from_settings(settings: &Settings) -> Result<Self, DecodeError> {
        let d = Self::default();
        let int = |id, default| settings.int(id).unwrap_or(default);
        let limits = Self {
            max_frame_size: int(SettingId::MAX_FRAME_SIZE, d.max_frame_size),
            max_message_bytes: int(SettingId::MAX_MESSAGE_BYTES, d.max_message_bytes),
            max_history_page: int(SettingId::MAX_HISTORY_PAGE, d.max_history_page),
            resume_window_ms: int(SettingId::RESUME_WINDOW_MS, d.resume_window_ms),
            voice_max_bitrate: int(SettingId::VOICE_MAX_BITRATE, d.voice_max_bitrate),
            voice_frame_ms: int(SettingId::VOICE_FRAME_MS, d.voice_frame_ms),
            features: int(SettingId::FEATURES, d.features),
            voice_codecs: match settings.bytes(SettingId::VOICE_CODECS) {
                Some(bytes) => strict::<List<Text<16>, 8>>(bytes)?
                    .into_vec()
                    .into_iter()
                    .map(Text::into_string)
                    .collect(),
                None => Vec::new(),
            },
            rate_limits: match settings.bytes(SettingId::RATE_LIMITS) {
                Some(bytes) => strict::<List<RateLimit, 32>>(bytes)?.into_vec(),
                None => Vec::new(),
            },
            server_name: match settings.bytes(SettingId::SERVER_NAME) {
                Some(bytes) => {
                    Some(String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadUtf8)?)
                }
                None => None,
            },
        };
        if limits.max_frame_size < DEFAULT_MAX_FRAME_SIZE {
            return Err(DecodeError::Malformed("max_frame_size below 65536"));
        }
        if limits.max_history_page == 0 || limits.voice_frame_ms == 0 {
            return Err(DecodeError::Malformed("zero page size or frame duration"));
        }
        Ok(limits)
    }

    /// The SETTINGS that advertise these limits. Values equal to the defaults are still sent,
    /// so a peer never has to guess.
    pub fn to_settings(&self) -> Settings {
        let mut s = Settings::new();
        let ints = [
            (SettingId::MAX_FRAME_SIZE, self.max_frame_size),
            (SettingId::MAX_MESSAGE_BYTES, self.max_message_bytes),
            (SettingId::MAX_HISTORY_PAGE, self.max_history_page),
            (SettingId::RESUME_WINDOW_MS, self.resume_window_ms),
            (SettingId::VOICE_MAX_BITRATE, self.voice_max_bitrate),
            (SettingId::VOICE_FRAME_MS, self.voice_frame_ms),
            (SettingId::FEATURES, self.features),
        ];
        for (id, value) in ints {
            s.set_int(id, value).expect("registered even ids with varint-sized values");
        }
        if !self.voice_codecs.is_empty() {
            let codecs = self
                .voice_codecs
                .iter()
                .filter_map(|c| Text::new(c.as_str()).ok())
                .take(8)
                .collect::<Vec<Text<16>>>();
            let codecs = List::<Text<16>, 8>::new(codecs).expect("taken up to the limit");
            s.set_bytes(SettingId::VOICE_CODECS, to_vec(&codecs)).expect("odd id");
        }
        if !self.rate_limits.is_empty() {
            let limits =
                List::<RateLimit, 32>::new(self.rate_limits.iter().take(32).cloned().collect())
                    .expect("truncated to the limit");
            s.set_bytes(SettingId::RATE_LIMITS, to_vec(&limits)).expect("odd id");
        }
        if let Some(name) = &self.server_name {
            s.set_bytes(SettingId::SERVER_NAME, name.as_bytes().to_vec()).expect("odd id");
        }
        s
    }
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard cannot fail on in-memory wire types")
}

fn strict<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() { Ok(value) } else { Err(DecodeError::TrailingBytes { extra: rest.len() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_settings_of_both_kinds_are_kept_and_skipped() {
        let mut s = Settings::new();
        s.set_int(SettingId(0x40), 7).unwrap();
        s.set_bytes(SettingId(0x5f), b"grease".to_vec()).unwrap();
        s.set_int(SettingId::MAX_MESSAGE_BYTES, 100).unwrap();
        let mut body = Vec::new();
        s.encode_body(&mut body);
        let back = Settings::decode_body(&body).unwrap();
        assert_eq!(back, s);
        assert_eq!(Limits::from_settings(&back).unwrap().max_message_bytes, 100);
    }

    #[test]
    fn limits_round_trip_through_settings() {
        let limits = Limits {
            voice_codecs: vec!["opus".into()],
            rate_limits: vec![RateLimit {
                class: Text::new("message").unwrap(),
                burst: 5,
                per_minute: 60,
            }],
            server_name: Some("banter".into()),
            features: FEATURE_VOICE_DATAGRAMS,
            ..Limits::default()
        };
        assert_eq!(Limits::from_settings(&limits.to_settings()).unwrap(), limits);
    }

    #[test]
    fn duplicates_truncation_and_bad_values_are_rejected() {
        assert_eq!(
            Settings::decode_body(&[0x04, 1, 0x04, 2]),
            Err(DecodeError::DuplicateSetting(4))
        );
        assert_eq!(Settings::decode_body(&[0x05, 3, b'a']), Err(DecodeError::Truncated));
        assert_eq!(Settings::decode_body(&[0x04]), Err(DecodeError::Truncated));
        let mut s = Settings::new();
        s.set_int(SettingId::MAX_FRAME_SIZE, 100).unwrap();
        assert!(Limits::from_settings(&s).is_err());
        assert_eq!(s.set_int(SettingId::SERVER_NAME, 1), Err(WrongKind(SettingId::SERVER_NAME)));
    }
}
