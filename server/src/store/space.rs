//! Free space on the data dir's filesystem, kept above a reserve.
//!
//! A write that meets a full disk half way is the worst kind: sled's flush fails after the
//! group was applied, and banterd has to abort (docs/operations.md, "Durability and a failed
//! sync"). So writes stop before that: while the filesystem has less than the reserve free,
//! every write is refused with a retryable error and reads go on; once space returns,
//! writes resume by themselves. The reserve leaves room for what is already under way
//! (a group being applied, sled's own segments).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::engine::StoreError;

/// How long a reading of the free space is trusted: a statvfs per write would cost more
/// than the write's share of a group commit.
const FRESH: Duration = Duration::from_millis(100);

/// The free-space check of one filesystem.
#[derive(Debug)]
pub struct DiskSpace {
    path: PathBuf,
    reserve: u64,
    /// The last reading (when, bytes free), and whether the disk was last seen full.
    last: Mutex<(Option<Instant>, u64, bool)>,
}

impl DiskSpace {
    /// Keeps `reserve` bytes free on the filesystem that holds `path`.
    pub fn new(path: PathBuf, reserve: u64) -> Self {
        Self { path, reserve, last: Mutex::new((None, u64::MAX, false)) }
    }

    /// Ok while `need` bytes more would leave the reserve free; [`StoreError::DiskFull`]
    /// otherwise. Becoming full and recovering are logged once each.
    pub fn check(&self, need: u64) -> Result<(), StoreError> {
        let free = self.free();
        let full = free < self.reserve.saturating_add(need);
        if need == 0 {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if full != last.2 {
                last.2 = full;
                if full {
                    tracing::warn!(
                        free,
                        reserve = self.reserve,
                        "the disk is full: writes are refused until space returns"
                    );
                } else {
                    tracing::info!(free, "disk space is back: writes go on");
                }
            }
        }
        if full { Err(StoreError::DiskFull { free, reserve: self.reserve }) } else { Ok(()) }
    }

    /// Bytes free for banterd (not counting root's reserved blocks), read at most every
    /// [`FRESH`]. A filesystem that cannot be asked counts as having room: the check is a
    /// safeguard, not a reason to stop.
    fn free(&self) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.0.is_some_and(|at| at.elapsed() < FRESH) {
            return last.1;
        }
        let free = match rustix::fs::statvfs(&self.path) {
            Ok(stat) => stat.f_bavail.saturating_mul(stat.f_frsize),
            Err(_) => u64::MAX,
        };
        *last = (Some(Instant::now()), free, last.2);
        free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_above_the_free_space_refuses_and_below_it_allows() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DiskSpace::new(dir.path().into(), 0).check(0).is_ok());
        let refused = DiskSpace::new(dir.path().into(), u64::MAX).check(0);
        assert!(matches!(refused, Err(StoreError::DiskFull { reserve: u64::MAX, .. })));
        // A write that needs more than is free beyond the reserve is refused too.
        assert!(DiskSpace::new(dir.path().into(), 0).check(u64::MAX).is_err());
    }
}
