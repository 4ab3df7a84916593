//! The Dataset profile (`profile.json`): per-feature histograms of the raw training values and the
//! class balance, written by the prepare pod and read by the Monitor as the drift reference.
//! The serving pods count live inputs into the same bins (the `bin` label of their feature
//! histograms), so the profile keeps the bin edges themselves.

use serde::{Deserialize, Serialize};

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

/// An example profile as `modelops-worker prepare` writes it (two features, two classes), for
/// tests and docs.
pub const EXAMPLE_PROFILE_JSON: &str = r#"{
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

/// [`EXAMPLE_PROFILE_JSON`], read.
pub fn example_profile() -> Profile {
    serde_json::from_str(EXAMPLE_PROFILE_JSON).expect("the example profile reads")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_profile_reads() {
        let profile = example_profile();
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
}
