//! Parsing and checking single values. Every error names the setting and says what would be accepted.

use std::time::Duration;

use dyno_scaler::core::secret::redact_url;

use super::{ConfigError, SourceKind, err};

/// Bounds of a duration setting: values outside cannot be meant.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
}

pub const POLL_INTERVAL: Bounds = Bounds { min: Duration::from_millis(100), max: Duration::from_secs(3600) };
pub const DOWN_DELAY: Bounds = Bounds { min: Duration::ZERO, max: Duration::from_secs(24 * 3600) };
pub const LATENCY_TARGET: Bounds = Bounds { min: Duration::from_secs(1), max: Duration::from_secs(24 * 3600) };
pub const MAX_RUN_TIME: Bounds = Bounds { min: Duration::from_secs(1), max: Duration::from_secs(7 * 24 * 3600) };

/// A duration like `5s`, `500ms`, `2m`, without bounds (the simulator's settings).
pub fn parse_duration(value: &str, setting: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|_| {
        ConfigError(format!("{setting}: invalid duration {value:?}; write a positive duration such as 5s, 500ms or 2m"))
    })
}

/// A duration within `bounds`.
pub fn duration_in(value: &str, setting: &str, bounds: Bounds) -> Result<Duration, ConfigError> {
    let d = parse_duration(value, setting)?;
    if d < bounds.min || d > bounds.max {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        return err(format!(
            "{setting}: {value:?} is out of range; use a duration from {} to {}",
            show(bounds.min),
            show(bounds.max)
        ));
    }
    Ok(d)
}

pub fn parse_count(value: &str, setting: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| ConfigError(format!("{setting}: {value:?} is not a whole number of workers (0 or more)")))
}

pub fn int_count(value: i64, setting: &str) -> Result<u32, ConfigError> {
    u32::try_from(value)
        .map_err(|_| ConfigError(format!("{setting}: {value} is not a whole number of workers (0 or more)")))
}

/// A source URL: parsed, of the source's schemes, with a host. Shown redacted.
pub fn check_url(url: &str, kind: SourceKind, setting: &str) -> Result<(), ConfigError> {
    let schemes: &[&str] = match kind {
        SourceKind::DelayedJob => &["postgres", "postgresql"],
        _ => &["redis", "rediss"],
    };
    let ok = url::Url::parse(url.trim())
        .is_ok_and(|u| schemes.contains(&u.scheme()) && u.host_str().is_some_and(|h| !h.is_empty()));
    if !ok {
        return err(format!(
            "{setting}: malformed URL {}; expected {}://host[:port]/...",
            redact_url(url),
            schemes.join(":// or ")
        ));
    }
    Ok(())
}

/// `HEROKU_API_URL`: http(s) with a host.
pub fn check_api_url(url: &str, setting: &str) -> Result<(), ConfigError> {
    let ok = url::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()));
    if !ok {
        return err(format!("{setting}: malformed URL {}; expected https://host", redact_url(url)));
    }
    Ok(())
}

/// An API token: one line of printable characters.
pub fn check_token(token: &str, setting: &str) -> Result<(), ConfigError> {
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return err(format!(
            "{setting}: the token contains a line break, a space or another control character (a paste error?); \
             set it to the token alone"
        ));
    }
    Ok(())
}

/// A comma-separated list of names; a list that names nothing is an error, not "all".
pub fn names(value: &str, setting: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if list.is_empty() {
        return err(format!("{setting}: {value:?} names no queue; leave it unset to watch every queue"));
    }
    Ok(list)
}

/// Queue names from the file: none empty, at least one.
pub fn queue_names(list: &[String], setting: &str) -> Result<Vec<String>, ConfigError> {
    if list.is_empty() || list.iter().any(|q| q.trim().is_empty()) {
        return err(format!(
            "{setting}: {list:?} must name at least one queue, none empty; omit it to watch every queue"
        ));
    }
    Ok(list.iter().map(|q| q.trim().to_owned()).collect())
}

/// A Heroku process type: `^[-\w]{1,128}$` in ASCII.
pub fn check_process_type(name: &str, setting: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return err(format!(
            "{setting}: {name:?} is not a process type name (1 to 128 ASCII letters, digits, - and _)"
        ));
    }
    Ok(())
}
