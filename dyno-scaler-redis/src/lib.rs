//! Redis connection and reply helpers shared by the Sidekiq and Resque sources of dyno-scaler.
#![deny(missing_docs)]

use std::time::Duration;

use dyno_scaler_core::error::Cause;
use dyno_scaler_core::secret::redact_url;
use dyno_scaler_core::{QueueStats, Secret, SettingError, Snapshot, SourceError};
use redis::Value;
use redis::aio::ConnectionManagerConfig;

mod conn;
pub mod events;
pub mod lease;
mod store;

pub use conn::Conn;
pub use store::RedisStore;

/// Whether a `rediss://` connection checks the server's certificate.
///
/// Heroku's Redis (Key-Value Store) serves self-signed certificates and tells clients to accept them without
/// verification: that is [`TlsVerify::None`]. Elsewhere keep [`TlsVerify::Full`], the default; the trusted roots
/// are the system's (`SSL_CERT_FILE` or `SSL_CERT_DIR` name others).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsVerify {
    /// Check the certificate chain and the host name.
    #[default]
    Full,
    /// Accept any certificate (encrypted, but not authenticated).
    None,
}

impl std::str::FromStr for TlsVerify {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "none" => Ok(Self::None),
            other => Err(format!("unknown TLS verification mode {other:?}; use full or none")),
        }
    }
}

/// The URL the Redis client is given: with `#insecure` (the fragment Redis clients use to skip verification)
/// added to a `rediss://` URL when `verify` is [`TlsVerify::None`].
fn client_url(url: &str, verify: TlsVerify) -> String {
    if verify == TlsVerify::None && url.starts_with("rediss://") && !url.contains('#') {
        format!("{url}#insecure")
    } else {
        url.to_owned()
    }
}

/// A lazily connecting, self-reconnecting connection with bounded timeouts, replaced when a command times out
/// ([`Conn`]); `rediss://` URLs use TLS (rustls), with or without certificate verification as `verify` says (a
/// `#insecure` fragment also turns it off).
pub fn connect(name: &'static str, url: &Secret, verify: TlsVerify, timeout: Duration) -> Result<Conn, SettingError> {
    // redis-rs builds its TLS configuration with the process's default provider; ring is the one we ship.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = redis::Client::open(client_url(url.expose(), verify)).map_err(|e| {
        let message =
            format!("{name}: invalid Redis URL {}: {}", redact_url(url.expose()), scrub_url(&e.to_string(), url));
        SettingError::new("url", message)
    })?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    Conn::new(name, client, config)
        .map_err(|e| SettingError::new("url", format!("{name}: {}", scrub_url(&e.to_string(), url))))
}

fn scrub_url(text: &str, url: &Secret) -> String {
    dyno_scaler_core::secret::scrub_url(text, url.expose())
}

/// A Redis error as a typed [`SourceError`], with the URL and its password removed; the client's error is kept
/// (scrubbed) as the cause.
pub fn map_redis_error(name: &str, url: &Secret, e: redis::RedisError) -> SourceError {
    let message = scrub_url(&e.to_string(), url);
    let password = dyno_scaler_core::secret::url_password(url.expose()).unwrap_or_default();
    let cause = Some(Cause::scrubbed(&e, &[url.expose(), password]));
    let source_name = name.to_owned();
    if e.is_timeout() && url.expose().starts_with("rediss://") {
        // A Redis without TLS reads the handshake as a command that never ends, and answers nothing.
        let message = format!(
            "timed out: no answer over TLS ({message}); a Redis without TLS never answers a TLS handshake: if this \
             server does not speak TLS, `redis://` is meant"
        );
        SourceError::Unavailable { source_name, message, cause }
    } else if e.is_timeout() {
        SourceError::Unavailable { source_name, message: format!("timed out: {message}"), cause }
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        SourceError::Unavailable { source_name, message, cause }
    } else {
        SourceError::Protocol { source_name, message, cause }
    }
}

/// `v`, unless the server refused the command (a key of the wrong type): then `None`, with the key named in
/// `unreadable` and a warning logged. Pipelines run with `ignore_errors()`, so one bad key fails its own command
/// and the rest of the reading stands.
pub fn readable(source_name: &str, v: Value, key: &str, unreadable: &mut Vec<String>) -> Option<Value> {
    match v {
        Value::ServerError(e) => {
            tracing::warn!(source = source_name, key, error = e.code(), "skipping a key that cannot be read");
            unreadable.push(format!("{key}: {}", e.code()));
            None
        }
        v => Some(v),
    }
}

