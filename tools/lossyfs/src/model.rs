//! The disk lossyfs pretends to be, without FUSE: files and directories by inode number, each
//! with what survives a power cut and what does not yet.
//!
//! - A file's durable content is a file of its own in the store directory (named by its
//!   inode number). Writes since its last fsync are whole pages in memory, read back over the
//!   durable content; a truncation since then is remembered as `kept_len` (durable bytes at
//!   or past it read as zeros). fsync or fdatasync writes the pages out.
//! - A directory has a live listing (what `ls` shows) and a durable one; fsync on the
//!   directory makes the live listing durable. fsync on a file does not make its own name
//!   durable (fsync(2): "an explicit fsync() on a file descriptor for the directory is also
//!   needed").
//! - [`Model::cut_power`] fails every later operation with EIO; [`Model::restart`] then
//!   forgets everything not durable: pages, listings, and nodes no durable listing reaches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The root directory's inode number (FUSE's).
pub(crate) const ROOT: u64 = 1;

/// The unit of unsynced data kept in memory.
const PAGE: u64 = 4096;

/// An operation's failure, as an errno for the kernel.
pub(crate) type Errno = libc::c_int;

/// A file, a directory, or a Unix socket's name (what bind(2) creates; it holds no data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Socket,
}

/// What `stat` shows of a node.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub(crate) ino: u64,
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) perm: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: SystemTime,
}

/// Who creates a node, and with which permission bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub(crate) perm: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// What one power cut threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loss {
    /// Bytes written and not fsync'ed (counted in whole pages).
    pub unsynced_bytes: u64,
    /// Files whose length was changed and not fsync'ed.
    pub unsynced_lengths: u64,
    /// Directories whose listing was changed and not fsync'ed.
    pub unsynced_listings: u64,
}

#[derive(Debug)]
struct Meta {
    owner: Owner,
    mtime: SystemTime,
}

#[derive(Debug)]
struct FileNode {
    /// The durable content.
    object: File,
    /// Its length.
    durable_len: u64,
    /// The length `stat` shows.
    live_len: u64,
    /// Durable bytes before this offset are still visible; those at or past it were
    /// truncated away since the last sync.
    kept_len: u64,
    /// Written since the last sync: page number → the whole page as now visible.
    dirty: BTreeMap<u64, Box<[u8]>>,
}

#[derive(Debug)]
struct DirNode {
    live: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

#[derive(Debug)]
enum Body {
    File(FileNode),
    Dir(DirNode),
    Socket,
}

#[derive(Debug)]
struct Node {
    meta: Meta,
    body: Body,
}

/// The whole disk.
#[derive(Debug)]
pub(crate) struct Model {
    store: PathBuf,
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    powered: bool,
}

fn io_errno(error: &io::Error) -> Errno {
    error.raw_os_error().unwrap_or(libc::EIO)
}

fn sync_body(body: &mut Body) -> Result<(), Errno> {
    match body {
        Body::Dir(dir) => dir.durable.clone_from(&dir.live),
        Body::Socket => {}
        Body::File(file) => {
            let io = |result: io::Result<()>| result.map_err(|e| io_errno(&e));
            io(file.object.set_len(file.kept_len.min(file.durable_len)))?;
            for (&page, data) in &file.dirty {
                let start = page * PAGE;
                let len = file.live_len.saturating_sub(start).min(PAGE) as usize;
                io(file.object.write_all_at(&data[..len], start))?;
            }
            io(file.object.set_len(file.live_len))?;
            file.dirty.clear();
            file.durable_len = file.live_len;
            file.kept_len = file.live_len;
        }
    }
    Ok(())
}

impl Model {
    /// An empty disk whose durable contents live in `store` (an empty directory).
    pub(crate) fn new(store: &Path, root: Owner) -> Self {
        let root = Node {
            meta: Meta { owner: root, mtime: SystemTime::now() },
            body: Body::Dir(DirNode { live: BTreeMap::new(), durable: BTreeMap::new() }),
        };
        Self {
            store: store.to_owned(),
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            powered: true,
        }
    }

