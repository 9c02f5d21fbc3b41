//! The kernel's side: FUSE requests mapped onto the [`Model`]. Names and attributes are never
//! cached (zero TTLs), so every lookup and size comes from the model. File data may sit in
//! the kernel's page cache for reads and read-only mmaps (tantivy maps its segments): every
//! write still reaches the model before write(2) returns (no writeback cache), and a power
//! cut unmounts, which drops that cache.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};

use crate::model::{Attr, Errno, Kind, Model, Owner};

const NO_CACHE: Duration = Duration::ZERO;
const BLOCK: u64 = 4096;
/// What `statfs` reports as the disk's size: 1 TiB, so that no program thinks it full.
const DISK_BLOCKS: u64 = (1 << 40) / BLOCK;

/// The filesystem the FUSE session runs: the model, shared with the [`crate::Mounted`]
/// handle that cuts the power, and the listings of open directories.
pub(crate) struct LossyFs {
    model: Arc<Mutex<Model>>,
    /// Each open directory's entries as of its opendir (POSIX leaves entries added or
    /// removed later unspecified): a listing read in several calls while the directory
    /// changes neither skips nor repeats an entry.
    listings: HashMap<u64, Vec<(OsString, u64, Kind)>>,
    next_handle: u64,
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: attr.ino,
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.mtime,
        mtime: attr.mtime,
        ctime: attr.mtime,
        crtime: attr.mtime,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: if attr.kind == Kind::Dir { 2 } else { 1 },
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: BLOCK as u32,
        flags: 0,
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Socket => FileType::Socket,
    }
}

fn owner(request: &Request<'_>, mode: u32, umask: u32) -> Owner {
    Owner { perm: (mode & !umask & 0o7777) as u16, uid: request.uid(), gid: request.gid() }
}

fn entry(reply: ReplyEntry, result: Result<Attr, Errno>) {
    match result {
        Ok(attr) => reply.entry(&NO_CACHE, &file_attr(&attr), 0),
        Err(errno) => reply.error(errno),
    }
}

fn attr(reply: ReplyAttr, result: Result<Attr, Errno>) {
    match result {
        Ok(found) => reply.attr(&NO_CACHE, &file_attr(&found)),
        Err(errno) => reply.error(errno),
    }
}

fn empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(errno),
    }
}

impl LossyFs {
    pub(crate) fn new(model: Arc<Mutex<Model>>) -> Self {
        Self { model, listings: HashMap::new(), next_handle: 1 }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        crate::lock(&self.model)
    }
}

impl Filesystem for LossyFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        entry(reply, self.model().lookup(parent, name));
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        attr(reply, self.model().attr(ino));
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut model = self.model();
        let result = (|| {
            if let Some(mode) = mode {
                model.set_perm(ino, (mode & 0o7777) as u16)?;
            }
            if let Some(size) = size {
                model.truncate(ino, size)?;
            }
            model.attr(ino)
        })();
        attr(reply, result);
    }

    fn mkdir(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        entry(reply, self.model().mkdir(parent, name, owner(req, mode, umask)));
    }

    fn mknod(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFSOCK {
            return reply.error(libc::EPERM); // devices and FIFOs: not modelled
        }
        entry(reply, self.model().mksocket(parent, name, owner(req, mode, umask)));
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.model().unlink(parent, name));
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.model().rmdir(parent, name));
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return reply.error(libc::EINVAL); // RENAME_EXCHANGE / WHITEOUT: not modelled
        }
        let no_replace = flags & libc::RENAME_NOREPLACE != 0;
        empty(reply, self.model().rename(parent, name, new_parent, new_name, no_replace));
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.model().attr(ino) {
            Ok(attr) if attr.kind == Kind::Dir => reply.error(libc::EISDIR),
            Ok(attr) if attr.kind == Kind::Socket => reply.error(libc::ENXIO),
            Ok(_) => reply.opened(0, 0),
            Err(errno) => reply.error(errno),
        }
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut model = self.model();
        let exclusive = flags & libc::O_EXCL != 0;
        let result = model.create(parent, name, owner(req, mode, umask), exclusive).and_then(|a| {
            if flags & libc::O_TRUNC != 0 {
                model.truncate(a.ino, 0)?;
                return model.attr(a.ino);
            }
            Ok(a)
        });
        match result {
            Ok(attr) => reply.created(&NO_CACHE, &file_attr(&attr), 0, 0, 0),
            Err(errno) => reply.error(errno),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else { return reply.error(libc::EINVAL) };
        match self.model().read(ino, offset, u64::from(size)) {
            Ok(data) => reply.data(&data),
            Err(errno) => reply.error(errno),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Ok(offset) = u64::try_from(offset) else { return reply.error(libc::EINVAL) };
        match self.model().write(ino, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _owner: u64, reply: ReplyEmpty) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        empty(reply, self.model().sync(ino));
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let entries = match self.model().entries(ino) {
            Ok(entries) => entries,
            Err(errno) => return reply.error(errno),
        };
        let dots = [(".".into(), ino, Kind::Dir), ("..".into(), ino, Kind::Dir)];
        let handle = self.next_handle;
        self.next_handle += 1;
        self.listings.insert(handle, dots.into_iter().chain(entries).collect());
        reply.opened(handle, 0);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if !self.model().is_powered() {
            return reply.error(libc::EIO);
        }
        let Some(listing) = self.listings.get(&fh) else { return reply.error(libc::EBADF) };
        let skip = usize::try_from(offset).unwrap_or(0);
        for (n, (name, child, kind)) in listing.iter().enumerate().skip(skip) {
            // The offset handed back is where the next call resumes.
            if reply.add(*child, n as i64 + 1, file_type(*kind), name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        self.listings.remove(&fh);
        reply.ok();
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        empty(reply, self.model().sync(ino));
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let model = self.model();
        if !model.is_powered() {
            return reply.error(libc::EIO);
        }
        let free = DISK_BLOCKS.saturating_sub(model.used_bytes().div_ceil(BLOCK));
        reply.statfs(DISK_BLOCKS, free, free, 1 << 20, 1 << 20, BLOCK as u32, 255, BLOCK as u32);
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(libc::EOPNOTSUPP);
        }
        let (Ok(offset), Ok(length)) = (u64::try_from(offset), u64::try_from(length)) else {
            return reply.error(libc::EINVAL);
        };
        let mut model = self.model();
        let result = model.attr(ino).and_then(|attr| {
            let end = offset.saturating_add(length);
            if end > attr.size { model.truncate(ino, end) } else { Ok(()) }
        });
        empty(reply, result);
    }
}
