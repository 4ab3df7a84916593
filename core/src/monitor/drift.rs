//! Drift statistics: how far live counts on fixed bins are from the Dataset profile's.
//!
//! Both sides are counts on the same bins in the same order; each is turned into shares first,
//! so the sizes of the training split and of the window do not matter. With `e_i` the profile's
//! share of bin `i` and `a_i` the window's:
//!
//! - PSI (population stability index): `Σ (a_i - e_i) · ln(a_i / e_i)`, where a share of 0 counts
//!   as [`EPSILON`] so that an empty bin gives a large but finite term. 0 means the same
//!   distribution; 0.1 is a small shift, 0.25 a large one.
//! - KS (Kolmogorov–Smirnov distance) on ordered bins: `max_k |Σ_{i≤k} a_i - Σ_{i≤k} e_i|`, the
//!   largest gap between the two cumulative distributions over the common bins, in [0, 1].
//! - For classes, which have no order, the KS distance becomes the total variation distance
//!   `½ Σ |a_i - e_i|`: the largest gap in probability of any set of classes (as KS is over the
//!   sets `x ≤ t`); with two classes the two agree.

use super::scrape::{Bin, BinCounts};
use modelops_api::monitor::DriftMethod;
use modelops_api::profile::{ClassBalance, Histogram, Profile};
use std::collections::BTreeMap;

/// The share an empty bin counts as in PSI.
pub const EPSILON: f64 = 1e-4;

/// Counts as shares of their total, or `None` when there is nothing counted.
fn shares(counts: &[f64]) -> Option<Vec<f64>> {
    let total: f64 = counts.iter().sum();
    (total > 0.0).then(|| counts.iter().map(|count| count / total).collect())
}

/// Both sides as shares of the same length (the shorter padded with empty bins).
fn paired_shares(expected: &[f64], actual: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let len = expected.len().max(actual.len());
    let pad = |counts: &[f64]| {
        let mut padded = counts.to_vec();
        padded.resize(len, 0.0);
        padded
    };
    Some((shares(&pad(expected))?, shares(&pad(actual))?))
}

