//! lossyfs: a filesystem that can lose power, for testing what a program's fsyncs promise.
//!
//! kill -9 cannot show whether a program's durability claims hold: the kernel's page cache
//! keeps every write the dead process made. A power cut keeps only what reached the disk:
//! file data that was fsync'ed, and directory entries whose directory was fsync'ed. lossyfs,
//! in the way of Jepsen's LazyFS, is a FUSE filesystem that keeps everything else in memory
//! and drops it on command (the model and its rules: [`model`]).
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! # let (store, mountpoint) = (std::path::Path::new("/tmp/s"), std::path::Path::new("/tmp/m"));
//! let disk = lossyfs::Disk::new(store)?;
//! let mounted = disk.mount(mountpoint)?;
//! // ... run the program under test on `mountpoint` ...
//! mounted.cut_power(); // from here on every operation fails with EIO
//! // ... kill the program ...
//! // only what was durable is left (a busy disk comes back mounted, with the error)
//! let (disk, loss) = mounted.unmount().map_err(|busy| busy.1)?;
//! let mounted = disk.mount(mountpoint)?;
//! # Ok(()) }
//! ```
//!
//! Mounting needs /dev/fuse and either root (mount(2)) or `fusermount3` (Debian's fuse3).

mod fuse;
pub mod model;

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{BackgroundSession, MountOption};

pub use model::Loss;
use model::{Model, Owner};

/// The disk while it is not mounted: what survived so far.
#[derive(Debug)]
pub struct Disk {
    model: Arc<Mutex<Model>>,
}

/// The disk mounted; unmounted (lazily) if dropped without [`Mounted::unmount`].
#[derive(Debug)]
pub struct Mounted {
    model: Arc<Mutex<Model>>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

pub(crate) fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Disk {
    /// An empty disk that keeps its durable contents in `store`, an empty directory on a
    /// real filesystem. Its root belongs to the owner of `store`.
    pub fn new(store: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(store)?;
        let root = Owner { perm: 0o755, uid: meta.uid(), gid: meta.gid() };
        Ok(Self { model: Arc::new(Mutex::new(Model::new(store, root))) })
    }

    /// Mounts the disk at `mountpoint` (an existing, empty directory), with the power on.
    pub fn mount(self, mountpoint: &Path) -> io::Result<Mounted> {
        let options = [MountOption::FSName("lossyfs".into()), MountOption::RW];
        let filesystem = fuse::LossyFs::new(self.model.clone());
        let session = fuser::spawn_mount2(filesystem, mountpoint, &options)?;
        Ok(Mounted { model: self.model, session: Some(session), mountpoint: mountpoint.into() })
    }
}

impl Mounted {
    /// Where the disk is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power goes off: from this instant nothing more becomes durable, and every
    /// operation fails with EIO. Kill the programs using the disk, then [`Self::unmount`].
    pub fn cut_power(&self) {
        lock(&self.model).cut_power();
    }

    /// Unmounts. After [`Self::cut_power`], everything that was not durable is dropped and
    /// the [`Loss`] says how much; otherwise this is a clean shutdown that makes everything
    /// durable. While a process still uses the disk, fails and hands the disk back, mounted,
    /// to try again.
    pub fn unmount(mut self) -> Result<(Disk, Option<Loss>), Box<Busy>> {
        let mut failure = String::new();
        let mut unmounted = |program: &str, args: &[&str]| match Command::new(program)
            .args(args)
            .arg(&self.mountpoint)
            .output()
        {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                failure = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                false
            }
            Err(error) => {
                failure = format!("{program}: {error}");
                false
            }
        };
        if !unmounted("umount", &[]) && !unmounted("fusermount3", &["-u"]) {
            let error = io::Error::other(format!("{}: {failure}", self.mountpoint.display()));
            return Err(Box::new(Busy(self, error)));
        }
        if let Some(session) = self.session.take() {
            session.join();
        }
        let mut model = lock(&self.model);
        let loss = if model.is_powered() {
            if let Err(errno) = model.sync_all() {
                drop(model);
                return Err(Box::new(Busy(self, io::Error::from_raw_os_error(errno))));
            }
            None
        } else {
            Some(model.restart())
        };
        drop(model);
        Ok((Disk { model: self.model.clone() }, loss))
    }
}

/// A disk that could not be unmounted, still mounted, and why.
#[derive(Debug)]
pub struct Busy(pub Mounted, pub io::Error);

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.session.is_some() {
            // A lazy unmount cannot fail on a busy mount; the session's thread then ends.
            let _ = Command::new("umount").arg("-l").arg(&self.mountpoint).status();
        }
    }
}
