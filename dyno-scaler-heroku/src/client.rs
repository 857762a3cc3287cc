//! The Heroku Platform API client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dyno_scaler_core::backoff::Backoff;
use dyno_scaler_core::error::Cause;
use dyno_scaler_core::{Platform, PlatformError, ProcessInfo, Secret, SettingError, check};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{Dyno, ErrorBody, Formation};

const ACCEPT: &str = "application/vnd.heroku+json; version=3";

/// How failed requests are retried (429, 5xx, network errors).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Base backoff after a 5xx or network error (doubles per attempt, full jitter).
    pub initial_backoff: Duration,
    /// Base backoff after a 429.
    pub rate_limit_backoff: Duration,
    /// Largest single wait.
    pub max_backoff: Duration,
    /// Give up when the next wait would pass this much time since the first attempt (request time included:
    /// a request never runs past it).
    pub max_total: Duration,
    /// After a call fails for good (network, 429, 5xx, a body that is not the resource), no request is made for
    /// a wait that starts here and doubles per failed call in a row (with jitter), and the next call makes one
    /// attempt only: an outage costs a handful of requests, not the account's rate limit.
    pub outage_initial: Duration,
    /// The longest wait between calls during an outage.
    pub outage_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            rate_limit_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
            max_total: Duration::from_secs(30),
            outage_initial: Duration::from_secs(1),
            outage_max: Duration::from_secs(60),
        }
    }
}

/// Settings of a [`HerokuPlatform`].
#[derive(Debug, Clone)]
pub struct HerokuConfig {
    /// Platform API token (`HEROKU_API_KEY`).
    pub api_key: Secret,
    /// App name or UUID (`HEROKU_APP_NAME`).
    pub app: String,
    /// API base URL (`HEROKU_API_URL`), `https://api.heroku.com` by default.
    pub base_url: String,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// How long a cached quantity is trusted before it is read again.
    pub refresh_interval: Duration,
    /// Below this `RateLimit-Remaining`, cached quantities are trusted ten times longer.
    pub rate_limit_floor: u64,
}

impl HerokuConfig {
    /// Checks the settings, naming the one that cannot be used (`api_key`, `app`, `api_url`).
    pub fn validate(&self) -> Result<(), SettingError> {
        let key = self.api_key.expose();
        if key.is_empty() {
            return Err(SettingError::new("api_key", "empty: create a token with `heroku authorizations:create`"));
        }
        if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            let message = "the token contains a line break, a space or another control character (a paste error?); \
                           set it to the token alone";
            return Err(SettingError::new("api_key", message));
        }
        if self.app.trim().is_empty() {
            return Err(SettingError::new("app", "empty: set it to the app's name"));
        }
        check::url("api_url", &self.base_url, &["https", "http"])
    }

    /// Defaults for `app` with `api_key`.
    pub fn new(api_key: impl Into<String>, app: impl Into<String>) -> Self {
        Self {
            api_key: Secret::new(api_key),
            app: app.into(),
            base_url: "https://api.heroku.com".into(),
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            refresh_interval: Duration::from_secs(60),
            rate_limit_floor: 100,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    quantity: u32,
    at: Instant,
}

/// Calls that failed for good in a row, and when the next request is allowed.
#[derive(Debug)]
struct Outage {
    backoff: Backoff,
    until: Option<Instant>,
    last: String,
}

/// The Heroku platform.
pub struct HerokuPlatform {
    config: HerokuConfig,
    client: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    remaining: AtomicU64,
    outage: Mutex<Outage>,
}

impl std::fmt::Debug for HerokuPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HerokuPlatform")
            .field("app", &self.config.app)
            .field("base_url", &self.config.base_url)
            .field("api_key", &self.config.api_key)
            .finish()
    }
}

struct Answer {
    body: Vec<u8>,
    next_range: Option<String>,
}

/// Characters left as they are in a path segment: RFC 3986's unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn percent_encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// `Retry-After` as a wait: delta seconds, or (as Heroku's legacy API sent it) an epoch timestamp.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v: f64 = headers.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    if v > 1_000_000_000.0 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
        return Some(Duration::from_secs_f64((v - now).clamp(0.0, 3600.0)));
    }
    Some(Duration::from_secs_f64(v.min(3600.0)))
}

