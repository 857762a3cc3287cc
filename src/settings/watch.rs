//! Settings of what lets people watch `run` beyond `/metrics`: the dashboard's price and pause token, and the
//! notification webhook. Global (not per process type); the secrets among them (`DYNO_SCALER_NOTIFY_URL`,
//! `DYNO_SCALER_DASHBOARD_TOKEN`) are [`Secret`]s and no error ever quotes them.

use std::time::Duration;

use crate::core::Secret;

use super::values::duration_in;
use super::{ConfigError, err};

/// The accepted `notify_after`: a second to a day.
const NOTIFY_AFTER: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

/// The default price of a dyno-hour: a Standard-1X at $25 a month (720 hours), as `simulate --price`.
pub const DEFAULT_PRICE: f64 = 25.0 / 720.0;

/// What the dashboard and the notifications need.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Dollars per dyno-hour, for the dashboard's savings (`DYNO_SCALER_PRICE`, `price`; default $25/720).
    pub price_per_dyno_hour: f64,
    /// The secret that lets the dashboard pause and resume (`DYNO_SCALER_DASHBOARD_TOKEN`, `dashboard_token`);
    /// `None`: the page is read-only.
    pub dashboard_token: Option<Secret>,
    /// Where notifications go, if anywhere.
    pub notify: Option<NotifySettings>,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self { price_per_dyno_hour: DEFAULT_PRICE, dashboard_token: None, notify: None }
    }
}

/// The notification webhook.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `DYNO_SCALER_NOTIFY_URL`, `notify_url`: an `http` or `https` URL (a Slack webhook's path is its secret).
    pub url: Secret,
    /// How long a condition lasts before it is told (`DYNO_SCALER_NOTIFY_AFTER`, `notify_after`; default 5m).
    pub after: Duration,
    /// The body's shape (`DYNO_SCALER_NOTIFY_FORMAT`, `notify_format`: `slack` or `json`; default `slack` for a
    /// `hooks.slack.com` URL, else `json`).
    pub format: NotifyFormat,
}

/// The body a notification is posted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// `{"text": "..."}`, which Slack's incoming webhooks (and Mattermost's, Rocket.Chat's, ...) accept.
    Slack,
    /// A JSON object with the condition, the process type, the state and the message, for scripts.
    Json,
}

/// Each setting as (value, the name to put in an error): the environment's over the file's.
pub struct Raw {
    /// `DYNO_SCALER_PRICE` / `price`.
    pub price: Option<(String, &'static str)>,
    /// `DYNO_SCALER_DASHBOARD_TOKEN` / `dashboard_token`.
    pub token: Option<(String, &'static str)>,
    /// `DYNO_SCALER_NOTIFY_URL` / `notify_url`.
    pub url: Option<(String, &'static str)>,
    /// `DYNO_SCALER_NOTIFY_AFTER` / `notify_after`.
    pub after: Option<(String, &'static str)>,
    /// `DYNO_SCALER_NOTIFY_FORMAT` / `notify_format`.
    pub format: Option<(String, &'static str)>,
}

impl WatchSettings {
    /// Validates the raw values.
    ///
    /// ```
    /// use dyno_scaler::settings::watch::{NotifyFormat, Raw, WatchSettings};
    /// let s = |v: &str| Some((v.to_owned(), "DYNO_SCALER_NOTIFY_URL"));
    /// let raw = Raw { price: None, token: None, url: s("https://hooks.slack.com/services/T0/B0/x"), after: None, format: None };
    /// let w = WatchSettings::parse(raw).unwrap();
    /// assert_eq!(w.notify.unwrap().format, NotifyFormat::Slack);
    /// let bad = Raw { price: None, token: None, url: s("hooks.slack.com/T0K3N"), after: None, format: None };
    /// let e = WatchSettings::parse(bad).unwrap_err().to_string();
    /// assert!(e.starts_with("DYNO_SCALER_NOTIFY_URL") && !e.contains("T0K3N"));
    /// ```
    pub fn parse(raw: Raw) -> Result<Self, ConfigError> {
        let price_per_dyno_hour = match raw.price {
            None => DEFAULT_PRICE,
            Some((v, name)) => match v.trim().trim_start_matches('$').parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => p,
                _ => return err(format!("{name}: {v:?} is not a price; write dollars per dyno-hour, such as 0.035")),
            },
        };
        let dashboard_token = match raw.token {
            None => None,
            Some((v, name)) if v.trim().len() < 16 => {
                return err(format!(
                    "{name}: the token is {} characters long; use 16 or more (it lets anyone who knows it pause \
                     scaling), such as the output of `openssl rand -hex 16`",
                    v.trim().len()
                ));
            }
            Some((v, _)) => Some(Secret::new(v.trim())),
        };
        let notify = match raw.url {
            None => {
                if let Some((_, name)) = raw.after.as_ref().or(raw.format.as_ref()) {
                    return err(format!("{name} is set but no notification URL is (DYNO_SCALER_NOTIFY_URL)"));
                }
                None
            }
            Some((v, name)) => {
                let parsed = url::Url::parse(v.trim()).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
                let Some(u) = parsed.filter(|u| u.host_str().is_some()) else {
                    return err(format!(
                        "{name}: not an http:// or https:// URL (the value is not shown: a webhook's URL is its secret)"
                    ));
                };
                let after = match raw.after {
                    None => Duration::from_secs(300),
                    Some((a, an)) => duration_in(&a, an, NOTIFY_AFTER)?,
                };
                let format = match raw.format.as_ref().map(|(f, n)| (f.trim().to_ascii_lowercase(), *n)) {
                    None => {
                        if u.host_str() == Some("hooks.slack.com") {
                            NotifyFormat::Slack
                        } else {
                            NotifyFormat::Json
                        }
                    }
                    Some((f, _)) if f == "slack" => NotifyFormat::Slack,
                    Some((f, _)) if f == "json" => NotifyFormat::Json,
                    Some((f, n)) => return err(format!("{n}: unknown format {f:?}; use slack or json")),
                };
                Some(NotifySettings { url: Secret::new(v.trim()), after, format })
            }
        };
        Ok(Self { price_per_dyno_hour, dashboard_token, notify })
    }
}
