//! Error rate: the share of requests answered with a server error (5xx), judged against
//! `errorRate.max`. Client errors (4xx) are the caller's mistake, not the model's.

use super::outcome::MetricResult;
use super::{keys, number};
use crate::monitor::scrape::RevisionTotals;
use modelops_api::monitor::ErrorRateMetric;

/// Measures the error rate on a revision's window.
pub(super) fn measure(spec: &ErrorRateMetric, totals: &RevisionTotals) -> MetricResult {
    let key = keys::ERROR_RATE;
    let requests = totals.requests_total();
    if requests == 0.0 {
        return MetricResult::no_traffic(key, spec.max);
    }
    let errors = totals.server_errors();
    let rate = errors / requests;
    let breach = rate > spec.max;
    MetricResult::measured(
        key,
        rate,
        spec.max,
        breach,
        format!(
            "errorRate {} {} maximum {} ({} of {} requests 5xx)",
            number(rate),
            if breach { "above" } else { "within" },
            number(spec.max),
            number(errors),
            number(requests)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::evaluate::Judgement;
    use crate::monitor::evaluate::fixtures::traffic;
    use modelops_api::conditions::reasons;

    #[test]
    fn server_errors_count_and_client_errors_do_not() {
        let spec = ErrorRateMetric { max: 0.05 };
        let mut totals = traffic(90.0, 10.0, 0.0, 0.0).totals;
        totals.requests.insert(404, 100.0);
        let result = measure(&spec, &totals);
        assert_eq!(result.value, Some(0.05));
        assert_eq!(
            result.judgement,
            Judgement::Within,
            "at the maximum is within"
        );
        assert_eq!(
            result.message,
            "errorRate 0.05 within maximum 0.05 (10 of 200 requests 5xx)"
        );
        let result = measure(&ErrorRateMetric { max: 0.01 }, &totals);
        assert_eq!(result.judgement, Judgement::Breach);
        assert_eq!(result.reason(), reasons::ERROR_RATE_ABOVE_MAXIMUM);
        let idle = traffic(0.0, 0.0, 0.0, 0.0).totals;
        assert_eq!(
            measure(&spec, &idle).judgement,
            Judgement::Unjudged(reasons::NO_TRAFFIC)
        );
    }
}
