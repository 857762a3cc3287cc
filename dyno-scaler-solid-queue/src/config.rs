//! The settings of a [`SolidQueueSource`](crate::SolidQueueSource) and what makes them invalid.

use std::time::Duration;

use dyno_scaler_core::{Secret, SettingError, check};
use dyno_scaler_postgres::quote_table;

/// Settings of a [`SolidQueueSource`](crate::SolidQueueSource); as a TOML table or JSON object they take the field
/// names below (durations as `"5m"`), every field but `url` optional.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SolidQueueConfig {
    /// Postgres URL of Solid Queue's database: by default a separate `queue` database (the app's
    /// `config/database.yml` names it under `queue:`), not the app's primary one. Secret: it may hold a password.
    pub url: Secret,
    /// The schema holding the `solid_queue_*` tables, when not the search path's.
    pub schema: Option<String>,
    /// Queues to watch (`None`: all).
    pub queues: Option<Vec<String>>,
    /// Statement timeout and connection bound.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Scheduled (future) executions are counted up to this many, soonest first (not demand).
    pub scheduled_cap: u64,
    /// A process whose heartbeat is older than this is dead, and its claimed executions are not running (Solid
    /// Queue's `process_alive_threshold`: 5 minutes).
    #[serde(with = "humantime_serde")]
    pub process_alive_threshold: Duration,
    /// A table the scaler may write to, where the adaptive policy keeps what it learned (see
    /// `dyno_scaler_postgres::learned::CREATE`). Unset, nothing is kept.
    pub learned_table: Option<String>,
}

impl Default for SolidQueueConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl SolidQueueConfig {
    /// Defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            schema: None,
            queues: None,
            timeout: Duration::from_secs(2),
            scheduled_cap: 1000,
            process_alive_threshold: Duration::from_secs(300),
            learned_table: None,
        }
    }

    /// Checks every setting, naming the one that cannot be used.
    pub fn validate(&self) -> Result<(), SettingError> {
        check::url("url", self.url.expose(), &["postgres", "postgresql"])?;
        if let Some(s) = &self.schema
            && (s.contains('.') || quote_table(s).is_none())
        {
            return Err(SettingError::new("schema", format!("invalid schema name {s:?}: use letters, digits and _")));
        }
        if let Some(t) = &self.learned_table
            && quote_table(t).is_none()
        {
            let message = format!("invalid table name {t:?}: use letters, digits and _ (optionally schema.table)");
            return Err(SettingError::new("learned_table", message));
        }
        check::queues("queues", &self.queues)?;
        check::duration(
            "process_alive_threshold",
            self.process_alive_threshold,
            Duration::from_secs(10),
            Duration::from_secs(86_400),
        )?;
        check::duration("timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60))
    }
}
