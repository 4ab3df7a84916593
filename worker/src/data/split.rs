//! Splitting rows into train, validation and test sets, deterministically for a seed.
//!
//! A stratified split cuts each class separately, so every split keeps the class balance of the
//! whole data set (and a rare class is not left out of the training split). Each split lists its
//! rows in source order; the trainer shuffles batches itself.

use crate::rng::SeededRng;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// How a data set is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitConfig {
    /// Fraction of rows for training (> 0).
    pub train: f64,
    /// Fraction of rows for validation (early stopping, model selection).
    pub validation: f64,
    /// Fraction of rows for the final test.
    pub test: f64,
    /// Seed of the shuffle.
    pub seed: u64,
    /// Cut each class separately.
    pub stratify: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            train: 0.7,
            validation: 0.15,
            test: 0.15,
            seed: 42,
            stratify: true,
        }
    }
}

impl SplitConfig {
    /// Checks the fractions: none negative, training not empty, all adding up to 1.
    pub fn validate(&self) -> Result<()> {
        let Self {
            train,
            validation,
            test,
            ..
        } = *self;
        if [train, validation, test]
            .iter()
            .any(|f| !f.is_finite() || *f < 0.0)
        {
            bail!(
                "split fractions must be between 0 and 1 (train {train}, validation {validation}, test {test})"
            );
        }
        if train <= 0.0 {
            bail!("split.train is {train}; the training split needs a fraction above 0");
        }
        let sum = train + validation + test;
        if (sum - 1.0).abs() > 1e-6 {
            bail!(
                "split fractions add up to {sum:.3} (train {train} + validation {validation} + test {test}); they must add up to 1"
            );
        }
        Ok(())
    }
}

/// Row indices of each split, each in ascending (source) order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Rows for training.
    pub train: Vec<usize>,
    /// Rows for validation.
    pub validation: Vec<usize>,
    /// Rows for the final test.
    pub test: Vec<usize>,
}

/// Splits `rows` rows. `strata` gives each row's class when the split is stratified (`None` for
/// a regression target or when stratification is off).
pub fn split(rows: usize, strata: Option<&[usize]>, config: &SplitConfig) -> Result<Split> {
    config.validate()?;
    let mut result = Split::default();
    match strata.filter(|_| config.stratify) {
        Some(strata) => {
            let classes = strata.iter().max().map_or(0, |m| m + 1);
            let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes];
            for (row, &class) in strata.iter().enumerate() {
                members[class].push(row);
            }
            for (class, mut rows) in members.into_iter().enumerate() {
                SeededRng::derived(config.seed, class as u64).shuffle(&mut rows);
                cut(&rows, config, &mut result);
            }
        }
        None => {
            let mut all: Vec<usize> = (0..rows).collect();
            SeededRng::derived(config.seed, u64::MAX).shuffle(&mut all);
            cut(&all, config, &mut result);
        }
    }
    result.train.sort_unstable();
    result.validation.sort_unstable();
    result.test.sort_unstable();
    Ok(result)
}

/// Cuts shuffled rows by the fractions. Validation and test get their rounded share and training
/// the rest, so a class too small to share still reaches the training split.
fn cut(shuffled: &[usize], config: &SplitConfig, into: &mut Split) {
    let n = shuffled.len();
    let validation = ((n as f64 * config.validation).round() as usize).min(n);
    let test = ((n as f64 * config.test).round() as usize).min(n - validation);
    let train = n - validation - test;
    into.train.extend_from_slice(&shuffled[..train]);
    into.validation
        .extend_from_slice(&shuffled[train..train + validation]);
    into.test.extend_from_slice(&shuffled[train + validation..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64, stratify: bool) -> SplitConfig {
        SplitConfig {
            train: 0.6,
            validation: 0.2,
            test: 0.2,
            seed,
            stratify,
        }
    }

    #[test]
    fn a_stratified_split_keeps_the_class_balance() {
        // 80 rows of class 0, 20 of class 1.
        let strata: Vec<usize> = (0..100).map(|i| usize::from(i % 5 == 0)).collect();
        let split = split(100, Some(&strata), &config(3, true)).unwrap();
        let count = |rows: &[usize], class| rows.iter().filter(|&&r| strata[r] == class).count();
        assert_eq!((count(&split.train, 0), count(&split.train, 1)), (48, 12));
        assert_eq!(
            (count(&split.validation, 0), count(&split.validation, 1)),
            (16, 4)
        );
        assert_eq!((count(&split.test, 0), count(&split.test, 1)), (16, 4));
    }

    #[test]
    fn a_split_is_a_partition_fixed_by_its_seed() {
        let strata: Vec<usize> = (0..50).map(|i| i % 3).collect();
        for stratify in [true, false] {
            let a = split(50, Some(&strata), &config(9, stratify)).unwrap();
            assert_eq!(a, split(50, Some(&strata), &config(9, stratify)).unwrap());
            assert_ne!(a, split(50, Some(&strata), &config(10, stratify)).unwrap());
            let mut all: Vec<usize> = a
                .train
                .iter()
                .chain(&a.validation)
                .chain(&a.test)
                .copied()
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..50).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_tiny_class_stays_in_training() {
        let strata = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let split = split(10, Some(&strata), &config(1, true)).unwrap();
        assert!(split.train.contains(&9));
    }

    #[test]
    fn fractions_must_add_up_to_one() {
        let mut bad = config(1, true);
        bad.test = 0.3;
        let error = split(10, None, &bad).unwrap_err().to_string();
        assert!(error.contains("add up to 1.1"), "{error}");
        bad.train = 0.0;
        assert!(
            split(10, None, &bad)
                .unwrap_err()
                .to_string()
                .contains("split.train")
        );
    }
}
