//! `banter-conformance`: numbered checks of any Banter server against `spec/PROTOCOL.md`,
//! as h2spec does for HTTP/2. Each check cites its section and whether the spec says MUST or
//! SHOULD, and talks to the server as a raw client where the point is to send what a correct
//! client never would (its own frames over quinn); the SDK only sets up users and rooms.
//!
//! A run is [`run`] over [`checks::all`]; [`report`] prints it as a table, JSON or JUnit XML.
//! The server is expected to have loose rate limits (a test deployment): the checks register
//! users and open many connections.

pub mod checks;
pub mod raw;
pub mod report;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use banter_client::{Options, Trust};

/// How strongly the spec asks for what a check checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// MUST (or MUST NOT): a failure fails the run.
    Must,
    /// SHOULD: a failure is reported, the run still passes.
    Should,
}

/// The server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its address.
    pub addr: SocketAddr,
    /// How its certificate is trusted, and the name checked.
    pub options: Options,
}

impl Target {
    /// A server whose certificate is pinned (`Some`) or, for a throwaway test server,
    /// accepted as it is.
    pub fn new(addr: SocketAddr, pin: Option<[u8; 32]>) -> Self {
        let trust = pin.map_or(Trust::AcceptAny, Trust::Pinned);
        Self { addr, options: Options::new(trust, "localhost") }
    }
}

/// What a check's body returns: `Err` says what was wrong.
pub type Outcome = Result<(), String>;

type Body = Box<dyn Fn(Arc<Target>) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

/// One numbered check.
pub struct Check {
    /// `section-n`, e.g. `5.1-2`.
    pub id: &'static str,
    /// The spec section it cites, e.g. `§5.1`.
    pub section: &'static str,
    /// MUST or SHOULD.
    pub level: Level,
    /// What must hold, in one sentence.
    pub title: &'static str,
    body: Body,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Check({} {})", self.id, self.title)
    }
}

impl Check {
    /// A check whose body is `body`.
    pub fn new<F, Fut>(
        id: &'static str,
        section: &'static str,
        level: Level,
        title: &'static str,
        body: F,
    ) -> Self
    where
        F: Fn(Arc<Target>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        Self { id, section, level, title, body: Box::new(move |t| Box::pin(body(t))) }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The check's id, section, level and title.
    pub id: &'static str,
    pub section: &'static str,
    pub level: Level,
    pub title: &'static str,
    /// `Err(why)` when it failed.
    pub outcome: Outcome,
    /// How long it took.
    pub took: Duration,
}

/// How long one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `checks` one after another (so they never disturb each other) against `target`.
pub async fn run(target: Target, checks: Vec<Check>) -> Vec<Finding> {
    let target = Arc::new(target);
    let mut findings = Vec::with_capacity(checks.len());
    for check in checks {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, (check.body)(target.clone())).await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no result within {CHECK_TIMEOUT:?}")),
        };
        findings.push(Finding {
            id: check.id,
            section: check.section,
            level: check.level,
            title: check.title,
            outcome,
            took: started.elapsed(),
        });
    }
    findings
}

/// Whether every MUST passed (the run's exit status).
pub fn passed(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.level == Level::Should || f.outcome.is_ok())
}
