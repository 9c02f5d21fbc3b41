//! banterd's configuration: defaults that work with zero configuration, a TOML file, and a
//! `BANTER_*` environment variable for every key (the variable wins over the file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The default UDP port (spec §2.1).
pub const DEFAULT_PORT: u16 = 4433;

/// One rate-limit bucket (spec §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// Bucket size.
    pub burst: u32,
    /// Refill per minute.
    pub per_minute: u32,
}

impl FromStr for Bucket {
    type Err = String;
    /// `burst/per_minute`, e.g. `10/120`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (burst, per_minute) = s.split_once('/').ok_or("expected BURST/PER_MINUTE")?;
        Ok(Self {
            burst: burst.trim().parse().map_err(|e| format!("burst: {e}"))?,
            per_minute: per_minute.trim().parse().map_err(|e| format!("per_minute: {e}"))?,
        })
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where banterd keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Embedded sled in `data_dir/db` (one node, zero configuration).
    Sled,
    /// A PostgreSQL-compatible database at `database_url` (shared by a cluster's nodes).
    Postgres,
}

/// How nodes hear of each other's commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// One node: nobody to tell.
    Local,
    /// NATS at `nats_url` (several nodes on one `postgres` store).
    Nats,
}

/// `FromStr` (for `BANTER_*` variables and flags) from the enum's clap value names, one
/// spelling for both.
macro_rules! from_value_names {
    ($($ty:ty: $what:literal),* $(,)?) => {$(
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <Self as clap::ValueEnum>::from_str(s, false).map_err(|_| {
                    let names: Vec<String> = <Self as clap::ValueEnum>::value_variants()
                        .iter()
                        .filter_map(|v| clap::ValueEnum::to_possible_value(v))
                        .map(|v| v.get_name().to_owned())
                        .collect();
                    format!("unknown {} {s:?} ({})", $what, names.join(", "))
                })
            }
        }
    )*};
}

from_value_names!(LogFormat: "log format", StoreKind: "store", BusKind: "bus");

macro_rules! config {
    ($($(#[doc = $doc:literal])+ $field:ident: $ty:ty = $default:expr;)*) => {
        /// The whole configuration. See `banterd init` for a commented file.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            $($(#[doc = $doc])+ pub $field: $ty,)*
            /// Rate limits per action class (spec §5.3); `BANTER_RATE_<CLASS>=burst/per_minute`.
            pub rate: BTreeMap<String, Bucket>,
        }

        impl Default for Config {
            fn default() -> Self {
                Self { $($field: $default,)* rate: default_rates() }
            }
        }

        impl Config {
            /// Applies `BANTER_<KEY>` variables from `vars` over the current values.
            pub fn apply_env(
                &mut self,
                vars: impl Iterator<Item = (String, String)>,
            ) -> Result<(), String> {
                for (name, value) in vars {
                    let Some(key) = name.strip_prefix("BANTER_") else { continue };
                    let key = key.to_ascii_lowercase();
                    match key.as_str() {
                        $(stringify!($field) => {
                            self.$field = parse_env(&value).map_err(|e| format!("{name}: {e}"))?;
                        })*
                        _ => {
                            if let Some(class) = key.strip_prefix("rate_") {
                                let bucket = value.parse().map_err(|e| format!("{name}: {e}"))?;
                                self.rate.insert(class.to_owned(), bucket);
                            }
                            // Other BANTER_* variables belong to other tools (the client).
                        }
                    }
                }
                Ok(())
            }

            /// A commented TOML file with every key at its default.
            pub fn commented_template() -> String {
                let defaults = Self::default();
                let mut out = String::from(
                    "# banterd configuration. Every key can also be set with a BANTER_<KEY>\n\
                     # environment variable (e.g. BANTER_LISTEN), which wins over this file.\n\n",
                );
                $(
                    $(out.push_str(&format!("#{}\n", $doc));)+
                    let value = toml::Value::try_from(&defaults.$field).expect("config values are TOML");
                    out.push_str(&format!("{} = {}\n\n", stringify!($field), value));
                )*
                out.push_str("# Rate limits per action class: burst size and refill per minute.\n");
                for (class, bucket) in &defaults.rate {
                    out.push_str(&format!(
                        "[rate.{class}]\nburst = {}\nper_minute = {}\n\n",
                        bucket.burst, bucket.per_minute
                    ));
                }
                out
            }

            /// The configuration reference (`docs/configuration.md`): every key, its
            /// environment variable, default and meaning.
            pub fn reference_markdown() -> String {
                let defaults = Self::default();
                let mut out = String::from(REFERENCE_HEAD);
                $(
                    let value = toml::Value::try_from(&defaults.$field).expect("config values are TOML");
                    let doc: Vec<&str> = vec![$($doc.trim()),+];
                    out.push_str(&format!(
                        "| `{}` | `BANTER_{}` | `{}` | {} |\n",
                        stringify!($field),
                        stringify!($field).to_ascii_uppercase(),
                        value,
                        doc.join(" ").replace('|', "\\|"),
                    ));
                )*
                out.push_str(REFERENCE_RATES);
                for (class, bucket) in &defaults.rate {
                    out.push_str(&format!(
                        "| `{class}` | `BANTER_RATE_{}` | {} | {} |\n",
                        class.to_ascii_uppercase(),
                        bucket.burst,
                        bucket.per_minute
                    ));
                }
                out
            }
        }
    };
}

const REFERENCE_HEAD: &str = "\
# banterd configuration reference

Generated from `server/src/config.rs` (`cargo test -p banter-server config` fails when this file
is stale; `BANTER_BLESS=1` rewrites it). `banterd init` writes the same keys as a commented
TOML file.

Precedence: defaults, then the file given with `--config` (or `BANTER_CONFIG`), then
`BANTER_<KEY>` environment variables, then the `run` flags `--data-dir`, `--listen` and
`--log-format`. Unknown keys in the file are an error.

SIGHUP reloads the certificate (`cert.pem`, `cert-key.pem` in the data dir) for new
connections and the `[rate.*]` limits for everyone; banterd logs which other changed keys
need a restart.

| key | environment | default | meaning |
|---|---|---|---|
";

const REFERENCE_RATES: &str = "
## Rate limits

Token buckets per action class (spec §5.3): `burst` requests at once, refilled at
`per_minute`. Authenticated requests draw from the account's buckets (shared by its
devices); authentication attempts also from a bucket per client address (`auth`). In the
file: `[rate.CLASS]` with `burst = N` and `per_minute = M`; in the environment:
`BANTER_RATE_CLASS=N/M`.

