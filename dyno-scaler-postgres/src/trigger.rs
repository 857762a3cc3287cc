//! The insert trigger that feeds a Postgres source's event path: `pg_notify('dyno_scaler', schema.table)` once per
//! `INSERT` statement on each watched table. A schema change, so the daemon never makes it: `dyno-scaler
//! install-trigger` does, with a role that has DDL rights; without it the source polls.

use dyno_scaler_core::SourceError;
use sqlx::AssertSqlSafe;

use crate::Db;

/// The channel the trigger notifies and the sources listen to.
pub const CHANNEL: &str = "dyno_scaler";

/// The trigger's name on each watched table.
pub const TRIGGER: &str = "dyno_scaler_notify";

/// A trigger on `tables` (as the settings name them: `table` or `schema.table`) of the database `db`, running one
/// function, named after the first table, in its schema.
#[derive(Debug, Clone)]
pub struct InsertTrigger {
    db: Db,
    tables: Vec<String>,
}

impl InsertTrigger {
    /// The trigger for `tables` (checked names: letters, digits, `_`, optionally `schema.`) of `db`.
    pub fn new(db: Db, tables: Vec<String>) -> Self {
        Self { db, tables }
    }

    fn function(&self) -> String {
        let first = self.tables.first().map(String::as_str).unwrap_or("jobs");
        let (schema, table) = match first.split_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, first),
        };
        // Identifiers are at most 63 bytes; table names are ASCII letters, digits and `_`.
        let mut name = format!("dyno_scaler_notify_{table}");
        name.truncate(63);
        match schema {
            Some(s) => format!("\"{s}\".\"{name}\""),
            None => format!("\"{name}\""),
        }
    }

    fn quoted(&self) -> impl Iterator<Item = String> + '_ {
        self.tables.iter().filter_map(|t| crate::quote_table(t))
    }

    /// The SQL that installs it (idempotent: running it again replaces the function and the triggers).
    pub fn install_sql(&self) -> String {
        let function = self.function();
        let mut sql = format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $dyno_scaler$\n\
             BEGIN\n  PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);\n  RETURN NULL;\n\
             END $dyno_scaler$;\n"
        );
        for table in self.quoted() {
            sql.push_str(&format!(
                "DROP TRIGGER IF EXISTS {TRIGGER} ON {table};\n\
                 CREATE TRIGGER {TRIGGER} AFTER INSERT ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}();\n"
            ));
        }
        sql
    }

    /// The SQL that removes it (idempotent); nothing else of the tables changes.
    pub fn uninstall_sql(&self) -> String {
        let mut sql: String = self.quoted().map(|t| format!("DROP TRIGGER IF EXISTS {TRIGGER} ON {t};\n")).collect();
        sql.push_str(&format!("DROP FUNCTION IF EXISTS {}();\n", self.function()));
        sql
    }

    /// Creates (or replaces) the function and the triggers, in one transaction. Needs DDL rights on the tables.
    pub async fn install(&self) -> Result<(), SourceError> {
        self.run(self.install_sql()).await
    }

    /// Removes the triggers and their function, in one transaction; nothing else of the tables changes.
    pub async fn uninstall(&self) -> Result<(), SourceError> {
        self.run(self.uninstall_sql()).await
    }

    /// Whether the trigger is on every watched table.
    pub async fn installed(&self) -> Result<bool, SourceError> {
        let db = &self.db;
        let n: i64 = db
            .bounded(async {
                sqlx::query_scalar(
                    "SELECT count(*) FROM pg_trigger WHERE tgrelid = ANY(SELECT to_regclass(t) FROM unnest($1::text[]) t) \
                     AND tgname = $2 AND NOT tgisinternal",
                )
                .bind(&self.tables)
                .bind(TRIGGER)
                .fetch_one(&db.side())
                .await
                .map_err(|e| db.map_err(e))
            })
            .await?;
        Ok(n as usize == self.tables.len())
    }

    /// Whether a notification's payload (`schema.table`) names one of the watched tables (an unqualified setting
    /// matches the table in any schema).
    pub fn ours(&self, payload: &str) -> bool {
        self.tables.iter().any(|wanted| {
            payload == wanted || (!wanted.contains('.') && payload.rsplit_once('.').is_some_and(|(_, t)| t == wanted))
        })
    }

    /// Runs `sql` in one transaction, without the "does not exist, skipping" notices of the idempotent drops.
    async fn run(&self, sql: String) -> Result<(), SourceError> {
        let db = &self.db;
        let mut tx = db.side().begin().await.map_err(|e| db.map_err(e))?;
        sqlx::raw_sql("SET LOCAL client_min_messages = warning").execute(&mut *tx).await.map_err(|e| db.map_err(e))?;
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await.map_err(|e| db.map_err(e))?;
        tx.commit().await.map_err(|e| db.map_err(e))
    }

    /// The event path: `LISTEN` when the trigger is installed, else polling with how to add it.
    pub async fn listen(&self, hints: &dyno_scaler_core::events::Hints) -> Result<(), SourceError> {
        let on = self.tables.join(", ");
        if !self.installed().await? {
            hints.polling(format!(
                "no insert trigger on {on}: `dyno-scaler install-trigger` adds one (it needs DDL rights)"
            ));
            return Ok(());
        }
        self.db.listen(CHANNEL, &format!("fed by the insert trigger on {on}"), hints, |p| self.ours(p)).await
    }
}
