//! Plain HTTP GETs from the operator to its pods: a training pod's progress, a serving pod's
//! metrics and profile. A pod is its namespace's to control, so every answer is bounded in size
//! and time, and a pod that answers too much or too slowly is simply not heard.

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Why a GET gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum PodHttpError {
    /// No connection, or the exchange failed.
    #[error("GET {url}: {reason}")]
    Failed {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The pod answered with another status than 200.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The address.
        url: String,
        /// The status.
        status: u16,
    },
    /// The answer was longer than allowed.
    #[error("GET {url}: the answer is longer than {limit} bytes")]
    TooLarge {
        /// The address.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// No answer in time.
    #[error("GET {url}: no answer within {timeout:?}")]
    Timeout {
        /// The address.
        url: String,
        /// How long it waited.
        timeout: Duration,
    },
}

/// GET `path` from `ip:port`: the body of a 200 answer, at most `limit` bytes, within
/// `timeout` in all.
pub async fn get(
    ip: &str,
    port: u16,
    path: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, PodHttpError> {
    let (status, body) = get_answer(ip, port, path, limit, timeout).await?;
    if status != 200 {
        return Err(PodHttpError::Status {
            url: format!("http://{}{path}", host_port(ip, port)),
            status,
        });
    }
    Ok(body)
}

/// `ip:port`, with brackets for IPv6.
fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// GET `path` from `ip:port`: the status and body of the answer, whatever the status, the body
/// at most `limit` bytes, within `timeout` in all.
pub async fn get_answer(
    ip: &str,
    port: u16,
    path: &str,
    limit: usize,
    timeout: Duration,
) -> Result<(u16, Bytes), PodHttpError> {
    let host = host_port(ip, port);
    let url = format!("http://{host}{path}");
    let failed = |reason: String| PodHttpError::Failed {
        url: url.clone(),
        reason,
    };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, &host)
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    PodHttpError::TooLarge {
                        url: url.clone(),
                        limit,
                    }
                } else {
                    failed(e.to_string())
                }
            });
        driver.abort();
        Ok((status, body?.to_bytes()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(PodHttpError::Timeout {
                url: url.clone(),
                timeout,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot server that answers every connection with `response`.
    async fn server(response: Vec<u8>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    let _ = stream.read(&mut buffer).await;
                    let _ = stream.write_all(&response).await;
                    // Hold the connection as a slow or endless pod would.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn answers_are_read_and_bounded() {
        let ok = server(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec()).await;
        let body = get("127.0.0.1", ok, "/x", 100, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&body[..], b"hello");

        let error = get("127.0.0.1", ok, "/x", 3, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, PodHttpError::TooLarge { .. }), "{error}");

        let missing = server(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec()).await;
        let error = get("127.0.0.1", missing, "/x", 100, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(error, PodHttpError::Status { status: 404, .. }),
            "{error}"
        );
        let body = br#"{"error":"x"}"#;
        let mut answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(body);
        let refusing = server(answer).await;
        let (status, read) = get_answer("127.0.0.1", refusing, "/x", 100, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((status, &read[..]), (503, &body[..]));

        // Promises a long body and sends a little: the deadline ends the wait.
        let slow = server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhel".to_vec()).await;
        let error = get("127.0.0.1", slow, "/x", 1000, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(error, PodHttpError::Timeout { .. }), "{error}");
    }
}
