//! The Dataset profile (`profile.json`) as the Monitor reads it: the drift reference.
//!
//! The prepare pod writes it with the same type, `modelops_api::profile::Profile`, so the two
//! sides cannot drift apart. The profile lives on the artifact volume, which the operator
//! mounts at [`ArtifactsConfig::local_dir`]: `pvc://<claim>/<path>` is `<local_dir>/<path>`.
//! Its path holds the data's digest, so a profile read once never changes.

use crate::config::ArtifactsConfig;
use modelops_api::profile::Profile;
use modelops_api::workorder::layout::parse_pvc_uri;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a profile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The URI is not `pvc://<claim>/<path>` with a plain relative path.
    #[error("profile URI {uri:?} is not pvc://<claim>/<path> with a relative path")]
    BadUri {
        /// The URI.
        uri: String,
    },
    /// The URI names a claim the operator does not mount.
    #[error(
        "profile URI {uri:?} is on claim {claim:?}, but the operator mounts {mounted:?}: set the chart's artifacts.claimName to the claim Datasets write to"
    )]
    OtherClaim {
        /// The URI.
        uri: String,
        /// Its claim.
        claim: String,
        /// The claim the operator mounts.
        mounted: String,
    },
    /// The file could not be read.
    #[error(
        "cannot read profile {path}: {source} (is the artifact volume mounted in the operator?)"
    )]
    Read {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a profile.
    #[error("profile {path} is not a valid profile.json: {reason}")]
    Invalid {
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Where the operator finds the file of a `pvc://<claim>/<path>` URI.
pub fn local_path(artifacts: &ArtifactsConfig, uri: &str) -> Result<PathBuf, ProfileError> {
    let bad = || ProfileError::BadUri {
        uri: uri.to_owned(),
    };
    let (claim, path) = parse_pvc_uri(uri).ok_or_else(bad)?;
    // The path comes from a status a user could write: never let it climb out of the volume.
    if !Path::new(path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(bad());
    }
    if claim != artifacts.claim {
        return Err(ProfileError::OtherClaim {
            uri: uri.to_owned(),
            claim: claim.to_owned(),
            mounted: artifacts.claim.clone(),
        });
    }
    Ok(artifacts.local_dir.join(path))
}

/// Reads and checks a profile file.
pub fn read_profile(path: &Path) -> Result<Profile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let invalid = |reason: String| ProfileError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let profile: Profile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    profile.check().map_err(invalid)?;
    Ok(profile)
}

/// Reads the profile a Dataset's `status.profile.uri` names.
pub fn load_profile(artifacts: &ArtifactsConfig, uri: &str) -> Result<Profile, ProfileError> {
    read_profile(&local_path(artifacts, uri)?)
}

/// Profiles read so far, by URI. A profile's path holds its data's digest, so an entry never
/// goes stale; the cache is emptied when it grows past [`ProfileCache::LIMIT`] entries.
#[derive(Debug, Default)]
pub struct ProfileCache {
    entries: Mutex<HashMap<String, Arc<Profile>>>,
}

impl ProfileCache {
    /// The most profiles kept.
    pub const LIMIT: usize = 64;

    /// The profile at `uri`, read at most once.
    pub fn get(
        &self,
        artifacts: &ArtifactsConfig,
        uri: &str,
    ) -> Result<Arc<Profile>, ProfileError> {
        if let Some(profile) = self.lock().get(uri) {
            return Ok(profile.clone());
        }
        let profile = Arc::new(load_profile(artifacts, uri)?);
        let mut entries = self.lock();
        if entries.len() >= Self::LIMIT {
            entries.clear();
        }
        entries.insert(uri.to_owned(), profile.clone());
        Ok(profile)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Profile>>> {
        // The map holds finished reads only: a panic elsewhere leaves it usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OperatorConfig;
    use modelops_api::profile::{EXAMPLE_PROFILE_JSON as PROFILE_JSON, example_profile as profile};

    fn artifacts(dir: &Path) -> ArtifactsConfig {
        OperatorConfig::for_tests(dir.to_path_buf()).artifacts
    }

    #[test]
    fn uris_map_to_the_operators_mount() {
        let config = artifacts(Path::new("/artifacts"));
        let claim = &config.claim;
        assert_eq!(
            local_path(
                &config,
                &format!("pvc://{claim}/datasets/ns/d/abc/profile.json")
            )
            .unwrap(),
            PathBuf::from("/artifacts/datasets/ns/d/abc/profile.json")
        );
        for bad in [
            "http://x/profile.json".to_owned(),
            format!("pvc://{claim}/../etc/passwd"),
            format!("pvc://{claim}//etc/passwd"),
            format!("pvc://{claim}/"),
        ] {
            assert!(
                matches!(local_path(&config, &bad), Err(ProfileError::BadUri { .. })),
                "{bad}"
            );
        }
        let other = local_path(&config, "pvc://elsewhere/p.json").unwrap_err();
        assert!(other.to_string().contains("artifacts.claimName"), "{other}");
    }

    #[test]
    fn a_profile_loads_from_the_volume_once() {
        let dir = std::env::temp_dir().join(format!("modelops-profile-{}", std::process::id()));
        let file = dir.join("datasets/ns/d/abc/profile.json");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, PROFILE_JSON).unwrap();
        let config = artifacts(&dir);
        let uri = format!("pvc://{}/datasets/ns/d/abc/profile.json", config.claim);
        let cache = ProfileCache::default();
        let first = cache.get(&config, &uri).unwrap();
        assert_eq!(*first, profile());
        std::fs::remove_file(&file).unwrap();
        let again = cache.get(&config, &uri).expect("cached, not read again");
        assert!(Arc::ptr_eq(&first, &again));
        let missing = load_profile(&config, &uri).unwrap_err();
        assert!(matches!(missing, ProfileError::Read { .. }), "{missing}");
        std::fs::write(
            &file,
            r#"{"features": [{"name": "x", "histogram": {"edges": [0], "counts": [1]}}]}"#,
        )
        .unwrap();
        let invalid = load_profile(&config, &uri).unwrap_err();
        assert!(
            invalid.to_string().contains("1 edges for 1 bins"),
            "{invalid}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
