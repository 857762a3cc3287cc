//! `/metrics` and `/healthz` over HTTP/1 (hyper).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::Metrics;

/// What `/metrics` answers with: OpenMetrics text, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `/metrics` and `/healthz` on `listener` until dropped. `/healthz` answers 200 while every one of
/// `process_types` had a successful cycle within `stale`, else 503 naming what failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    process_types: Vec<String>,
    stale: Duration,
) {
    let process_types = Arc::new(process_types);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (metrics, pts) = (metrics.clone(), process_types.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let answer = route(&metrics, &pts, stale, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

fn route(m: &Metrics, pts: &[String], stale: Duration, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("Content-Type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    if method != Method::GET && method != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n".into());
    }
    match path {
        "/metrics" => reply(StatusCode::OK, CONTENT_TYPE, m.render()),
        "/healthz" => match m.health(pts, stale) {
            Ok(body) => reply(StatusCode::OK, "text/plain", body),
            Err(body) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", body),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics or /healthz\n".into()),
    }
}
