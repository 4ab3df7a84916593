//! A Monitor's `prometheus` metric, as pure functions: the query as it is run for one revision
//! (its placeholders replaced, [`render`]) and the one number read from Prometheus' answer to
//! `GET <address>/api/v1/query` ([`read_answer`]). The controller sends the request; the
//! evaluation judges the number against `min` or `max`.

/// What a query gave for one revision.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    /// One finite number (or an infinity: a ratio over nothing).
    Value(f64),
    /// An answer with no number to judge: no series, several, or NaN. Says why.
    NoData(String),
    /// No answer: unreachable, an HTTP error, a PromQL error, or an answer that is not
    /// Prometheus' JSON. Says why.
    Failed(String),
}

/// The placeholders a query may hold, each written `{{name}}` (spaces inside the braces are
/// allowed).
pub const PLACEHOLDERS: [&str; 3] = ["namespace", "target", "revision"];

/// The query for `revision` of `target` in `namespace`: each `{{namespace}}`, `{{target}}` and
/// `{{revision}}` replaced (a revision that is not known replaces `{{revision}}` with nothing).
/// Other text, other braces included, is left as it is. The values are Kubernetes names and a
/// number, which need no quoting inside a PromQL string.
pub fn render(query: &str, namespace: &str, target: &str, revision: Option<i32>) -> String {
    let revision = revision.map(|r| r.to_string()).unwrap_or_default();
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let replaced = after.find("}}").and_then(|end| {
            let value = match after[..end].trim() {
                "namespace" => namespace,
                "target" => target,
                "revision" => revision.as_str(),
                _ => return None,
            };
            Some((value, end + 2))
        });
        match replaced {
            Some((value, used)) => {
                out.push_str(value);
                rest = &after[used..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether the query names `{{revision}}`: if not, one value serves every revision.
pub fn per_revision(query: &str) -> bool {
    render(query, "", "", Some(0)) != render(query, "", "", Some(1))
}

/// The number in Prometheus' answer (HTTP `status`, JSON `body`) to an instant query: a scalar,
/// or a vector of exactly one sample.
pub fn read_answer(status: u16, body: &[u8]) -> QueryResult {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
        return QueryResult::Failed(format!(
            "HTTP {status} with an answer that is not JSON: is the address a Prometheus (its /api/v1/query)?"
        ));
    };
    if answer["status"] != "success" {
        let error = answer["error"].as_str().unwrap_or("no error given");
        let kind = answer["errorType"].as_str().unwrap_or("error");
        return QueryResult::Failed(format!("HTTP {status}, {kind}: {}", short(error)));
    }
    let data = &answer["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let result = data["result"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            match result {
                [] => {
                    return QueryResult::NoData(
                        "the query gave no series (nothing matched yet, or no traffic)".into(),
                    );
                }
                [one] => &one["value"],
                several => {
                    return QueryResult::NoData(format!(
                        "the query gave {} series; aggregate it to one (sum, max, avg ...)",
                        several.len()
                    ));
                }
            }
        }
        Some("matrix") => {
            return QueryResult::Failed(
                "the query gives a range vector; make it an instant one (rate(...[1m]), avg_over_time(...), ...)".into(),
            );
        }
        other => {
            return QueryResult::Failed(format!(
                "the query gives {}, not a number",
                other.unwrap_or("no result type")
            ));
        }
    };
    // A sample is [time, "value"], the value a string in Go's float syntax.
    let Some(text) = sample.get(1).and_then(|v| v.as_str()) else {
        return QueryResult::Failed("the answer's sample has no value".into());
    };
    match text {
        "NaN" => QueryResult::NoData("the query gave NaN (a ratio of nothing to nothing?)".into()),
        "+Inf" | "Inf" => QueryResult::Value(f64::INFINITY),
        "-Inf" => QueryResult::Value(f64::NEG_INFINITY),
        other => match other.parse::<f64>() {
            Ok(value) if value.is_finite() => QueryResult::Value(value),
            _ => QueryResult::Failed(format!(
                "the answer's value {} is not a number",
                short(other)
            )),
        },
    }
}

/// At most 200 characters of a text from the server, for a message.
fn short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_other_braces_kept() {
        let query = r#"sum(rate(x{namespace="{{namespace}}",model="{{ target }}",revision="{{revision}}"}[1m])) / {{other}} {{"#;
        assert_eq!(
            render(query, "team-a", "digits", Some(3)),
            r#"sum(rate(x{namespace="team-a",model="digits",revision="3"}[1m])) / {{other}} {{"#
        );
        assert_eq!(render("r{{revision}}", "n", "t", None), "r");
        assert!(per_revision("x{revision=\"{{ revision }}\"}"));
        assert!(!per_revision("x{namespace=\"{{namespace}}\"}"));
    }

    #[test]
    fn one_number_is_read_from_a_scalar_or_a_single_series() {
        let vector = |result: &str| {
            format!(r#"{{"status":"success","data":{{"resultType":"vector","result":{result}}}}}"#)
        };
        assert_eq!(
            read_answer(
                200,
                vector(r#"[{"metric":{},"value":[1700000000.5,"0.25"]}]"#).as_bytes()
            ),
            QueryResult::Value(0.25)
        );
        assert_eq!(
            read_answer(
                200,
                br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"4"]}}"#
            ),
            QueryResult::Value(4.0)
        );
        assert_eq!(
            read_answer(
                200,
                vector(r#"[{"metric":{},"value":[1,"+Inf"]}]"#).as_bytes()
            ),
            QueryResult::Value(f64::INFINITY)
        );
        let no_data = |answer: QueryResult, says: &str| match answer {
            QueryResult::NoData(why) => assert!(why.contains(says), "{why}"),
            other => panic!("{other:?}"),
        };
        no_data(read_answer(200, vector("[]").as_bytes()), "no series");
        no_data(
            read_answer(
                200,
                vector(r#"[{"value":[1,"1"]},{"value":[1,"2"]}]"#).as_bytes(),
            ),
            "2 series; aggregate",
        );
        no_data(
            read_answer(
                200,
                vector(r#"[{"metric":{},"value":[1,"NaN"]}]"#).as_bytes(),
            ),
            "NaN",
        );
    }

    #[test]
    fn errors_and_answers_that_are_not_prometheus_fail_with_the_reason() {
        let failed = |answer: QueryResult, says: &str| match answer {
            QueryResult::Failed(why) => assert!(why.contains(says), "{why}"),
            other => panic!("{other:?}"),
        };
        failed(
            read_answer(
                400,
                br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#,
            ),
            "HTTP 400, bad_data: parse error at char 5",
        );
        failed(read_answer(200, b"<html>hello</html>"), "not JSON");
        failed(
            read_answer(
                200,
                br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            ),
            "range vector",
        );
        failed(
            read_answer(
                200,
                br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#,
            ),
            "gives string",
        );
        failed(
            read_answer(
                200,
                br#"{"status":"success","data":{"resultType":"scalar","result":[1,"abc"]}}"#,
            ),
            "not a number",
        );
        let long = format!(r#"{{"status":"error","error":"{}"}}"#, "x".repeat(5000));
        match read_answer(422, long.as_bytes()) {
            QueryResult::Failed(why) => assert!(why.len() < 300, "{}", why.len()),
            other => panic!("{other:?}"),
        }
    }
}
