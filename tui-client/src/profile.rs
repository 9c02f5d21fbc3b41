//! What `banter` keeps between runs: per-profile credentials and the pinned certificates of
//! known servers (trust on first use, as ssh does), under `$XDG_DATA_HOME/banter` with mode
//! 0600.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use banter_client::Credentials;
use banter_protocol::ids::{SessionId, UserId};
use serde::{Deserialize, Serialize};

/// `$XDG_DATA_HOME/banter` (default `~/.local/share/banter`).
pub(crate) fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("banter")
}

/// `$XDG_STATE_HOME/banter` (default `~/.local/state/banter`): the TUI's log.
pub(crate) fn state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join("banter")
}

/// The TUI's settings, from `$XDG_CONFIG_HOME/banter/config.toml` (all optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Settings {
    /// Scroll with the mouse wheel (F2 toggles it at run time; off lets the terminal select
    /// text).
    pub(crate) mouse: bool,
    /// Ring the terminal bell on mentions.
    pub(crate) bell: bool,
    /// Words besides your name that count as a mention (highlighted, ring, notify).
    pub(crate) highlight: Vec<String>,
    /// Desktop notifications for mentions, through the terminal: `"off"` (the default),
    /// `"osc777"` (foot, kitty, WezTerm, urxvt, VTE terminals) or `"osc9"` (iTerm2,
    /// Windows Terminal, ConEmu).
    pub(crate) notify: Notify,
}

/// How the terminal is asked for a desktop notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Notify {
    #[default]
    Off,
    Osc777,
    Osc9,
}

impl Default for Settings {
    fn default() -> Self {
        Self { mouse: true, bell: true, highlight: Vec::new(), notify: Notify::Off }
    }
}

impl Settings {
    pub(crate) fn load() -> anyhow::Result<Self> {
        let path = xdg("XDG_CONFIG_HOME", ".config").join("banter").join("config.toml");
        match fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(fallback),
    }
}

/// One profile: a server and the account logged in on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Profile {
    pub(crate) server: String,
    pub(crate) username: String,
    pub(crate) user: u64,
    pub(crate) session: u64,
    pub(crate) access_token: String,
    pub(crate) access_expires: u64,
    pub(crate) refresh_token: String,
    /// Rooms by name (lowercase) as last resolved, so that `banter send ROOM` needs no
    /// lookup round trip; a stale entry is looked up again.
    #[serde(default)]
    pub(crate) rooms: BTreeMap<String, u64>,
}

impl Profile {
    pub(crate) fn new(server: &str, username: &str, credentials: &Credentials) -> Self {
        Self {
            server: server.to_owned(),
            username: username.to_owned(),
            user: credentials.user.0,
            session: credentials.session.0,
            access_token: hex(&credentials.access_token),
            access_expires: credentials.access_expires,
            refresh_token: hex(&credentials.refresh_token),
            rooms: BTreeMap::new(),
        }
    }

    pub(crate) fn update(&mut self, credentials: &Credentials) {
        let rooms = std::mem::take(&mut self.rooms);
        *self = Self { rooms, ..Self::new(&self.server, &self.username, credentials) };
    }

    pub(crate) fn credentials(&self) -> Option<Credentials> {
        Some(Credentials {
            user: UserId(self.user),
            session: SessionId(self.session),
            access_token: unhex(&self.access_token)?,
            access_expires: self.access_expires,
            refresh_token: unhex(&self.refresh_token)?,
        })
    }

    fn path(name: &str) -> PathBuf {
        data_dir().join("profiles").join(format!("{name}.toml"))
    }

    pub(crate) fn load(name: &str) -> anyhow::Result<Option<Self>> {
        let path = Self::path(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(toml::from_str(&text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn save(&self, name: &str) -> anyhow::Result<()> {
        write_private(&Self::path(name), toml::to_string(self)?.as_bytes())
    }

    pub(crate) fn delete(name: &str) -> anyhow::Result<()> {
        match fs::remove_file(Self::path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Pinned certificate fingerprints by server address.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct KnownServers {
    #[serde(default)]
    servers: BTreeMap<String, String>,
}

impl KnownServers {
    fn path() -> PathBuf {
        data_dir().join("known_servers.toml")
    }

    pub(crate) fn load() -> anyhow::Result<Self> {
        match fs::read_to_string(Self::path()) {
            Ok(text) => Ok(toml::from_str(&text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn pin(&self, server: &str) -> Option<[u8; 32]> {
        self.servers.get(server).and_then(|f| banter_client::tls::parse_fingerprint(f))
    }

    pub(crate) fn remember(&mut self, server: &str, fingerprint: &[u8; 32]) -> anyhow::Result<()> {
        self.servers.insert(server.to_owned(), format_fingerprint(fingerprint));
        write_private(&Self::path(), toml::to_string(self)?.as_bytes())
    }
}

/// `AB:CD:...` upper-case hex, as banterd prints it.
pub(crate) fn format_fingerprint(fingerprint: &[u8; 32]) -> String {
    fingerprint.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temp, path)?;
    Ok(())
}
