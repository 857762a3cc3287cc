//! Parsing and checking the program's own values (the adapters check theirs). Every error names the setting.

use std::time::Duration;

use super::{ConfigError, err};

/// The accepted poll intervals.
pub const POLL_INTERVAL: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));

/// A duration like `5s`, `500ms`, `2m`, without bounds (the simulator's settings).
pub fn parse_duration(value: &str, setting: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|_| {
        ConfigError(format!("{setting}: invalid duration {value:?}; write a positive duration such as 5s, 500ms or 2m"))
    })
}

/// A duration within `[min, max]` (the range check the adapters use too).
pub fn duration_in(value: &str, setting: &str, (min, max): (Duration, Duration)) -> Result<Duration, ConfigError> {
    let d = parse_duration(value, setting)?;
    crate::core::check::duration(setting, d, min, max).map_err(|e| ConfigError(e.to_string()))?;
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
