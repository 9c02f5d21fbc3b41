//! `banterd`: the Banter reference server.
//!
//! `banterd run` serves with zero configuration (a data dir `./banter-data`, a self-signed
//! certificate, loopback on UDP 4433); `banterd init` writes a commented configuration file.

use std::path::PathBuf;

use anyhow::Context as _;
use banter_server::Server;
use banter_server::config::{Config, LogFormat};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "banterd", version, about = "The Banter reference server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> anyhow::Result<()> {
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
        Command::Run { config, data_dir, listen, log_format } => {
            let mut config =
                Config::load(config.as_deref(), std::env::vars()).map_err(anyhow::Error::msg)?;
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if let Some(format) = log_format {
                config.log_format = format;
            }
            init_tracing(config.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(run(config))
        }
    }
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

async fn run(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let server = Server::start(config).await.context("starting banterd")?;
    println!("banterd listening on {} (UDP)", server.local_addr());
    println!("data dir: {}", data_dir.display());
    println!("certificate SHA-256 fingerprint: {}", server.fingerprint());
    wait_for_signal().await?;
    tracing::info!("shutting down: GO_AWAY, draining, flushing storage");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
