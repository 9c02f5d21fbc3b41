//! `banterd`: the Banter reference server.
//!
//! `banterd run` serves with zero configuration (a data dir `./banter-data`, a self-signed
//! certificate, loopback on UDP 4433); `banterd init` writes a commented configuration file.
//! The operator's commands (`user`, `room`, `audit`, `backup`, `restore`, `check`) go to the
//! running server over its admin socket, or open the data dir themselves when none runs.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use banter_server::Server;
use banter_server::admin::{self, AdminCtx, AdminRequest, ServerRole, socket};
use banter_server::auth::Passwords;
use banter_server::config::{BusKind, Config, LogFormat, StoreKind};
use banter_server::store::Store;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "banterd", version, about = "The Banter reference server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The cluster keys as flags of `banterd run` (docs/cluster.md); each overrides its key.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Storage engine (the `store` key).
    #[arg(long, value_enum)]
    store: Option<StoreKind>,
    /// PostgreSQL settings or URL (the `database_url` key).
    #[arg(long)]
    database_url: Option<String>,
    /// Bus between nodes (the `bus` key).
    #[arg(long, value_enum)]
    bus: Option<BusKind>,
    /// NATS server(s) (the `nats_url` key).
    #[arg(long)]
    nats_url: Option<String>,
    /// This node's name in metrics (the `node_name` key).
    #[arg(long)]
    node_name: Option<String>,
    /// Shared files' directory (the `files_dir` key).
    #[arg(long)]
    files_dir: Option<PathBuf>,
}

