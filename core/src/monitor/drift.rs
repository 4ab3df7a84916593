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
//!
//! **PSI on small windows** ([`corrected_psi`]). On `n` live rows against `m` training rows,
//! the PSI of unchanged data is about a chi-square with `k - 1` degrees of freedom times
//! `1/n + 1/m` (`k`: the bins the profile expects non-empty): about 0.15 per feature at 60 rows
//! on 10 bins, of pure chance; and a bin empty in a small window only by chance weighs like a bin
//! the live data left (its share counted as [`EPSILON`]). So the Monitor judges PSI as follows:
//!
//! 1. the live shares are smoothed, `a_i = (c_i + ½) / (n + ½·k)` on the bins the profile
//!    expects non-empty (Jeffreys' prior; the bins it expects empty keep `c_i / (n + ½·k)`, so
//!    live values where training had none still weigh fully), and PSI is taken on them (`raw`);
//! 2. the value reported and compared with `max` is `raw` less its mean under no drift,
//!    `(k - 1)(1/n + 1/m)`, floored at 0: an estimate of the true shift, on the usual scale (0.1
//!    small, 0.25 large);
//! 3. a value above `max` is a breach only if `raw` is also beyond what chance reaches in all but
//!    [`FALSE_ALARM`] of windows, over every feature tested at once: the `1 - FALSE_ALARM / F`
//!    quantile of that chi-square times `1/n + 1/m` (`F`: the features; Bonferroni). Above `max`
//!    but within chance is "too few rows to tell", not a breach and not a pass.
//!
//! KS is not corrected (docs/monitor.md §3 says why).

use super::scrape::{Bin, BinCounts};
use modelops_api::monitor::DriftMethod;
use modelops_api::profile::{ClassBalance, Histogram, Profile};
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::collections::BTreeMap;

/// The share an empty bin counts as in PSI.
pub const EPSILON: f64 = 1e-4;

/// The pseudo-count added to each live bin the profile expects non-empty (Jeffreys' prior).
pub const PSEUDO_COUNT: f64 = 0.5;

/// The chance, per window and over all the features tested at once, that unchanged data reads as
/// significant drift (see the module's documentation).
pub const FALSE_ALARM: f64 = 0.001;

/// A drift statistic with what chance accounts for in it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measured {
    /// The statistic as measured (PSI: on the smoothed live shares).
    pub raw: f64,
    /// What it averages under no drift, subtracted from `raw` (0 for KS).
    pub bias: f64,
    /// What chance alone exceeds in [`FALSE_ALARM`] of windows (0 for KS: not tested).
    pub chance: f64,
    /// `raw - bias`, at least 0: the drift reported and compared with `max`.
    pub value: f64,
}

impl Measured {
    /// A statistic taken as it is (KS, total variation).
    pub fn uncorrected(value: f64) -> Self {
        Self {
            raw: value,
            bias: 0.0,
            chance: 0.0,
            value,
        }
    }

    /// Whether it is beyond chance: a value above `max` is a breach only then.
    pub fn significant(&self) -> bool {
        self.raw > self.chance
    }
}

/// The PSI of `actual` against `expected` (counts on the same bins) corrected for the window's
/// size, as the module's documentation says, or `None` when either side counted nothing.
/// `reference_rows` is the rows `expected` counted (`f64::INFINITY` for exact shares), `tests`
/// the statistics judged together (the features).
pub fn corrected_psi(
    expected: &[f64],
    actual: &[f64],
    reference_rows: f64,
    tests: usize,
) -> Option<Measured> {
    let (expected, actual) = padded(expected, actual);
    let rows: f64 = actual.iter().sum();
    let expected = shares(&expected).filter(|_| rows > 0.0)?;
    let supported = expected.iter().filter(|&&e| e > 0.0).count();
    let total = rows + PSEUDO_COUNT * supported as f64;
    let raw = expected
        .iter()
        .zip(&actual)
        .map(|(&e, &count)| {
            let pseudo = if e > 0.0 { PSEUDO_COUNT } else { 0.0 };
            psi_term(e, (count + pseudo) / total)
        })
        .sum::<f64>();
    let scale = 1.0 / rows + 1.0 / reference_rows.max(1.0);
    let freedom = supported.saturating_sub(1) as f64;
    let bias = freedom * scale;
    let chance = chi_square_quantile(freedom, 1.0 - FALSE_ALARM / tests.max(1) as f64) * scale;
    Some(Measured {
        raw,
        bias,
        chance,
        value: (raw - bias).max(0.0),
    })
}

