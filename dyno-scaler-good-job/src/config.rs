//! The settings of a [`GoodJobSource`](crate::GoodJobSource) and what makes them invalid.

use std::time::Duration;

use dyno_scaler_core::{Secret, SettingError, check};
use dyno_scaler_postgres::quote_table;

/// Settings of a [`GoodJobSource`](crate::GoodJobSource); as a TOML table or JSON object they take the field names
/// below (durations as `"2s"`), every field but `url` optional.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoodJobConfig {
    /// Postgres URL of the database GoodJob uses. Secret: it may hold a password.
    pub url: Secret,
    /// The jobs table, optionally schema-qualified (`good_jobs`).
    pub table: String,
    /// Queues to watch (`None`: all).
    pub queues: Option<Vec<String>>,
    /// Statement timeout and connection bound.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Scheduled (future) rows are counted up to this many, soonest first (not demand; beyond it a lower bound).
    pub scheduled_cap: u64,
    /// A process of the skip-locked or hybrid lock strategies whose record was not updated for this long is dead,
    /// and the jobs it locked are not running (GoodJob's own expiry: 5 minutes).
    #[serde(with = "humantime_serde")]
    pub process_expiry: Duration,
    /// How often the advisory locks held are read (`pg_locks`) to tell a running job from one whose worker was
    /// killed (`0s`: every snapshot). Between two reads a job keeps its last verdict and one started since runs.
    #[serde(with = "humantime_serde")]
    pub lock_check: Duration,
    /// Whether the app runs GoodJob with `enable_pauses` (GoodJob's default: off), so that jobs of the queues, job
    /// classes and labels paused in `good_job_settings` are not dequeued, and so are not demand. The program takes
    /// it from `GOOD_JOB_ENABLE_PAUSES` when set there.
    pub enable_pauses: bool,
    /// A table the scaler may write to, where the adaptive policy keeps what it learned (see
    /// `dyno_scaler_postgres::learned::CREATE`). Unset, nothing is kept.
    pub learned_table: Option<String>,
}

impl Default for GoodJobConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl GoodJobConfig {
    /// Defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            table: "good_jobs".into(),
            queues: None,
            timeout: Duration::from_secs(2),
            scheduled_cap: 1000,
            process_expiry: Duration::from_secs(300),
            lock_check: Duration::from_secs(5),
            enable_pauses: false,
            learned_table: None,
        }
    }

    /// Checks every setting, naming the one that cannot be used.
    pub fn validate(&self) -> Result<(), SettingError> {
        check::url("url", self.url.expose(), &["postgres", "postgresql"])?;
        for (setting, t) in [("table", Some(&self.table)), ("learned_table", self.learned_table.as_ref())] {
            if let Some(t) = t
                && quote_table(t).is_none()
            {
                let message = format!("invalid table name {t:?}: use letters, digits and _ (optionally schema.table)");
                return Err(SettingError::new(setting, message));
            }
        }
        check::queues("queues", &self.queues)?;
        check::duration("process_expiry", self.process_expiry, Duration::from_secs(30), Duration::from_secs(86_400))?;
        check::duration("lock_check", self.lock_check, Duration::ZERO, Duration::from_secs(300))?;
        check::duration("timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60))
    }
}
