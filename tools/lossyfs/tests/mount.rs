//! lossyfs through the kernel: a real mount, written with std::fs, loses exactly what was not
//! fsync'ed. Needs /dev/fuse and root (or fusermount3), as CI runs.

use std::fs::{self, File};
use std::io::Write as _;

#[test]
fn a_mounted_disk_keeps_what_was_synced_and_loses_the_rest_at_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mountpoint) = (dir.path().join("store"), dir.path().join("mnt"));
    fs::create_dir(&store).unwrap();
    fs::create_dir(&mountpoint).unwrap();
    let mounted = lossyfs::Disk::new(&store).unwrap().mount(&mountpoint).unwrap();
    let root = mountpoint.as_path();

    // Durable: a directory and a file, each with its name synced.
    fs::create_dir(root.join("data")).unwrap();
    File::open(root).unwrap().sync_all().unwrap();
    let mut log = File::create(root.join("data/log")).unwrap();
    log.write_all(b"acked;").unwrap();
    log.sync_data().unwrap();
    File::open(root.join("data")).unwrap().sync_all().unwrap();
    // Not durable: more data, a file whose name was never synced, a rename.
    log.write_all(b"pending;").unwrap();
    let mut orphan = File::create(root.join("data/orphan")).unwrap();
    orphan.write_all(b"synced data, unsynced name").unwrap();
    orphan.sync_all().unwrap();
    fs::rename(root.join("data/log"), root.join("data/log.old")).unwrap();
    assert_eq!(fs::read(root.join("data/log.old")).unwrap(), b"acked;pending;");

    mounted.cut_power();
    let error = log.write_all(b"after the cut").unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
    drop((log, orphan));
    let (disk, loss) = mounted.unmount().unwrap();
    let loss = loss.expect("the power was cut");
    assert_eq!(loss.unsynced_listings, 1, "{loss:?}");
    assert!(loss.unsynced_bytes > 0, "{loss:?}");

    let mounted = disk.mount(&mountpoint).unwrap();
    let mut names: Vec<_> =
        fs::read_dir(root.join("data")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["log"]);
    assert_eq!(fs::read(root.join("data/log")).unwrap(), b"acked;");
    // A clean unmount keeps everything.
    fs::write(root.join("data/log"), b"rewritten").unwrap();
    let (disk, loss) = mounted.unmount().unwrap();
    assert_eq!(loss, None);
    let mounted = disk.mount(&mountpoint).unwrap();
    assert_eq!(fs::read(root.join("data/log")).unwrap(), b"rewritten");
    mounted.unmount().unwrap();
}

#[test]
fn a_directory_listed_while_its_entries_are_removed_yields_each_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mountpoint) = (dir.path().join("store"), dir.path().join("mnt"));
    fs::create_dir(&store).unwrap();
    fs::create_dir(&mountpoint).unwrap();
    let mounted = lossyfs::Disk::new(&store).unwrap().mount(&mountpoint).unwrap();
    let many = mountpoint.join("many");
    fs::create_dir(&many).unwrap();
    for n in 0..500 {
        File::create(many.join(format!("file{n:03}"))).unwrap();
    }
    // As a cleanup sweep does: remove each entry as the listing yields it.
    let mut seen = Vec::new();
    for entry in fs::read_dir(&many).unwrap() {
        let entry = entry.unwrap();
        fs::remove_file(entry.path()).unwrap();
        seen.push(entry.file_name());
    }
    assert_eq!(seen.len(), 500, "entries skipped while the directory changed");
    assert_eq!(fs::read_dir(&many).unwrap().count(), 0);
    mounted.unmount().unwrap();
}
