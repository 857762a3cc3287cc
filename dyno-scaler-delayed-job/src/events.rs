//! The DelayedJob event path: `LISTEN dyno_scaler`, fed by an insert trigger on the jobs table.
//!
//! The trigger is a schema change, so the daemon never makes it: `dyno-scaler install-trigger` does, once, with a
//! role that has DDL rights ([`DelayedJobSource::install_trigger`]), and `uninstall-trigger` removes it. Without
//! it the source polls. The trigger fires once per `INSERT` statement (not per row), with the table as payload:
//! Postgres folds identical payloads of one transaction, so a bulk insert is one notification. A job inserted
//! for later wakes the scaler too; its snapshot then reports when the job falls due, and the loop wakes again
//! at that time.

use dyno_scaler_core::SourceError;
use dyno_scaler_core::events::Hints;
use dyno_scaler_postgres::trigger::InsertTrigger;

use crate::DelayedJobSource;

pub use dyno_scaler_postgres::trigger::{CHANNEL, TRIGGER};

impl DelayedJobSource {
    fn trigger(&self) -> InsertTrigger {
        InsertTrigger::new(vec![self.config.table.clone()])
    }

    /// The SQL that `install-trigger` runs (idempotent: running it again replaces the function and the trigger).
    pub fn install_trigger_sql(&self) -> String {
        self.trigger().install_sql()
    }

    /// The SQL that `uninstall-trigger` runs (idempotent).
    pub fn uninstall_trigger_sql(&self) -> String {
        self.trigger().uninstall_sql()
    }

    /// Creates (or replaces) the insert trigger, in one transaction. Needs DDL rights on the table's schema.
    pub async fn install_trigger(&self) -> Result<(), SourceError> {
        self.trigger().run(&self.db, self.install_trigger_sql()).await
    }

    /// Removes the insert trigger and its function, in one transaction; nothing else of the table changes.
    pub async fn uninstall_trigger(&self) -> Result<(), SourceError> {
        self.trigger().run(&self.db, self.uninstall_trigger_sql()).await
    }

    /// Whether the insert trigger is on the table.
    pub async fn trigger_installed(&self) -> Result<bool, SourceError> {
        self.trigger().installed(&self.db).await
    }

    /// The event path: `LISTEN` when the trigger is there, else polling (said why).
    pub(crate) async fn listen(&self, hints: &Hints) -> Result<(), SourceError> {
        self.trigger().listen(&self.db, hints).await
    }
}
