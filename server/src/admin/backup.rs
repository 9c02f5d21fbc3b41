//! Backups: every record of the database, taken in one consistent view while the server runs,
//! plus the server's identity (so that restored servers keep their certificate and clients
//! keep trusting them).
//!
//! A backup is a directory:
//! - `records.bin`: `BANTERBK` and a format version (u32 BE), then each key-value pair as
//!   `u32 BE key length, key, u32 BE value length, value`, in key order;
//! - the identity files of the data dir (`server.key`, `cert.pem`, `cert-key.pem`), mode 0600;
//! - `manifest.json`, written last: format, schema version, record count, SHA-256 of
//!   `records.bin`. A directory without a manifest is an unfinished backup and is refused.
//!
//! The dump runs on the storage writer between two group commits ([`Store::exclusive`]):
//! every write acknowledged before the backup started is in it, nothing half-written is, and
//! writers wait while it runs.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write as _};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AdminError;
use crate::files::{self, hex};
use crate::store::{Engine, SCHEMA_VERSION, SledEngine, StoreError, Write, scan_range};
use crate::{durable, identity};

const MAGIC: &[u8; 8] = b"BANTERBK";
const FORMAT: u32 = 1;
const RECORDS: &str = "records.bin";
const MANIFEST: &str = "manifest.json";
/// Records per batch when restoring.
const RESTORE_BATCH: usize = 10_000;

/// What `manifest.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The backup format.
    pub format: u32,
    /// The database schema the records are in.
    pub schema: u32,
    /// How many key-value pairs `records.bin` holds.
    pub records: u64,
    /// How many shared files `files/` holds.
    pub files: u64,
    /// Lower-case hex SHA-256 of `records.bin`.
    pub sha256: String,
    /// When it was taken, ms since the Unix epoch.
    pub created_ms: u64,
    /// The banterd that took it.
    pub banterd_version: String,
}

/// A hashing, counting writer of `records.bin`.
struct RecordWriter {
    out: BufWriter<File>,
    digest: ring::digest::Context,
    records: u64,
}

impl RecordWriter {
    fn create(path: &Path) -> std::io::Result<Self> {
        let mut writer = Self {
            out: BufWriter::new(identity::create_private(path)?),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            records: 0,
        };
        writer.bytes(MAGIC)?;
        writer.bytes(&FORMAT.to_be_bytes())?;
        Ok(writer)
    }

    fn bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.digest.update(bytes);
        self.out.write_all(bytes)
    }

    fn record(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        for part in [key, value] {
            let len = u32::try_from(part.len()).map_err(std::io::Error::other)?;
            self.bytes(&len.to_be_bytes())?;
            self.bytes(part)?;
        }
        self.records += 1;
        Ok(())
    }

    /// Flushes and syncs; returns the record count and hex digest.
    fn finish(self) -> std::io::Result<(u64, String)> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((self.records, hex(self.digest.finish().as_ref())))
    }
}

/// Writes every record of `engine` to `dir/records.bin`. Runs inside [`Store::exclusive`].
///
/// [`Store::exclusive`]: crate::store::Store::exclusive
pub(super) fn dump(engine: &dyn Engine, dir: &Path) -> Result<(u64, String), AdminError> {
    let mut writer = RecordWriter::create(&dir.join(RECORDS))?;
    scan_range(engine, &[], &[0xff; 9], |key, value| {
        writer.record(&key, &value).map_err(AdminError::from)
    })?;
    Ok(writer.finish()?)
}

/// Prepares an empty backup directory (refusing to overwrite anything).
pub(super) fn prepare(dir: &Path) -> Result<(), AdminError> {
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        return Err(AdminError::Refused(format!("{} exists and is not empty", dir.display())));
    }
    identity::create_private_dir(dir)?;
    Ok(())
}