| class | environment | burst | per minute |
|---|---|---|---|
";

fn parse_env<T: FromStr>(value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| e.to_string())
}

fn default_rates() -> BTreeMap<String, Bucket> {
    [
        ("audit", 10, 60),
        ("auth", 10, 30),
        ("directory", 10, 60),
        ("keys", 10, 30),
        ("edit", 20, 120),
        ("history", 60, 600),
        ("join", 20, 60),
        ("message", 20, 300),
        ("presence", 10, 60),
        ("react", 30, 300),
        ("search", 10, 60),
        ("session", 20, 60),
        ("typing", 10, 60),
        ("voice", 20, 120),
    ]
    .into_iter()
    .map(|(class, burst, per_minute)| (class.to_owned(), Bucket { burst, per_minute }))
    .collect()
}

config! {
    /// UDP address to listen on. Loopback by default: expose it deliberately.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT));
    /// Where the database, the server key and the certificate live.
    data_dir: PathBuf = PathBuf::from("banter-data");
    /// The storage engine: `sled` (embedded, in the data dir) or `postgres` (at
    /// `database_url`; the data dir then keeps the keys, certificate and shared files).
    store: StoreKind = StoreKind::Sled;
    /// The database for `store = "postgres"`: a `postgres://USER@HOST:PORT/DB` URL or
    /// `host=... port=... user=... dbname=...` settings. Connections are not encrypted:
    /// keep the database on a private network or loopback.
    database_url: String = String::new();
    /// This node's name in metrics (the `node` label of every series); empty: the `listen`
    /// address as configured. Name each node of a cluster.
    node_name: String = String::new();
    /// Where shared files' contents live; empty: `files` in the data dir. The nodes of a
    /// cluster share one directory (a network file system all of them mount): see
    /// docs/cluster.md.
    files_dir: PathBuf = PathBuf::new();
    /// How nodes hear of each other's commits: `local` (one node) or `nats` (a cluster on
    /// one `postgres` store; docs/cluster.md).
    bus: BusKind = BusKind::Local;
    /// The NATS server(s) for `bus = "nats"`, e.g. `nats://127.0.0.1:4222`.
    nats_url: String = String::new();
    /// With `bus = "nats"`: how often the rooms this node's sessions are in are checked
    /// against the database's heads, so that entries whose announcement was lost still
    /// arrive (the bound on that delay).
    bus_head_check_ms: u64 = 1000;
    /// Display name sent to clients in SETTINGS.
    server_name: String = "banter".to_owned();
    /// Log format: text or json.
    log_format: LogFormat = LogFormat::Text;
    /// Most connections at once; beyond it new ones are refused.
    max_connections: u32 = 10_000;
    /// Most connections at once from one IP address.
    max_connections_per_ip: u32 = 64;
    /// Above this many connections in handshake, new clients must prove their address (QUIC
    /// retry) first.
    retry_above_incoming: u32 = 256;
    /// Bytes of kernel buffer for the UDP socket, each way, so that bursts (a reconnect
    /// storm's handshakes, a busy voice room) are not dropped before banterd reads them. The
    /// kernel caps it at net.core.rmem_max / wmem_max; the size it grants is logged.
    udp_buffer_bytes: usize = 4 * 1024 * 1024;
    /// Milliseconds a connection may stay unauthenticated.
    auth_timeout_ms: u64 = 10_000;
    /// Milliseconds a peer may keep the server's control stream from opening or draining
    /// (a uni-stream limit of 0, or a client that stops reading) before it is closed.
    control_stall_timeout_ms: u64 = 10_000;
    /// Milliseconds a request's answer may take to be taken by the client before the stream
    /// is reset (a client that never reads its HISTORY pages holds nothing for ever).
    answer_write_timeout_ms: u64 = 10_000;
    /// Milliseconds of silence after which a connection is dropped.
    idle_timeout_ms: u64 = 30_000;
    /// Milliseconds between QUIC keep-alives.
    keep_alive_ms: u64 = 10_000;
    /// Lifetime of access tokens, seconds.
    access_token_ttl_s: u64 = 900;
    /// Lifetime of a login session's refresh chain, seconds.
    refresh_token_ttl_s: u64 = 30 * 24 * 3600;
    /// Seconds after a REFRESH during which the refresh token it spent still returns the
    /// same new tokens (the answer may have been lost); later it counts as reuse.
    refresh_grace_s: u64 = 30;
    /// Longest message text in bytes (at most 16384).
    max_message_bytes: u64 = 4000;
    /// Different reactions one message may carry (HISTORY shows up to 64).
    max_reactions_per_message: u32 = 64;
    /// Edits one message may have.
    max_edits_per_message: u32 = 100;
    /// Largest HISTORY / CATCH_UP page.
    max_history_page: u64 = 100;
    /// How long a disconnected session stays resumable, milliseconds.
    resume_window_ms: u64 = 120_000;
    /// How long a dropped connection's user still shows present, milliseconds: a client back
    /// within it is never shown offline (a reconnect storm sends no presence). A client that
    /// closes cleanly, or a session the server ends, goes offline at once. 0 turns it off; at
    /// most 3600000.
    presence_grace_ms: u64 = 5_000;
    /// Bytes of events sent and kept per session for resume, counting ~90 bytes of
    /// bookkeeping per event; beyond it the oldest go (events not sent yet always stay).
    replay_buffer_bytes: usize = 1024 * 1024;
    /// Bytes of events not yet sent to a connection before its rooms are paused (slow
    /// consumer), counted as `replay_buffer_bytes` counts them.
    live_backlog_bytes: usize = 512 * 1024;
    /// Sessions (live, or detached and resumable) one login may hold; at the cap a new HELLO
    /// ends the one detached longest, or when all are live the oldest (its connection is
    /// closed with SESSION_REPLACED).
    max_sessions_per_login: u32 = 8;
    /// Sessions one user may hold across all their logins (as above).
    max_sessions_per_user: u32 = 32;
    /// Rooms one user may be a member of, direct rooms included (every way in counts).
    max_rooms_per_user: u32 = 1000;
    /// Login keys one user may register with KEY_ADD (at most 64, what KEY_LIST_PAGE holds).
    max_keys_per_user: u32 = 16;
    /// Concurrent password hashes (argon2 uses argon2_memory_kib each); 0 = number of cores.
    hash_concurrency: usize = 0;
    /// argon2id memory cost in KiB (OWASP minimum: 19456).
    argon2_memory_kib: u32 = 19_456;
    /// argon2id iterations (OWASP: 2 with 19 MiB).
    argon2_iterations: u32 = 2;
    /// Most writes in one group commit.
    commit_max_group: usize = 4096;
    /// Full-text search: an index in `search/` in the data dir (a cluster: tables in its
    /// PostgreSQL), fed as entries commit; off, SEARCH is UNSUPPORTED_EXTENSION.
    search: bool = true;
    /// Memory sled may fill with cached database pages, MiB (sled only; sled treats it as
    /// approximate, and keeps part of its tree resident beyond it: docs/reliability.md, soak).
    sled_cache_mb: u64 = 256;
    /// Largest file an upload may share, in bytes.
    max_upload_bytes: u64 = 25 * 1024 * 1024;
    /// Bytes of files one user may share at once (deleting a shared file gives its bytes
    /// back).
    max_shared_bytes_per_user: u64 = 1024 * 1024 * 1024;
    /// Bytes of unfinished uploads one user may hold.
    max_partial_bytes_per_user: u64 = 64 * 1024 * 1024;
    /// Free space, in MiB, kept on the data dir's disk (with sled) and the files dir's: below
    /// it, writes and uploads are refused with SERVER_BUSY (retryable) while reads go on, so
    /// that the disk never fills in the middle of a commit; they resume by themselves when
    /// space returns. 0: nothing is kept back.
    min_free_disk_mb: u64 = 64;
    /// Serve `banterd user|room|audit|backup|check` on `admin.sock` in the data dir (mode
    /// 0600: only this OS user). Off: those commands need the server stopped.
    admin_socket: bool = true;
    /// Serve Prometheus `/metrics` and `/healthz` over HTTP on `metrics_listen`.
    metrics: bool = false;
    /// TCP address of the metrics listener. Loopback by default: metrics name rooms' traffic,
    /// so expose them deliberately (behind a proxy with access control).
    metrics_listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9464));
}

