//! The checks, by spec chapter. Ids are `section-n`; [`all`] lists them in spec order.

mod auth;
mod community;
mod framing;
mod rooms;
mod search;
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
    checks.extend(search::checks());
    checks.sort_by_key(|check| order(check.id));
    checks
}

/// `6.2-12` as (6, 2, 12), so that ids sort as the spec's sections do.
fn order(id: &str) -> Vec<u32> {
    id.split(['.', '-']).map(|part| part.parse().unwrap_or(u32::MAX)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_well_formed_and_in_spec_order() {
        let checks = all();
        let ids: Vec<&str> = checks.iter().map(|c| c.id).collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "duplicate ids in {ids:?}");
        for check in &checks {
            let section = check.id.split('-').next().unwrap();
            assert_eq!(check.section, format!("§{section}"), "{}", check.id);
            assert!(order(check.id).iter().all(|n| *n != u32::MAX), "{}", check.id);
        }
        assert!(checks.len() >= 100);
    }
}
