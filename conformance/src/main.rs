//! `banter-conformance HOST:PORT`: runs every check against a Banter server and prints the
//! report. Exit status 0 only if every MUST passed.

use std::process::ExitCode;

use banter_conformance::{Target, checks, passed, report, run};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "banter-conformance",
    version,
    about = "Checks a Banter server against spec/PROTOCOL.md"
)]
struct Cli {
    /// The server, HOST:PORT.
    server: String,
    /// The server certificate's SHA-256 fingerprint (as banterd prints it).
    #[arg(long, conflicts_with = "accept_any_certificate")]
    pin: Option<String>,
    /// Accept whatever certificate the server shows (a throwaway test server only).
    #[arg(long)]
    accept_any_certificate: bool,
    /// Print the findings as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    junit: Option<std::path::PathBuf>,
    /// Run only the checks whose id starts with this (e.g. `5.1` or `7.3-1`).
    #[arg(long)]
    only: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("banter-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        let addr = tokio::net::lookup_host(&cli.server)
            .await
            .map_err(|e| format!("{}: {e}", cli.server))?
            .next()
            .ok_or_else(|| format!("{}: no address", cli.server))?;
        let pin = match (&cli.pin, cli.accept_any_certificate) {
            (Some(pin), _) => Some(
                banter_client::tls::parse_fingerprint(pin)
                    .ok_or("a fingerprint is 32 hex byte pairs, colons optional")?,
            ),
            (None, true) => None,
            (None, false) => {
                return Err(
                    "say how to trust the server: --pin FINGERPRINT or --accept-any-certificate"
                        .to_owned(),
                );
            }
        };
        let mut all = checks::all();
        if let Some(only) = &cli.only {
            all.retain(|c| c.id.starts_with(only.as_str()));
        }
        Ok(run(Target::new(addr, pin), all).await)
    });
    let findings = match outcome {
        Ok(findings) => findings,
        Err(e) => {
            eprintln!("banter-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.json {
        println!("{}", report::json(&findings));
    } else {
        print!("{}", report::table(&findings));
    }
    if let Some(path) = &cli.junit {
        if let Err(e) = std::fs::write(path, report::junit(&findings)) {
            eprintln!("banter-conformance: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if passed(&findings) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
