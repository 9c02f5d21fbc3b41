//! `banter`: the Banter terminal client. Its subcommands are a contract scripts rely on (see
//! the README): `register`, `login`, `logout`, `rooms`, `create-room`, `join`, `leave`, `send`,
//! `dm`, `react`, `edit`, `delete`, `tail`, `history`, the files, contacts, keys and invites
//! commands and the moderator's, each with `--json` for one JSON object per line.
//!
//! Exit codes: 0 success; 1 other failure; 2 usage; 3 cannot reach the server; 4 not logged in
//! or authentication failed; 5 the server refused the request; 6 the server's certificate is
//! not trusted.

mod audio;
mod cli;
mod emoji;
mod login_key;
mod output;
mod profile;
mod tui;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <cli::Cli as clap::Parser>::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("banter: {error}");
                return ExitCode::from(1);
            }
        };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("banter: {}", error.message);
            ExitCode::from(error.code)
        }
    }
}
