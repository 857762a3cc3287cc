//! The TOML file's shape, and reading it with errors that name the line but never print a value.

use serde::Deserialize;

use super::ConfigError;

/// The TOML file: the same settings plus several `[[process]]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    #[cfg_attr(not(feature = "heroku"), allow(dead_code))]
    pub heroku: Option<FileHeroku>,
    /// The `[kubernetes]` table.
    #[serde(default)]
    pub kubernetes: Option<FileKubernetes>,
    /// The platform of the `[[process]]` tables that do not name one (`heroku` or `kubernetes`).
    pub platform: Option<String>,
    pub poll_interval: Option<String>,
    pub events: Option<bool>,
    pub lease: Option<bool>,
    pub lease_ttl: Option<String>,
    pub listen: Option<String>,
    pub log_metrics: Option<String>,
    pub log_format: Option<String>,
    /// A store apart from the sources' (`redis://` or `postgres://`), and its Postgres learned table.
    pub store_url: Option<String>,
    pub store_table: Option<String>,
    /// Dollars per dyno-hour, for the dashboard's savings.
    pub price: Option<f64>,
    /// The secret that lets the dashboard pause and resume.
    pub dashboard_token: Option<String>,
    /// The notification webhook, after how long a condition is told, and the body's shape.
    pub notify_url: Option<String>,
    pub notify_after: Option<String>,
    pub notify_format: Option<String>,
    /// One table per process type, typed later by the policy's and the source's own settings.
    #[serde(default, rename = "process")]
    pub processes: Vec<toml::Table>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "heroku"), allow(dead_code))]
pub struct FileHeroku {
    pub app: Option<String>,
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileKubernetes {
    pub namespace: Option<String>,
}

/// Parses the file. A type error from the TOML parser quotes the offending value, which may be a secret pasted in
/// the wrong place: the message keeps the line number and the expected type, never the value.
pub fn parse(path: &str, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
        ConfigError(format!(
            "{path}{at}: {}; see dyno-scaler.example.toml for the accepted settings",
            hide_values(e.message())
        ))
    })
}

/// `invalid type: string "hunter2", expected i64` → `invalid type: string (value not shown), expected i64`.
pub fn hide_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`', '\'']) {
        let quote = rest.as_bytes()[open] as char;
        out.push_str(&rest[..open]);
        match rest[open + 1..].find(quote) {
            Some(close) => {
                let inner = &rest[open + 1..open + 1 + close];
                // Field names (unknown field `max_wrokers`, expected one of `type`, ...) are not values.
                if quote == '`' && inner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    out.push_str(&rest[open..open + 2 + close]);
                } else {
                    out.push_str("(value not shown)");
                }
                rest = &rest[open + 2 + close..];
            }
            None => {
                out.push_str("(value not shown)");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}
