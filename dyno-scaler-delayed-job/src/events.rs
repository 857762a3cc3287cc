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
use sqlx::AssertSqlSafe;

use crate::DelayedJobSource;

/// The channel the trigger notifies and the source listens to.
pub const CHANNEL: &str = "dyno_scaler";

/// The trigger's name (on the jobs table).
pub const TRIGGER: &str = "dyno_scaler_notify";

impl DelayedJobSource {
    /// The function (in the table's schema when the table names one) that the trigger runs.
    fn trigger_function(&self) -> String {
        let (schema, table) = match self.config.table.split_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, self.config.table.as_str()),
        };
        // Identifiers are at most 63 bytes; the table name is validated as ASCII letters, digits and `_`.
        let mut name = format!("dyno_scaler_notify_{table}");
        name.truncate(63);
        match schema {
            Some(s) => format!("\"{s}\".\"{name}\""),
            None => format!("\"{name}\""),
        }
    }

    /// The SQL that `install-trigger` runs (idempotent: running it again replaces the function and the trigger).
    pub fn install_trigger_sql(&self) -> String {
        let function = self.trigger_function();
        let table = &self.table;
        format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $dyno_scaler$\n\
             BEGIN\n  PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);\n  RETURN NULL;\n\
             END $dyno_scaler$;\n\
             DROP TRIGGER IF EXISTS {TRIGGER} ON {table};\n\
             CREATE TRIGGER {TRIGGER} AFTER INSERT ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}();\n"
        )
    }

    /// The SQL that `uninstall-trigger` runs (idempotent).
    pub fn uninstall_trigger_sql(&self) -> String {
        format!(
            "DROP TRIGGER IF EXISTS {TRIGGER} ON {};\nDROP FUNCTION IF EXISTS {}();\n",
            self.table,
            self.trigger_function()
        )
    }

    /// Creates (or replaces) the insert trigger, in one transaction. Needs DDL rights on the table's schema.
    pub async fn install_trigger(&self) -> Result<(), SourceError> {
        self.run_ddl(self.install_trigger_sql()).await
    }

    /// Removes the insert trigger and its function, in one transaction; nothing else of the table changes.
    pub async fn uninstall_trigger(&self) -> Result<(), SourceError> {
        self.run_ddl(self.uninstall_trigger_sql()).await
    }

    async fn run_ddl(&self, sql: String) -> Result<(), SourceError> {
        let mut tx = self.db.pool.begin().await.map_err(|e| self.map_err(e))?;
        // "does not exist, skipping" notices of the idempotent drops are not news.
        sqlx::raw_sql("SET LOCAL client_min_messages = warning")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.map_err(e))?;
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await.map_err(|e| self.map_err(e))?;
        tx.commit().await.map_err(|e| self.map_err(e))
    }

    /// Whether the insert trigger is on the table.
    pub async fn trigger_installed(&self) -> Result<bool, SourceError> {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2 AND NOT tgisinternal)",
        )
        .bind(&self.config.table)
        .bind(TRIGGER)
        .fetch_one(&self.db.pool)
        .await
        .map_err(|e| self.map_err(e))
    }

    /// The event path: `LISTEN` when the trigger is there, else polling (said why).
    pub(crate) async fn listen(&self, hints: &Hints) -> Result<(), SourceError> {
        if !self.trigger_installed().await? {
            hints.polling(format!(
                "no insert trigger on {}: `dyno-scaler install-trigger` adds one (it needs DDL rights)",
                self.config.table
            ));
            return Ok(());
        }
        // The payload names the table as `schema.table`; an unqualified setting matches the table in any schema.
        let wanted = self.config.table.clone();
        let ours = |payload: &str| {
            payload == wanted || (!wanted.contains('.') && payload.rsplit_once('.').is_some_and(|(_, t)| t == wanted))
        };
        let what = format!("fed by the insert trigger on {}", self.config.table);
        self.db.listen(CHANNEL, &what, hints, ours).await
    }
}