impl ClusterArgs {
    fn apply(&self, config: &mut Config) {
        config.store = self.store.unwrap_or(config.store);
        config.bus = self.bus.unwrap_or(config.bus);
        let keys = [
            (&self.database_url, &mut config.database_url),
            (&self.nats_url, &mut config.nats_url),
            (&self.node_name, &mut config.node_name),
        ];
        for (flag, key) in keys {
            if let Some(value) = flag {
                key.clone_from(value);
            }
        }
        if let Some(dir) = &self.files_dir {
            config.files_dir.clone_from(dir);
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve until SIGINT or SIGTERM.
    Run {
        /// Configuration file (TOML); every key can also be a BANTER_<KEY> variable.
        #[arg(long, env = "BANTER_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (database, server key, certificate).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// UDP address to listen on (default 127.0.0.1:4433).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Log format.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Write a commented configuration file with every default.
    Init {
        /// Where to write it.
        #[arg(default_value = "banterd.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        target: Target,
    },
    /// Manage rooms.
    Room {
        #[command(subcommand)]
        command: RoomCommand,
        #[command(flatten)]
        target: Target,
    },
    /// Show the newest audit log entries.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        target: Target,
    },
    /// Write a consistent backup into a new directory, also while the server runs.
    Backup {
        /// The backup directory (must not exist, or be empty).
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Restore a backup into a new data dir, then check it. The server must not be running on
    /// that data dir.
    Restore {
        /// The backup directory.
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Verify the database: records decode, room logs are gap-free, indexes agree.
    Check {
        #[command(flatten)]
        target: Target,
    },
    /// Rebuild the search index from the room logs (banterd stopped). banterd also rebuilds
    /// it by itself when it is missing or unreadable.
    Reindex {
        #[command(flatten)]
        target: Target,
    },
    /// Create or upgrade the configured store's schema (refusing a newer one), and say which
    /// version it has. `run` does the same when it starts.
    Migrate {
        #[command(flatten)]
        target: Target,
    },
    /// Replace the token-signing key (`server.key`): the old one is kept as
    /// `server.key.previous` and still verifies the tokens it signed. Takes effect at the next
    /// start; in a cluster, copy both files to every node, then restart them one by one.
    RotateKey {
        #[command(flatten)]
        target: Target,
    },
    /// Copy a single node's sled database (its data dir) into the configured store, which
    /// must be empty (PostgreSQL, to move a community into a cluster); then check it.
    Import {
        /// The data dir of the sled node (stopped).
        #[arg(long)]
        from_sled: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

/// Which server's data an operator command is about.
#[derive(Debug, Args)]
struct Target {
    /// Configuration file (for the data dir and password hashing settings).
    #[arg(long, env = "BANTER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input (prompted on a terminal).
    Add {
        username: String,
        /// Server-wide role.
        #[arg(long, value_enum, default_value = "member")]
        role: ServerRole,
    },
    /// List accounts.
    List,
    /// Set a new password (read like `add`'s) and end the account's logins.
    Passwd { username: String },
    /// Disable an account: its connections close and it can no longer log in.
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
    /// Set an account's server-wide role.
    Promote {
        username: String,
        #[arg(long, value_enum)]
        role: ServerRole,
    },
}

#[derive(Debug, Subcommand)]
enum RoomCommand {
    /// List every room.
    List,
    /// Create a channel.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        topic: String,
        #[arg(long, default_value = "")]
        category: String,
        /// Only members see it.
        #[arg(long)]
        private: bool,
        /// It carries voice.
        #[arg(long)]
        voice: bool,
    },
    /// Archive a channel: read-only for everyone, gone from public listings.
    Archive { name: String },
    /// Bring an archived channel back.
    Unarchive { name: String },
}

/// glibc's malloc serves a block of 128 KiB or more with its own mapping, returned to the
/// system at free, until such a block is freed: then it raises that threshold to the
/// block's size (up to 32 MiB), and later blocks that size come from per-thread arenas that
/// hardly shrink. The search indexer's and its merges' buffers are such blocks, freed every
/// second: under the soak test's load on two cores banterd's RSS climbed by about 150 MB in
/// a minute, and stays near 30 MB with the threshold fixed at its default (mimalloc instead
/// held it flat near 110 MB). `MALLOC_MMAP_THRESHOLD_` in the environment still decides.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fix_malloc_mmap_threshold() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets a parameter of glibc's allocator, which guards it with
        // its own lock; called first thing in main, before other threads exist.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    }
}

fn main() -> anyhow::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fix_malloc_mmap_threshold();
    match Cli::parse().command {
        Command::Init { path, force } => {
            if path.exists() && !force {
                anyhow::bail!("{} exists (use --force to overwrite)", path.display());
            }
            std::fs::write(&path, Config::commented_template())
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Run { config: file, data_dir, listen, log_format, cluster } => {
            // Read again on SIGHUP, with the same flags on top.
            let load = move || -> anyhow::Result<Config> {
                let mut config =
                    Config::load(file.as_deref(), std::env::vars()).map_err(anyhow::Error::msg)?;
                if let Some(dir) = &data_dir {
                    config.data_dir.clone_from(dir);
                }
                if let Some(listen) = listen {
                    config.listen = listen;
                }
                if let Some(format) = log_format {
                    config.log_format = format;
                }
                cluster.apply(&mut config);
                Ok(config)
            };
            let config = load()?;
            init_tracing(config.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(run(config, load))
        }
        Command::User { command, target } => {
            let request = match command {
                UserCommand::Add { username, role } => {
                    let password = read_password(&format!("password for {username}: "))?;
                    AdminRequest::UserAdd { username, password, role }
                }
                UserCommand::List => AdminRequest::UserList,
                UserCommand::Passwd { username } => {
                    let password = read_password(&format!("new password for {username}: "))?;
                    AdminRequest::UserPasswd { username, password }
                }
                UserCommand::Disable { username } => AdminRequest::UserDisable { username },
                UserCommand::Enable { username } => AdminRequest::UserEnable { username },
                UserCommand::Promote { username, role } => {
                    AdminRequest::UserPromote { username, role }
                }
            };
            administer(&target, request)
        }
        Command::Room { command, target } => {
            let request = match command {
                RoomCommand::List => AdminRequest::RoomList,
                RoomCommand::Create { name, topic, category, private, voice } => {
                    AdminRequest::RoomCreate { name, topic, category, private, voice }
                }
                RoomCommand::Archive { name } => AdminRequest::RoomArchive { name, archived: true },
                RoomCommand::Unarchive { name } => {
                    AdminRequest::RoomArchive { name, archived: false }
                }
            };
            administer(&target, request)
        }
        Command::Audit { limit, target } => administer(&target, AdminRequest::Audit { limit }),
        Command::Backup { dir, target } => {
            let dir = std::path::absolute(&dir).context("resolving the backup directory")?;
            administer(&target, AdminRequest::Backup { dir })
        }
        Command::Check { target } => administer(&target, AdminRequest::Check),
        Command::Migrate { target } => {
            let config = target.config()?;
            let engine = banter_server::open_engine(&config)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let store = Store::open(engine, config.commit_max_group)?;
                let schema: Option<u32> = store.get(&banter_server::store::schema_key())?;
                store.close().await;
                println!("schema version {}", schema.unwrap_or_default());
                anyhow::Ok(())
            })
        }
        Command::Reindex { target } => {
            let config = target.config()?;
            let engine =
                banter_server::open_engine(&config).map_err(|e| in_use(&config.data_dir, e))?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let store = Store::open(engine, config.commit_max_group)?;
                let started = std::time::Instant::now();
                // Blocking on this one-thread runtime is fine: nothing else runs on it.
                let documents = banter_server::reindex(&config, store.clone());
                store.close().await;
                let documents = documents.map_err(anyhow::Error::msg)?;
                println!(
                    "search index rebuilt: {documents} documents in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                anyhow::Ok(())
            })
        }
        Command::RotateKey { target } => {
            let config = target.config()?;
            banter_server::identity::rotate_signing_key(&config.data_dir)
                .with_context(|| format!("rotating the key in {}", config.data_dir.display()))?;
            println!(
                "new signing key in {0}/server.key (the old one in {0}/server.key.previous); \
                 restart banterd to use it",
                config.data_dir.display()
            );
            Ok(())
        }
        Command::Import { from_sled, target } => {
            let config = target.config()?;
            anyhow::ensure!(
                config.store != StoreKind::Sled || config.data_dir != from_sled,
                "the source and the target are the same data dir"
            );
            let engine = banter_server::open_engine(&config)?;
            let copied = admin::import_from_sled(&from_sled, &*engine)?;
            println!("imported {copied} records from {}", from_sled.display());
            drop(engine);
            administer(&target, AdminRequest::Check)
        }
        Command::Restore { dir, target } => {
            let config = target.config()?;
            let manifest = admin::restore(&dir, &config.data_dir)?;
            println!("restored {} records into {}", manifest.records, config.data_dir.display());
            administer(&target, AdminRequest::Check)
        }
    }
}

impl Target {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config =
            Config::load(self.config.as_deref(), std::env::vars()).map_err(anyhow::Error::msg)?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}

/// Reads a password: prompted twice on a terminal, else one line of standard input.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt)?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Runs an operator command in the banterd serving the data dir, or, when none does, here.
fn administer(target: &Target, request: AdminRequest) -> anyhow::Result<()> {
    let config = target.config()?;
    let answer = match socket::call(&config.data_dir, &request)? {
        Some(socket::Reply::Ok(text)) => text,
        Some(socket::Reply::Failed(error)) => anyhow::bail!(error),
        None => offline(&config, request)?,
    };
    println!("{}", answer.trim_end());
    Ok(())
}

fn offline(config: &Config, request: AdminRequest) -> anyhow::Result<String> {
    if config.store == StoreKind::Sled {
        anyhow::ensure!(
            config.data_dir.join("db").exists(),
            "no database in {} (`banterd run` creates one)",
            config.data_dir.display()
        );
    }
    let engine = banter_server::open_engine(config).map_err(|e| in_use(&config.data_dir, e))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(engine, config.commit_max_group)?;
        let passwords = Passwords::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.hash_concurrency,
        )
        .map_err(anyhow::Error::msg)?;
        let ctx = AdminCtx::offline(store.clone(), passwords, config);
        let result = ctx.execute(request).await;
        store.close().await;
        Ok(result?)
    })
}

