//! Checks of settings that several adapters share, each naming the setting it refuses.

use crate::error::SettingError;
use crate::secret::redact_url;

/// A URL of one of `schemes` with a host; the error shows it redacted.
///
/// ```
/// use dyno_scaler_core::check::url;
/// assert!(url("url", "redis://:pw@h:6379/0", &["redis", "rediss"]).is_ok());
/// let e = url("url", "redis://:pw@", &["redis", "rediss"]).unwrap_err();
/// assert_eq!(e.setting, "url");
/// assert!(!e.message.contains("pw"));
/// ```
pub fn url(setting: &str, value: &str, schemes: &[&str]) -> Result<(), SettingError> {
    let ok = url::Url::parse(value.trim())
        .is_ok_and(|u| schemes.contains(&u.scheme()) && u.host_str().is_some_and(|h| !h.is_empty()));
    if ok {
        return Ok(());
    }
    let expected = schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
    Err(SettingError::new(setting, format!("malformed URL {}; expected {expected}host[:port]/...", redact_url(value))))
}

/// A queue filter: when given, at least one queue, none with an empty name.
pub fn queues(setting: &str, value: &Option<Vec<String>>) -> Result<(), SettingError> {
    match value {
        Some(list) if list.is_empty() || list.iter().any(|q| q.trim().is_empty()) => Err(SettingError::new(
            setting,
            format!("{list:?} must name at least one queue, none empty; leave it unset to watch every queue"),
        )),
        _ => Ok(()),
    }
}

/// A name that, when given, is not empty.
pub fn not_empty(setting: &str, value: Option<&str>) -> Result<(), SettingError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(SettingError::new(setting, "empty; leave it unset for the default")),
        _ => Ok(()),
    }
}

/// A duration within `[min, max]`.
pub fn duration(
    setting: &str,
    value: std::time::Duration,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<(), SettingError> {
    if value < min || value > max {
        let show = |d| humantime_serde::re::humantime::format_duration(d).to_string();
        return Err(SettingError::new(
            setting,
            format!("{} is out of range; use {} to {}", show(value), show(min), show(max)),
        ));
    }
    Ok(())
}