/// The population stability index of `actual` against `expected` (counts on the same bins), or
/// `None` when either side counted nothing.
pub fn psi(expected: &[f64], actual: &[f64]) -> Option<f64> {
    let (expected, actual) = paired_shares(expected, actual)?;
    Some(
        expected
            .iter()
            .zip(&actual)
            .map(|(&e, &a)| {
                let (e, a) = (e.max(EPSILON), a.max(EPSILON));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// The Kolmogorov–Smirnov distance between two distributions on the same ordered bins, or
/// `None` when either side counted nothing.
pub fn ks(expected: &[f64], actual: &[f64]) -> Option<f64> {
    let (expected, actual) = paired_shares(expected, actual)?;
    let mut gap: f64 = 0.0;
    let (mut cumulative_expected, mut cumulative_actual) = (0.0, 0.0);
    for (e, a) in expected.iter().zip(&actual) {
        cumulative_expected += e;
        cumulative_actual += a;
        gap = gap.max((cumulative_actual - cumulative_expected).abs());
    }
    Some(gap)
}

/// The total variation distance between two distributions on the same categories, or `None`
/// when either side counted nothing.
pub fn total_variation(expected: &[f64], actual: &[f64]) -> Option<f64> {
    let (expected, actual) = paired_shares(expected, actual)?;
    Some(
        expected
            .iter()
            .zip(&actual)
            .map(|(e, a)| (a - e).abs())
            .sum::<f64>()
            / 2.0,
    )
}

/// The drift of one input feature.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureDrift {
    /// The feature's name.
    pub feature: String,
    /// PSI or KS.
    pub value: f64,
    /// Values counted in the window.
    pub rows: f64,
}

/// The drift of every input feature the window counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputDrift {
    /// Per feature, in the profile's order; features the window did not count are left out.
    pub features: Vec<FeatureDrift>,
}

impl InputDrift {
    /// The feature that drifted most (the first in profile order among equals).
    pub fn worst(&self) -> Option<&FeatureDrift> {
        self.features
            .iter()
            .fold(None, |worst: Option<&FeatureDrift>, feature| match worst {
                Some(w) if w.value >= feature.value => Some(w),
                _ => Some(feature),
            })
    }

    /// Input rows in the window (every row counts one value per feature).
    pub fn rows(&self) -> f64 {
        self.features.iter().map(|f| f.rows).fold(0.0, f64::max)
    }
}

/// The drift of each profiled feature's live values (`inputs`, by feature name) from its
/// training histogram.
pub fn input_drift(
    method: DriftMethod,
    profile: &Profile,
    inputs: &BTreeMap<String, BinCounts>,
) -> InputDrift {
    let features = profile
        .features
        .iter()
        .filter_map(|feature| {
            let live = inputs.get(&feature.name)?;
            let value = histogram_drift(method, &feature.histogram, live)?;
            Some(FeatureDrift {
                feature: feature.name.clone(),
                value,
                rows: live.total(),
            })
        })
        .collect();
    InputDrift { features }
}

/// The drift of live counts on a histogram's bins from the histogram's own counts, or `None`
/// when nothing was counted: one input feature, or a regression model's predicted values
/// against its predictions on the training split.
pub fn histogram_drift(
    method: DriftMethod,
    histogram: &Histogram,
    live: &BinCounts,
) -> Option<f64> {
    let expected = histogram.ordered_counts();
    let bins = histogram.counts.len();
    // Bins past the profile's (which a server with other edges could report) are above its
    // range: overflow.
    let beyond: f64 = live.inside.iter().skip(bins).sum();
    let actual: Vec<f64> = std::iter::once(live.underflow)
        .chain((0..bins).map(|i| live.get(Bin::Inside(i))))
        .chain(std::iter::once(live.overflow + beyond))
        .collect();
    match method {
        DriftMethod::Psi => psi(&expected, &actual),
        DriftMethod::Ks => ks(&expected, &actual),
    }
}

/// The drift of the predicted classes (`predictions`, by class name) from the training split's
/// class balance, or `None` when nothing was predicted. Classes the profile does not know count
/// against it as bins it expected empty.
pub fn prediction_drift(
    method: DriftMethod,
    balance: &ClassBalance,
    predictions: &BTreeMap<String, f64>,
) -> Option<f64> {
    let mut expected = balance.weights();
    let mut actual: Vec<f64> = balance
        .classes
        .iter()
        .map(|class| predictions.get(class).copied().unwrap_or(0.0))
        .collect();
    for (class, count) in predictions {
        if !balance.classes.contains(class) {
            expected.push(0.0);
            actual.push(*count);
        }
    }
    match method {
        DriftMethod::Psi => psi(&expected, &actual),
        DriftMethod::Ks => total_variation(&expected, &actual),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::profile::example_profile as profile;

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "{actual} is not {expected}"
        );
    }

    #[test]
    fn identical_distributions_do_not_drift() {
        let counts = [10.0, 0.0, 30.0, 60.0];
        close(psi(&counts, &counts).unwrap(), 0.0);
        close(ks(&counts, &counts).unwrap(), 0.0);
        close(total_variation(&counts, &counts).unwrap(), 0.0);
        // Only shares matter, not how many rows either side counted.
        let scaled = counts.map(|c| c * 7.0);
        close(psi(&counts, &scaled).unwrap(), 0.0);
    }

    #[test]
    fn psi_of_a_known_shift() {
        // (0.25 - 0.5)·ln(0.25/0.5) + (0.75 - 0.5)·ln(0.75/0.5)
        //   = 0.25·ln 2 + 0.25·ln 1.5 = 0.173287 + 0.101366
        close(
            psi(&[50.0, 50.0], &[25.0, 75.0]).unwrap(),
            0.274_653_072_167_027_4,
        );
    }

    #[test]
    fn an_empty_bin_counts_as_epsilon() {
        // e = [1, ε], a = [0.5, 0.5]: (0.5 - 1)·ln(0.5) + (0.5 - ε)·ln(0.5/ε)
        close(
            psi(&[10.0, 0.0], &[5.0, 5.0]).unwrap(),
            4.604_318_466_668_95,
        );
        // Empty on both sides adds nothing.
        close(psi(&[10.0, 0.0], &[10.0, 0.0]).unwrap(), 0.0);
    }

    #[test]
    fn ks_is_the_largest_gap_between_cumulative_shares() {
        // Cumulative: expected 0.25 0.5 0.75 1, actual 0.4 0.7 0.9 1: gaps .15 .2 .15 0.
        close(
            ks(&[1.0, 1.0, 1.0, 1.0], &[4.0, 3.0, 2.0, 1.0]).unwrap(),
            0.2,
        );
        // All mass moved from the first bin to the last: the largest distance.
        close(ks(&[1.0, 0.0, 0.0], &[0.0, 0.0, 1.0]).unwrap(), 1.0);
    }

    #[test]
    fn nothing_counted_is_no_statistic() {
        assert_eq!(psi(&[1.0, 2.0], &[0.0, 0.0]), None);
        assert_eq!(ks(&[], &[1.0]), None);
        assert_eq!(total_variation(&[0.0], &[1.0]), None);
    }

    fn live(underflow: f64, inside: &[f64], overflow: f64) -> BinCounts {
        BinCounts {
            underflow,
            inside: inside.to_vec(),
            overflow,
        }
    }

    #[test]
    fn the_worst_feature_is_named() {
        let profile = profile();
        let inputs = BTreeMap::from([
            // x as in training (uniform): no drift.
            ("x".to_owned(), live(0.0, &[25.0, 25.0, 25.0, 25.0], 0.0)),
            // y reversed: training shares .4 .3 .2 .1, live .1 .2 .3 .4.
            ("y".to_owned(), live(0.0, &[10.0, 20.0, 30.0, 40.0], 0.0)),
        ]);
        let drift = input_drift(DriftMethod::Psi, &profile, &inputs);
        close(drift.features[0].value, 0.0);
        // 2·(0.3·ln 4 + 0.1·ln 1.5)
        close(drift.features[1].value, 0.912_869_638_293_567_3);
        let worst = drift.worst().unwrap();
        assert_eq!(worst.feature, "y");
        assert_eq!(drift.rows(), 100.0);

        let drift = input_drift(DriftMethod::Ks, &profile, &inputs);
        // y cumulative: expected .4 .7 .9 1, actual .1 .3 .6 1: gaps .3 .4 .3 0.
        close(drift.worst().unwrap().value, 0.4);
        assert_eq!(drift.worst().unwrap().feature, "y");
    }

    #[test]
    fn values_outside_the_training_range_drift() {
        let profile = profile();
        // Half of x's live values above the last edge, which training never saw.
        let inputs = BTreeMap::from([("x".to_owned(), live(0.0, &[0.0, 0.0, 25.0, 25.0], 50.0))]);
        let drift = input_drift(DriftMethod::Psi, &profile, &inputs);
        assert_eq!(drift.features.len(), 1, "y was not counted");
        assert_eq!(drift.worst().unwrap().feature, "x");
        // e = [ε, .25, .25, .25, .25, ε], a = [ε, ε, ε, .25, .25, .5]
        let expected = 2.0 * (EPSILON - 0.25) * (EPSILON / 0.25_f64).ln()
            + (0.5 - EPSILON) * (0.5 / EPSILON).ln();
        close(drift.worst().unwrap().value, expected);
        assert!(expected > 4.0, "{expected}");
    }

    #[test]
    fn prediction_drift_compares_classes_by_name() {
        let balance = profile().class_balance.unwrap();
        let same = BTreeMap::from([("dog".to_owned(), 30.0), ("cat".to_owned(), 30.0)]);
        close(
            prediction_drift(DriftMethod::Psi, &balance, &same).unwrap(),
            0.0,
        );
        let skewed = BTreeMap::from([("cat".to_owned(), 25.0), ("dog".to_owned(), 75.0)]);
        close(
            prediction_drift(DriftMethod::Psi, &balance, &skewed).unwrap(),
            0.274_653_072_167_027_4,
        );
        close(
            prediction_drift(DriftMethod::Ks, &balance, &skewed).unwrap(),
            0.25,
        );
        // A class training never had: a quarter of the predictions on a bin expected empty.
        let unknown = BTreeMap::from([
            ("cat".to_owned(), 30.0),
            ("dog".to_owned(), 45.0),
            ("bird".to_owned(), 25.0),
        ]);
        // e = [.5, .5, 0], a = [.3, .45, .25]: TV = (.2 + .05 + .25)/2
        close(
            prediction_drift(DriftMethod::Ks, &balance, &unknown).unwrap(),
            0.25,
        );
        assert_eq!(
            prediction_drift(DriftMethod::Psi, &balance, &BTreeMap::new()),
            None
        );
    }
}
