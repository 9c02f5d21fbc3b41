//! `banterd import --from-sled DIR`: moves a single-node community into the configured store
//! (PostgreSQL, for a cluster). Both engines hold the same keys and records, so the import is
//! a copy, in pages, of every pair; the schema version goes last, so that an import cut short
//! is never taken for a finished one (the target then refuses to be imported into again, and
//! says what to do). Opening the target afterwards migrates it if the source was older.

use std::path::Path;

use super::AdminError;
use crate::store::{Engine, SledEngine, Write, keys, scan_range};

/// Pairs per transaction on the target.
const BATCH: usize = 1024;

/// Copies every pair of the sled database in `data_dir` into `target`, which must be empty;
/// returns how many.
pub fn import_from_sled(data_dir: &Path, target: &dyn Engine) -> Result<u64, AdminError> {
    if !target.range(&[], &[0xff; 16], false, 1)?.is_empty() {
        return Err(AdminError::Refused(
            "the target database is not empty (an import cut short leaves it so: empty it \
             — for PostgreSQL, DROP TABLE banter_kv — and import again)"
                .into(),
        ));
    }
    let db = data_dir.join("db");
    if !db.exists() {
        return Err(AdminError::Refused(format!("no database in {}", data_dir.display())));
    }
    let source = SledEngine::open(&db)?;
    let schema = keys::meta("schema");
    let mut batch: Vec<Write> = Vec::with_capacity(BATCH);
    let mut copied = 0u64;
    scan_range(&source, &[], &[0xff; 16], |key, value| {
        if key != schema {
            batch.push((key, Some(value)));
            copied += 1;
        }
        if batch.len() == BATCH {
            target.apply(std::mem::take(&mut batch))?;
        }
        Ok::<_, AdminError>(())
    })?;
    let version = source.get(&schema)?;
    batch.extend(version.map(|version| (schema, Some(version))));
    copied += 1;
    target.apply(batch)?;
    target.sync()?;
    Ok(copied)
}
