//! An always-valid sequential test of a Bernoulli mean: is a revision's accuracy below `min`, or
//! at or above it? Used by `accuracy {mode: sequential}`.
//!
//! Two mixture likelihood ratios (e-processes) run side by side on the labelled feedback counted
//! since the revision started, `S` correct and `F` incorrect:
//!
//! ```text
//! E_below(S, F) = 1/K Σ_k (p_k / m)^S · ((1 - p_k) / (1 - m))^F,  p_k = m · (1 - 2^-k)
//! E_above(S, F) = 1/K Σ_k (q_k / m)^S · ((1 - q_k) / (1 - m))^F,  q_k = m + (1 - m) · 2^-k
//! ```
//!
//! with `m = min`, `k = 1..K`, `K = ALTERNATIVES`: each term is the likelihood ratio of one
//! alternative accuracy against `m`, and the alternatives halve their distance to `m` from one to
//! the next, so that a very bad model (accuracy 0.1 against 0.85) is caught by the far ones in a
//! handful of labels, and a slightly bad one by the near ones in a few hundred.
//!
//! Why it is valid at every look: when the true accuracy `p ≥ m`, each label multiplies a term of
//! `E_below` by a factor whose mean is `p·p_k/m + (1-p)(1-p_k)/(1-m) ≤ 1` (equal to 1 at `p = m`,
//! decreasing in `p` since `p_k < m`), so `E_below` is a nonnegative supermartingale starting at
//! 1, and by Ville's inequality `P(E_below ever reaches 1/α) ≤ α`, over every number of labels
//! at once. The Monitor sees the counts at some of those numbers (one per scrape), a subset of
//! the path, so its chance of a false Fail is at most `α = 1 - confidence` too, however often and
//! however long it looks. `E_above` is the mirror image: when `p ≤ m` it reaches `1/α` with
//! probability at most `α`.
//!
//! The guarantee needs the counts to be one growing sequence: restarting the counts (as a
//! sliding window does by forgetting old labels) would give every restart its own `α`.

/// Alternatives in each mixture. Their equal weights cost `ln K` of evidence (about 2.3 for
/// 10), while the nearest alternative, `2^-10` of the range from `min`, is closer than any
/// accuracy difference a few thousand labels could resolve.
pub const ALTERNATIVES: i32 = 10;

/// The largest evidence reported: beyond it the number says nothing more, and an infinite one
/// would not serialise as JSON.
pub const MAX_EVIDENCE: f64 = 1e12;

/// Labelled feedback counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Labels {
    /// Labels whose prediction was correct.
    pub correct: f64,
    /// Labels whose prediction was wrong.
    pub incorrect: f64,
}

impl Labels {
    /// All labels.
    pub fn total(&self) -> f64 {
        self.correct + self.incorrect
    }
}

/// What the test decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The evidence that accuracy is below `min` reached `1/α`.
    Below,
    /// The evidence that accuracy is at or above `min` reached `1/α`.
    AtOrAbove,
    /// Neither yet: more labels are needed.
    Undecided,
}

/// The test's result on some counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evidence {
    /// `E_below`: how strongly the labels say accuracy is below `min` (1: not at all), at most
    /// [`MAX_EVIDENCE`].
    pub below: f64,
    /// `E_above`: how strongly they say accuracy is at or above `min`, at most [`MAX_EVIDENCE`].
    pub at_or_above: f64,
    /// The evidence a decision needs, `1/α = 1 / (1 - confidence)`.
    pub needed: f64,
    /// Below when `below` reached `needed` (it wins should both have), else at or above when
    /// `at_or_above` did, else undecided.
    pub decision: Decision,
}

