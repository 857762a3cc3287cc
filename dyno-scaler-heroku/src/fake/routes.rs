//! Request handling of the fake, in Heroku's order: faults, `Accept`, credentials, rate limit, routing,
//! access, existence, body validation.

use std::sync::Mutex;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::Outcome;
use base64::Engine;

use super::formation::{apply, batch, find_formation, list_dynos, validate_update};
use super::state::{FaultAction, RecordedRequest, State};

const ACCEPT: &str = "application/vnd.heroku+json; version=3";
pub(super) const LIMITS_URL: &str = "https://devcenter.heroku.com/articles/dyno-size#default-scaling-limits";
const RATE_URL: &str = "https://devcenter.heroku.com/articles/platform-api-reference#rate-limits";

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) remaining: Option<u64>,
    pub(super) extra: Vec<(&'static str, String)>,
}

pub(super) fn error(status: u16, id: &str, message: &str) -> Reply {
    Reply { status, body: json!({"id": id, "message": message}), remaining: None, extra: Vec::new() }
}

pub(super) fn ok(body: Value) -> Reply {
    Reply { status: 200, body, remaining: None, extra: Vec::new() }
}

fn fault_body(status: u16) -> Reply {
    match status {
        429 => Reply {
            status,
            body: json!({"id": "rate_limit", "message": "Your account reached the API rate limit\nPlease wait a few minutes before making new requests", "url": RATE_URL}),
            remaining: Some(0),
            extra: Vec::new(),
        },
        500 => error(500, "internal_server_error", "Internal server error."),
        502 | 504 => error(status, "bad_gateway", "The API is unavailable."),
        503 => error(503, "unavailable", "API is unavailable, check response body or Heroku status."),
        401 => error(401, "unauthorized", "Invalid credentials provided."),
        _ => error(status, "error", "Injected failure."),
    }
}

/// Decodes `Authorization` into the token: `Bearer <token>` or `Basic base64(user:token)`.
fn token_of(header: &str) -> Option<(String, &'static str)> {
    if let Some(t) = header.strip_prefix("Bearer ") {
        return Some((t.trim().to_owned(), "Bearer"));
    }
    let b64 = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some((password.to_owned(), "Basic"))
}

pub(crate) async fn handle(st: &Mutex<State>, parts: Parts, body: Bytes) -> Outcome {
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| !k.as_str().eq_ignore_ascii_case("authorization"))
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let auth = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let seq = {
        let mut s = st.lock().expect("fake state");
        s.seq += 1;
        let rec = RecordedRequest {
            seq: s.seq,
            method: method.clone(),
            path: parts.uri.to_string(),
            headers,
            auth_scheme: auth.as_deref().and_then(token_of).map(|(_, s)| s.to_owned()),
            body: String::from_utf8_lossy(&body).into_owned(),
            status: 0,
            at: s.now(),
        };
        // Recorded on arrival, so a request whose client gave up is still seen.
        s.requests.push(rec);
        s.seq
    };

    let fault = st.lock().expect("fake state").take_fault(&method, &path);
    let reply = match fault {
        Some(FaultAction::DropConnection) => return Outcome::Drop,
        Some(FaultAction::Status(code)) => Some(fault_body(code)),
        Some(FaultAction::Respond { status, body, headers }) => {
            let mut s = st.lock().expect("fake state");
            if let Some(r) = s.requests.iter_mut().find(|r| r.seq == seq) {
                r.status = status;
            }
            drop(s);
            let mut b = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header("Content-Type", "application/json")
                .header("Request-Id", request_id());
            for (k, v) in headers {
                b = b.header(k, v);
            }
            return Outcome::Respond(b.body(Full::new(Bytes::from(body))).expect("valid response"));
        }
        Some(FaultAction::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        None => None,
    };
    let mut s = st.lock().expect("fake state");
    let reply = reply.unwrap_or_else(|| route(&mut s, &parts, auth.as_deref(), &body));
    if let Some(r) = s.requests.iter_mut().find(|r| r.seq == seq) {
        r.status = reply.status;
    }
    drop(s);
    Outcome::Respond(render(reply))
}

fn render(r: Reply) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", "application/json")
        .header("Request-Id", request_id())
        .header("Cache-Control", "private, no-cache");
    if let Some(rem) = r.remaining {
        b = b.header("RateLimit-Remaining", rem.to_string()).header("RateLimit-Multiplier", "1");
    }
    for (k, v) in r.extra {
        b = b.header(k, v);
    }
    b.body(Full::new(Bytes::from(r.body.to_string()))).expect("valid response")
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("2f6f1c3e-8c0e-4a3b-9f61-{n:012x}")
}

