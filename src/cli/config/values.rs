//! Parsing and checking the program's own values (the adapters check theirs). Every error names the setting.

use std::time::Duration;

use super::{ConfigError, err};

/// Bounds of a duration setting: values outside cannot be meant.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
}

pub const POLL_INTERVAL: Bounds = Bounds { min: Duration::from_millis(100), max: Duration::from_secs(3600) };

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
