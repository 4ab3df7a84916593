//! The Dataset profile as the Monitor reads it: the drift reference. The operator reads no
//! artifact store: each serving pod loads its model's profile from its namespace's store and
//! serves it at [`modelops_api::serving::PROFILE_PATH`], and the Monitor asks a pod of the
//! revision it judges (docs/decisions.md, "Artifact store").
//!
//! The prepare pod writes the profile with the same type, `modelops_api::profile::Profile`, so
//! the two sides cannot drift apart; what a pod answers is checked like any input. A revision's
//! model never changes, so neither does its profile: the cache keys by namespace, target,
//! revision and model digest.

use modelops_api::profile::Profile;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Reads and checks a profile a pod served.
pub fn parse_profile(bytes: &[u8]) -> Result<Profile, String> {
    let profile: Profile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    profile.check()?;
    Ok(profile)
}

/// The cache key of a revision's profile.
pub fn profile_key(namespace: &str, target: &str, revision: i32, model_digest: &str) -> String {
    format!("{namespace}/{target}/{revision}/{model_digest}")
}

/// Profiles read so far, by [`profile_key`]. An entry never goes stale; the cache is emptied
/// when it grows past [`ProfileCache::LIMIT`] entries.
#[derive(Debug, Default)]
pub struct ProfileCache {
    entries: Mutex<HashMap<String, Arc<Profile>>>,
}

impl ProfileCache {
    /// The most profiles kept.
    pub const LIMIT: usize = 64;

    /// The profile under `key`, if it was read before.
    pub fn get(&self, key: &str) -> Option<Arc<Profile>> {
        self.lock().get(key).cloned()
    }

    /// Keeps a profile read under `key`.
    pub fn insert(&self, key: &str, profile: Arc<Profile>) {
        let mut entries = self.lock();
        if entries.len() >= Self::LIMIT {
            entries.clear();
        }
        entries.insert(key.to_owned(), profile);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Profile>>> {
        // The map holds finished reads only: a panic elsewhere leaves it usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::profile::{EXAMPLE_PROFILE_JSON as PROFILE_JSON, example_profile as profile};

    #[test]
    fn served_profiles_are_checked_and_kept() {
        assert_eq!(parse_profile(PROFILE_JSON.as_bytes()).unwrap(), profile());
        let invalid = parse_profile(
            br#"{"features": [{"name": "x", "histogram": {"edges": [0], "counts": [1]}}]}"#,
        )
        .unwrap_err();
        assert!(invalid.contains("1 edges for 1 bins"), "{invalid}");
        assert!(parse_profile(b"<html>").is_err());

        let cache = ProfileCache::default();
        let key = profile_key("ns", "digits", 2, "sha256:ab");
        assert!(cache.get(&key).is_none());
        cache.insert(&key, Arc::new(profile()));
        assert_eq!(*cache.get(&key).unwrap(), profile());
        assert!(
            cache
                .get(&profile_key("ns", "digits", 3, "sha256:ab"))
                .is_none()
        );
    }
}
