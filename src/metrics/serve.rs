//! `/metrics`, `/healthz` and, with a [`Dashboard`], the dashboard (`/`, `/api/history`, and `/pause`,
//! `/resume` when it has a token) over HTTP/1 (hyper).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::Metrics;
use crate::dashboard::{Dashboard, page, unix};

/// What `/metrics` answers with: OpenMetrics text, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the server shows.
#[derive(Debug, Clone)]
pub struct Served {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The dashboard, if shown.
    pub dashboard: Option<Arc<Dashboard>>,
    /// The process types `/healthz` expects.
    pub process_types: Arc<Vec<String>>,
    /// `/healthz` answers 503 for a process type with no successful cycle within this.
    pub stale: Duration,
}

/// Serves on `listener` until dropped. `/healthz` answers 200 while every process type had a successful cycle
/// within `stale`, else 503 naming what failed.
pub async fn serve(listener: tokio::net::TcpListener, served: Served) {
    let served = Arc::new(served);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let served = served.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let served = served.clone();
                async move { Ok::<_, Infallible>(route(&served, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Cache-Control", "no-store")
        .header("X-Content-Type-Options", "nosniff")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

async fn route(s: &Served, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let dashboard = s.dashboard.as_ref();
    if req.method() == Method::POST
        && let (Some(d), "/pause" | "/resume") = (dashboard, path.as_str())
    {
        return pause(d, path == "/pause", req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n".into());
    }
    let now = unix(SystemTime::now());
    match (path.as_str(), dashboard) {
        ("/metrics", _) => reply(StatusCode::OK, CONTENT_TYPE, s.metrics.render()),
        ("/healthz", _) => match s.metrics.health(&s.process_types, s.stale) {
            Ok(body) => reply(StatusCode::OK, "text/plain", body),
            Err(body) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", body),
        },
        ("/", Some(d)) => {
            let mut r = reply(StatusCode::OK, "text/html; charset=utf-8", page::render(d, now));
            r.headers_mut().insert("Content-Security-Policy", page::CSP.parse().expect("a header value"));
            r
        }
        ("/api/history", Some(d)) => reply(StatusCode::OK, "application/json", d.history(now)),
        (_, Some(_)) => {
            reply(StatusCode::NOT_FOUND, "text/plain", "not found: try /, /api/history, /metrics or /healthz\n".into())
        }
        (_, None) => reply(StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics or /healthz\n".into()),
    }
}

/// `POST /pause` or `/resume` with a form (`token`, `process_type`, `for`): answers with a short page that says what
/// happened (and links back), never echoing the token.
async fn pause(d: &Dashboard, on: bool, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), 4096).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "the form is too large\n".into()),
    };
    let field = |name: &str| {
        url::form_urlencoded::parse(&body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    let (token, pt, dur) = (field("token"), field("process_type"), field("for"));
    let duration = match dur.trim() {
        "" => None,
        d => match crate::settings::parse_duration(d, "for") {
            Ok(d) => Some(d),
            Err(e) => return reply(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n")),
        },
    };
    let (status, text) = match d.set_pause(&token, &pt, on, duration).await {
        Ok(msg) => (StatusCode::OK, msg),
        Err((code, msg)) => (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST), msg),
    };
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dyno-scaler</title></head><body>\
         <p id=\"result\">{}</p><p><a href=\"/\">back to the dashboard</a></p></body></html>",
        page::escape(&text)
    );
    let mut r = reply(status, "text/html; charset=utf-8", html);
    r.headers_mut().insert("Content-Security-Policy", page::CSP.parse().expect("a header value"));
    r
}
