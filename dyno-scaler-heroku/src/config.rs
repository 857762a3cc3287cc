//! The settings of the Heroku platform.

use std::time::Duration;

use dyno_scaler_core::{Secret, SettingError, check};

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
    /// While an outage's backoff lasts and the queue has work waiting (as the scaler last told the platform), a
    /// read of the formation is still let through this often, one attempt, so the API's return is found within
    /// this of it rather than at the end of a backoff that grew to `outage_max`. Never inside a `Retry-After`.
    pub outage_probe: Duration,
    /// The longest `Retry-After` honoured. A call told to wait longer than `max_backoff` makes no more attempts,
    /// and no call makes a request until the wait (at most this) has passed, across calls.
    pub max_retry_after: Duration,
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
            outage_probe: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(300),
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