/// The `p` quantile of a chi-square with `freedom` degrees of freedom (0 with none: all live
/// mass off the one expected bin is drift, none of it chance).
fn chi_square_quantile(freedom: f64, p: f64) -> f64 {
    ChiSquared::new(freedom)
        .map(|distribution| distribution.inverse_cdf(p))
        .unwrap_or(0.0)
}

/// One PSI term: `(a - e) · ln(a / e)`, either share of 0 counting as [`EPSILON`].
fn psi_term(e: f64, a: f64) -> f64 {
    let (e, a) = (e.max(EPSILON), a.max(EPSILON));
    (a - e) * (a / e).ln()
}

/// Counts as shares of their total, or `None` when there is nothing counted.
fn shares(counts: &[f64]) -> Option<Vec<f64>> {
    let total: f64 = counts.iter().sum();
    (total > 0.0).then(|| counts.iter().map(|count| count / total).collect())
}

/// Both sides padded to the same length with empty bins.
fn padded(expected: &[f64], actual: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let len = expected.len().max(actual.len());
    let pad = |counts: &[f64]| {
        let mut padded = counts.to_vec();
        padded.resize(len, 0.0);
        padded
    };
    (pad(expected), pad(actual))
}

/// Both sides as shares of the same length (the shorter padded with empty bins).
fn paired_shares(expected: &[f64], actual: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let (expected, actual) = padded(expected, actual);
    Some((shares(&expected)?, shares(&actual)?))
}

/// The population stability index of `actual` against `expected` (counts on the same bins), or
/// `None` when either side counted nothing.
pub fn psi(expected: &[f64], actual: &[f64]) -> Option<f64> {
    let (expected, actual) = paired_shares(expected, actual)?;
    Some(
        expected
            .iter()
            .zip(&actual)
            .map(|(&e, &a)| psi_term(e, a))
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
    /// PSI (corrected for the window's size) or KS: `measured.value`.
    pub value: f64,
    /// The statistic with what chance accounts for in it.
    pub measured: Measured,
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

    /// The feature that drifted most of those above `max` beyond chance (see
    /// [`Measured::significant`]), if any: what a breach names.
    pub fn worst_breach(&self, max: f64) -> Option<&FeatureDrift> {
        self.features
            .iter()
            .filter(|f| f.value > max && f.measured.significant())
            .fold(None, |worst: Option<&FeatureDrift>, feature| match worst {
                Some(w) if w.value >= feature.value => Some(w),
                _ => Some(feature),
            })
    }

    /// At most `limit` features, the most drifted first (profile order among equals).
    pub fn largest(&self, limit: usize) -> Vec<&FeatureDrift> {
        let mut features: Vec<&FeatureDrift> = self.features.iter().collect();
        features.sort_by(|a, b| b.value.total_cmp(&a.value));
        features.truncate(limit);
        features
    }

    /// Input rows in the window (every row counts one value per feature).
    pub fn rows(&self) -> f64 {
        self.features.iter().map(|f| f.rows).fold(0.0, f64::max)
    }
}

/// The drift of each profiled feature's live values (`inputs`, by feature name) from its
/// training histogram, all the profile's features tested together.
pub fn input_drift(
    method: DriftMethod,
    profile: &Profile,
    inputs: &BTreeMap<String, BinCounts>,
) -> InputDrift {
    let tests = profile.features.len();
    let features = profile
        .features
        .iter()
        .filter_map(|feature| {
            let live = inputs.get(&feature.name)?;
            let measured = histogram_drift(method, &feature.histogram, live, tests)?;
            Some(FeatureDrift {
                feature: feature.name.clone(),
                value: measured.value,
                measured,
                rows: live.total(),
            })
        })
        .collect();
    InputDrift { features }
}

/// The drift of live counts on a histogram's bins from the histogram's own counts, or `None`
/// when nothing was counted: one input feature, or a regression model's predicted values
/// against its predictions on the training split; `tests`: the statistics judged together.
pub fn histogram_drift(
    method: DriftMethod,
    histogram: &Histogram,
    live: &BinCounts,
    tests: usize,
) -> Option<Measured> {
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
        DriftMethod::Psi => corrected_psi(&expected, &actual, expected.iter().sum(), tests),
        DriftMethod::Ks => ks(&expected, &actual).map(Measured::uncorrected),
    }
}

