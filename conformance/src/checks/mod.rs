//! The checks, by spec chapter. Ids are `section-n`; the list is in spec order.

mod auth;
mod community;
mod framing;
mod rooms;
mod settings;
mod streams;
mod voice_files;

use crate::Check;

/// Every check, in spec order.
pub fn all() -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(streams::checks());
    checks.extend(framing::checks());
    checks.extend(settings::checks());
    checks.extend(auth::checks());
    checks.extend(rooms::checks());
    checks.extend(community::checks());
    checks.extend(voice_files::checks());
    checks
}
