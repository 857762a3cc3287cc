//! Typed errors of sources, platforms and the scaler.

use std::time::Duration;

/// A setting that cannot be used, found when a source or platform is built, before any I/O (a malformed URL, an
/// empty namespace, a value of another source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    /// The setting, by its name in files (`url`, `namespace`, ...).
    pub setting: String,
    /// What is wrong and what would be accepted, with secrets removed.
    pub message: String,
}

impl SettingError {
    /// An error about `setting`.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self { setting: setting.into(), message: message.into() }
    }
}

/// The cause of an error, kept as a chain (each level's message, with secrets removed), so an error keeps its
/// cause (`Error::source`) without carrying a password along with it.
///
/// ```
/// use dyno_scaler_core::error::Cause;
/// let io = std::io::Error::new(std::io::ErrorKind::Other, "auth failed for hunter2");
/// let cause = Cause::scrubbed(&io, &["hunter2"]);
/// assert_eq!(cause.to_string(), "auth failed for ***");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    message: String,
    next: Option<Box<Cause>>,
}

impl Cause {
    /// `error` and its sources, each message with every one of `secrets` (when non-empty) replaced by `***`.
    pub fn scrubbed(error: &(dyn std::error::Error + 'static), secrets: &[&str]) -> Self {
        let scrub = |text: String| secrets.iter().filter(|s| s.len() >= 2).fold(text, |t, s| t.replace(s, "***"));
        let next = error.source().map(|s| Box::new(Cause::scrubbed(s, secrets)));
        Cause { message: scrub(error.to_string()), next }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.next.as_deref().map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// Why a [`QueueSource`](crate::QueueSource) could not take a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The backend could not be reached (connection refused, reset, DNS).
    #[error("{source_name}: cannot reach the backend: {message}")]
    Unavailable {
        /// The source (`sidekiq`, `resque`, `delayed_job`, ...).
        source_name: String,
        /// What went wrong, with secrets removed.
        message: String,
        /// The client library's error, with secrets removed.
        #[source]
        cause: Option<Cause>,
    },
    /// The backend did not answer in time.
    #[error("{source_name}: no answer within {timeout:?}")]
    Timeout {
        /// The source.
        source_name: String,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The backend answered with something the source cannot use (wrong key type, missing table).
    #[error("{source_name}: unexpected data: {message}")]
    Protocol {
        /// The source.
        source_name: String,
        /// What was wrong.
        message: String,
        /// The client library's error, with secrets removed.
        #[source]
        cause: Option<Cause>,
    },
    /// The source was told to fail (in-memory fake) or another error happened.
    #[error("{source_name}: {message}")]
    Other {
        /// The source.
        source_name: String,
        /// What went wrong.
        message: String,
    },
}

impl SourceError {
    /// The source that failed.
    pub fn source_name(&self) -> &str {
        match self {
            SourceError::Unavailable { source_name, .. }
            | SourceError::Timeout { source_name, .. }
            | SourceError::Protocol { source_name, .. }
            | SourceError::Other { source_name, .. } => source_name,
        }
    }
}

/// Why a [`Platform`](crate::Platform) call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The credentials are missing, invalid or expired (HTTP 401). Not retried.
    #[error("the platform rejected the API key (invalid or expired): {message}")]
    Unauthorized {
        /// The platform's message.
        message: String,
    },
    /// The credentials give no access, the account is suspended or needs a second factor (HTTP 402/403). Not retried.
    #[error("the API key has no access ({id}): {message}")]
    Forbidden {
        /// The platform's error id (`forbidden`, `suspended`, `two_factor`, `delinquent`).
        id: String,
        /// The platform's message.
        message: String,
    },
    /// The app or the process type does not exist (HTTP 404). Not retried.
    #[error("not found: {message}")]
    NotFound {
        /// The platform's message, naming the app or process type.
        message: String,
    },
    /// The quantity is above a platform limit (HTTP 422 `cannot_run_above_limit`). Not retried with the same value.
    #[error("quantity {requested} refused, above the platform's limit{}: {message}", limit.map(|l| format!(" of {l}")).unwrap_or_default())]
    LimitExceeded {
        /// The quantity that was refused.
        requested: u32,
        /// The limit the platform reported, when it did.
        limit: Option<u32>,
        /// The platform's message.
        message: String,
    },
    /// The request was refused as invalid (HTTP 400/406/416/422 other than limits). Not retried.
    #[error("request refused ({status} {id}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The platform's error id.
        id: String,
        /// The platform's message.
        message: String,
    },
    /// The platform refuses changes for now and will accept them later (Heroku: 422 "Cannot change formation for
    /// a preboot app until release phase and preboot complete"). Tried again on a later cycle; caps nothing.
    #[error("the platform refuses changes for now (retried on a later cycle): {message}")]
    Locked {
        /// The platform's message.
        message: String,
    },
    /// Someone else wrote the object between the read and the write (Kubernetes: 409 Conflict, a stale
    /// `resourceVersion`) on every attempt of the call. Not a refusal: the next cycle reads again and decides again.
    #[error("the platform's object changed under every attempt (read again next cycle): {message}")]
    Conflict {
        /// The platform's message.
        message: String,
    },
    /// No request was made: earlier calls failed in a row and the client waits before trying again, so an outage
    /// does not drain the account's rate limit.
    #[error("not calling the platform for another {:.1}s after {failures} failed call(s) in a row; last: {last}", wait.as_secs_f64())]
    BackingOff {
        /// How long until the next request is allowed.
        wait: Duration,
        /// Failed calls in a row.
        failures: u32,
        /// The last failure.
        last: String,
    },
    /// The rate limit was hit and retries ran out (HTTP 429).
    #[error("rate limited by the platform: {message}")]
    RateLimited {
        /// The platform's message.
        message: String,
    },
    /// A server error or network failure that persisted through the retries.
    #[error("platform unavailable: {message}")]
    Unavailable {
        /// What went wrong.
        message: String,
        /// The HTTP client's or decoder's error, with secrets removed.
        #[source]
        cause: Option<Cause>,
    },
}

impl PlatformError {
    /// Whether the error says the configuration is wrong (key, app, type): retrying later cannot help.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            PlatformError::Unauthorized { .. } | PlatformError::Forbidden { .. } | PlatformError::NotFound { .. }
        )
    }

    /// Whether the platform could not be reached or would not answer (server errors, network failures, timeouts,
    /// rate limits, the client's own backoff after them), as opposed to an answer that refuses.
    ///
    /// ```
    /// use dyno_scaler_core::PlatformError;
    /// assert!(PlatformError::Unavailable { message: "timed out".into(), cause: None }.is_outage());
    /// assert!(!PlatformError::Locked { message: "preboot".into() }.is_outage());
    /// ```
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            PlatformError::Unavailable { .. } | PlatformError::RateLimited { .. } | PlatformError::BackingOff { .. }
        )
    }
}