/// Runs the test on `labels` against accuracy `min`, in (0, 1), at `confidence`, in (0.5, 1)
/// (the CRD refuses other values; out of range, nothing is ever decided).
pub fn test(labels: Labels, min: f64, confidence: f64) -> Evidence {
    let valid = min > 0.0 && min < 1.0 && confidence > 0.5 && confidence < 1.0;
    // Rounded to 6 decimals, so that confidence 0.99 reads 100 and not 99.99999999999991 (the
    // float 1 - 0.99): a millionth of evidence changes no guarantee.
    let needed = (1e6 / (1.0 - confidence)).round() / 1e6;
    if !valid {
        return Evidence {
            below: 1.0,
            at_or_above: 1.0,
            needed,
            decision: Decision::Undecided,
        };
    }
    let below = mixture(labels, min, |k| min * (1.0 - halving(k)));
    let at_or_above = mixture(labels, min, |k| min + (1.0 - min) * halving(k));
    // Compare in logs, before the cap, so that the cap never decides.
    let decision = if below >= needed.ln() {
        Decision::Below
    } else if at_or_above >= needed.ln() {
        Decision::AtOrAbove
    } else {
        Decision::Undecided
    };
    Evidence {
        below: capped(below),
        at_or_above: capped(at_or_above),
        needed,
        decision,
    }
}

/// `2^-k`.
fn halving(k: i32) -> f64 {
    0.5_f64.powi(k)
}

/// The log of an equal mixture over the alternatives `alternative(1..=K)` of their likelihood
/// ratios against `min`, computed in logs since the ratios over thousands of labels overflow.
fn mixture(labels: Labels, min: f64, alternative: impl Fn(i32) -> f64) -> f64 {
    let logs: Vec<f64> = (1..=ALTERNATIVES)
        .map(|k| {
            let p = alternative(k);
            labels.correct * (p / min).ln() + labels.incorrect * ((1.0 - p) / (1.0 - min)).ln()
        })
        .collect();
    let largest = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logs.iter().map(|l| (l - largest).exp()).sum();
    largest + (sum / f64::from(ALTERNATIVES)).ln()
}