/// Copies the identity and the shared files and writes the manifest, completing a backup
/// whose records are dumped. Shared files never change and exist before any record refers to
/// them, so copying them after the dump still gives a consistent backup.
pub(super) fn finish(
    data_dir: &Path,
    files_dir: &Path,
    dir: &Path,
    records: u64,
    sha256: String,
) -> Result<Manifest, AdminError> {
    for name in identity::FILES {
        let from = data_dir.join(name);
        if from.exists() {
            identity::write_private(&dir.join(name), &fs::read(&from)?)?;
        }
    }
    let files = copy_files(files_dir, &dir.join(files::DIR))?;
    let manifest = Manifest {
        format: FORMAT,
        schema: SCHEMA_VERSION,
        records,
        files,
        sha256,
        created_ms: crate::wall_clock().0,
        banterd_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    let path = dir.join(MANIFEST);
    identity::write_private(&path, &json)?;
    Ok(manifest)
}

/// Reads and verifies a backup's manifest and records file.
fn verify(dir: &Path) -> Result<Manifest, AdminError> {
    let path = dir.join(MANIFEST);
    let manifest: Manifest = serde_json::from_slice(&fs::read(&path).map_err(|e| {
        AdminError::Refused(format!("{}: {e} (not a finished backup)", path.display()))
    })?)
    .map_err(|e| AdminError::Refused(format!("{}: {e}", path.display())))?;
    if manifest.format != FORMAT {
        return Err(AdminError::Refused(format!("backup format {} is unknown", manifest.format)));
    }
    if manifest.schema > SCHEMA_VERSION {
        return Err(
            StoreError::NewerSchema { found: manifest.schema, supported: SCHEMA_VERSION }.into()
        );
    }
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut file = File::open(dir.join(RECORDS))?;
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
    }
    if hex(digest.finish().as_ref()) != manifest.sha256 {
        return Err(AdminError::Refused(format!(
            "{} does not match its manifest's SHA-256: the backup is damaged",
            dir.join(RECORDS).display()
        )));
    }
    Ok(manifest)
}

/// Restores the backup in `backup` into a new data dir. Refuses a data dir that already holds
/// a database.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<Manifest, AdminError> {
    let manifest = verify(backup)?;
    let db_dir = data_dir.join("db");
    if db_dir.exists() {
        return Err(AdminError::Refused(format!(
            "{} already holds a database; restore into a new data dir",
            data_dir.display()
        )));
    }
    identity::create_private_dir(data_dir)?;
    let engine = SledEngine::open(&db_dir)?;
    let mut reader = BufReader::new(File::open(backup.join(RECORDS))?);
    let mut header = [0u8; 12];
    reader.read_exact(&mut header)?;
    if &header[..8] != MAGIC || header[8..] != FORMAT.to_be_bytes() {
        return Err(AdminError::Refused("records.bin has no backup header".into()));
    }
    let mut batch: Vec<Write> = Vec::with_capacity(RESTORE_BATCH);
    let mut restored = 0u64;
    while restored < manifest.records {
        let key = read_part(&mut reader)?;
        let value = read_part(&mut reader)?;
        batch.push((key, Some(value)));
        restored += 1;
        if batch.len() == RESTORE_BATCH {
            engine.apply(std::mem::take(&mut batch))?;
        }
    }
    engine.apply(batch)?;
    engine.sync()?;
    copy_files(&backup.join(files::DIR), &data_dir.join(files::DIR))?;
    for name in identity::FILES {
        let from = backup.join(name);
        if from.exists() {
            identity::write_private(&data_dir.join(name), &fs::read(&from)?)?;
        }
    }
    Ok(manifest)
}

/// Copies the finished shared files (`files/xx/<sha256>`, not uploads in progress) from one
/// files directory to another; returns how many.
fn copy_files(from: &Path, to: &Path) -> Result<u64, AdminError> {
    let mut copied = 0;
    let Ok(shards) = fs::read_dir(from) else { return Ok(0) };
    for shard in shards {
        let shard = shard?;
        if shard.file_name() == "partial" || !shard.file_type()?.is_dir() {
            continue;
        }
        let target = to.join(shard.file_name());
        durable::create_dir_all(&target, 0o700)?;
        for file in fs::read_dir(shard.path())? {
            let file = file?;
            let copy = target.join(file.file_name());
            fs::copy(file.path(), &copy)?;
            File::open(&copy)?.sync_all()?;
            copied += 1;
        }
        // The copies' names, as their contents, before the manifest counts them.
        durable::sync_dir(&target)?;
    }
    Ok(copied)
}

fn read_part(reader: &mut impl Read) -> Result<Vec<u8>, AdminError> {
    /// Far above any record banterd writes; a larger length means a damaged file.
    const MAX_PART: usize = 64 << 20;
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_PART {
        return Err(AdminError::Refused(format!("a record of {len} bytes: the backup is damaged")));
    }
    let mut part = vec![0; len];
    reader.read_exact(&mut part)?;
    Ok(part)
}