    fn powered(&self) -> Result<(), Errno> {
        if self.powered { Ok(()) } else { Err(libc::EIO) }
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.powered()?;
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.powered()?;
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&DirNode, Errno> {
        match &self.node(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            Body::File(_) | Body::Socket => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirNode, Errno> {
        let node = self.node_mut(ino)?;
        node.meta.mtime = SystemTime::now();
        match &mut node.body {
            Body::Dir(dir) => Ok(dir),
            Body::File(_) | Body::Socket => Err(libc::ENOTDIR),
        }
    }

    fn file(&self, ino: u64) -> Result<&FileNode, Errno> {
        match &self.node(ino)?.body {
            Body::File(file) => Ok(file),
            Body::Dir(_) => Err(libc::EISDIR),
            Body::Socket => Err(libc::EINVAL),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileNode, Errno> {
        let node = self.node_mut(ino)?;
        node.meta.mtime = SystemTime::now();
        match &mut node.body {
            Body::File(file) => Ok(file),
            Body::Dir(_) => Err(libc::EISDIR),
            Body::Socket => Err(libc::EINVAL),
        }
    }

    pub(crate) fn attr(&self, ino: u64) -> Result<Attr, Errno> {
        let node = self.node(ino)?;
        let (kind, size) = match &node.body {
            Body::File(file) => (Kind::File, file.live_len),
            Body::Dir(dir) => (Kind::Dir, dir.live.len() as u64),
            Body::Socket => (Kind::Socket, 0),
        };
        let Owner { perm, uid, gid } = node.meta.owner;
        Ok(Attr { ino, kind, size, perm, uid, gid, mtime: node.meta.mtime })
    }

    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr, Errno> {
        let ino = *self.dir(parent)?.live.get(name).ok_or(libc::ENOENT)?;
        self.attr(ino)
    }

    /// The live listing, in name order.
    pub(crate) fn entries(&self, dir: u64) -> Result<Vec<(OsString, u64, Kind)>, Errno> {
        let dir = self.dir(dir)?;
        let kind = |ino| match self.nodes.get(ino).map(|n| &n.body) {
            Some(Body::Dir(_)) => Kind::Dir,
            Some(Body::Socket) => Kind::Socket,
            _ => Kind::File,
        };
        Ok(dir.live.iter().map(|(name, ino)| (name.clone(), *ino, kind(ino))).collect())
    }

    fn add(&mut self, parent: u64, name: &OsStr, owner: Owner, kind: Kind) -> Result<Attr, Errno> {
        if self.dir(parent)?.live.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        let body = match kind {
            Kind::File => {
                let object = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(self.store.join(ino.to_string()))
                    .map_err(|e| io_errno(&e))?;
                Body::File(FileNode {
                    object,
                    durable_len: 0,
                    live_len: 0,
                    kept_len: 0,
                    dirty: BTreeMap::new(),
                })
            }
            Kind::Dir => Body::Dir(DirNode { live: BTreeMap::new(), durable: BTreeMap::new() }),
            Kind::Socket => Body::Socket,
        };
        self.next_ino += 1;
        self.nodes.insert(ino, Node { meta: Meta { owner, mtime: SystemTime::now() }, body });
        self.dir_mut(parent)?.live.insert(name.to_owned(), ino);
        self.attr(ino)
    }

    /// Creates a file; an existing one is opened instead unless `exclusive`.
    pub(crate) fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        owner: Owner,
        exclusive: bool,
    ) -> Result<Attr, Errno> {
        match self.lookup(parent, name) {
            Ok(_) if exclusive => Err(libc::EEXIST),
            Ok(attr) if attr.kind == Kind::Dir => Err(libc::EISDIR),
            Ok(attr) => Ok(attr),
            Err(libc::ENOENT) => self.add(parent, name, owner, Kind::File),
            Err(errno) => Err(errno),
        }
    }

    pub(crate) fn mkdir(&mut self, parent: u64, name: &OsStr, owner: Owner) -> Result<Attr, Errno> {
        self.add(parent, name, owner, Kind::Dir)
    }

    /// A socket's name, as bind(2) makes it.
    pub(crate) fn mksocket(
        &mut self,
        parent: u64,
        name: &OsStr,
        owner: Owner,
    ) -> Result<Attr, Errno> {
        self.add(parent, name, owner, Kind::Socket)
    }

    /// Removes a name. The node lives on (open files, durable listings) until a restart
    /// finds nothing durable naming it.
    fn remove(&mut self, parent: u64, name: &OsStr, kind: Kind) -> Result<(), Errno> {
        let attr = self.lookup(parent, name)?;
        match (kind, attr.kind) {
            (Kind::Dir, Kind::Dir) if attr.size > 0 => return Err(libc::ENOTEMPTY),
            (Kind::Dir, Kind::Dir) => {}
            (_, Kind::Dir) => return Err(libc::EISDIR),
            (Kind::Dir, _) => return Err(libc::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.live.remove(name);
        Ok(())
    }

    pub(crate) fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        self.remove(parent, name, Kind::File)
    }

    pub(crate) fn rmdir(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        self.remove(parent, name, Kind::Dir)
    }

    pub(crate) fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let moving = self.lookup(parent, name)?;
        self.dir(new_parent)?;
        match self.lookup(new_parent, new_name) {
            Ok(_) if no_replace => return Err(libc::EEXIST),
            Ok(target) if target.ino == moving.ino => return Ok(()),
            Ok(target) => match (moving.kind, target.kind) {
                (Kind::Dir, Kind::Dir) if target.size > 0 => return Err(libc::ENOTEMPTY),
                (Kind::Dir, Kind::Dir) => {}
                (_, Kind::Dir) => return Err(libc::EISDIR),
                (Kind::Dir, _) => return Err(libc::ENOTDIR),
                _ => {}
            },
            Err(libc::ENOENT) => {}
            Err(errno) => return Err(errno),
        }
        if moving.kind == Kind::Dir && self.is_within(new_parent, moving.ino) {
            return Err(libc::EINVAL);
        }
        self.dir_mut(parent)?.live.remove(name);
        self.dir_mut(new_parent)?.live.insert(new_name.to_owned(), moving.ino);
        Ok(())
    }

    /// Whether `dir` is `ancestor` or lies below it (a directory cannot move into itself).
    fn is_within(&self, dir: u64, ancestor: u64) -> bool {
        let mut seen = HashSet::new();
        let mut frontier = vec![ancestor];
        while let Some(ino) = frontier.pop() {
            if ino == dir {
                return true;
            }
            if let Some(Node { body: Body::Dir(d), .. }) = self.nodes.get(&ino) {
                frontier.extend(d.live.values().filter(|child| seen.insert(**child)));
            }
        }
        false
    }

    pub(crate) fn set_perm(&mut self, ino: u64, perm: u16) -> Result<(), Errno> {
        self.node_mut(ino)?.meta.owner.perm = perm;
        Ok(())
    }

    pub(crate) fn read(&self, ino: u64, offset: u64, size: u64) -> Result<Vec<u8>, Errno> {
        let file = self.file(ino)?;
        let end = offset.saturating_add(size).min(file.live_len);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0; (end - offset) as usize];
        let durable_end = end.min(file.kept_len).min(file.durable_len);
        if offset < durable_end {
            let durable = &mut out[..(durable_end - offset) as usize];
            file.object.read_exact_at(durable, offset).map_err(|e| io_errno(&e))?;
        }
        for (&page, data) in file.dirty.range(offset / PAGE..=(end - 1) / PAGE) {
            let start = page * PAGE;
            let (from, to) = (offset.max(start), end.min(start + PAGE));
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&data[(from - start) as usize..(to - start) as usize]);
        }
        Ok(out)
    }

    pub(crate) fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let end = offset.checked_add(data.len() as u64).ok_or(libc::EFBIG)?;
        let mut at = offset;
        while at < end {
            let page = at / PAGE;
            let start = page * PAGE;
            if !self.file(ino)?.dirty.contains_key(&page) {
                let mut whole = self.read(ino, start, PAGE)?;
                whole.resize(PAGE as usize, 0);
                self.file_mut(ino)?.dirty.insert(page, whole.into_boxed_slice());
            }
            let to = end.min(start + PAGE);
            let file = self.file_mut(ino)?;
            let buffer = file.dirty.get_mut(&page).expect("inserted above");
            buffer[(at - start) as usize..(to - start) as usize]
                .copy_from_slice(&data[(at - offset) as usize..(to - offset) as usize]);
            at = to;
        }
        let file = self.file_mut(ino)?;
        file.live_len = file.live_len.max(end);
        Ok(())
    }

    /// Sets the length: cut bytes read as zeros if the file grows again.
    pub(crate) fn truncate(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        let file = self.file_mut(ino)?;
        if len < file.live_len {
            file.dirty.retain(|&page, _| page * PAGE < len);
            if let Some(last) = file.dirty.get_mut(&(len / PAGE)) {
                last[(len % PAGE) as usize..].fill(0);
            }
            file.kept_len = file.kept_len.min(len);
        }
        file.live_len = len;
        Ok(())
    }

    /// fsync / fdatasync: a file's data and length, or a directory's listing.
    pub(crate) fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        sync_body(&mut self.node_mut(ino)?.body)
    }

