//! Where the adaptive policy keeps what it learned, for a Postgres source: a small table of the app's database
//! that the operator creates (the scaler never changes the schema) and names in `learned_table`.

use sqlx::postgres::PgPool;

/// The table to create (then name it in `learned_table` and grant the scaler's role `SELECT, INSERT, UPDATE` on it).
pub const CREATE: &str = "\
CREATE TABLE dyno_scaler_learned (
  process_type text PRIMARY KEY,
  summary text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);";

/// Writes the summary of `process_type` (one row per process type).
pub async fn remember(pool: &PgPool, table: &str, process_type: &str, summary: &str) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {table} (process_type, summary, updated_at) VALUES ($1, $2, now()) \
         ON CONFLICT (process_type) DO UPDATE SET summary = EXCLUDED.summary, updated_at = now()"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(process_type).bind(summary).execute(pool).await.map(|_| ())
}

/// The summary of `process_type`, unless older than a week (a scaler stopped that long starts afresh).
pub async fn recall(pool: &PgPool, table: &str, process_type: &str) -> Result<Option<String>, sqlx::Error> {
    let sql = format!("SELECT summary FROM {table} WHERE process_type = $1 AND updated_at > now() - interval '7 days'");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(process_type).fetch_optional(pool).await
}

/// Deletes the row `key`.
pub async fn forget(pool: &PgPool, table: &str, key: &str) -> Result<(), sqlx::Error> {
    let sql = format!("DELETE FROM {table} WHERE process_type = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).execute(pool).await.map(|_| ())
}
