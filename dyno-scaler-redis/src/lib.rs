//! Redis connection and reply helpers shared by the Sidekiq and Resque sources of dyno-scaler.
#![deny(missing_docs)]

use std::time::Duration;

use dyno_scaler_core::secret::redact_url;
use dyno_scaler_core::{Secret, SourceError};
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A lazily connecting, self-reconnecting connection with bounded timeouts.
pub fn connect(name: &str, url: &Secret, timeout: Duration) -> Result<ConnectionManager, SourceError> {
    let client = redis::Client::open(url.expose()).map_err(|e| SourceError::Other {
        source_name: name.into(),
        message: format!("invalid Redis URL {}: {}", redact_url(url.expose()), scrub_url(&e.to_string(), url)),
    })?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| SourceError::Other { source_name: name.into(), message: scrub_url(&e.to_string(), url) })
}

fn scrub_url(text: &str, url: &Secret) -> String {
    dyno_scaler_core::secret::scrub_url(text, url.expose())
}

/// A Redis error as a typed [`SourceError`], with the URL and its password removed.
pub fn map_redis_error(name: &str, url: &Secret, e: redis::RedisError) -> SourceError {
    let message = scrub_url(&e.to_string(), url);
    if e.is_timeout() {
        SourceError::Unavailable { source_name: name.into(), message: format!("timed out: {message}") }
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        SourceError::Unavailable { source_name: name.into(), message }
    } else {
        SourceError::Protocol { source_name: name.into(), message }
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
