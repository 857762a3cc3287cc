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

/// The watched queues the store has never seen (`seen`: [`crate::Inspect::queues_seen`]), and a warning naming
/// them and the queues it has: a typo in the filter scales nothing, silently. `None` when every watched queue was
/// seen.
///
/// ```
/// use dyno_scaler_core::check::unseen_queues;
/// let seen = vec!["default".to_owned(), "mailers".to_owned()];
/// let (unseen, w) = unseen_queues(&["defualt".to_owned(), "mailers".to_owned()], &seen).unwrap();
/// assert_eq!(unseen, ["defualt"]);
/// assert_eq!(w, r#"watched queue "defualt" is unknown to the store (a typo?); it knows "default", "mailers""#);
/// assert_eq!(unseen_queues(&["mailers".to_owned()], &seen), None);
/// ```
pub fn unseen_queues(watched: &[String], seen: &[String]) -> Option<(Vec<String>, String)> {
    let unseen: Vec<String> = watched.iter().filter(|q| !seen.contains(q)).cloned().collect();
    if unseen.is_empty() {
        return None;
    }
    let list = |v: &mut dyn Iterator<Item = &String>| v.map(|q| format!("{q:?}")).collect::<Vec<_>>().join(", ");
    let what = if unseen.len() == 1 { "queue" } else { "queues" };
    let is = if unseen.len() == 1 { "is" } else { "are" };
    let names = list(&mut unseen.iter());
    const SHOWN: usize = 20;
    let known = match seen.len() {
        0 => "it knows no queue yet".to_owned(),
        n if n > SHOWN => format!("it knows {} and {} more", list(&mut seen.iter().take(SHOWN)), n - SHOWN),
        _ => format!("it knows {}", list(&mut seen.iter())),
    };
    Some((unseen, format!("watched {what} {names} {is} unknown to the store (a typo?); {known}")))
}
