//! A regression model's errors on labelled feedback, and the always-valid test that judges
//! `rmse` and `mae` in mode `sequential`.
//!
//! The serving pods count, per revision, the labelled feedbacks `n` and the sums of `|e|`, `e²`
//! and `e⁴`, where `e = true - predicted` ([`ErrorSums`]). From those, `mae = Σ|e| / n` and
//! `rmse = √(Σe² / n)`. Both are means of one per-label quantity `x` (`x = |e|` against `max`,
//! or `x = e²` against `max²`), with its second moment at hand (`Σe²` for `|e|`, `Σe⁴` for `e²`),
//! so one test serves both: is the mean of `x` above the threshold `θ`, or at or below it?
//!
//! The test is a normal-mixture confidence sequence (Robbins' mixture, in the asymptotic form of
//! Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas, "Time-uniform central limit theory", 2024).
//! With `S = Σ(x_i - θ) = n(x̄ - θ)`, `σ̂²` the spread of `x` and `ρ²` a tuning constant,
//!
//! ```text
//! E(n) = exp(ρ² S² / (2 σ̂² (1 + nρ²))) / √(1 + nρ²)
//! ```
//!
//! is the likelihood ratio of a normal mixture of alternatives around `θ` against `θ` itself, for
//! sums of independent normal increments of variance `σ̂²`; by Ville's inequality it reaches `1/α`
//! with probability at most `α`, over every `n` at once, when the mean is `θ`. For errors that
//! are not normal the guarantee holds as `n` grows (the central limit theorem, applied uniformly
//! in time), which is why the test also needs `minSamples` labels before it decides either way.
//! `E` is the evidence of the side `x̄` is on: above `θ` (a Fail, at once) or at or below it (a
//! Pass). A mean further from `θ` than `θ` itself only makes the evidence stronger, so a mean
//! strictly on one side is falsely decided less often still.
//!
//! Two choices keep it honest early on: `σ̂²` is the sample variance with one pseudo-observation
//! of variance `θ²` (`σ̂² = (Σ(x - x̄)² + θ²) / (n + 1)`), so that a few equal errors (no spread
//! yet) do not read as certainty; and `ρ²` is tuned for `minSamples` labels (the boundary is
//! tightest there), `ρ² = (2 ln(1/α) + ln(2 ln(1/α) + 1)) / minSamples`.

use super::sequential::{Decision, MAX_EVIDENCE};

/// The regression feedback counted for one revision (`e = true - predicted`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorSums {
    /// Labelled feedbacks.
    pub values: f64,
    /// `Σ|e|`.
    pub absolute: f64,
    /// `Σe²`.
    pub squared: f64,
    /// `Σe⁴`.
    pub squared_squares: f64,
}

/// Which error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Root mean squared error.
    Rmse,
    /// Mean absolute error.
    Mae,
}

impl ErrorSums {
    /// What was counted between `baseline` and `self` (never below 0).
    pub fn since(&self, baseline: &ErrorSums) -> ErrorSums {
        let minus = |now: f64, then: f64| (now - then).max(0.0);
        ErrorSums {
            values: minus(self.values, baseline.values),
            absolute: minus(self.absolute, baseline.absolute),
            squared: minus(self.squared, baseline.squared),
            squared_squares: minus(self.squared_squares, baseline.squared_squares),
        }
    }

    /// The error, or `None` without feedback.
    pub fn error(&self, kind: ErrorKind) -> Option<f64> {
        (self.values > 0.0).then(|| match kind {
            ErrorKind::Rmse => (self.squared / self.values).sqrt(),
            ErrorKind::Mae => self.absolute / self.values,
        })
    }

    /// The per-label quantity the test runs on, as (labels, its sum, the sum of its squares),
    /// with the threshold it is compared with for a maximum error `max`.
    fn moments(&self, kind: ErrorKind, max: f64) -> (f64, f64, f64, f64) {
        match kind {
            ErrorKind::Rmse => (self.values, self.squared, self.squared_squares, max * max),
            ErrorKind::Mae => (self.values, self.absolute, self.squared, max),
        }
    }
}

/// The test's result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorEvidence {
    /// How strongly the labels say the error is above `max` (1: not at all), at most
    /// [`MAX_EVIDENCE`].
    pub above: f64,
    /// How strongly they say it is at or below `max`.
    pub at_or_below: f64,
    /// The evidence a decision needs, `1/α = 1 / (1 - confidence)`.
    pub needed: f64,
    /// `Below` here means "the error is above the maximum" (the model is worse than allowed, a
    /// Fail), `AtOrAbove` "at or below the maximum" (a Pass): the [`Decision`] of a metric that
    /// must stay high, read for one that must stay low.
    pub decision: Decision,
}

