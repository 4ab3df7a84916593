//! The operator's HTTP endpoints: `/metrics` (Prometheus), `/healthz` and `/readyz`.

use crate::metrics::Metrics;
use axum::{Router, routing::get};
use tokio::net::TcpListener;

/// Serves the endpoints until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics server: {e}");
    }
}
