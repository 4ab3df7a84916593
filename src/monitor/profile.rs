//! The Dataset profile (`profile.json`) as the Monitor reads it: the drift reference.
//!
//! The prepare pod (`worker/src/data/profile.rs`) writes it; the operator cannot link the worker
//! crate (it carries libtorch), so these types read the same JSON, keeping only what drift
//! needs and ignoring the rest. The profile lives on the artifact volume, which the operator
//! mounts at [`ArtifactsConfig::local_dir`]: `pvc://<claim>/<path>` is `<local_dir>/<path>`.
//! Its path holds the data's digest, so a profile read once never changes.

use crate::api::workorder::layout::parse_pvc_uri;
use crate::config::ArtifactsConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A histogram of one feature's raw training values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// Ascending bin edges, one more than the bins.
    pub edges: Vec<f64>,
    /// Training values in each bin.
    pub counts: Vec<u64>,
    /// Training values below the first edge (0: the edges span the training range).
    #[serde(default)]
    pub underflow: u64,
    /// Training values above the last edge.
    #[serde(default)]
    pub overflow: u64,
}

impl Histogram {
    /// The counts in bin order, underflow first and overflow last: the order the serving pods'
    /// `bin` label follows.
    pub fn ordered_counts(&self) -> Vec<f64> {
        std::iter::once(self.underflow)
            .chain(self.counts.iter().copied())
            .chain(std::iter::once(self.overflow))
            .map(|count| count as f64)
            .collect()
    }
}

/// The profile of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureProfile {
    /// The feature's name, as the serving pods' `feature` label writes it (`textLength` for
    /// text).
    pub name: String,
    /// Its training values on fixed bins.
    pub histogram: Histogram,
}

/// Rows per class of the training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassBalance {
    /// Class names, as the serving pods' `class` label writes them.
    pub classes: Vec<String>,
    /// Training rows per class.
    pub counts: Vec<u64>,
    /// Share of training rows per class.
    #[serde(default)]
    pub fractions: Vec<f64>,
}

impl ClassBalance {
    /// The training rows of each class (the shares when the counts are missing or all zero).
    pub fn weights(&self) -> Vec<f64> {
        if self.counts.iter().any(|&count| count > 0) {
            self.counts.iter().map(|&count| count as f64).collect()
        } else {
            self.fractions.clone()
        }
    }
}

/// `profile.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Training rows profiled.
    #[serde(default)]
    pub rows: u64,
    /// One profile per feature, in feature order.
    pub features: Vec<FeatureProfile>,
    /// Class balance of the training split; absent when the label is not a class (regression).
    #[serde(default)]
    pub class_balance: Option<ClassBalance>,
}

impl Profile {
    /// Checks what drift relies on: every histogram has one edge more than bins, and the class
    /// balance one count per class.
    pub fn check(&self) -> Result<(), String> {
        for feature in &self.features {
            let histogram = &feature.histogram;
            if histogram.counts.is_empty() || histogram.edges.len() != histogram.counts.len() + 1 {
                return Err(format!(
                    "feature {:?} has {} edges for {} bins (want one edge more than bins)",
                    feature.name,
                    histogram.edges.len(),
                    histogram.counts.len()
                ));
            }
        }
        if let Some(balance) = &self.class_balance
            && balance.counts.len() != balance.classes.len()
        {
            return Err(format!(
                "classBalance has {} counts for {} classes",
                balance.counts.len(),
                balance.classes.len()
            ));
        }
        Ok(())
    }
}

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
pub(crate) mod tests {
    use super::*;
    use crate::config::OperatorConfig;

    /// A profile in the worker's format, as `modelops-worker prepare` writes it.
    pub(crate) const PROFILE_JSON: &str = r#"{
  "rows": 100,
  "features": [
    {"name": "x", "min": 0.0, "max": 4.0, "mean": 2.0, "std": 1.0,
     "histogram": {"edges": [0.0, 1.0, 2.0, 3.0, 4.0], "counts": [25, 25, 25, 25], "underflow": 0, "overflow": 0}},
    {"name": "y", "min": 0.0, "max": 4.0, "mean": 2.0, "std": 1.0,
     "histogram": {"edges": [0.0, 1.0, 2.0, 3.0, 4.0], "counts": [40, 30, 20, 10], "underflow": 0, "overflow": 0}}
  ],
  "classBalance": {"classes": ["cat", "dog"], "counts": [50, 50], "fractions": [0.5, 0.5]},
  "classBalanceAll": {"classes": ["cat", "dog"], "counts": [60, 60], "fractions": [0.5, 0.5]}
}"#;

    pub(crate) fn profile() -> Profile {
        serde_json::from_str(PROFILE_JSON).unwrap()
    }

    fn artifacts(dir: &Path) -> ArtifactsConfig {
        OperatorConfig::for_tests(dir.to_path_buf()).artifacts
    }

    #[test]
    fn the_workers_profile_reads() {
        let profile = profile();
        assert_eq!(profile.rows, 100);
        assert_eq!(profile.features[1].name, "y");
        assert_eq!(
            profile.features[1].histogram.ordered_counts(),
            [0.0, 40.0, 30.0, 20.0, 10.0, 0.0]
        );
        assert_eq!(profile.class_balance.unwrap().weights(), [50.0, 50.0]);
    }

    #[test]
    fn a_profile_without_classes_reads() {
        let text = r#"{"rows": 1, "features": [], "classBalance": null, "classBalanceAll": null}"#;
        let profile: Profile = serde_json::from_str(text).unwrap();
        assert_eq!(profile.class_balance, None);
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
