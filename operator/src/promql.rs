//! Runs a Monitor's `prometheus` metric: its PromQL query as an instant query
//! (`GET <address>/api/v1/query`) for each revision judged. The address is a tenant's choice
//! (within the policy's `prometheusAddresses`), so every request is bounded: a 5 s timeout, no
//! redirects (which could lead out of the allowed addresses), at most [`ANSWER_LIMIT`] bytes of
//! answer; what comes back is read by [`modelops_core::monitor::promql::read_answer`].

use modelops_api::monitor::PrometheusMetric;
use modelops_core::monitor::promql::{self, QueryResult};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// How long one query may take, connection included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of an answer read. One number's answer is a few hundred bytes; a query that gives
/// thousands of series is refused for that anyway.
pub const ANSWER_LIMIT: usize = 1 << 20;

/// The HTTP client of every query (one connection pool per process).
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(QUERY_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("modelops-operator")
            .build()
            .expect("an HTTP client with the process' TLS provider")
    })
}

/// The query of `metric` for each of `revisions` of `target` in `namespace`, run concurrently;
/// a query without `{{revision}}` is run once and its result given to every revision.
pub async fn query_revisions(
    metric: &PrometheusMetric,
    namespace: &str,
    target: &str,
    revisions: &[i32],
) -> BTreeMap<i32, QueryResult> {
    if revisions.is_empty() {
        return BTreeMap::new();
    }
    if !promql::per_revision(&metric.query) {
        let query = promql::render(&metric.query, namespace, target, None);
        let result = query_one(&metric.address, &query).await;
        return revisions.iter().map(|&r| (r, result.clone())).collect();
    }
    let queries = revisions.iter().map(|&revision| async move {
        let query = promql::render(&metric.query, namespace, target, Some(revision));
        (revision, query_one(&metric.address, &query).await)
    });
    futures::future::join_all(queries)
        .await
        .into_iter()
        .collect()
}

/// One instant query against the Prometheus at `address`.
pub async fn query_one(address: &str, query: &str) -> QueryResult {
    let endpoint = format!("{}/api/v1/query", address.trim_end_matches('/'));
    let url = match reqwest::Url::parse_with_params(&endpoint, &[("query", query)]) {
        Ok(url) => url,
        Err(error) => return QueryResult::Failed(format!("{address}: not a URL: {error}")),
    };
    let mut response = match client().get(url).send().await {
        Ok(response) => response,
        Err(error) => {
            return QueryResult::Failed(format!("{endpoint}: {}", describe(&error)));
        }
    };
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        return QueryResult::Failed(format!(
            "{endpoint}: HTTP {status}, a redirect, which is not followed: give the Prometheus' own address"
        ));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > ANSWER_LIMIT {
                    return QueryResult::Failed(format!(
                        "{endpoint}: the answer is longer than {ANSWER_LIMIT} bytes; make the query give one series"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                return QueryResult::Failed(format!("{endpoint}: {}", describe(&error)));
            }
        }
    }
    promql::read_answer(status, &body)
}

/// An HTTP error in a few words, with its causes.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {QUERY_TIMEOUT:?}");
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-request HTTP server that answers `response` and gives back the request line.
    async fn server(response: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 8192];
            let n = stream.read(&mut request).await.unwrap();
            stream.write_all(response.as_bytes()).await.unwrap();
            let _ = stream.shutdown().await;
            String::from_utf8_lossy(&request[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        (address, task)
    }

    fn install_provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[tokio::test]
    async fn the_query_is_sent_encoded_and_its_number_read() {
        install_provider();
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.125"]}]}}"#;
        let response: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let (address, request) = server(response).await;
        let metric = PrometheusMetric {
            address: format!("{address}/"),
            query:
                r#"sum(x{namespace="{{namespace}}",model="{{target}}",revision="{{revision}}"})"#
                    .into(),
            min: None,
            max: Some(1.0),
        };
        let results = query_revisions(&metric, "team-a", "digits", &[2]).await;
        assert_eq!(results[&2], QueryResult::Value(0.125));
        let line = request.await.unwrap();
        let url =
            reqwest::Url::parse(&format!("http://x{}", line.split(' ').nth(1).unwrap())).unwrap();
        assert_eq!(url.path(), "/api/v1/query");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            query,
            [(
                "query".to_owned(),
                r#"sum(x{namespace="team-a",model="digits",revision="2"})"#.to_owned()
            )]
        );
    }

    #[tokio::test]
    async fn redirects_silence_and_floods_are_failures() {
        install_provider();
        let (address, _request) = server(
            "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        match query_one(&address, "up").await {
            QueryResult::Failed(why) => assert!(why.contains("redirect"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Nothing listens.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        assert!(matches!(
            query_one(&closed, "up").await,
            QueryResult::Failed(_)
        ));
        // An answer longer than the limit.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let flood = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 8192];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n")
                .await;
            let chunk = vec![b' '; 64 * 1024];
            while stream.write_all(&chunk).await.is_ok() {}
        });
        match query_one(&flood, "up").await {
            QueryResult::Failed(why) => assert!(why.contains("longer than"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