/// sled refuses a database another process has open: say which.
fn in_use(data_dir: &Path, error: banter_server::store::StoreError) -> anyhow::Error {
    anyhow::anyhow!(
        "{error} (if a banterd with admin_socket off serves {}, stop it first)",
        data_dir.display()
    )
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(config: Config, reload: impl Fn() -> anyhow::Result<Config>) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let mut signals = Signals::register()?;
    let server = Server::start(config).await.context("starting banterd")?;
    println!("banterd listening on {} (UDP)", server.local_addr());
    println!("data dir: {}", data_dir.display());
    if let Some(metrics) = server.metrics_addr() {
        println!("metrics: http://{metrics}/metrics and /healthz");
    }
    println!("certificate SHA-256 fingerprint: {}", server.fingerprint());
    while let Signal::Reload = signals.next().await? {
        match reload().and_then(|config| Ok(server.reload(&config)?)) {
            Ok(reloaded) => {
                tracing::info!(
                    fingerprint = %reloaded.fingerprint,
                    "reloaded the certificate and rate limits"
                );
                if !reloaded.need_restart.is_empty() {
                    tracing::warn!(keys = ?reloaded.need_restart, "changed; they take effect at the next restart");
                }
            }
            Err(error) => tracing::error!(%error, "reload failed; still serving as before"),
        }
    }
    tracing::info!("shutting down: GO_AWAY, draining, flushing storage");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

enum Signal {
    /// SIGINT or SIGTERM.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The signals banterd handles, registered once so that none is missed between two waits.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                hangup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) -> anyhow::Result<Signal> {
        #[cfg(unix)]
        {
            tokio::select! {
                result = tokio::signal::ctrl_c() => result.map(|()| Signal::Stop).map_err(Into::into),
                _ = self.term.recv() => Ok(Signal::Stop),
                _ = self.hangup.recv() => Ok(Signal::Reload),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await?;
            Ok(Signal::Stop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_takes_the_cluster_keys_as_flags() {
        let cli = Cli::try_parse_from([
            "banterd",
            "run",
            "--store",
            "postgres",
            "--database-url",
            "host=db user=banter",
            "--bus",
            "nats",
            "--nats-url",
            "nats://bus:4222",
            "--node-name",
            "node-a",
            "--files-dir",
            "/mnt/files",
        ])
        .unwrap();
        let Command::Run { cluster, .. } = cli.command else { panic!("not run") };
        let mut config = Config::default();
        cluster.apply(&mut config);
        assert_eq!(config.store, StoreKind::Postgres);
        assert_eq!(config.database_url, "host=db user=banter");
        assert_eq!(config.bus, BusKind::Nats);
        assert_eq!(config.nats_url, "nats://bus:4222");
        assert_eq!(config.node(), "node-a");
        assert_eq!(config.files_root(), PathBuf::from("/mnt/files"));
        // Without flags the keys keep what the file and the environment said.
        let Command::Run { cluster, .. } = Cli::try_parse_from(["banterd", "run"]).unwrap().command
        else {
            panic!("not run")
        };
        let mut untouched = Config::default();
        cluster.apply(&mut untouched);
        assert_eq!(untouched.store, StoreKind::Sled);
        assert_eq!(untouched.files_root(), untouched.data_dir.join("files"));
    }
}
