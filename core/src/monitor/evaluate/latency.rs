//! Latency: the p99 of the request durations, estimated from the serving pods' histogram as
//! Prometheus would, judged against `latency.p99Max`.

use super::outcome::MetricResult;
use super::{keys, number};
use crate::monitor::scrape::{RevisionTotals, UpperBound};
use modelops_api::common::parse_duration;
use modelops_api::conditions::reasons;
use modelops_api::monitor::LatencyMetric;
use std::collections::BTreeMap;

/// The latency quantile `latency.p99Max` bounds.
pub const LATENCY_QUANTILE: f64 = 0.99;

/// Measures the p99 latency on a revision's window. A `p99Max` that is not a duration (which
/// [`validate`](super::validate) refuses before any evaluation) leaves the metric unjudged.
pub(super) fn measure(spec: &LatencyMetric, totals: &RevisionTotals) -> MetricResult {
    let key = keys::LATENCY;
    let Ok(max) = parse_duration(&spec.p99_max) else {
        return MetricResult::unjudged(
            key,
            0.0,
            reasons::INVALID_SPEC,
            format!("latency.p99Max {:?} is not a duration", spec.p99_max),
        );
    };
    let max = max.as_secs_f64();
    let requests = totals.requests_total();
    if requests == 0.0 {
        return MetricResult::no_traffic(key, max);
    }
    let Some(p99) = quantile(LATENCY_QUANTILE, &totals.latency) else {
        return MetricResult::unjudged(
            key,
            max,
            reasons::TOO_FEW_SAMPLES,
            "latency: the serving pods report no request durations".into(),
        );
    };
    let breach = p99 > max;
    MetricResult::measured(
        key,
        p99,
        max,
        breach,
        format!(
            "latency p99 {}s {} maximum {}s over {} requests",
            number(p99),
            if breach { "above" } else { "within" },
            number(max),
            number(requests)
        ),
    )
}

/// The `q` quantile of a cumulative histogram, as Prometheus' `histogram_quantile` estimates
/// it: find the bucket holding rank `q · total` and interpolate linearly inside it (the first
/// bucket starts at 0). A rank in the `+Inf` bucket gives the largest finite bound, the most
/// the histogram can tell. `None` when it counted nothing.
pub fn quantile(q: f64, buckets: &BTreeMap<UpperBound, f64>) -> Option<f64> {
    let total = buckets.values().copied().fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (&UpperBound(upper), &count) in buckets {
        // Counts of separately reset series can leave a bucket below the one before it.
        let count = count.max(below);
        if count >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            if count == below {
                return Some(upper);
            }
            return Some(lower + (upper - lower) * (rank - below) / (count - below));
        }
        lower = upper;
        below = count;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::evaluate::fixtures::*;
    use crate::monitor::evaluate::{Judgement, evaluate};

    #[test]
    fn prediction_drift_and_latency_breach() {
        let spec = monitor_spec(vec![prediction_drift(0.2, 100), latency("200ms")], 1);
        let mut slow = traffic(1000.0, 0.0, 0.0, 0.0);
        slow.totals.predictions.insert("cat".into(), 250.0);
        slow.totals.predictions.insert("dog".into(), 750.0);
        // 980 fast, 20 between 0.25s and 0.5s: rank 990 is half-way into (0.25, 0.5].
        slow.totals.latency = BTreeMap::from([
            (UpperBound(0.01), 980.0),
            (UpperBound(0.25), 980.0),
            (UpperBound(0.5), 1000.0),
            (UpperBound(f64::INFINITY), 1000.0),
        ]);
        let outcome = evaluate(
            &spec,
            &window([(1, slow)]),
            Some(&profile()),
            None,
            None,
            &now(0),
        );
        let values = outcome.focused.values();
        // PSI 0.2740 on 1000 smoothed rows, less (2 - 1)·(1/1000 + 1/100) for chance (the
        // profile's balance counts 100 rows): see monitor/drift.rs.
        assert!((values["predictionDrift"] - 0.263_046_136_500_648_56).abs() < 1e-12);
        assert!((values["latency"] - 0.375).abs() < 1e-12);
        assert_eq!(
            outcome.focused.reason,
            reasons::PREDICTION_DRIFT_ABOVE_MAXIMUM
        );
        assert_eq!(
            outcome
                .focused
                .metrics
                .iter()
                .map(|m| m.judgement)
                .collect::<Vec<_>>(),
            [Judgement::Breach, Judgement::Breach]
        );
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let buckets = BTreeMap::from([
            (UpperBound(0.1), 50.0),
            (UpperBound(0.2), 100.0),
            (UpperBound(f64::INFINITY), 100.0),
        ]);
        // Rank 50 closes the first bucket; rank 75 is half-way into (0.1, 0.2].
        assert!((quantile(0.5, &buckets).unwrap() - 0.1).abs() < 1e-12);
        assert!((quantile(0.75, &buckets).unwrap() - 0.15).abs() < 1e-12);
        let slow = BTreeMap::from([(UpperBound(0.1), 0.0), (UpperBound(f64::INFINITY), 10.0)]);
        assert_eq!(quantile(0.99, &slow), Some(0.1), "beyond the last bound");
        assert_eq!(quantile(0.99, &BTreeMap::new()), None);
    }
}
