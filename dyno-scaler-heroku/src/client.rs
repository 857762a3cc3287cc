//! The Heroku Platform API client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dyno_scaler_core::{Platform, PlatformError, ProcessInfo, Secret};
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
    /// Give up when the next wait would pass this much time since the first attempt.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            rate_limit_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
            max_total: Duration::from_secs(30),
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

/// The Heroku platform.
pub struct HerokuPlatform {
    config: HerokuConfig,
    client: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    remaining: AtomicU64,
    rng: AtomicU64,
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

fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl HerokuPlatform {
    /// A client for `config`. Installs the ring TLS provider for the process if none is installed.
    pub fn new(config: HerokuConfig) -> Result<Self, PlatformError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("dyno-scaler/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| PlatformError::Unavailable { message: format!("cannot build the HTTP client: {e}") })?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
            | 1;
        Ok(Self {
            config,
            client,
            cache: Mutex::new(HashMap::new()),
            remaining: AtomicU64::new(u64::MAX),
            rng: AtomicU64::new(seed),
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

    fn jitter(&self, max: Duration) -> Duration {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        max.mul_f64((x >> 11) as f64 / (1u64 << 53) as f64)
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
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), path);
        let retry = &self.config.retry;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self
                .client
                .request(method.clone(), &url)
                .header("Accept", ACCEPT)
                .bearer_auth(self.config.api_key.expose());
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b.to_string());
            }
            if let Some(r) = range {
                req = req.header("Range", r);
            }
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
                    let request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                    let next_range = headers.get("next-range").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    match resp.bytes().await {
                        Ok(b) if status.is_success() => return Ok(Answer { body: b.to_vec(), next_range }),
                        Ok(b) => (Some(status), b.to_vec(), request_id),
                        Err(e) => (None, format!("reading the response: {e}").into_bytes(), request_id),
                    }
                }
                Err(e) => (None, describe(&e).into_bytes(), "-".into()),
            };
            let retryable = match status {
                None => true,
                Some(s) => s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error(),
            };
            let base = if status == Some(StatusCode::TOO_MANY_REQUESTS) {
                retry.rate_limit_backoff
            } else {
                retry.initial_backoff
            };
            let cap = base.saturating_mul(1 << (attempt - 1).min(16)).min(retry.max_backoff);
            let wait = self.jitter(cap);
            if !retryable || attempt >= retry.max_attempts || started.elapsed() + wait > retry.max_total {
                return Err(self.map_error(status, &body, &request_id, requested));
            }
            tracing::warn!(status = ?status.map(|s| s.as_u16()), attempt, wait_ms = wait.as_millis() as u64, request_id, "Heroku API call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
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
            return PlatformError::Unavailable { message: scrub(&String::from_utf8_lossy(body)) };
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
            422 if id == "cannot_run_above_limit" || raw.contains("more than") => PlatformError::LimitExceeded {
                requested: requested.unwrap_or(0),
                limit: parsed.limit.as_ref().and_then(Value::as_u64).and_then(|l| u32::try_from(l).ok()),
                message,
            },
            429 => PlatformError::RateLimited { message },
            s if s >= 500 => PlatformError::Unavailable { message },
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
        let result = self.call(Method::GET, &path, None, None, None).await.and_then(|a| decode::<Formation>(&a.body));
        match &result {
            Ok(f) => self.remember(process_type, f.quantity),
            Err(_) => self.forget(process_type),
        }
        result
    }

    /// Every formation of the app.
    pub async fn formations(&self) -> Result<Vec<Formation>, PlatformError> {
        let path = format!("{}/formation", self.app_path());
        let list: Vec<Formation> = decode(&self.call(Method::GET, &path, None, None, None).await?.body)?;
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
            .and_then(|a| decode::<Vec<Formation>>(&a.body))
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
            out.extend(decode::<Vec<Dyno>>(&answer.body)?);
            match answer.next_range {
                Some(next) => range = Some(next),
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, PlatformError> {
    serde_json::from_slice(body)
        .map_err(|e| PlatformError::Unavailable { message: format!("unexpected response from the Heroku API: {e}") })
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
            .and_then(|a| decode::<Formation>(&a.body))
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
