//! Durations and times in JSON as seconds (`12.5`), not serde's `{"secs", "nanos"}`: for
//! `#[serde(serialize_with = "...")]`.
//!
//! ```
//! #[derive(serde::Serialize)]
//! struct S {
//!     #[serde(serialize_with = "dyno_scaler_core::serde_secs::duration")]
//!     d: std::time::Duration,
//! }
//! let json = serde_json::to_string(&S { d: std::time::Duration::from_millis(1500) }).unwrap();
//! assert_eq!(json, r#"{"d":1.5}"#);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serializer;

/// A duration as seconds.
pub fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// An optional duration as seconds or `null`.
pub fn option<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// An optional time as seconds since the Unix epoch or `null`.
pub fn option_time<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    option(&t.map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default()), s)
}
