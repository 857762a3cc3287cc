//! Finished jobs read through a cursor, a batch at a time ([`dyno_scaler_core::History`]): the export of a table
//! of any size in bounded memory.

use std::time::{Duration, UNIX_EPOCH};

use dyno_scaler_core::{FinishedJob, SourceError};
use sqlx::{AssertSqlSafe, Row};

use crate::Db;

/// Rows fetched at a time.
const BATCH: usize = 5000;
/// The export's statements may take this long (a week of rows sorted), where a snapshot's may take the source's
/// timeout.
const EXPORT_TIMEOUT: &str = "300s";

impl Db {
    /// Runs `sql` (columns `at`: milliseconds since the epoch, `q`: the queue, `ms`: the run in milliseconds; `$1` the
    /// queues or `NULL`, `$2` the window in seconds) through a cursor, handing each batch of rows to `each`.
    /// Returns how many rows.
    pub async fn finished(
        &self,
        sql: &str,
        queues: Option<Vec<String>>,
        since: Duration,
        each: &mut (dyn FnMut(Vec<FinishedJob>) + Send),
    ) -> Result<u64, SourceError> {
        let mut tx = self.side().begin().await.map_err(|e| self.map_err(e))?;
        let set = format!("SET LOCAL statement_timeout = '{EXPORT_TIMEOUT}'");
        sqlx::query(AssertSqlSafe(set)).execute(&mut *tx).await.map_err(|e| self.map_err(e))?;
        let declare = format!("DECLARE dyno_scaler_export NO SCROLL CURSOR FOR {sql}");
        sqlx::query(AssertSqlSafe(declare))
            .bind(queues)
            .bind(since.as_secs_f64())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.map_err(e))?;
        let mut total = 0u64;
        loop {
            let fetch = format!("FETCH {BATCH} FROM dyno_scaler_export");
            let rows = sqlx::query(AssertSqlSafe(fetch)).fetch_all(&mut *tx).await.map_err(|e| self.map_err(e))?;
            if rows.is_empty() {
                break;
            }
            total += rows.len() as u64;
            let jobs = rows
                .iter()
                .map(|r| {
                    let at = u64::try_from(r.get::<i64, _>("at")).unwrap_or(0);
                    let ms: i64 = r.get("ms");
                    let run = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                    FinishedJob::new(UNIX_EPOCH + Duration::from_millis(at), r.get::<String, _>("q"), run)
                })
                .collect();
            each(jobs);
        }
        tx.rollback().await.map_err(|e| self.map_err(e))?;
        Ok(total)
    }
}
