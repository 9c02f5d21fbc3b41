//! Shared files on disk, beside the database (spec §6.9): `files/` in the data dir (or
//! `files_dir`, one directory the nodes of a cluster share) holds each content once, named by
//! its SHA-256 (`files/ab/abcdef...`); `files/partial/` holds uploads still in progress, one
//! per user and content, so that an interrupted upload resumes (on any node).
//!
//! A content file is complete and verified before anything refers to it, and never changes
//! after: the database refers to files, files never refer to the database, so a backup copies
//! them after the records and is still consistent. The database indexes which live entries
//! refer to each content (`keys::content_ref`); a content no entry refers to any more is
//! removed (after the delete that ended its last reference, and at startup).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use banter_protocol::ids::UserId;
use tokio::io::AsyncReadExt as _;

/// The directory under the data dir, unless `files_dir` names another.
pub(crate) const DIR: &str = "files";

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where shared files live.
#[derive(Debug, Clone)]
pub(crate) struct FileStore {
    root: PathBuf,
    /// Uploads in progress, by (user, content), with their declared sizes: each has one
    /// partial file.
    uploading: Uploading,
}

/// Uploads in progress: (user, content) → declared size.
type Uploading = Arc<Mutex<HashMap<(UserId, [u8; 32]), u64>>>;

/// Why an upload may not start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimRefused {
    /// The same account uploads the same content already.
    InProgress,
    /// The account's unfinished uploads would hold more than the quota.
    OverQuota,
}

/// An upload's claim on its partial file, released on drop.
#[derive(Debug)]
pub(crate) struct UploadClaim {
    uploading: Uploading,
    key: (UserId, [u8; 32]),
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        self.uploading.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
    }
}

impl FileStore {
    /// The store in `root` (created as needed).
    pub(crate) fn new(root: &Path) -> Self {
        Self { root: root.to_owned(), uploading: Arc::default() }
    }

    /// The finished file of a content.
    pub(crate) fn content(&self, sha256: &[u8; 32]) -> PathBuf {
        let name = hex(sha256);
        self.root.join(&name[..2]).join(name)
    }

    fn partial(&self, user: UserId, sha256: &[u8; 32]) -> PathBuf {
        self.root.join("partial").join(format!("{}-{}", user.0, hex(sha256)))
    }

    /// How many bytes of this upload an earlier attempt by `user` left (whether the stored
    /// content may stand in for the upload is the caller's decision: it is about access).
    pub(crate) async fn resume_offset(&self, user: UserId, sha256: &[u8; 32], size: u64) -> u64 {
        let kept = tokio::fs::metadata(self.partial(user, sha256)).await.map_or(0, |m| m.len());
        // A partial longer than the declared size is not this upload's: start over.
        if kept > size { 0 } else { kept }
    }