    /// A clean shutdown: everything becomes durable.
    pub(crate) fn sync_all(&mut self) -> Result<(), Errno> {
        self.nodes.values_mut().try_for_each(|node| sync_body(&mut node.body))
    }

    /// Bytes the live files take.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|node| match &node.body {
                Body::File(file) => file.live_len,
                Body::Dir(_) | Body::Socket => 0,
            })
            .sum()
    }

    /// From now on every operation fails with EIO, until [`Self::restart`].
    pub(crate) fn cut_power(&mut self) {
        self.powered = false;
    }

    pub(crate) fn is_powered(&self) -> bool {
        self.powered
    }

    /// Powers up again after a cut: only what was durable is left.
    pub(crate) fn restart(&mut self) -> Loss {
        let mut loss = Loss::default();
        for node in self.nodes.values_mut() {
            match &mut node.body {
                Body::Dir(dir) => {
                    if dir.live != dir.durable {
                        loss.unsynced_listings += 1;
                        dir.live.clone_from(&dir.durable);
                    }
                }
                Body::Socket => {}
                Body::File(file) => {
                    loss.unsynced_bytes += file.dirty.len() as u64 * PAGE;
                    if file.live_len != file.durable_len || file.kept_len != file.durable_len {
                        loss.unsynced_lengths += 1;
                    }
                    file.dirty.clear();
                    file.live_len = file.durable_len;
                    file.kept_len = file.durable_len;
                }
            }
        }
        let mut reachable = HashSet::from([ROOT]);
        let mut frontier = vec![ROOT];
        while let Some(ino) = frontier.pop() {
            if let Some(Node { body: Body::Dir(dir), .. }) = self.nodes.get(&ino) {
                frontier.extend(dir.live.values().filter(|child| reachable.insert(**child)));
            }
        }
        let store = &self.store;
        self.nodes.retain(|ino, node| {
            let keep = reachable.contains(ino);
            if !keep && matches!(node.body, Body::File(_)) {
                let _ = std::fs::remove_file(store.join(ino.to_string()));
            }
            keep
        });
        self.powered = true;
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: Owner = Owner { perm: 0o644, uid: 0, gid: 0 };

    fn disk() -> (tempfile::TempDir, Model) {
        let store = tempfile::tempdir().unwrap();
        let model = Model::new(store.path(), OWNER);
        (store, model)
    }

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn content(model: &Model, ino: u64) -> Vec<u8> {
        model.read(ino, 0, u64::MAX).unwrap()
    }

    #[test]
    fn synced_data_survives_a_cut_and_unsynced_data_does_not() {
        let (_store, mut disk) = disk();
        let file = disk.create(ROOT, name("log"), OWNER, true).unwrap().ino;
        disk.sync(ROOT).unwrap();
        disk.write(file, 0, b"acked").unwrap();
        disk.sync(file).unwrap();
        disk.write(file, 5, b" pending").unwrap();
        disk.write(file, 0, b"ACK").unwrap();
        assert_eq!(content(&disk, file), b"ACKed pending");
        disk.cut_power();
        assert_eq!(disk.read(file, 0, 10), Err(libc::EIO), "no reads while the power is off");
        let loss = disk.restart();
        assert_eq!(content(&disk, file), b"acked");
        assert_eq!(loss.unsynced_bytes, PAGE);
        assert_eq!(loss.unsynced_lengths, 1);
    }

    #[test]
    fn a_new_name_needs_its_directory_synced_not_only_the_file() {
        let (_store, mut disk) = disk();
        let file = disk.create(ROOT, name("new"), OWNER, true).unwrap().ino;
        disk.write(file, 0, b"data").unwrap();
        disk.sync(file).unwrap();
        disk.cut_power();
        let loss = disk.restart();
        assert_eq!(disk.lookup(ROOT, name("new")).unwrap_err(), libc::ENOENT);
        assert_eq!(loss.unsynced_listings, 1);
        assert!(disk.attr(file).is_err(), "a node no durable listing names is gone");
    }

    #[test]
    fn an_unsynced_rename_is_undone_and_a_synced_one_kept() {
        let (_store, mut disk) = disk();
        let dir = disk.mkdir(ROOT, name("d"), OWNER).unwrap().ino;
        let old = disk.create(dir, name("f"), OWNER, true).unwrap().ino;
        disk.write(old, 0, b"old").unwrap();
        disk.sync(old).unwrap();
        disk.sync(dir).unwrap();
        disk.sync(ROOT).unwrap();
        let tmp = disk.create(dir, name("f.tmp"), OWNER, true).unwrap().ino;
        disk.write(tmp, 0, b"new").unwrap();
        disk.sync(tmp).unwrap();
        disk.rename(dir, name("f.tmp"), dir, name("f"), false).unwrap();
        assert_eq!(content(&disk, disk.lookup(dir, name("f")).unwrap().ino), b"new");
        disk.cut_power();
        disk.restart();
        assert_eq!(content(&disk, disk.lookup(dir, name("f")).unwrap().ino), b"old");
        assert!(disk.lookup(dir, name("f.tmp")).is_err());

        let tmp = disk.create(dir, name("f.tmp"), OWNER, true).unwrap().ino;
        disk.write(tmp, 0, b"new").unwrap();
        disk.sync(tmp).unwrap();
        disk.rename(dir, name("f.tmp"), dir, name("f"), false).unwrap();
        disk.sync(dir).unwrap();
        disk.cut_power();
        disk.restart();
        assert_eq!(content(&disk, disk.lookup(dir, name("f")).unwrap().ino), b"new");
    }

    #[test]
    fn an_unsynced_unlink_comes_back() {
        let (_store, mut disk) = disk();
        let file = disk.create(ROOT, name("f"), OWNER, true).unwrap().ino;
        disk.write(file, 0, b"kept").unwrap();
        disk.sync(file).unwrap();
        disk.sync(ROOT).unwrap();
        disk.unlink(ROOT, name("f")).unwrap();
        assert!(disk.entries(ROOT).unwrap().is_empty());
        disk.cut_power();
        disk.restart();
        assert_eq!(content(&disk, disk.lookup(ROOT, name("f")).unwrap().ino), b"kept");
    }

    #[test]
    fn a_truncation_then_growth_reads_zeros_and_unsynced_restores_the_old_bytes() {
        let (_store, mut disk) = disk();
        let file = disk.create(ROOT, name("f"), OWNER, true).unwrap().ino;
        disk.sync(ROOT).unwrap();
        let data: Vec<u8> = (0..3 * PAGE).map(|i| (i % 251) as u8 + 1).collect();
        disk.write(file, 0, &data).unwrap();
        disk.sync(file).unwrap();
        disk.truncate(file, 100).unwrap();
        disk.truncate(file, 2 * PAGE).unwrap();
        let now = content(&disk, file);
        assert_eq!(&now[..100], &data[..100]);
        assert!(now[100..].iter().all(|&b| b == 0), "cut bytes come back as zeros");
        disk.write(file, PAGE + 10, b"x").unwrap();
        assert_eq!(disk.read(file, PAGE + 9, 3).unwrap(), [0, b'x', 0]);
        disk.cut_power();
        disk.restart();
        assert_eq!(content(&disk, file), data, "the truncation was never synced");

        disk.truncate(file, 100).unwrap();
        disk.write(file, 200, b"y").unwrap();
        disk.sync(file).unwrap();
        disk.cut_power();
        disk.restart();
        let synced = content(&disk, file);
        assert_eq!(synced.len(), 201);
        assert_eq!(&synced[..100], &data[..100]);
        assert!(synced[100..200].iter().all(|&b| b == 0));
        assert_eq!(synced[200], b'y');
    }

    #[test]
    fn writes_across_pages_and_holes_read_back_as_written() {
        let (_store, mut disk) = disk();
        let file = disk.create(ROOT, name("f"), OWNER, true).unwrap().ino;
        disk.write(file, PAGE - 2, b"abcd").unwrap();
        disk.write(file, 3 * PAGE, b"z").unwrap();
        assert_eq!(disk.attr(file).unwrap().size, 3 * PAGE + 1);
        assert_eq!(disk.read(file, PAGE - 3, 6).unwrap(), b"\0abcd\0");
        disk.sync(file).unwrap();
        assert_eq!(disk.read(file, PAGE - 3, 6).unwrap(), b"\0abcd\0");
        assert_eq!(disk.read(file, 3 * PAGE, 10).unwrap(), b"z");
    }

    #[test]
    fn names_keep_posix_rules() {
        let (_store, mut disk) = disk();
        let dir = disk.mkdir(ROOT, name("d"), OWNER).unwrap().ino;
        disk.create(dir, name("f"), OWNER, true).unwrap();
        assert_eq!(disk.create(dir, name("f"), OWNER, true).unwrap_err(), libc::EEXIST);
        assert_eq!(disk.rmdir(ROOT, name("d")).unwrap_err(), libc::ENOTEMPTY);
        assert_eq!(disk.unlink(ROOT, name("d")).unwrap_err(), libc::EISDIR);
        assert_eq!(disk.rename(ROOT, name("d"), dir, name("inside"), false), Err(libc::EINVAL));
        assert_eq!(disk.rename(dir, name("f"), ROOT, name("d"), false), Err(libc::EISDIR));
        disk.unlink(dir, name("f")).unwrap();
        disk.mksocket(dir, name("s"), OWNER).unwrap();
        assert_eq!(disk.read(disk.lookup(dir, name("s")).unwrap().ino, 0, 1), Err(libc::EINVAL));
        disk.unlink(dir, name("s")).unwrap();
        disk.rmdir(ROOT, name("d")).unwrap();
        assert!(disk.entries(ROOT).unwrap().is_empty());
    }
}