/// Why a reconcile did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScalerError {
    /// The queue could not be read; the quantity was held.
    #[error("process type {process_type}: queue not read, quantity held: {source}")]
    Source {
        /// The process type.
        process_type: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
    /// The platform call failed; the quantity is what it was.
    #[error("process type {process_type}: platform call failed: {source}")]
    Platform {
        /// The process type.
        process_type: String,
        /// The cause.
        #[source]
        source: PlatformError,
    },
}

impl ScalerError {
    /// What kind of failure this is, for deciding whether a failure repeats an earlier one: the same kind with
    /// another detail (a request id, the wait left) is a repeat. An outage seen as 5xx, 429, network errors or the
    /// client's own backoff is one kind.
    pub fn fingerprint(&self) -> String {
        match self {
            ScalerError::Source { process_type, source } => {
                let kind = match source {
                    SourceError::Unavailable { .. } | SourceError::Timeout { .. } => "unreachable",
                    SourceError::Protocol { .. } => "protocol",
                    SourceError::Other { .. } => "other",
                };
                format!("{process_type} source {kind}")
            }
            ScalerError::Platform { process_type, source } => {
                let kind = match source {
                    // The kinds `PlatformError::is_outage` names.
                    PlatformError::Unavailable { .. }
                    | PlatformError::RateLimited { .. }
                    | PlatformError::BackingOff { .. } => "outage",
                    PlatformError::Unauthorized { .. } => "unauthorized",
                    PlatformError::Forbidden { .. } => "forbidden",
                    PlatformError::NotFound { .. } => "not found",
                    PlatformError::LimitExceeded { .. } => "limit",
                    PlatformError::Rejected { .. } => "rejected",
                    PlatformError::Locked { .. } => "locked",
                    PlatformError::Conflict { .. } => "conflict",
                };
                format!("{process_type} platform {kind}")
            }
        }
    }

    /// The process type whose cycle failed.
    pub fn process_type(&self) -> &str {
        match self {
            ScalerError::Source { process_type, .. } | ScalerError::Platform { process_type, .. } => process_type,
        }
    }
}
