//! The settings of a [`DelayedJobSource`](crate::DelayedJobSource) and what makes them invalid.

use std::time::Duration;

use dyno_scaler_core::{Secret, SettingError, check};

use crate::quote_table;

/// Settings of a [`DelayedJobSource`]; as a TOML table or JSON object they take the field names below (durations as
/// `"4h"`), every field but `url` optional.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DelayedJobConfig {
    /// Postgres URL. Secret: it may hold a password.
    pub url: Secret,
    /// Table name, optionally schema-qualified (`delayed_jobs`, `jobs.delayed_jobs`).
    pub table: String,
    /// Queues to watch (`None`: all). The default queue name matches rows whose `queue` is `NULL`.
    pub queues: Option<Vec<String>>,
    /// Only jobs with `priority >= min_priority`.
    pub min_priority: Option<i32>,
    /// Only jobs with `priority <= max_priority`.
    pub max_priority: Option<i32>,
    /// The app's `Delayed::Worker.max_run_time` (default 4 hours).
    #[serde(with = "humantime_serde")]
    pub max_run_time: Duration,
    /// The name reported for rows whose `queue` is `NULL` (without a queue filter).
    pub default_queue: String,
    /// Under a queue filter, the queue that rows whose `queue` is `NULL` belong to. Unset (the default), they match
    /// no filter, as DelayedJob's workers started with queues never run them.
    pub null_queue: Option<String>,
    /// A lock older than this belongs to a worker that was killed: its job is not running (default 1 h; at most
    /// `max_run_time`, after which DelayedJob lets another worker take the job).
    #[serde(with = "humantime_serde")]
    pub stale_lock_after: Duration,
    /// Statement timeout and connection bound.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Scheduled (future) rows are counted up to this many, soonest first: they are not demand, and counting
    /// every future row of a big table would dominate the query. Beyond it `scheduled` is a lower bound.
    pub scheduled_cap: u64,
    /// A table the scaler may write to, where the adaptive policy keeps what it learned across restarts
    /// ([`learned::CREATE`] makes it). Unset (the default), nothing is kept: the scaler only reads.
    pub learned_table: Option<String>,
}

impl Default for DelayedJobConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl DelayedJobConfig {
    /// Checks every setting, naming the one that cannot be used.
    pub fn validate(&self) -> Result<(), SettingError> {
        check::url("url", self.url.expose(), &["postgres", "postgresql"])?;
        if quote_table(&self.table).is_none() {
            let message =
                format!("invalid table name {:?}: use letters, digits and _ (optionally schema.table)", self.table);
            return Err(SettingError::new("table", message));
        }
        check::queues("queues", &self.queues)?;
        check::not_empty("default_queue", Some(&self.default_queue))?;
        if let (Some(lo), Some(hi)) = (self.min_priority, self.max_priority)
            && lo > hi
        {
            let message = format!("{lo} is greater than max_priority ({hi}): no job could match");
            return Err(SettingError::new("min_priority", message));
        }
        check::duration("max_run_time", self.max_run_time, Duration::from_secs(1), Duration::from_secs(7 * 24 * 3600))?;
        check::duration(
            "stale_lock_after",
            self.stale_lock_after,
            Duration::from_secs(60),
            Duration::from_secs(7 * 24 * 3600),
        )?;
        check::not_empty("null_queue", self.null_queue.as_deref())?;
        if let Some(t) = &self.learned_table
            && quote_table(t).is_none()
        {
            let message = format!("invalid table name {t:?}: use letters, digits and _ (optionally schema.table)");
            return Err(SettingError::new("learned_table", message));
        }
        check::duration("timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60))
    }

    /// Defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            table: "delayed_jobs".into(),
            queues: None,
            min_priority: None,
            max_priority: None,
            max_run_time: Duration::from_secs(4 * 3600),
            default_queue: "default".into(),
            null_queue: None,
            stale_lock_after: Duration::from_secs(3600),
            timeout: Duration::from_secs(2),
            scheduled_cap: 1000,
            learned_table: None,
        }
    }
}
