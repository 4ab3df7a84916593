//! The Dataset profile (`profile.json`): per-feature histograms of the raw training values and the
//! class balance, written by the prepare pod and read by the Monitor as the drift reference.
//! The serving pods count live inputs into the same bins (the `bin` label of their feature
//! histograms), so the profile keeps the bin edges themselves.
//!
//! The builders ([`Histogram::equal_width`], [`Histogram::bin_of`], [`FeatureProfile::of`],
//! [`ClassBalance::of`]) live here, next to the format, because they are part of it: a value
//! must fall in the same bin whether the prepare pod counts it or a serving pod does.

use crate::serving::metrics::{BIN_OVERFLOW, BIN_UNDERFLOW};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Equal-width bins per feature over the training range (what `modelops-worker prepare` writes;
/// a reader takes the bins from the edges, so a profile with other bins still reads).
pub const BINS: usize = 10;

/// The most bins a histogram may have: a profile with more is invalid, and a `bin` label beyond
/// it is not read (a pod's `/metrics` must not make the Monitor allocate at will).
pub const MAX_BINS: usize = 1024;

/// Where a value falls in a histogram, in the bins' order (underflow first): the serving pods'
/// `bin` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bin {
    /// Below the first edge (and NaN, which has no place among the edges).
    Underflow,
    /// Bin `i`: `edges[i] <= value < edges[i + 1]`, the last bin closed on the right.
    Inside(usize),
    /// Above the last edge.
    Overflow,
}

impl Bin {
    /// Reads the `bin` label (`underflow`, `0` … `9`, `overflow`).
    pub fn parse(label: &str) -> Option<Self> {
        match label {
            BIN_UNDERFLOW => Some(Self::Underflow),
            BIN_OVERFLOW => Some(Self::Overflow),
            index => index
                .parse()
                .ok()
                .filter(|&i| i < MAX_BINS)
                .map(Self::Inside),
        }
    }
}

impl fmt::Display for Bin {
    /// The `bin` label, as [`Bin::parse`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Underflow => f.write_str(BIN_UNDERFLOW),
            Self::Inside(i) => write!(f, "{i}"),
            Self::Overflow => f.write_str(BIN_OVERFLOW),
        }
    }
}

/// A histogram of one feature's raw values over fixed edges, with the values outside them kept
/// apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// Ascending bin edges, one more than the bins.
    pub edges: Vec<f64>,
    /// Values in each bin.
    pub counts: Vec<u64>,
    /// Values below the first edge (0 in a profile: its edges span the training range).
    #[serde(default)]
    pub underflow: u64,
    /// Values above the last edge.
    #[serde(default)]
    pub overflow: u64,
}

impl Histogram {
    /// Equal-width edges over `[min, max]`, every count 0; a constant value gets a unit-wide
    /// range around it.
    pub fn equal_width(min: f64, max: f64, bins: usize) -> Self {
        let (low, high) = if max > min {
            (min, max)
        } else {
            (min - 0.5, min + 0.5)
        };
        let width = (high - low) / bins as f64;
        let mut edges: Vec<f64> = (0..bins).map(|i| low + width * i as f64).collect();
        // The last edge is exactly the maximum, so the maximum itself is never an overflow.
        edges.push(high);
        Self {
            edges,
            counts: vec![0; bins],
            underflow: 0,
            overflow: 0,
        }
    }

    /// The same edges with every count 0: where a server counts its live inputs.
    pub fn emptied(&self) -> Self {
        Self {
            edges: self.edges.clone(),
            counts: vec![0; self.counts.len()],
            underflow: 0,
            overflow: 0,
        }
    }

    /// The bin a value falls in. The histogram must be valid ([`Histogram::check`]).
    pub fn bin_of(&self, value: f64) -> Bin {
        let last = self.edges.len() - 1;
        if value.is_nan() || value < self.edges[0] {
            return Bin::Underflow;
        }
        if value > self.edges[last] {
            return Bin::Overflow;
        }
        // The first edge above the value closes its bin; the maximum belongs to the last bin.
        let above = self.edges.partition_point(|edge| *edge <= value);
        Bin::Inside(above.saturating_sub(1).min(last - 1))
    }

    /// Counts one value.
    pub fn add(&mut self, value: f64) {
        match self.bin_of(value) {
            Bin::Underflow => self.underflow += 1,
            Bin::Inside(i) => self.counts[i] += 1,
            Bin::Overflow => self.overflow += 1,
        }
    }