impl Config {
    /// The node's name in metrics (`node_name`, or the `listen` address).
    pub fn node(&self) -> String {
        if self.node_name.is_empty() { self.listen.to_string() } else { self.node_name.clone() }
    }

    /// The directory of shared files' contents (`files_dir`, or `files` in the data dir).
    pub fn files_root(&self) -> PathBuf {
        if self.files_dir.as_os_str().is_empty() {
            self.data_dir.join(crate::files::DIR)
        } else {
            self.files_dir.clone()
        }
    }

    /// Defaults, then the file (if any), then the environment.
    pub fn load(
        file: Option<&Path>,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                let mut config: Self =
                    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                // Classes missing from the file keep their defaults.
                for (class, bucket) in default_rates() {
                    config.rate.entry(class).or_insert(bucket);
                }
                config
            }
            None => Self::default(),
        };
        config.apply_env(vars)?;
        if config.max_message_bytes > banter_protocol::message::max::MESSAGE_TEXT as u64 {
            return Err("max_message_bytes is at most 16384".into());
        }
        if config.presence_grace_ms > 3_600_000 {
            return Err("presence_grace_ms is at most 3600000 (an hour)".into());
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_keys_take_their_value_names_and_say_which_they_are() {
        assert_eq!("postgres".parse::<StoreKind>(), Ok(StoreKind::Postgres));
        assert_eq!("nats".parse::<BusKind>(), Ok(BusKind::Nats));
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(
            "mysql".parse::<StoreKind>(),
            Err("unknown store \"mysql\" (sled, postgres)".to_owned())
        );
    }

    #[test]
    fn the_commented_template_parses_back_to_the_defaults() {
        let parsed: Config = toml::from_str(&Config::commented_template()).unwrap();
        assert_eq!(toml::to_string(&parsed).unwrap(), toml::to_string(&Config::default()).unwrap());
    }

    #[test]
    fn the_configuration_reference_in_docs_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let generated = Config::reference_markdown();
        if std::env::var_os("BANTER_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/configuration.md is stale: run BANTER_BLESS=1 cargo test -p banter-server config"
        );
    }

    #[test]
    fn environment_variables_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banterd.toml");
        std::fs::write(
            &path,
            "max_message_bytes = 100\n[rate.message]\nburst = 1\nper_minute = 2\n",
        )
        .unwrap();
        let vars = [
            ("BANTER_LISTEN".to_owned(), "127.0.0.1:9999".to_owned()),
            ("BANTER_RATE_TYPING".to_owned(), "3/4".to_owned()),
            ("BANTER_SERVER".to_owned(), "client-side variable".to_owned()),
        ];
        let config = Config::load(Some(&path), vars.into_iter()).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.max_message_bytes, 100);
        assert_eq!(config.rate["message"], Bucket { burst: 1, per_minute: 2 });
        assert_eq!(config.rate["typing"], Bucket { burst: 3, per_minute: 4 });
        assert_eq!(config.rate["auth"], default_rates()["auth"]);
        let bad = [("BANTER_MAX_CONNECTIONS".to_owned(), "many".to_owned())];
        assert!(Config::load(None, bad.into_iter()).is_err());
        let too_long = [("BANTER_PRESENCE_GRACE_MS".to_owned(), "3600001".to_owned())];
        assert!(Config::load(None, too_long.into_iter()).is_err());
    }
}
