//! One API call: retries with backoff within a call, the outage backoff across calls, and mapping answers to
//! typed errors.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dyno_scaler_core::PlatformError;
use dyno_scaler_core::backoff::Backoff;
use dyno_scaler_core::error::Cause;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::api::ErrorBody;
use crate::client::{ACCEPT, HerokuPlatform};

pub(crate) struct Answer {
    pub(crate) body: Vec<u8>,
    pub(crate) next_range: Option<String>,
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
    /// Counts one request by its answer (`"error"`: none came).
    fn count(&self, status: Option<StatusCode>) {
        let key = status.map_or_else(|| "error".to_owned(), |s| s.as_u16().to_string());
        *self.requests.lock().expect("requests lock").entry(key).or_default() += 1;
    }

    /// Before a call: the error to return instead when the outage backoff forbids a request now, else how many
    /// attempts the call may make (one while an outage lasts). A read while work waits goes through as a probe once
    /// per `outage_probe`, unless the API asked for no request (`Retry-After`).
    fn gate(&self, method: &Method) -> Result<u32, PlatformError> {
        let mut o = self.outage.lock().expect("outage lock");
        let now = Instant::now();
        let probe = *method == Method::GET
            && !self.work_waiting.lock().expect("work lock").is_empty()
            && o.asked_until.is_none_or(|t| now >= t)
            && o.probed.is_none_or(|t| now.duration_since(t) >= self.config.retry.outage_probe);
        match o.until {
            Some(until) if now < until && probe => {
                o.probed = Some(now);
                tracing::debug!("Heroku API: probing during the backoff (work waits)");
                Ok(1)
            }
            Some(until) if now < until => Err(PlatformError::BackingOff {
                wait: until - now,
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
        let mut wait = o.backoff.fail(hint);
        // `Retry-After` beyond the outage backoff's maximum is honoured too, up to its own bound.
        if let Some(asked) = hint {
            wait = wait.max(asked.min(self.config.retry.max_retry_after));
        }
        o.until = Some(Instant::now() + wait);
        o.asked_until = hint.map(|h| Instant::now() + h.min(self.config.retry.max_retry_after));
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
        o.asked_until = None;
    }

    /// Decodes a successful answer; a body that is not the resource counts as a failure of the platform.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, PlatformError> {
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
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        range: Option<&str>,
        requested: Option<u32>,
    ) -> Result<Answer, PlatformError> {
        let max_attempts = self.gate(&method)?;
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
                        Ok(b) if status.is_success() => {
                            self.count(Some(status));
                            return Ok(Answer { body: b.to_vec(), next_range });
                        }
                        Ok(b) => (Some(status), b.to_vec(), request_id),
                        Err(e) => (None, format!("reading the response: {e}").into_bytes(), request_id),
                    }
                }
                Err(e) => {
                    cause = Some(Cause::scrubbed(&e, &[self.config.api_key.expose()]));
                    (None, describe(&e).into_bytes(), "-".into())
                }
            };
            self.count(status);
            let rate_limited = status == Some(StatusCode::TOO_MANY_REQUESTS);
            let retryable = match status {
                None => true,
                Some(s) => rate_limited || s.is_server_error(),
            };
            let wait = if rate_limited { rate_backoff.fail(hint) } else { backoff.fail(hint) };
            // A wait asked for beyond the longest within a call ends the call: the calls after it wait it out.
            let asked_longer = hint.is_some_and(|h| h > retry.max_backoff);
            if !retryable || asked_longer || attempt >= max_attempts || started.elapsed() + wait > retry.max_total {
                let mut error = self.map_error(status, &body, &request_id, requested);
                if let PlatformError::Unavailable { cause: c @ None, .. } = &mut error {
                    *c = cause;
                }
                if retryable || matches!(error, PlatformError::Locked { .. }) {
                    self.trip(&error, hint);
                }
                return Err(error);
            }
            tracing::debug!(
                status = status.map(|s| s.as_u16()),
                attempt,
                wait_ms = wait.as_millis() as u64,
                request_id,
                "Heroku API call failed; retrying"
            );
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
}

/// The limit a 422 message names: "Cannot run more than 2 Free size dynos.", "Cannot update to more than 1 Hobby
/// size dynos per process type."
fn limit_in_message(message: &str) -> Option<u32> {
    let rest = &message[message.find("more than ")? + "more than ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
