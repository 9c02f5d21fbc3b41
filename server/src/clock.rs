//! banterd's wall clock: the system clock as it read when banterd started, advanced by the
//! monotonic clock since.
//!
//! A step of the system clock while banterd runs (`date -s`, NTP stepping a clock that was
//! far off, a VM resumed from a snapshot) moves neither the timestamps banterd writes nor
//! the lifetimes it measures: a room's timestamps keep going forward, and an access token
//! lives exactly its lifetime, not minutes less after a step forward nor minutes more after
//! a step back. Rate changes (NTP slewing) are followed, since the monotonic clock is
//! slewed too. A step is noticed, logged and exported as `banter_clock_step_ms`; a restart
//! takes the system clock again. banter-protocol is sans-io and never reads a clock; its
//! users do, here.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use banter_protocol::ids::Timestamp;

/// The system clock and the monotonic clock, read together at the first use.
struct Anchor {
    wall_ms: u64,
    at: Instant,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor { wall_ms: system_ms(), at: Instant::now() })
}

/// Reads the system clock for banterd's, if nothing has yet: at start-up.
pub(crate) fn start() {
    anchor();
}

/// The system clock in ms since the Unix epoch (the epoch itself if the clock is set before
/// it).
fn system_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    since_epoch.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The current time as protocol timestamps carry it: ms since the Unix epoch.
pub(crate) fn wall_clock() -> Timestamp {
    let anchor = anchor();
    let elapsed = u64::try_from(anchor.at.elapsed().as_millis()).unwrap_or(u64::MAX);
    Timestamp(anchor.wall_ms.saturating_add(elapsed))
}

/// How far the system clock has been stepped away from banterd's since it started, in ms
/// (positive: the system clock is ahead).
pub(crate) fn system_step_ms() -> i64 {
    let system = i128::from(system_ms());
    let ours = i128::from(wall_clock().0);
    i64::try_from(system - ours).unwrap_or(if system > ours { i64::MAX } else { i64::MIN })
}

/// Logs a step of the system clock once, when it first shows (beyond a second, which is
/// jitter, not a step) and whenever it changes by another second; called every few seconds.
pub(crate) fn notice_steps() {
    static LOGGED: AtomicI64 = AtomicI64::new(0);
    let step = system_step_ms();
    let logged = LOGGED.load(Ordering::Relaxed);
    if (step - logged).abs() >= 1_000 {
        LOGGED.store(step, Ordering::Relaxed);
        tracing::warn!(
            step_ms = step,
            "the system clock was stepped; banterd keeps its own time (the clock as it started, \
             advanced monotonically) until it restarts"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_starts_at_the_system_clock_and_never_goes_back() {
        let first = wall_clock().0;
        assert!(first.abs_diff(system_ms()) < 1_000);
        let mut last = first;
        for _ in 0..1_000 {
            let now = wall_clock().0;
            assert!(now >= last);
            last = now;
        }
        assert!(system_step_ms().abs() < 1_000, "no step here");
    }
}
