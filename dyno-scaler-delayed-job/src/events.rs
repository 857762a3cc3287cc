//! The DelayedJob event path: `LISTEN dyno_scaler`, fed by an insert trigger on the jobs table.
//!
//! The trigger is a schema change, so the daemon never makes it: `dyno-scaler install-trigger` does, once, with a
//! role that has DDL rights ([`DelayedJobSource::trigger`]), and `uninstall-trigger` removes it. Without
//! it the source polls. The trigger fires once per `INSERT` statement (not per row), with the table as payload:
//! Postgres folds identical payloads of one transaction, so a bulk insert is one notification. A job inserted
//! for later wakes the scaler too; its snapshot then reports when the job falls due, and the loop wakes again
//! at that time.

use dyno_scaler_postgres::trigger::InsertTrigger;

use crate::DelayedJobSource;

pub use dyno_scaler_postgres::trigger::{CHANNEL, TRIGGER};

impl DelayedJobSource {
    /// The insert trigger of the event path, on the jobs table: `install()` and `uninstall()` are what
    /// `dyno-scaler install-trigger` and `uninstall-trigger` run (`install_sql()` is what `--print` shows).
    pub fn trigger(&self) -> InsertTrigger {
        InsertTrigger::new(self.db.clone(), vec![self.config.table.clone()])
    }
}