/// A log evidence as a number a status can hold.
fn capped(log: f64) -> f64 {
    log.exp().min(MAX_EVIDENCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(correct: f64, incorrect: f64) -> Labels {
        Labels { correct, incorrect }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn no_labels_is_no_evidence() {
        let evidence = test(Labels::default(), 0.85, 0.99);
        assert_eq!(evidence.below, 1.0);
        assert_eq!(evidence.at_or_above, 1.0);
        assert_eq!(evidence.needed, 100.0);
        assert_eq!(evidence.decision, Decision::Undecided);
    }

    #[test]
    fn one_label_moves_the_evidence_by_hand_checked_amounts() {
        // min 0.5: (1 - p_k)/(1 - m) = 1 + 2^-k and p_k/m = 1 - 2^-k, so one wrong label gives
        // E_below = 1/10 Σ (1 + 2^-k) = 1 + (1 - 2^-10)/10, one right label 1 - (1 - 2^-10)/10.
        let shift = (1.0 - 1.0 / 1024.0) / 10.0;
        let wrong = test(labels(0.0, 1.0), 0.5, 0.99);
        assert!(close(wrong.below, 1.0 + shift), "{wrong:?}");
        assert!(close(wrong.at_or_above, 1.0 - shift), "{wrong:?}");
        let right = test(labels(1.0, 0.0), 0.5, 0.99);
        assert!(close(right.below, 1.0 - shift), "{right:?}");
        assert!(close(right.at_or_above, 1.0 + shift), "{right:?}");
    }

    #[test]
    fn ten_labels_prove_a_bad_model_wrong() {
        // One right of ten against 0.85. The first alternative alone, p = 0.425, gives
        // 1/10 · 0.5 · (0.575/0.15)^9 ≈ 8.9e3, far past 1/α = 100.
        let evidence = test(labels(1.0, 9.0), 0.85, 0.99);
        let first = 0.1 * 0.5 * (0.575_f64 / 0.15).powi(9);
        assert!(
            evidence.below > first && evidence.below < 1.5 * first,
            "{evidence:?}"
        );
        assert_eq!(evidence.decision, Decision::Below);
        // Five labels, all wrong, are not yet enough at 0.999.
        assert_eq!(
            test(labels(0.0, 5.0), 0.85, 0.999).decision,
            Decision::Undecided
        );
    }

    #[test]
    fn a_good_model_passes_once_the_evidence_is_as_strong() {
        // All right against 0.85: q_1 = 0.925 gives 1/10 · (0.925/0.85)^n, which reaches 100
        // at n = ln(1000)/ln(1.0882) ≈ 82 (the other terms add a little, so a bit sooner).
        assert_eq!(
            test(labels(70.0, 0.0), 0.85, 0.99).decision,
            Decision::Undecided
        );
        let passed = test(labels(82.0, 0.0), 0.85, 0.99);
        assert_eq!(passed.decision, Decision::AtOrAbove, "{passed:?}");
        assert!(passed.below < 1.0);
    }

    #[test]
    fn accuracy_near_min_stays_undecided() {
        let evidence = test(labels(850.0, 150.0), 0.85, 0.99);
        assert_eq!(evidence.decision, Decision::Undecided, "{evidence:?}");
        assert!(evidence.below < 1.0 && evidence.at_or_above < 1.0);
    }

    #[test]
    fn huge_evidence_is_capped_and_out_of_range_decides_nothing() {
        let evidence = test(labels(0.0, 100_000.0), 0.85, 0.99);
        assert_eq!(evidence.below, MAX_EVIDENCE);
        assert!(evidence.at_or_above < 1e-40);
        assert_eq!(evidence.decision, Decision::Below);
        for (min, confidence) in [(0.0, 0.99), (1.0, 0.99), (0.85, 1.0), (0.85, 0.4)] {
            let evidence = test(labels(0.0, 100.0), min, confidence);
            assert_eq!(evidence.decision, Decision::Undecided);
        }
    }

    use crate::monitor::simulation::SplitMix;

    /// Labels arrive a few at a time between scrapes (1 to 40); the test looks at the growing
    /// counts after each scrape, up to `horizon` labels. Returns the decision and the labels it
    /// took, or `Undecided` at the horizon.
    fn stream(rng: &mut SplitMix, accuracy: f64, min: f64, horizon: u64) -> (Decision, u64) {
        let mut seen = labels(0.0, 0.0);
        let mut n = 0;
        while n < horizon {
            let batch = 1 + rng.next() % 40;
            for _ in 0..batch {
                if rng.uniform() < accuracy {
                    seen.correct += 1.0;
                } else {
                    seen.incorrect += 1.0;
                }
            }
            n += batch;
            let decision = test(seen, min, 0.99).decision;
            // Only a Fail stops the stream: a Pass keeps being watched, as the Monitor does,
            // so a later false Fail still counts.
            if decision == Decision::Below {
                return (decision, n);
            }
        }
        (test(seen, min, 0.99).decision, n)
    }

    /// Rates over `count` streams: failed, passed at the horizon, and the mean labels to a Fail.
    fn simulate(seed: u64, accuracy: f64, min: f64, count: u32) -> (f64, f64, f64) {
        let mut rng = SplitMix(seed);
        let (mut failed, mut passed, mut labels_to_fail) = (0u32, 0u32, 0u64);
        for _ in 0..count {
            match stream(&mut rng, accuracy, min, 10_000) {
                (Decision::Below, n) => {
                    failed += 1;
                    labels_to_fail += n;
                }
                (Decision::AtOrAbove, _) => passed += 1,
                (Decision::Undecided, _) => {}
            }
        }
        let rate = |x: u32| f64::from(x) / f64::from(count);
        let mean = labels_to_fail as f64 / f64::from(failed.max(1));
        (rate(failed), rate(passed), mean)
    }

    #[test]
    fn simulated_streams_keep_the_false_alarm_rate_and_catch_bad_models() {
        let alpha = 0.01;
        let (good_failed, good_passed, _) = simulate(11, 0.88, 0.85, 1000);
        let (bad_failed, bad_passed, bad_labels) = simulate(12, 0.82, 0.85, 1000);
        // At the boundary itself, the hardest case for the false-alarm guarantee.
        let (edge_failed, _, _) = simulate(13, 0.85, 0.85, 1000);
        println!(
            "good (0.88 vs min 0.85): failed {good_failed:.3}, passed {good_passed:.3}; \
             at min (0.85): failed {edge_failed:.3}; \
             bad (0.82): failed {bad_failed:.3} after {bad_labels:.0} labels on average, passed {bad_passed:.3}"
        );
        // 1000 streams: the standard error of a rate near 0.01 is 0.003; allow three.
        assert!(good_failed <= alpha + 0.01, "{good_failed}");
        assert!(edge_failed <= alpha + 0.01, "{edge_failed}");
        assert!(bad_failed >= 0.99, "{bad_failed}");
        assert!(bad_passed <= alpha + 0.01, "{bad_passed}");
        assert!(good_passed >= 0.9, "{good_passed}");
    }
}