fn route(s: &mut State, parts: &Parts, auth: Option<&str>, body: &[u8]) -> Reply {
    // 1. Accept.
    let accept = parts.headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept != ACCEPT {
        return error(
            406,
            "not_acceptable",
            "The requested API version is not supported. Set `Accept: application/vnd.heroku+json; version=3`.",
        );
    }
    // 2. Credentials.
    let Some(account) = auth.and_then(token_of).and_then(|(t, _)| s.tokens.get(&t).cloned()) else {
        return error(401, "unauthorized", "Invalid credentials provided.");
    };
    let path = parts.uri.path();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    // 3. Rate limit (the rate-limit endpoint itself is free).
    if parts.method == Method::GET && segs == ["account", "rate-limits"] {
        let remaining = s.peek_tokens(&account).floor() as u64;
        return Reply { remaining: Some(remaining), ..ok(json!({"remaining": remaining})) };
    }
    let remaining = match s.take_token(&account) {
        Ok(r) => r,
        Err(_) => return fault_body(429),
    };
    let mut reply = route_app(s, parts, &account, &segs, body);
    reply.remaining = Some(reply.remaining.unwrap_or(remaining));
    reply
}

fn route_app(s: &mut State, parts: &Parts, account: &str, segs: &[&str], body: &[u8]) -> Reply {
    let not_found = || {
        error(
            404,
            "not_found",
            "The requested API endpoint was not found. Are you using the right HTTP verb (i.e. `GET` vs. `POST`), and did you specify your URL correctly?",
        )
    };
    let (app_ref, rest) = match segs {
        ["apps", app, rest @ ..] if !app.is_empty() => (*app, rest),
        _ => return not_found(),
    };
    let known_route = matches!(
        (&parts.method, rest),
        (&Method::GET, ["formation"])
            | (&Method::PATCH, ["formation"])
            | (&Method::GET, ["formation", _])
            | (&Method::PATCH, ["formation", _])
            | (&Method::GET, ["dynos"])
            | (&Method::GET, ["dynos", _])
    );
    if !known_route || rest.iter().any(|p| p.is_empty()) {
        return not_found();
    }
    let Some(ai) = s.app_index(app_ref) else {
        return error(404, "not_found", "Couldn't find that app.");
    };
    if !s.apps[ai].accounts.iter().any(|a| a == account) {
        return error(403, "forbidden", "You do not have access to the app.");
    }
    match (&parts.method, rest) {
        (&Method::GET, ["formation"]) => {
            let app = &s.apps[ai];
            let items: Vec<Value> = app.formations.iter().map(|f| json!(s.formation_json(app, f))).collect();
            let mut r = ok(Value::Array(items));
            r.extra.push(("Accept-Ranges", "id, type".into()));
            r
        }
        (&Method::GET, ["formation", t]) => match find_formation(s, ai, t) {
            Some(fi) => ok(json!(s.formation_json(&s.apps[ai], &s.apps[ai].formations[fi]))),
            None => error(404, "not_found", &format!("Couldn't find that process type ({t}).")),
        },
        (&Method::PATCH, ["formation", t]) => {
            let Some(fi) = find_formation(s, ai, t) else {
                return error(404, "not_found", &format!("Couldn't find that process type ({t})."));
            };
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return error(400, "bad_request", "Invalid JSON in request body.");
            };
            let Some(obj) = v.as_object() else {
                return error(400, "bad_request", "Request body must be a JSON object.");
            };
            let pt = s.apps[ai].formations[fi].process_type.clone();
            match validate_update(s, ai, &pt, obj) {
                Ok(update) => {
                    apply(s, ai, &pt, update);
                    let fi = find_formation(s, ai, &pt).expect("still there");
                    ok(json!(s.formation_json(&s.apps[ai], &s.apps[ai].formations[fi])))
                }
                Err(r) => r,
            }
        }
        (&Method::PATCH, ["formation"]) => batch(s, ai, body),
        (&Method::GET, ["dynos"]) => list_dynos(s, ai, parts),
        (&Method::GET, ["dynos", name]) => {
            let now = s.now();
            let app = &s.apps[ai];
            match app.dynos.iter().find(|d| (d.name == *name || d.id == *name) && d.gone_at.is_none_or(|g| g > now)) {
                Some(d) => ok(json!(s.dyno_json(app, d))),
                None => error(404, "not_found", &format!("Couldn't find that dyno ({name}).")),
            }
        }
        _ => not_found(),
    }
}