    /// Opens the upload's partial file for appending at `offset` (truncating anything after
    /// it).
    pub(crate) async fn open_partial(
        &self,
        user: UserId,
        sha256: &[u8; 32],
        offset: u64,
    ) -> std::io::Result<tokio::fs::File> {
        let path = self.partial(user, sha256);
        tokio::fs::create_dir_all(path.parent().expect("partial files have a parent")).await?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .await?;
        file.set_len(offset).await?;
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset)).await?;
        Ok(file)
    }

    /// Bytes `user`'s other unfinished uploads hold or will: the declared size of each one
    /// in progress, what an abandoned one left on disk. (Counted under the claims' lock, so
    /// parallel uploads cannot each see room for themselves.)
    fn partial_bytes(
        &self,
        uploading: &HashMap<(UserId, [u8; 32]), u64>,
        user: UserId,
        sha256: &[u8; 32],
    ) -> std::io::Result<u64> {
        let in_flight: HashMap<String, u64> = uploading
            .iter()
            .filter(|((u, s), _)| *u == user && s != sha256)
            .map(|((u, s), size)| (format!("{}-{}", u.0, hex(s)), *size))
            .collect();
        let mut bytes: u64 = in_flight.values().sum();
        let Ok(entries) = std::fs::read_dir(self.root.join("partial")) else { return Ok(bytes) };
        let (prefix, this) = (format!("{}-", user.0), format!("{}-{}", user.0, hex(sha256)));
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name != this && !in_flight.contains_key(&*name) {
                bytes += entry.metadata()?.len();
            }
        }
        Ok(bytes)
    }

    /// Whether the content is stored (with its size: a content is its hash and its size).
    pub(crate) fn has_content(&self, sha256: &[u8; 32], size: u64) -> bool {
        std::fs::metadata(self.content(sha256)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Checks a finished partial upload against its hash; moves it into place when it
    /// matches, deletes it when it does not. Returns whether it matched.
    pub(crate) async fn finish(&self, user: UserId, sha256: &[u8; 32]) -> std::io::Result<bool> {
        let partial = self.partial(user, sha256);
        if sha256_of(&partial).await? != *sha256 {
            tokio::fs::remove_file(&partial).await?;
            return Ok(false);
        }
        // The same work whether or not the content is stored already (then the rename replaces
        // it with the same bytes): how long an upload takes must not tell who shared what.
        let content = self.content(sha256);
        let dir = content.parent().expect("content files have a parent");
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::File::open(&partial).await?.sync_all().await?;
        tokio::fs::rename(&partial, &content).await?;
        // The rename is durable only once the directory holding the new name is synced (and
        // its parent, which may just have gained the directory).
        for dir in [dir, &self.root] {
            tokio::fs::File::open(dir).await?.sync_all().await?;
        }
        Ok(true)
    }

    /// Claims the upload of `size` bytes of `sha256` by `user`: one at a time (both would
    /// write the same partial file), and only while the account's unfinished uploads, this
    /// one included, stay within `max_partial` bytes.
    pub(crate) fn claim_upload(
        &self,
        user: UserId,
        sha256: [u8; 32],
        size: u64,
        max_partial: u64,
    ) -> std::io::Result<Result<UploadClaim, ClaimRefused>> {
        let mut uploading = self.uploading.lock().unwrap_or_else(|e| e.into_inner());
        if uploading.contains_key(&(user, sha256)) {
            return Ok(Err(ClaimRefused::InProgress));
        }
        if self.partial_bytes(&uploading, user, &sha256)?.saturating_add(size) > max_partial {
            return Ok(Err(ClaimRefused::OverQuota));
        }
        uploading.insert((user, sha256), size);
        Ok(Ok(UploadClaim { uploading: self.uploading.clone(), key: (user, sha256) }))
    }

    /// Deletes partial uploads untouched for longer than `max_age` (abandoned: their uploader
    /// would have resumed by now); returns how many. Called at startup.
    pub(crate) fn sweep_partials(&self, max_age: std::time::Duration) -> std::io::Result<usize> {
        let Ok(entries) = std::fs::read_dir(self.root.join("partial")) else { return Ok(0) };
        let mut swept = 0;
        for entry in entries {
            let entry = entry?;
            let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
            if age > max_age {
                std::fs::remove_file(entry.path())?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Removes a partial upload the server already has the whole content of.
    pub(crate) async fn drop_partial(&self, user: UserId, sha256: &[u8; 32]) {
        let _ = tokio::fs::remove_file(self.partial(user, sha256)).await;
    }

    /// Removes a content no entry refers to any more (blocking: called on the writer thread,
    /// in commit order, so that no upload can take a reference to it meanwhile).
    pub(crate) fn remove_content(&self, sha256: &[u8; 32]) -> std::io::Result<()> {
        match std::fs::remove_file(self.content(sha256)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every stored content older than `min_age` for which `referenced` says no
    /// (left by a crash between a delete's commit and the file's removal); returns how many.
    /// Called at startup. The age spares a content another node of a cluster has just stored
    /// and is about to refer to.
    pub(crate) fn sweep_unreferenced(
        &self,
        referenced: impl Fn(&[u8; 32]) -> bool,
        min_age: std::time::Duration,
    ) -> std::io::Result<usize> {
        let Ok(dirs) = std::fs::read_dir(&self.root) else { return Ok(0) };
        let mut swept = 0;
        for dir in dirs {
            let dir = dir?;
            if dir.file_name() == "partial" || !dir.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(dir.path())? {
                let file = file?;
                let name = file.file_name();
                let Some(sha256) = parse_hex(&name.to_string_lossy()) else { continue };
                let age = file.metadata()?.modified()?.elapsed().unwrap_or_default();
                if age >= min_age && !referenced(&sha256) {
                    std::fs::remove_file(file.path())?;
                    swept += 1;
                }
            }
        }
        Ok(swept)
    }
}

/// The SHA-256 a content file is named by.
fn parse_hex(name: &str) -> Option<[u8; 32]> {
    let bytes: Option<Vec<u8>> = (0..name.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
        .collect();
    bytes?.try_into().ok()
}

/// SHA-256 of a file, read in pieces.
pub(crate) async fn sha256_of(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
    }
    Ok(digest.finish().as_ref().try_into().expect("SHA-256 is 32 bytes"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn security_parallel_uploads_share_one_partial_quota() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(&dir.path().join(DIR));
        let ada = UserId(1);
        let first = store.claim_upload(ada, [1; 32], 60, 100).unwrap().unwrap();
        // Nothing on disk yet: the declared size of the one in flight counts.
        assert_eq!(
            store.claim_upload(ada, [2; 32], 60, 100).unwrap().err(),
            Some(ClaimRefused::OverQuota)
        );
        assert_eq!(
            store.claim_upload(ada, [1; 32], 10, 100).unwrap().err(),
            Some(ClaimRefused::InProgress)
        );
        assert!(store.claim_upload(UserId(2), [2; 32], 60, 100).unwrap().is_ok(), "per account");
        drop(first);
        assert!(store.claim_upload(ada, [2; 32], 60, 100).unwrap().is_ok());
    }

    #[test]
    fn only_contents_no_entry_refers_to_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(&dir.path().join(DIR));
        let (kept, orphan) = ([1u8; 32], [2u8; 32]);
        for sha256 in [kept, orphan] {
            let path = store.content(&sha256);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        std::fs::create_dir_all(dir.path().join(DIR).join("partial")).unwrap();
        std::fs::write(dir.path().join(DIR).join("partial").join("1-aa"), b"y").unwrap();
        let referenced = |sha256: &[u8; 32]| *sha256 == kept;
        let hour = Duration::from_secs(3600);
        assert_eq!(store.sweep_unreferenced(referenced, hour).unwrap(), 0, "too new");
        assert_eq!(store.sweep_unreferenced(referenced, Duration::ZERO).unwrap(), 1);
        assert!(store.has_content(&kept, 1) && !store.has_content(&orphan, 1));
        assert!(dir.path().join(DIR).join("partial").join("1-aa").exists(), "partials stay");
    }

    #[test]
    fn only_partial_uploads_left_alone_for_long_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(&dir.path().join(DIR));
        let partial = dir.path().join(DIR).join("partial");
        std::fs::create_dir_all(&partial).unwrap();
        let (old, fresh) = (partial.join("1-aa"), partial.join("2-bb"));
        std::fs::write(&old, b"abandoned").unwrap();
        std::fs::write(&fresh, b"in progress").unwrap();
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        assert_eq!(store.sweep_partials(Duration::from_secs(86_400)).unwrap(), 1);
        assert!(!old.exists() && fresh.exists());
    }
}
