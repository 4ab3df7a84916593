//! The data profile: per-feature histograms of the raw training values and the class balance.
//!
//! It is the drift reference for serving: the server counts live inputs into the same bins
//! (`Histogram::bin_of`) and the Monitor compares the two distributions (PSI, KS). So the profile
//! stores the bin edges themselves, not just summary statistics.

use serde::{Deserialize, Serialize};

/// Equal-width bins per feature over the training range.
pub const BINS: usize = 10;

/// Where a value falls in a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// Below the first edge.
    Underflow,
    /// In bin `i`: `edges[i] <= value < edges[i + 1]`, the last bin closed on the right.
    Inside(usize),
    /// Above the last edge.
    Overflow,
}

/// A histogram over fixed edges, with counts outside them kept apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// `BINS + 1` ascending edges.
    pub edges: Vec<f64>,
    /// Values in each bin.
    pub counts: Vec<u64>,
    /// Values below the first edge.
    pub underflow: u64,
    /// Values above the last edge.
    pub overflow: u64,
}

impl Histogram {
    /// Equal-width edges over `[min, max]`; a constant value gets a unit-wide range around it.
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

    /// The bin a value falls in.
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
}

/// The profile of one feature on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureProfile {
    /// The feature's name (for text data: `textLength`, in characters).
    pub name: String,
    /// Smallest raw value.
    pub min: f64,
    /// Largest raw value.
    pub max: f64,
    /// Mean of the raw values.
    pub mean: f64,
    /// Population standard deviation of the raw values.
    pub std: f64,
    /// Histogram of the raw values.
    pub histogram: Histogram,
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

/// How many rows each class has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassBalance {
    /// Class names, in the data set's class order.
    pub classes: Vec<String>,
    /// Rows per class.
    pub counts: Vec<u64>,
    /// Share of rows per class.
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
}

/// `profile.json`: the drift reference of a prepared data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Training rows profiled.
    pub rows: usize,
    /// One profile per feature, in feature order (raw, before normalisation).
    pub features: Vec<FeatureProfile>,
    /// Class balance of the training split; absent for a label with too many values to be classes.
    pub class_balance: Option<ClassBalance>,
    /// Class balance of every row (all splits).
    pub class_balance_all: Option<ClassBalance>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
