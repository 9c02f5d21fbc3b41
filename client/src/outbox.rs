//! The ordered outbox: posts made while offline (or in flight when a connection drops) are
//! kept, with their client message ids, and sent once, in order, when a connection is up
//! (spec §7.2). With a path it survives restarts of the client: the file is rewritten
//! atomically (temp file, fsync, rename) on every change.

use std::collections::VecDeque;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use banter_protocol::ids::RoomId;
use serde::{Deserialize, Serialize};

/// One post waiting for its ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The room.
    pub room: RoomId,
    /// Chosen once; every retry reuses it, so the server deduplicates.
    pub client_msg_id: u128,
    /// The text.
    pub text: String,
    /// The message replied to.
    pub reply_to: Option<u64>,
    /// Posted without a name (spec §6.4.1).
    pub anonymous: bool,
}

/// The queue.
#[derive(Debug, Default)]
pub struct Outbox {
    path: Option<PathBuf>,
    entries: VecDeque<Pending>,
}

impl Outbox {
    /// An outbox kept only in memory.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// An outbox persisted at `path` (loaded if it exists).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let entries = match fs::read(path) {
            Ok(bytes) => postcard::from_bytes::<Vec<Pending>>(&bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?
                .into(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => VecDeque::new(),
            Err(e) => return Err(e),
        };
        Ok(Self { path: Some(path.to_owned()), entries })
    }

    /// Appends a post; when it cannot be saved it is not queued either, so the caller may
    /// simply try again.
    pub fn push(&mut self, pending: Pending) -> std::io::Result<()> {
        self.entries.push_back(pending);
        let saved = self.save();
        if saved.is_err() {
            self.entries.pop_back();
        }
        saved
    }

    /// The oldest post.
    pub fn front(&self) -> Option<&Pending> {
        self.entries.front()
    }

    /// The oldest `n` posts, oldest first.
    pub fn first(&self, n: usize) -> Vec<Pending> {
        self.entries.iter().take(n).cloned().collect()
    }

    /// Removes the post with this id (acked, or refused for good).
    pub fn remove(&mut self, client_msg_id: u128) -> std::io::Result<()> {
        self.remove_all(&[client_msg_id])
    }

    /// Removes the posts with these ids, with one rewrite of a persisted outbox.
    pub fn remove_all(&mut self, client_msg_ids: &[u128]) -> std::io::Result<()> {
        self.entries.retain(|p| !client_msg_ids.contains(&p.client_msg_id));
        self.save()
    }

    /// Posts waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let bytes = postcard::to_stdvec(&self.entries.iter().collect::<Vec<_>>())
            .map_err(std::io::Error::other)?;
        let temp = path.with_extension("tmp");
        let mut file = fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persisted_outbox_keeps_order_across_reopen() {
        let dir = std::env::temp_dir().join(format!("banter-outbox-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("outbox");
        let _ = fs::remove_file(&path);
        let mut outbox = Outbox::open(&path).unwrap();
        for i in 0..3 {
            outbox
                .push(Pending {
                    room: RoomId(1),
                    client_msg_id: i,
                    text: format!("m{i}"),
                    reply_to: None,
                    anonymous: i == 2,
                })
                .unwrap();
        }
        outbox.remove(0).unwrap();
        let reopened = Outbox::open(&path).unwrap();
        assert_eq!(reopened.len(), 2);
        assert_eq!(reopened.front().unwrap().client_msg_id, 1);
        assert!(reopened.entries.back().unwrap().anonymous);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_post_that_cannot_be_saved_is_not_queued() {
        let missing = std::env::temp_dir()
            .join(format!("banter-outbox-missing-{}", std::process::id()))
            .join("outbox");
        let mut outbox = Outbox::open(&missing).unwrap();
        let pending = Pending {
            room: RoomId(1),
            client_msg_id: 7,
            text: "m".into(),
            reply_to: None,
            anonymous: false,
        };
        assert!(outbox.push(pending).is_err(), "its directory does not exist");
        assert!(outbox.is_empty(), "so a retry does not queue it twice");
    }
}
