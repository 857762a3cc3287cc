//! RFC 3339 / ISO 8601 reading and writing (with `jiff`), for the timestamps job libraries and the Heroku API
//! use, and the plausibility rule for job timestamps.

use std::time::SystemTime;

use jiff::Timestamp;
use jiff::fmt::strtime;

/// Parses an RFC 3339 time (`2024-06-12T09:03:01.5+01:00`, `...Z`), or Ruby's `Time#to_s` form
/// (`2024-06-12 09:03:01 +0000`, `... UTC`), into seconds since the Unix epoch.
///
/// ```
/// use dyno_scaler_core::timefmt::parse_rfc3339;
/// assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Some(86_400.0));
/// assert_eq!(parse_rfc3339("2024-06-12T09:03:01.5+01:00"), Some(1_718_179_381.5));
/// assert_eq!(parse_rfc3339("2024-06-12 09:03:01 +0000"), Some(1_718_182_981.0));
/// assert_eq!(parse_rfc3339("2024-06-12 09:03:01 UTC"), Some(1_718_182_981.0));
/// assert_eq!(parse_rfc3339("yesterday"), None);
/// ```
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.trim();
    let ts = s
        .parse::<Timestamp>()
        .ok()
        .or_else(|| strtime::parse("%Y-%m-%d %H:%M:%S %z", s).ok()?.to_timestamp().ok())
        .or_else(|| {
            let civil = strtime::parse("%Y-%m-%d %H:%M:%S", s.strip_suffix(" UTC")?).ok()?.to_datetime().ok()?;
            civil.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
        })?;
    Some(ts.as_second() as f64 + f64::from(ts.subsec_nanosecond()) / 1e9)
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC), as the Heroku API writes it.
///
/// ```
/// use dyno_scaler_core::timefmt::format_rfc3339;
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(format_rfc3339(UNIX_EPOCH + Duration::from_secs(1_718_182_981)), "2024-06-12T09:03:01Z");
/// ```
pub fn format_rfc3339(t: SystemTime) -> String {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Formats a time like [`format_rfc3339`] with nine fractional digits, as Rails' Active Job writes `enqueued_at`.
///
/// ```
/// use dyno_scaler_core::timefmt::format_rfc3339_nanos;
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::new(1_718_182_981, 5);
/// assert_eq!(format_rfc3339_nanos(t), "2024-06-12T09:03:01.000000005Z");
/// ```
pub fn format_rfc3339_nanos(t: SystemTime) -> String {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH).strftime("%Y-%m-%dT%H:%M:%S.%9fZ").to_string()
}

/// The age at `now` of a job timestamp (both in seconds since the epoch), or `None` when the timestamp cannot be
/// meant: not finite, before 2001-09-09 (`1e9`; a 0 or negative timestamp is garbage, not a 56-year-old job), or
/// more than a day ahead of `now`. A timestamp up to a day ahead is clock skew: age zero.
///
/// ```
/// use dyno_scaler_core::timefmt::plausible_age;
/// let now = 1_800_000_000.0;
/// assert_eq!(plausible_age(now - 12.5, now).unwrap().as_secs_f64(), 12.5);
/// assert_eq!(plausible_age(now + 60.0, now).unwrap().as_secs(), 0);
/// for garbage in [0.0, -1.0, 12.0, now + 90_000.0, f64::NAN, f64::INFINITY] {
///     assert_eq!(plausible_age(garbage, now), None);
/// }
/// ```
pub fn plausible_age(ts: f64, now: f64) -> Option<std::time::Duration> {
    if !ts.is_finite() || ts < 1e9 || ts > now + 86_400.0 {
        return None;
    }
    std::time::Duration::try_from_secs_f64((now - ts).max(0.0)).ok()
}
