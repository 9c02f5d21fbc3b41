//! Names that survive a power cut. A new file or directory is durable only once the directory
//! holding its name has been fsync'ed, whatever was done to the file itself (fsync(2): "an
//! explicit fsync() on a file descriptor for the directory is also needed"). kill -9 never
//! shows the difference, a power cut does: before these calls, a first start's database,
//! keys and certificate could vanish whole although every write in them had been synced
//! (`server/tests/power_loss.rs` found it on lossyfs).

use std::fs::{DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

/// Makes the entries of `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes the name of `path` durable: syncs the directory holding it.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new(".")))
}

/// Makes a file's data durable (one an earlier run may have written and died before
/// syncing).
pub(crate) fn sync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Like `create_dir_all` with `mode` for each directory it creates, each made durable in its
/// parent before the next is created inside it. The last one's name is synced even when it
/// existed: an earlier run may have died between creating it and syncing its parent.
pub(crate) fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    for new in missing.into_iter().rev() {
        match DirBuilder::new().mode(mode).create(new) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && new.is_dir() => {}
            Err(error) => return Err(error),
        }
        sync_parent(new)?;
    }
    sync_parent(dir)
}

/// Writes a new file (failing if it exists) with `mode`, syncs it, then the directory that
/// names it.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = File::options().write(true).create_new(true).mode(mode).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn creates_every_missing_directory_with_its_mode_and_accepts_existing_ones() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_dir_all(&deep, 0o700).unwrap();
        for dir in ["a", "a/b", "a/b/c"] {
            let mode = std::fs::metadata(root.path().join(dir)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{dir}");
        }
        create_dir_all(&deep, 0o700).unwrap();
        write_new(&deep.join("key"), b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read(deep.join("key")).unwrap(), b"secret");
        let error = write_new(&deep.join("key"), b"again", 0o600).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
    }
}