impl HerokuPlatform {
    /// A client for `config`, checked first. Installs the ring TLS provider for the process if none is installed.
    pub fn new(config: HerokuConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("dyno-scaler/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| SettingError::new("api_url", format!("cannot build the HTTP client: {e}")))?;
        let outage = Outage {
            backoff: Backoff::new(config.retry.outage_initial, config.retry.outage_max),
            until: None,
            last: String::new(),
        };
        Ok(Self {
            config,
            client,
            cache: Mutex::new(HashMap::new()),
            remaining: AtomicU64::new(u64::MAX),
            outage: Mutex::new(outage),
        })
    }

    /// The settings.
    pub fn config(&self) -> &HerokuConfig {
        &self.config
    }

    /// The last `RateLimit-Remaining` seen, if any.
    pub fn rate_limit_remaining(&self) -> Option<u64> {
        match self.remaining.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    fn app_path(&self) -> String {
        format!("/apps/{}", percent_encode(&self.config.app))
    }

    /// Before a call: the error to return instead when the outage backoff forbids a request now, else how many
    /// attempts the call may make (one while an outage lasts).
    fn gate(&self) -> Result<u32, PlatformError> {
        let o = self.outage.lock().expect("outage lock");
        match o.until {
            Some(until) if Instant::now() < until => Err(PlatformError::BackingOff {
                wait: until - Instant::now(),
                failures: o.backoff.failures(),
                last: o.last.clone(),
            }),
            _ if o.backoff.failures() > 0 => Ok(1),
            _ => Ok(self.config.retry.max_attempts.max(1)),
        }
    }

    /// A call failed for good with an outage-like error: no request until the backoff passes.
    fn trip(&self, error: &PlatformError, hint: Option<Duration>) {
        let mut o = self.outage.lock().expect("outage lock");
        let wait = o.backoff.fail(hint);
        o.until = Some(Instant::now() + wait);
        o.last = error.to_string();
        tracing::debug!(wait_ms = wait.as_millis() as u64, failures = o.backoff.failures(), "Heroku API: backing off");
    }

    fn healthy(&self) {
        let mut o = self.outage.lock().expect("outage lock");
        if o.backoff.failures() > 0 {
            tracing::info!(failures = o.backoff.failures(), "Heroku API answering again");
        }
        o.backoff.succeed();
        o.until = None;
    }

    /// Decodes a successful answer; a body that is not the resource counts as a failure of the platform.
    fn decode<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, PlatformError> {
        let decoded = serde_json::from_slice(body).map_err(|e| {
            let message = format!("unexpected response from the Heroku API: {e}");
            let error = PlatformError::Unavailable { message, cause: Some(Cause::scrubbed(&e, &[])) };
            self.trip(&error, None);
            error
        })?;
        self.healthy();
        Ok(decoded)
    }

    /// One API call with retries. `range` is sent as `Range`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        range: Option<&str>,
        requested: Option<u32>,
    ) -> Result<Answer, PlatformError> {
        let max_attempts = self.gate()?;
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), path);
        let retry = &self.config.retry;
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut backoff = Backoff::new(retry.initial_backoff, retry.max_backoff);
        let mut rate_backoff = Backoff::new(retry.rate_limit_backoff, retry.max_backoff);
        loop {
            attempt += 1;
            // The budget covers the requests too: none runs past it.
            let left = retry.max_total.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
            let mut req = self
                .client
                .request(method.clone(), &url)
                .timeout(self.config.request_timeout.min(left))
                .header("Accept", ACCEPT)
                .bearer_auth(self.config.api_key.expose());
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b.to_string());
            }
            if let Some(r) = range {
                req = req.header("Range", r);
            }
            let mut hint = None;
            let mut cause = None;
            let (status, body, request_id): (Option<StatusCode>, Vec<u8>, String) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    if let Some(rem) = headers
                        .get("ratelimit-remaining")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                    {
                        self.remaining.store(rem, Ordering::Relaxed);
                    }
                    for w in ["warning-message", "x-heroku-warning"] {
                        if let Some(v) = headers.get(w).and_then(|v| v.to_str().ok()) {
                            tracing::warn!(warning = v, "Heroku API warning");
                        }
                    }
                    hint = retry_after(&headers);
                    let request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                    let next_range = headers.get("next-range").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    match resp.bytes().await {
                        Ok(b) if status.is_success() => return Ok(Answer { body: b.to_vec(), next_range }),
                        Ok(b) => (Some(status), b.to_vec(), request_id),
                        Err(e) => (None, format!("reading the response: {e}").into_bytes(), request_id),
                    }
                }
                Err(e) => {
                    cause = Some(Cause::scrubbed(&e, &[self.config.api_key.expose()]));
                    (None, describe(&e).into_bytes(), "-".into())
                }
            };
            let rate_limited = status == Some(StatusCode::TOO_MANY_REQUESTS);
            let retryable = match status {
                None => true,
                Some(s) => rate_limited || s.is_server_error(),
            };
            let wait = if rate_limited { rate_backoff.fail(hint) } else { backoff.fail(hint) };
            if !retryable || attempt >= max_attempts || started.elapsed() + wait > retry.max_total {
                let mut error = self.map_error(status, &body, &request_id, requested);
                if let PlatformError::Unavailable { cause: c @ None, .. } = &mut error {
                    *c = cause;
                }
                if retryable || matches!(error, PlatformError::Locked { .. }) {
                    self.trip(&error, hint);
                }
                return Err(error);
            }
            tracing::debug!(status = ?status.map(|s| s.as_u16()), attempt, wait_ms = wait.as_millis() as u64, request_id, "Heroku API call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A network failure in a few words: what happened and where, with the innermost cause (`Connection refused`).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = None;
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            let host =
                e.url().and_then(|u| u.host_str().map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0))));
            return format!("connection refused by {}", host.as_deref().unwrap_or("the API host"));
        }
        cause = Some(s.to_string());
        src = s.source();
    }
    match cause {
        Some(c) => format!("{kind}: {c}"),
        None => format!("{kind}: {e}"),
    }
}