    /// Every bin with its count, underflow first and overflow last: the order of the serving
    /// pods' `bin` label.
    pub fn bins(&self) -> impl Iterator<Item = (Bin, u64)> + '_ {
        std::iter::once((Bin::Underflow, self.underflow))
            .chain(
                self.counts
                    .iter()
                    .enumerate()
                    .map(|(i, &count)| (Bin::Inside(i), count)),
            )
            .chain(std::iter::once((Bin::Overflow, self.overflow)))
    }

    /// The counts in bin order, underflow first and overflow last (see [`Histogram::bins`]).
    pub fn ordered_counts(&self) -> Vec<f64> {
        self.bins().map(|(_, count)| count as f64).collect()
    }

    /// Checks what binning relies on: at least one bin, and one edge more than bins.
    pub fn check(&self) -> Result<(), String> {
        if self.counts.len() > MAX_BINS {
            return Err(format!(
                "{} bins, more than the {MAX_BINS} a profile may have",
                self.counts.len()
            ));
        }
        if self.counts.is_empty() || self.edges.len() != self.counts.len() + 1 {
            return Err(format!(
                "{} edges for {} bins (want one edge more than bins)",
                self.edges.len(),
                self.counts.len()
            ));
        }
        Ok(())
    }
}

/// The profile of one feature on the training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureProfile {
    /// The feature's name, as the serving pods' `feature` label writes it (`textLength`, in
    /// characters, for text).
    pub name: String,
    /// Smallest raw value.
    #[serde(default = "not_recorded")]
    pub min: f64,
    /// Largest raw value.
    #[serde(default = "not_recorded")]
    pub max: f64,
    /// Mean of the raw values.
    #[serde(default = "not_recorded")]
    pub mean: f64,
    /// Population standard deviation of the raw values.
    #[serde(default = "not_recorded")]
    pub std: f64,
    /// Histogram of the raw values on [`BINS`] equal-width bins.
    pub histogram: Histogram,
}

/// A summary statistic a profile leaves out (NaN, not a made-up number). Drift reads the
/// histograms only, so a profile without statistics still serves as a reference.
fn not_recorded() -> f64 {
    f64::NAN
}

impl FeatureProfile {
    /// Profiles raw values (at least one).
    pub fn of(name: &str, values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        let mut histogram = Histogram::equal_width(min, max, BINS);
        for &value in values {
            histogram.add(value);
        }
        Self {
            name: name.to_owned(),
            min,
            max,
            mean,
            std,
            histogram,
        }
    }
}

/// Rows per class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassBalance {
    /// Class names in the data set's class order, as the serving pods' `class` label writes
    /// them.
    pub classes: Vec<String>,
    /// Rows per class.
    pub counts: Vec<u64>,
    /// Share of rows per class.
    #[serde(default)]
    pub fractions: Vec<f64>,
}

impl ClassBalance {
    /// Counts class indices into `classes`.
    pub fn of(classes: &[String], class_of_row: impl Iterator<Item = usize>) -> Self {
        let mut counts = vec![0u64; classes.len()];
        for class in class_of_row {
            counts[class] += 1;
        }
        let total = counts.iter().sum::<u64>().max(1) as f64;
        let fractions = counts.iter().map(|&c| c as f64 / total).collect();
        Self {
            classes: classes.to_vec(),
            counts,
            fractions,
        }
    }

    /// The rows of each class (the shares when the counts are missing or all zero).
    pub fn weights(&self) -> Vec<f64> {
        if self.counts.iter().any(|&count| count > 0) {
            self.counts.iter().map(|&count| count as f64).collect()
        } else {
            self.fractions.clone()
        }
    }

    /// Checks that there is one count per class.
    fn check(&self, field: &str) -> Result<(), String> {
        if self.counts.len() != self.classes.len() {
            return Err(format!(
                "{field} has {} counts for {} classes",
                self.counts.len(),
                self.classes.len()
            ));
        }
        Ok(())
    }
}

/// `profile.json`: the drift reference of a prepared data set, written by the prepare pod, read
/// by the serving pods (for their input bins) and the Monitor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Training rows profiled.
    #[serde(default)]
    pub rows: u64,
    /// One profile per feature, in feature order (raw values, before normalisation).
    pub features: Vec<FeatureProfile>,
    /// Class balance of the training split; absent when the label is not a class (regression,
    /// or too many values to be classes).
    #[serde(default)]
    pub class_balance: Option<ClassBalance>,
    /// Class balance of every row (all splits).
    #[serde(default)]
    pub class_balance_all: Option<ClassBalance>,
    /// The trained model's predictions on the training split, on equal-width bins (regression
    /// models): the reference of prediction drift for regression. The Dataset's `profile.json`
    /// has none; a serving pod adds the model card's `predictions` to the profile it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Histogram>,
}

