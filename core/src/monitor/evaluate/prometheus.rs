//! A `prometheus` metric: the number its PromQL query gave for a revision (the controller runs
//! the query, [`crate::monitor::promql`]), judged against `min` or `max`. A query with no
//! number, or no answer, leaves the metric not judged, never a breach.

use super::outcome::MetricResult;
use super::{keys, number};
use crate::monitor::promql::QueryResult;
use modelops_api::conditions::reasons;
use modelops_api::monitor::PrometheusMetric;

/// Judges what the query gave (`None`: it was not run, as for a target with no revision yet).
pub(super) fn measure(spec: &PrometheusMetric, result: Option<&QueryResult>) -> MetricResult {
    let key = keys::PROMETHEUS;
    // The schema sets exactly one of min and max.
    let (threshold, minimum) = match (spec.min, spec.max) {
        (Some(min), _) => (min, true),
        (None, max) => (max.unwrap_or(f64::INFINITY), false),
    };
    let mut result = match result {
        Some(QueryResult::Value(value)) => {
            let value = *value;
            let breach = if minimum {
                value < threshold
            } else {
                value > threshold
            };
            let side = match (breach, minimum) {
                (false, _) => "within",
                (true, true) => "below",
                (true, false) => "above",
            };
            MetricResult::measured(
                key,
                value,
                threshold,
                breach,
                format!(
                    "prometheus {} {side} {} {}",
                    number(value),
                    if minimum { "minimum" } else { "maximum" },
                    number(threshold)
                ),
            )
        }
        Some(QueryResult::NoData(why)) => MetricResult::unjudged(
            key,
            threshold,
            reasons::NO_DATA,
            format!("prometheus: {why}"),
        ),
        Some(QueryResult::Failed(why)) => MetricResult::unjudged(
            key,
            threshold,
            reasons::QUERY_FAILED,
            format!("prometheus: {why}"),
        ),
        None => MetricResult::unjudged(
            key,
            threshold,
            reasons::NO_DATA,
            "prometheus: not queried (no revision to judge yet)".into(),
        ),
    };
    result.minimum = minimum;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::evaluate::Judgement;

    fn spec(min: Option<f64>, max: Option<f64>) -> PrometheusMetric {
        PrometheusMetric {
            address: "http://prometheus:9090".into(),
            query: "up".into(),
            min,
            max,
        }
    }

    #[test]
    fn a_value_is_judged_against_its_minimum_or_maximum() {
        let value = |v| QueryResult::Value(v);
        let at_most = spec(None, Some(0.1));
        let within = measure(&at_most, Some(&value(0.1)));
        assert_eq!(within.judgement, Judgement::Within);
        assert_eq!(within.message, "prometheus 0.1 within maximum 0.1");
        let above = measure(&at_most, Some(&value(0.25)));
        assert_eq!(above.judgement, Judgement::Breach);
        assert_eq!(above.reason(), reasons::PROMETHEUS_ABOVE_MAXIMUM);
        assert_eq!(above.message, "prometheus 0.25 above maximum 0.1");
        let at_least = spec(Some(0.9), None);
        let below = measure(&at_least, Some(&value(0.5)));
        assert_eq!(below.reason(), reasons::PROMETHEUS_BELOW_MINIMUM);
        assert!(below.minimum);
        assert_eq!(
            measure(&at_least, Some(&value(f64::INFINITY))).judgement,
            Judgement::Within
        );
    }

    #[test]
    fn each_revision_is_judged_on_its_own_query_result() {
        use crate::monitor::evaluate::evaluate;
        use crate::monitor::evaluate::fixtures::*;
        use modelops_api::monitor::{MetricSpec, Verdict};
        let metric = MetricSpec {
            prometheus: Some(spec(None, Some(0.5))),
            ..Default::default()
        };
        let spec = monitor_spec(vec![metric], 1);
        let mut deltas = window([
            (1, traffic(50.0, 0.0, 0.0, 0.0)),
            (2, traffic(50.0, 0.0, 0.0, 0.0)),
        ]);
        deltas.queries.insert(1, QueryResult::Value(0.1));
        deltas.queries.insert(2, QueryResult::Value(0.9));
        let outcome = evaluate(&spec, &deltas, None, None, Some(2), &now(10));
        assert_eq!(outcome.revisions[&1].verdict, Verdict::Pass);
        let canary = &outcome.focused;
        assert_eq!(canary.verdict, Verdict::Fail);
        assert_eq!(canary.reason, reasons::PROMETHEUS_ABOVE_MAXIMUM);
        let evaluation = outcome.last_evaluation();
        assert_eq!(evaluation.values["prometheus"], 0.9);
        assert_eq!(evaluation.thresholds["prometheus"], 0.5);
        assert_eq!(
            evaluation.worst_metric.as_deref(),
            Some("prometheus 0.9 (max 0.5)")
        );
        // A revision the query said nothing about is not judged.
        deltas.queries.remove(&2);
        let outcome = evaluate(&spec, &deltas, None, None, Some(2), &now(10));
        assert_eq!(outcome.focused.verdict, Verdict::Inconclusive);
        assert_eq!(outcome.focused.reason, reasons::NO_DATA);
    }

    #[test]
    fn no_number_is_never_a_breach() {
        let at_most = spec(None, Some(1.0));
        let no_data = measure(&at_most, Some(&QueryResult::NoData("no series".into())));
        assert_eq!(no_data.judgement, Judgement::Unjudged(reasons::NO_DATA));
        assert_eq!(no_data.message, "prometheus: no series");
        let failed = measure(&at_most, Some(&QueryResult::Failed("HTTP 503".into())));
        assert_eq!(failed.judgement, Judgement::Unjudged(reasons::QUERY_FAILED));
        assert_eq!(
            measure(&at_most, None).judgement,
            Judgement::Unjudged(reasons::NO_DATA)
        );
    }
}
