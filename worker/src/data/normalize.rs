//! Feature normalisation, fitted on the training split only and applied to every split (and,
//! later, by the server to raw inputs), so that no information from validation or test rows
//! leaks into training.

/// A fitted normalisation, as the model card and `dataset.json` store it.
pub use modelops_api::card::Normalization;
/// How features are rescaled: the Dataset spec's `preprocessing.normalize`, which the card and
/// `dataset.json` record as the fitted method.
pub use modelops_api::dataset::Normalize as Method;

/// Fits `method` on the training rows (each row one value per feature).
pub fn fit(method: Method, features: usize, train_rows: &[&[f64]]) -> Normalization {
    let mut offset = vec![0.0; features];
    let mut scale = vec![1.0; features];
    if !train_rows.is_empty() {
        for feature in 0..features {
            let values = train_rows.iter().map(|row| row[feature]);
            let (shift, spread) = match method {
                Method::None => (0.0, 1.0),
                Method::Standard => {
                    let n = train_rows.len() as f64;
                    let mean = values.clone().sum::<f64>() / n;
                    let variance = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    (mean, variance.sqrt())
                }
                Method::Minmax => {
                    let min = values.clone().fold(f64::INFINITY, f64::min);
                    let max = values.fold(f64::NEG_INFINITY, f64::max);
                    (min, max - min)
                }
            };
            offset[feature] = shift;
            scale[feature] = if spread > 1e-12 { spread } else { 1.0 };
        }
    }
    Normalization {
        method,
        offset,
        scale,
    }
}

/// A fitted [`Normalization`] applied to raw values.
pub trait ApplyNormalization {
    /// Normalises one row of raw values.
    fn apply_row(&self, row: &[f64]) -> Vec<f32> {
        let mut out = Vec::with_capacity(row.len());
        self.extend_row(row, &mut out);
        out
    }

    /// Appends one normalised row to `out`: each value in f64 and rounded to f32 once, so that
    /// a server feeds the network exactly the values `prepare` stored, and predicts what the
    /// offline evaluation measured.
    fn extend_row(&self, row: &[f64], out: &mut Vec<f32>);
}

impl ApplyNormalization for Normalization {
    fn extend_row(&self, row: &[f64], out: &mut Vec<f32>) {
        out.extend(
            row.iter()
                .zip(self.offset.iter().zip(&self.scale))
                .map(|(value, (offset, scale))| ((value - offset) / scale) as f32),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_is_fitted_on_the_training_rows_only() {
        let train: Vec<&[f64]> = vec![&[1.0, 5.0], &[3.0, 5.0]];
        let fitted = fit(Method::Standard, 2, &train);
        assert_eq!(fitted.offset, [2.0, 5.0]);
        assert_eq!(fitted.scale, [1.0, 1.0], "a constant feature gets scale 1");
        // A test row far outside the training range is not clipped and did not move the fit.
        assert_eq!(fitted.apply_row(&[103.0, 5.0]), [101.0, 0.0]);
    }

    #[test]
    fn minmax_maps_the_training_range_to_unit() {
        let train: Vec<&[f64]> = vec![&[0.0], &[4.0], &[2.0]];
        let fitted = fit(Method::Minmax, 1, &train);
        assert_eq!((fitted.offset[0], fitted.scale[0]), (0.0, 4.0));
        assert_eq!(fitted.apply_row(&[2.0]), [0.5]);
        assert_eq!(fitted.apply_row(&[8.0]), [2.0]);
    }

    #[test]
    fn none_keeps_raw_values_and_rows_extend_in_order() {
        let train: Vec<&[f64]> = vec![&[7.0, -1.0]];
        assert_eq!(
            fit(Method::None, 2, &train).apply_row(&[7.0, -1.0]),
            [7.0, -1.0]
        );
        let fitted = fit(Method::Standard, 2, &[&[1.0, 2.0], &[3.0, 6.0]]);
        let mut batch = Vec::new();
        fitted.extend_row(&[3.0, 6.0], &mut batch);
        fitted.extend_row(&[1.0, 2.0], &mut batch);
        assert_eq!(batch, [1.0, 1.0, -1.0, -1.0]);
    }
}