/// Runs the test of the module's documentation on `sums` against the maximum error `max` (> 0),
/// at `confidence` in (0.5, 1), deciding nothing before `min_samples` labels.
pub fn test(
    sums: &ErrorSums,
    kind: ErrorKind,
    max: f64,
    confidence: f64,
    min_samples: f64,
) -> ErrorEvidence {
    let needed = (1e6 / (1.0 - confidence)).round() / 1e6;
    let undecided = ErrorEvidence {
        above: 1.0,
        at_or_below: 1.0,
        needed,
        decision: Decision::Undecided,
    };
    let (n, sum, sum_squares, threshold) = sums.moments(kind, max);
    let valid = max > 0.0 && max.is_finite() && confidence > 0.5 && confidence < 1.0;
    if !valid || n <= 0.0 || !sum.is_finite() || !sum_squares.is_finite() {
        return undecided;
    }
    let mean = sum / n;
    let spread = (sum_squares - n * mean * mean).max(0.0);
    let variance = (spread + threshold * threshold) / (n + 1.0);
    let log_needed = needed.ln();
    let rho2 = (2.0 * log_needed + (2.0 * log_needed + 1.0).ln()) / min_samples.max(1.0);
    let s = n * (mean - threshold);
    let log_evidence =
        rho2 * s * s / (2.0 * variance * (1.0 + n * rho2)) - 0.5 * (1.0 + n * rho2).ln();
    let evidence = log_evidence.exp().min(MAX_EVIDENCE);
    let decided = n >= min_samples && log_evidence >= log_needed;
    let (above, at_or_below, decision) = if mean > threshold {
        let decision = if decided {
            Decision::Below
        } else {
            Decision::Undecided
        };
        (evidence, 1.0, decision)
    } else {
        let decision = if decided {
            Decision::AtOrAbove
        } else {
            Decision::Undecided
        };
        (1.0, evidence, decision)
    };
    ErrorEvidence {
        above,
        at_or_below,
        needed,
        decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(errors: &[f64]) -> ErrorSums {
        let mut sums = ErrorSums::default();
        for e in errors {
            add(&mut sums, *e);
        }
        sums
    }

    fn add(sums: &mut ErrorSums, e: f64) {
        sums.values += 1.0;
        sums.absolute += e.abs();
        sums.squared += e * e;
        sums.squared_squares += e.powi(4);
    }

    #[test]
    fn rmse_and_mae_of_known_errors() {
        let counted = sums(&[3.0, -4.0]);
        assert_eq!(counted.error(ErrorKind::Mae), Some(3.5));
        assert!((counted.error(ErrorKind::Rmse).unwrap() - 12.5_f64.sqrt()).abs() < 1e-12);
        assert_eq!(ErrorSums::default().error(ErrorKind::Rmse), None);
        let later = sums(&[3.0, -4.0, 1.0]);
        assert_eq!(later.since(&counted), sums(&[1.0]));
        assert_eq!(counted.since(&later).values, 0.0, "never below zero");
    }

    #[test]
    fn a_few_equal_errors_decide_nothing_and_min_samples_holds_a_decision() {
        // Five labels, each error 10 against max 1: no spread, but the pseudo-observation keeps
        // the variance at θ²/6, and minSamples 20 holds the decision anyway.
        let few = sums(&[10.0; 5]);
        let evidence = test(&few, ErrorKind::Mae, 1.0, 0.99, 20.0);
        assert_eq!(evidence.decision, Decision::Undecided, "{evidence:?}");
        assert!(evidence.above > evidence.needed, "{evidence:?}");
        let twenty = sums(&[10.0; 20]);
        assert_eq!(
            test(&twenty, ErrorKind::Mae, 1.0, 0.99, 20.0).decision,
            Decision::Below
        );
    }

    #[test]
    fn errors_near_the_maximum_stay_undecided_and_far_below_pass() {
        let alternating: Vec<f64> = (0..400)
            .map(|i| if i % 2 == 0 { 0.9 } else { -1.1 })
            .collect();
        let near = test(&sums(&alternating), ErrorKind::Mae, 1.0, 0.99, 20.0);
        assert_eq!(near.decision, Decision::Undecided, "{near:?}");
        let small: Vec<f64> = (0..100)
            .map(|i| if i % 2 == 0 { 0.1 } else { -0.2 })
            .collect();
        let passed = test(&sums(&small), ErrorKind::Rmse, 1.0, 0.99, 20.0);
        assert_eq!(passed.decision, Decision::AtOrAbove, "{passed:?}");
        assert_eq!(passed.above, 1.0);
        assert!(passed.at_or_below >= passed.needed);
    }

    #[test]
    fn out_of_range_decides_nothing() {
        let many = sums(&[10.0; 100]);
        for (max, confidence) in [(0.0, 0.99), (f64::INFINITY, 0.99), (1.0, 1.0), (1.0, 0.3)] {
            let evidence = test(&many, ErrorKind::Rmse, max, confidence, 1.0);
            assert_eq!(evidence.decision, Decision::Undecided);
        }
        let huge = test(&sums(&[1e6; 1000]), ErrorKind::Rmse, 1.0, 0.99, 1.0);
        assert_eq!(huge.above, MAX_EVIDENCE);
        assert_eq!(huge.decision, Decision::Below);
    }

    use crate::monitor::simulation::SplitMix;

    impl SplitMix {
        /// Standard normal (Box–Muller).
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.open_uniform(), self.open_uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }

        /// Laplace with unit scale: heavier tails than the normal.
        fn laplace(&mut self) -> f64 {
            let u = self.open_uniform() - 0.5;
            -u.signum() * (1.0 - 2.0 * u.abs()).ln()
        }
    }

    /// Feedback arrives 1 to 40 labels between scrapes; the test looks after each scrape, up to
    /// `horizon` labels. Only a Fail stops the stream (a Pass keeps being watched). Returns the
    /// decision and the labels it took.
    fn stream(
        rng: &mut SplitMix,
        error: &mut impl FnMut(&mut SplitMix) -> f64,
        kind: ErrorKind,
        horizon: u64,
    ) -> (Decision, u64) {
        let mut seen = ErrorSums::default();
        let mut n = 0;
        while n < horizon {
            let batch = 1 + rng.next() % 40;
            for _ in 0..batch {
                let e = error(rng);
                add(&mut seen, e);
            }
            n += batch;
            if test(&seen, kind, 1.0, 0.99, 20.0).decision == Decision::Below {
                return (Decision::Below, n);
            }
        }
        (test(&seen, kind, 1.0, 0.99, 20.0).decision, n)
    }

    /// Rates over 1,000 streams: failed, passed at the horizon, mean labels to a Fail.
    fn simulate(
        seed: u64,
        kind: ErrorKind,
        mut error: impl FnMut(&mut SplitMix) -> f64,
    ) -> (f64, f64, f64) {
        let mut rng = SplitMix(seed);
        let (mut failed, mut passed, mut to_fail) = (0u32, 0u32, 0u64);
        for _ in 0..1000 {
            match stream(&mut rng, &mut error, kind, 2000) {
                (Decision::Below, n) => {
                    failed += 1;
                    to_fail += n;
                }
                (Decision::AtOrAbove, _) => passed += 1,
                (Decision::Undecided, _) => {}
            }
        }
        let mean = to_fail as f64 / f64::from(failed.max(1));
        (f64::from(failed) / 1000.0, f64::from(passed) / 1000.0, mean)
    }

    #[test]
    fn simulated_streams_keep_the_false_alarm_rate_and_catch_bad_models() {
        // Against max 1: normal errors of rmse 0.8 (good), 1.0 (at the maximum), 1.3 (bad);
        // Laplace errors of mae 0.8 and 1.3 (mae of Laplace(b) is b).
        let good = simulate(21, ErrorKind::Rmse, |r| 0.8 * r.normal());
        let edge = simulate(22, ErrorKind::Rmse, |r| r.normal());
        let bad = simulate(23, ErrorKind::Rmse, |r| 1.3 * r.normal());
        let good_mae = simulate(24, ErrorKind::Mae, |r| 0.8 * r.laplace());
        let edge_mae = simulate(26, ErrorKind::Mae, |r| r.laplace());
        let bad_mae = simulate(25, ErrorKind::Mae, |r| 1.3 * r.laplace());
        println!(
            "rmse, normal errors, max 1: good (0.8) failed {:.3}, passed {:.3}; at max failed {:.3}; \
             bad (1.3) failed {:.3} after {:.0} labels on average",
            good.0, good.1, edge.0, bad.0, bad.2
        );
        println!(
            "mae, Laplace errors, max 1: good (0.8) failed {:.3}, passed {:.3}; at max failed {:.3}; \
             bad (1.3) failed {:.3} after {:.0} labels on average",
            good_mae.0, good_mae.1, edge_mae.0, bad_mae.0, bad_mae.2
        );
        // α = 0.01; 1000 streams give a standard error of 0.003 near 0.01: allow three.
        for (name, failed) in [
            ("good", good.0),
            ("edge", edge.0),
            ("good mae", good_mae.0),
            ("edge mae", edge_mae.0),
        ] {
            assert!(failed <= 0.02, "{name}: {failed}");
        }
        assert!(bad.0 >= 0.99 && bad_mae.0 >= 0.99, "{bad:?} {bad_mae:?}");
        assert!(good.1 >= 0.9 && good_mae.1 >= 0.9, "{good:?} {good_mae:?}");
    }
}