/// The drift of the predicted classes (`predictions`, by class name) from the training split's
/// class balance, or `None` when nothing was predicted. Classes the profile does not know count
/// against it as bins it expected empty. PSI is corrected for the window's size (the reference's
/// rows are the balance's counts; a balance of fractions only counts as exact).
pub fn prediction_drift(
    method: DriftMethod,
    balance: &ClassBalance,
    predictions: &BTreeMap<String, f64>,
) -> Option<Measured> {
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
    let reference_rows = match balance.counts.iter().sum::<u64>() {
        0 => f64::INFINITY,
        rows => rows as f64,
    };
    match method {
        DriftMethod::Psi => corrected_psi(&expected, &actual, reference_rows, 1),
        DriftMethod::Ks => total_variation(&expected, &actual).map(Measured::uncorrected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::simulation::SplitMix;
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
        // Raw, 2·(0.3·ln 4 + 0.1·ln 1.5) = 0.9129; on the smoothed shares a = (10.5 20.5 30.5
        // 40.5)/102, 0.8923, less (4 - 1)·(1/100 + 1/100) for chance:
        let y = &drift.features[1];
        close(y.measured.raw, 0.892_308_278_547_228);
        close(y.measured.bias, 0.06);
        close(y.value, 0.832_308_278_547_228);
        // Beyond chance: the 1 - 0.001/2 quantile of χ²₃ (17.73) times 0.02.
        assert!((y.measured.chance - 0.3546).abs() < 1e-3, "{y:?}");
        assert!(y.measured.significant());
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
        // e = [ε, .25, .25, .25, .25, ε], a = [ε, .5, .5, 25.5, 25.5, 50]/102: the pseudo-count
        // only on the bins training saw, so the overflow keeps its weight.
        let a = |count: f64| count / 102.0;
        let raw = 2.0 * (a(0.5) - 0.25) * (a(0.5) / 0.25).ln()
            + 2.0 * (a(25.5) - 0.25) * (a(25.5) / 0.25).ln()
            + (a(50.0) - EPSILON) * (a(50.0) / EPSILON).ln();
        close(raw, 6.091_903_298_612_403);
        let x = drift.worst().unwrap();
        close(x.measured.raw, raw);
        close(x.value, raw - 0.06);
        assert!(x.measured.significant());
    }

    #[test]
    fn prediction_drift_compares_classes_by_name() {
        let balance = profile().class_balance.unwrap();
        let same = BTreeMap::from([("dog".to_owned(), 30.0), ("cat".to_owned(), 30.0)]);
        close(
            prediction_drift(DriftMethod::Psi, &balance, &same)
                .unwrap()
                .value,
            0.0,
        );
        let skewed = BTreeMap::from([("cat".to_owned(), 25.0), ("dog".to_owned(), 75.0)]);
        // Raw 0.2747; smoothed, a = (25.5, 75.5)/101: 0.2687, less (2 - 1)·(1/100 + 1/100).
        let psi = prediction_drift(DriftMethod::Psi, &balance, &skewed).unwrap();
        close(psi.raw, 0.268_676_783_190_742_2);
        close(psi.value, 0.248_676_783_190_742_2);
        // χ²₁ at 0.999 is 10.83: 0.2166 of chance, so the shift stands out (barely).
        assert!((psi.chance - 0.216_551).abs() < 1e-5, "{psi:?}");
        assert!(psi.significant());
        close(
            prediction_drift(DriftMethod::Ks, &balance, &skewed)
                .unwrap()
                .value,
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
            prediction_drift(DriftMethod::Ks, &balance, &unknown)
                .unwrap()
                .value,
            0.25,
        );
        assert_eq!(
            prediction_drift(DriftMethod::Psi, &balance, &BTreeMap::new()),
            None
        );
    }

    /// `rows` draws from `shares`, counted per bin.
    fn draw(rng: &mut SplitMix, shares: &[f64], rows: usize) -> Vec<f64> {
        let mut counts = vec![0.0; shares.len()];
        for _ in 0..rows {
            let (mut u, mut bin) = (rng.uniform(), 0);
            while bin + 1 < shares.len() && u >= shares[bin] {
                u -= shares[bin];
                bin += 1;
            }
            counts[bin] += 1.0;
        }
        counts
    }

    /// A training histogram of 10,000 rows on 10 bins, skewed, with sparse tails (and the empty
    /// underflow and overflow of a profile).
    const TRAINING: [f64; 12] = [
        0.0, 100.0, 300.0, 700.0, 1200.0, 1700.0, 2000.0, 1700.0, 1200.0, 700.0, 400.0, 0.0,
    ];

    fn training_shares() -> Vec<f64> {
        TRAINING.iter().map(|c| c / 10_000.0).collect()
    }

    /// The training shares with every value moved `by` bins up (the top bin's staying in range).
    fn shifted(by: usize) -> Vec<f64> {
        let e = training_shares();
        let mut moved = vec![0.0; e.len()];
        for (bin, share) in e.iter().enumerate().take(11).skip(1) {
            moved[(bin + by).min(10)] += share;
        }
        moved
    }

    /// One window of `rows` rows on 64 features, the first drawn from `first` and the others
    /// from the training shares: (the largest corrected PSI, whether `max` is breached beyond
    /// chance).
    fn window(rng: &mut SplitMix, rows: usize, first: &[f64], max: f64) -> (f64, bool) {
        let features: Vec<Measured> = (0..64)
            .map(|feature| {
                let shares = if feature == 0 {
                    first.to_vec()
                } else {
                    training_shares()
                };
                let live = draw(rng, &shares, rows);
                corrected_psi(&TRAINING, &live, 10_000.0, 64).unwrap()
            })
            .collect();
        let largest = features.iter().map(|m| m.value).fold(0.0, f64::max);
        let breach = features.iter().any(|m| m.value > max && m.significant());
        (largest, breach)
    }

    /// Over `count` windows: the share whose largest corrected PSI is at most `max`, and the
    /// share that breach `max`.
    fn rates(seed: u64, rows: usize, first: &[f64], max: f64, count: usize) -> (f64, f64) {
        let mut rng = SplitMix(seed);
        let (mut quiet, mut breached) = (0, 0);
        for _ in 0..count {
            let (largest, breach) = window(&mut rng, rows, first, max);
            quiet += usize::from(largest <= max);
            breached += usize::from(breach);
        }
        (quiet as f64 / count as f64, breached as f64 / count as f64)
    }

    #[test]
    fn unchanged_data_on_small_windows_is_not_drift() {
        for rows in [50, 100, 200] {
            for max in [0.1, 0.25] {
                let (quiet, breached) = rates(rows as u64, rows, &training_shares(), max, 500);
                println!(
                    "unchanged, {rows} rows, 64 features, max {max}: largest corrected PSI within max in {quiet:.3} of windows, breach in {breached:.3}"
                );
                assert!(breached <= 0.01, "{rows} rows, max {max}: {breached}");
            }
        }
    }

    #[test]
    fn a_real_shift_on_one_feature_is_flagged() {
        // One bin up (PSI 0.27, large), two bins up (1.05): (bins, rows, max, least, most).
        for (by, rows, max, least, most) in [
            (1, 200, 0.1, 0.75, 1.0),
            (1, 300, 0.1, 0.99, 1.0),
            (2, 100, 0.25, 0.99, 1.0),
            // Just above max: an unbiased estimate lands on either side about as often.
            (1, 500, 0.25, 0.25, 0.75),
        ] {
            let shares = shifted(by);
            let true_psi = psi(&training_shares(), &shares).unwrap();
            let (_, breached) = rates(by as u64 * 1000 + rows as u64, rows, &shares, max, 200);
            println!(
                "one feature shifted {by} bin(s) (PSI {true_psi:.3}), {rows} rows, max {max}: breach in {breached:.3} of windows"
            );
            assert!((least..=most).contains(&breached), "{breached}");
        }
    }
}