impl HerokuPlatform {
    fn map_error(
        &self,
        status: Option<StatusCode>,
        body: &[u8],
        request_id: &str,
        requested: Option<u32>,
    ) -> PlatformError {
        let scrub = |m: &str| dyno_scaler_core::secret::scrub(m, self.config.api_key.expose());
        let Some(status) = status else {
            return PlatformError::Unavailable { message: scrub(&String::from_utf8_lossy(body)), cause: None };
        };
        let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        let raw = if parsed.message.is_empty() {
            String::from_utf8_lossy(body).chars().take(200).collect()
        } else {
            parsed.message.clone()
        };
        let message = scrub(&format!("{} (HTTP {}, request id {request_id})", raw.trim(), status.as_u16()));
        let id = parsed.id.clone();
        match status.as_u16() {
            401 => PlatformError::Unauthorized { message },
            402 | 403 => PlatformError::Forbidden { id: if id.is_empty() { "forbidden".into() } else { id }, message },
            404 => PlatformError::NotFound { message: format!("{message}; app {:?}", self.config.app) },
            422 if raw.contains("preboot") || raw.contains("release phase") => PlatformError::Locked { message },
            422 if id == "cannot_run_above_limit" || raw.contains("more than") => PlatformError::LimitExceeded {
                requested: requested.unwrap_or(0),
                limit: parsed
                    .limit
                    .as_ref()
                    .and_then(Value::as_u64)
                    .and_then(|l| u32::try_from(l).ok())
                    .or_else(|| limit_in_message(&raw)),
                message,
            },
            429 => PlatformError::RateLimited { message },
            s if s >= 500 => PlatformError::Unavailable { message, cause: None },
            s => PlatformError::Rejected { status: s, id, message },
        }
    }

    fn cached(&self, process_type: &str) -> Option<u32> {
        let c = *self.cache.lock().expect("cache").get(process_type)?;
        let low = self.rate_limit_remaining().is_some_and(|r| r < self.config.rate_limit_floor);
        let ttl = if low { self.config.refresh_interval * 10 } else { self.config.refresh_interval };
        (c.at.elapsed() < ttl).then_some(c.quantity)
    }