impl Profile {
    /// Checks what drift and the serving pods' bins rely on: every histogram is valid
    /// ([`Histogram::check`]) and each class balance has one count per class.
    pub fn check(&self) -> Result<(), String> {
        for feature in &self.features {
            feature
                .histogram
                .check()
                .map_err(|reason| format!("feature {:?} has {reason}", feature.name))?;
        }
        if let Some(balance) = &self.class_balance {
            balance.check("classBalance")?;
        }
        if let Some(balance) = &self.class_balance_all {
            balance.check("classBalanceAll")?;
        }
        if let Some(predictions) = &self.predictions {
            predictions
                .check()
                .map_err(|reason| format!("predictions has {reason}"))?;
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
    fn a_hostile_bin_label_is_no_index() {
        // A pod's `bin="4000000000"` must not make anyone allocate four billion bins.
        for hostile in [
            "4000000000",
            "1024",
            "-1",
            "1e3",
            "",
            "18446744073709551616",
        ] {
            assert_eq!(Bin::parse(hostile), None, "{hostile}");
        }
        assert_eq!(Bin::parse("1023"), Some(Bin::Inside(1023)));
    }

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
    fn edges_are_equal_width_over_the_training_range() {
        let histogram = Histogram::equal_width(0.0, 16.0, 4);
        assert_eq!(histogram.edges, [0.0, 4.0, 8.0, 12.0, 16.0]);
        assert_eq!(histogram.bin_of(0.0), Bin::Inside(0));
        assert_eq!(histogram.bin_of(4.0), Bin::Inside(1));
        assert_eq!(
            histogram.bin_of(16.0),
            Bin::Inside(3),
            "the maximum is in the last bin"
        );
        assert_eq!(histogram.bin_of(-0.1), Bin::Underflow);
        assert_eq!(histogram.bin_of(f64::NAN), Bin::Underflow);
        assert_eq!(histogram.bin_of(16.1), Bin::Overflow);
    }

    #[test]
    fn a_profile_counts_every_training_value() {
        let profile = FeatureProfile::of("x", &[0.0, 1.0, 1.0, 2.0, 10.0]);
        assert_eq!(profile.histogram.edges.len(), BINS + 1);
        assert_eq!(profile.histogram.counts, [1, 2, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            (profile.histogram.underflow, profile.histogram.overflow),
            (0, 0)
        );
        assert_eq!((profile.min, profile.max, profile.mean), (0.0, 10.0, 2.8));
        assert_eq!(
            profile.histogram.emptied().ordered_counts(),
            [0.0; BINS + 2]
        );
    }

    #[test]
    fn a_constant_feature_gets_a_usable_range() {
        let profile = FeatureProfile::of("c", &[3.0, 3.0]);
        assert_eq!(profile.histogram.edges[0], 2.5);
        assert_eq!(profile.histogram.edges[BINS], 3.5);
        assert_eq!(profile.histogram.counts.iter().sum::<u64>(), 2);
    }

    #[test]
    fn class_balance_counts_and_shares() {
        let classes = vec!["a".to_owned(), "b".to_owned()];
        let balance = ClassBalance::of(&classes, [0, 1, 1, 1].into_iter());
        assert_eq!(balance.counts, [1, 3]);
        assert_eq!(balance.fractions, [0.25, 0.75]);
    }

    #[test]
    fn bin_labels_read_back() {
        let histogram = Histogram::equal_width(0.0, 1.0, 2);
        let labels: Vec<String> = histogram.bins().map(|(bin, _)| bin.to_string()).collect();
        assert_eq!(labels, ["underflow", "0", "1", "overflow"]);
        for (bin, _) in histogram.bins() {
            assert_eq!(Bin::parse(&bin.to_string()), Some(bin));
        }
        assert_eq!(Bin::parse("x"), None);
        assert!(Bin::Underflow < Bin::Inside(0) && Bin::Inside(9) < Bin::Overflow);
    }

    #[test]
    fn a_written_profile_reads_back_and_checks() {
        let classes = vec!["a".to_owned(), "b".to_owned()];
        let profile = Profile {
            rows: 3,
            features: vec![FeatureProfile::of("x", &[0.0, 1.0, 5.0])],
            class_balance: Some(ClassBalance::of(&classes, [0, 1, 1].into_iter())),
            class_balance_all: Some(ClassBalance::of(&classes, [0, 1, 1, 0].into_iter())),
            predictions: None,
        };
        let text = serde_json::to_string_pretty(&profile).unwrap();
        let back: Profile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, profile);
        assert_eq!(serde_json::to_string_pretty(&back).unwrap(), text);
        assert_eq!(example_profile().check(), Ok(()));
    }

    #[test]
    fn the_check_names_what_is_wrong() {
        let mut profile = example_profile();
        profile.features[1].histogram.edges.pop();
        assert_eq!(
            profile.check().unwrap_err(),
            "feature \"y\" has 4 edges for 4 bins (want one edge more than bins)"
        );
        let mut profile = example_profile();
        profile.class_balance_all.as_mut().unwrap().counts.pop();
        assert_eq!(
            profile.check().unwrap_err(),
            "classBalanceAll has 1 counts for 2 classes"
        );
    }

    #[test]
    fn a_profile_without_classes_reads() {
        let text = r#"{"rows": 1, "features": [], "classBalance": null, "classBalanceAll": null}"#;
        let profile: Profile = serde_json::from_str(text).unwrap();
        assert_eq!(profile.class_balance, None);
        // What the Monitor read before the statistics were part of the type still reads.
        let text =
            r#"{"features": [{"name": "x", "histogram": {"edges": [0, 1], "counts": [1]}}]}"#;
        let profile: Profile = serde_json::from_str(text).unwrap();
        assert!(profile.features[0].min.is_nan());
        assert_eq!(profile.check(), Ok(()));
    }
}