/// What a Redis source's reading collects: the snapshot so far (with a worker list) and the keys the server would
/// not read.
pub struct Collected {
    /// The snapshot so far.
    pub snap: Snapshot,
    /// The keys refused, named.
    pub unreadable: Vec<String>,
}

impl Collected {
    /// Nothing yet, with an empty worker list (the source has a worker registry).
    pub fn new() -> Self {
        Self { snap: Snapshot::default().with_workers(Vec::new()), unreadable: Vec::new() }
    }

    /// The snapshot, each key that could not be read named in it and counted as skipped.
    pub fn finish(mut self) -> Snapshot {
        self.snap.skipped += self.unreadable.len() as u64;
        self.snap.unreadable = self.unreadable;
        self.snap
    }
}

impl Default for Collected {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether the queue `q` is watched (`queues`: the configured list, `None` for every queue).
pub fn watched(queues: Option<&[String]>, q: &str) -> bool {
    queues.is_none_or(|w| w.iter().any(|x| x == q))
}

/// Adds each queue's length and the age of its oldest job to `snap`, from `LLEN` + `LINDEX` reply pairs in
/// `queues` order (keys `<prefix>queue:<q>`). A key the server refuses is named in `unreadable`; `age` reads the
/// oldest job: `Ok(None)` when it carries no time, `Err(())` when it cannot be read (counted in `skipped`).
pub fn add_queue_lists(
    source_name: &str,
    prefix: &str,
    queues: &[String],
    replies: Vec<Value>,
    snap: &mut Snapshot,
    unreadable: &mut Vec<String>,
    age: impl Fn(&[u8]) -> Result<Option<Duration>, ()>,
) {
    let mut replies = replies.into_iter();
    for q in queues {
        let (Some(len), Some(oldest)) = (replies.next(), replies.next()) else { break };
        let Some(len) = readable(source_name, len, &format!("{prefix}queue:{q}"), unreadable) else { continue };
        let mut stats = QueueStats::ready(as_i64(&len).unwrap_or(0).max(0) as u64);
        if let Value::BulkString(raw) = &oldest {
            match age(raw) {
                Ok(a) => stats.oldest_ready_age = a,
                Err(()) => snap.skipped += 1,
            }
        }
        snap.add(q, stats);
    }
}

/// A string reply.
pub fn as_str(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// An integer reply (or a string holding one).
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => as_str(v)?.trim().parse().ok(),
    }
}

/// A number reply (or a string holding one).
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        _ => as_str(v)?.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
    }
}

/// The items of an array (or set) reply; empty for anything else.
pub fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
}

/// The items of an array (or set) reply, borrowed; empty for anything else.
pub fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// The string items of an array reply.
pub fn strings(v: Value) -> Vec<String> {
    array(v).iter().filter_map(as_str).map(str::to_owned).collect()
}

/// How much a sample of `sampled` items stands for in a population of `total`: 1 when the sample is all of it.
pub fn ratio(sampled: u64, total: u64) -> f64 {
    if sampled == 0 || total <= sampled { 1.0 } else { total as f64 / sampled as f64 }
}

/// `n` of a sample of `sampled` items, scaled to a population of `total` (exact when the sample is all).
pub fn scale(n: u64, sampled: u64, total: u64) -> u64 {
    (n as f64 * ratio(sampled, total)).round() as u64
}

/// How long a learned summary is kept after its last write (a week: a scaler stopped longer starts afresh).
pub const LEARNED_TTL: Duration = Duration::from_secs(7 * 86_400);

/// The key of the learned summary of `process_type`, beside the queue's own keys (`prefix` is the namespace).
pub fn learned_key(prefix: &str, process_type: &str) -> String {
    format!("{prefix}dyno-scaler:learned:{process_type}")
}

/// The members of the set `key` (a job library's list of the queues it has seen), sorted; a key of another type
/// is an error naming it.
pub async fn members(mut conn: Conn, (name, url): (&str, &Secret), key: &str) -> Result<Vec<String>, SourceError> {
    let mut v: Vec<String> =
        redis::cmd("SMEMBERS").arg(key).query_async(&mut conn).await.map_err(|e| map_redis_error(name, url, e))?;
    v.sort();
    Ok(v)
}