    fn remember(&self, process_type: &str, quantity: u32) {
        self.cache.lock().expect("cache").insert(process_type.to_owned(), Cached { quantity, at: Instant::now() });
    }

    fn forget(&self, process_type: &str) {
        self.cache.lock().expect("cache").remove(process_type);
    }

    /// Reads one formation (always a request; `current_quantity` uses the cache).
    pub async fn formation(&self, process_type: &str) -> Result<Formation, PlatformError> {
        let path = format!("{}/formation/{}", self.app_path(), percent_encode(process_type));
        let result =
            self.call(Method::GET, &path, None, None, None).await.and_then(|a| self.decode::<Formation>(&a.body));
        match &result {
            Ok(f) => self.remember(process_type, f.quantity),
            Err(_) => self.forget(process_type),
        }
        result
    }

    /// Every formation of the app.
    pub async fn formations(&self) -> Result<Vec<Formation>, PlatformError> {
        let path = format!("{}/formation", self.app_path());
        let list: Vec<Formation> = self.decode(&self.call(Method::GET, &path, None, None, None).await?.body)?;
        for f in &list {
            self.remember(&f.process_type, f.quantity);
        }
        Ok(list)
    }

    /// Sets several process types in one request (batch update). All or nothing on Heroku's side.
    pub async fn set_quantities(&self, updates: &[(&str, u32)]) -> Result<Vec<Formation>, PlatformError> {
        let body =
            json!({"updates": updates.iter().map(|(t, q)| json!({"type": t, "quantity": q})).collect::<Vec<_>>()});
        let path = format!("{}/formation", self.app_path());
        let requested = updates.iter().map(|(_, q)| *q).max();
        match self
            .call(Method::PATCH, &path, Some(&body), None, requested)
            .await
            .and_then(|a| self.decode::<Vec<Formation>>(&a.body))
        {
            Ok(list) => {
                for f in &list {
                    self.remember(&f.process_type, f.quantity);
                }
                Ok(list)
            }
            Err(e) => {
                for (t, _) in updates {
                    self.forget(t);
                }
                Err(e)
            }
        }
    }

    /// Every dyno of the app, following `Next-Range` pagination.
    pub async fn dynos(&self) -> Result<Vec<Dyno>, PlatformError> {
        let path = format!("{}/dynos", self.app_path());
        let mut out = Vec::new();
        let mut range: Option<String> = None;
        for _ in 0..1000 {
            let answer = self.call(Method::GET, &path, None, range.as_deref(), None).await?;
            out.extend(self.decode::<Vec<Dyno>>(&answer.body)?);
            match answer.next_range {
                Some(next) => range = Some(next),
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}

/// The limit a 422 message names: "Cannot run more than 2 Free size dynos.", "Cannot update to more than 1 Hobby
/// size dynos per process type."
fn limit_in_message(message: &str) -> Option<u32> {
    let rest = &message[message.find("more than ")? + "more than ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[async_trait]
impl Platform for HerokuPlatform {
    fn name(&self) -> &str {
        "heroku"
    }

    async fn current_quantity(&self, process_type: &str) -> Result<u32, PlatformError> {
        if let Some(q) = self.cached(process_type) {
            return Ok(q);
        }
        Ok(self.formation(process_type).await?.quantity)
    }

    async fn set_quantity(&self, process_type: &str, quantity: u32) -> Result<(), PlatformError> {
        let path = format!("{}/formation/{}", self.app_path(), percent_encode(process_type));
        let body = json!({ "quantity": quantity });
        match self
            .call(Method::PATCH, &path, Some(&body), None, Some(quantity))
            .await
            .and_then(|a| self.decode::<Formation>(&a.body))
        {
            Ok(f) => {
                self.remember(process_type, f.quantity);
                Ok(())
            }
            Err(e) => {
                self.forget(process_type);
                Err(e)
            }
        }
    }

    async fn list_processes(&self, process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        let dynos = self.dynos().await?;
        Ok(Some(
            dynos
                .into_iter()
                .filter(|d| d.process_type == process_type && (d.state == "up" || d.state == "starting"))
                .map(|d| ProcessInfo { name: d.name, state: d.state })
                .collect(),
        ))
    }
}
