//! dyno-scaler [`QueueSource`] for [DelayedJob](https://github.com/collectiveidea/delayed_job)
//! (`delayed_job_active_record` on Postgres).
//!
//! Semantics follow DelayedJob's own ready-to-run rule, with the database's clock:
//!
//! * **ready**: `failed_at IS NULL AND run_at <= now AND (locked_at IS NULL OR locked_at < now - max_run_time)`:
//!   a lock older than `max_run_time` belongs to a dead worker and the job is runnable again;
//! * **running**: `failed_at IS NULL AND locked_at >= now - max_run_time` (fresh locks);
//! * **scheduled**: `run_at > now`, not locked: due later, not demand (counted up to `scheduled_cap` rows);
//! * **latency**: `now - min(run_at)` over ready rows, per queue; a `NULL` queue is reported as `default`;
//! * rows with a `NULL` `run_at` are bad data: skipped and counted.
//!
//! Every figure for every queue comes from one query (one round trip). The adapter only reads: a role with
//! `SELECT` on the table is enough. See the README for the optional partial index that keeps the query fast
//! on tables with millions of failed rows.
#![deny(missing_docs)]

use async_trait::async_trait;
use dyno_scaler_core::secret::debug_source;
use dyno_scaler_core::{Capabilities, Events, Inspect, QueueSource, SettingError, Snapshot, Source, SourceError};
use dyno_scaler_postgres::{Db, PostgresStore, fold, now_for, quote_table};

mod config;
pub mod events;
mod sql;
pub use dyno_scaler_postgres::learned;

pub use config::DelayedJobConfig;
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::OnceCell;

const NAME: &str = "delayed_job";

/// The SQL of the optional partial indexes (run once, by a migration of the app, not by dyno-scaler).
pub const RECOMMENDED_INDEXES: &str = "\
CREATE INDEX CONCURRENTLY IF NOT EXISTS delayed_jobs_dyno_scaler_run_at
  ON delayed_jobs (run_at) INCLUDE (queue, priority) WHERE failed_at IS NULL AND locked_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS delayed_jobs_dyno_scaler_locked_at
  ON delayed_jobs (locked_at) INCLUDE (queue, priority, run_at) WHERE failed_at IS NULL AND locked_at IS NOT NULL;";

/// Reads the `delayed_jobs` table.
pub struct DelayedJobSource {
    config: DelayedJobConfig,
    db: Db,
    table: String,
    sql: OnceCell<String>,
}

impl std::fmt::Debug for DelayedJobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        debug_source(f, "DelayedJobSource", &c.url, &[("table", &self.table), ("queues", &c.queues)])
    }
}

impl DelayedJobSource {
    /// A source for `config`. Connects lazily: Postgres may be down now and come up later.
    pub fn new(config: DelayedJobConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let table = quote_table(&config.table).unwrap_or_default();
        let db = Db::new(NAME, &config.url, config.timeout, config.learned_table.as_deref())?;
        Ok(Self { config, db, table, sql: OnceCell::new() })
    }

    /// The query one snapshot runs (built once the column type is known).
    pub async fn query_sql(&self) -> Result<&str, SourceError> {
        self.sql
            .get_or_try_init(|| async {
                let ty = self.db.column_type(&self.config.table, "run_at").await?;
                let now = now_for(&ty);
                Ok(if self.indexed().await? {
                    sql::by_index(&self.table, now, &self.config)
                } else {
                    sql::single_pass(&self.table, now, &self.config)
                })
            })
            .await
            .map(String::as_str)
    }

    /// Whether the recommended partial indexes ([`RECOMMENDED_INDEXES`]) are on the table: the snapshot then reads
    /// only live rows through them, part by part; without them it reads the table once, in one pass (every part
    /// through the stock `(priority, run_at)` index would be a scan of the whole table each).
    pub async fn indexed(&self) -> Result<bool, SourceError> {
        let n: i64 = self
            .db
            .bounded(async {
                sqlx::query_scalar(
                    "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                     WHERE i.indrelid = to_regclass($1) AND i.indpred IS NOT NULL \
                       AND (c.relname LIKE '%dyno_scaler_run_at' OR c.relname LIKE '%dyno_scaler_locked_at')",
                )
                .bind(&self.config.table)
                .fetch_one(&self.db.side())
                .await
                .map_err(|e| self.map_err(e))
            })
            .await?;
        Ok(n >= 2)
    }

    /// The snapshot statement `sql` with this source's parameters bound.
    fn bound(&self, sql: String) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let c = &self.config;
        sqlx::query(AssertSqlSafe(sql))
            .bind(c.max_run_time.as_secs_f64())
            .bind(&c.default_queue)
            .bind(c.queues.clone())
            .bind(c.min_priority)
            .bind(c.max_priority)
            .bind(i64::try_from(c.scheduled_cap).unwrap_or(i64::MAX))
            .bind(c.stale_lock_after.as_secs_f64())
            .bind(c.null_queue.clone())
    }

    /// The plan of the snapshot statement as Postgres runs it on `conn` (with that session's settings):
    /// `EXPLAIN (options)`, e.g. `"COSTS OFF"` or `"ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON"`.
    pub async fn explain(&self, conn: &mut sqlx::PgConnection, options: &str) -> Result<String, SourceError> {
        let sql = format!("EXPLAIN ({options}) {}", self.query_sql().await?);
        let rows = self.bound(sql).fetch_all(conn).await.map_err(|e| self.map_err(e))?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>().join("\n"))
    }

    fn map_err(&self, e: sqlx::Error) -> SourceError {
        self.db.map_err(e)
    }
}

#[async_trait]
impl QueueSource for DelayedJobSource {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // Locks name a host and pid, not a dyno; there is no worker registry.
        // A DelayedJob worker process runs one job at a time, and nothing records how many run per dyno.
        Capabilities::new(false, true, false).with_threads(1)
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let work = async {
            let sql = self.query_sql().await?;
            self.bound(sql.to_owned()).fetch_all(&self.db.pool()).await.map_err(|e| self.map_err(e))
        };
        // The statement timeout bounds the query; this bounds connecting too.
        let rows = self.db.bounded(work).await?;
        Ok(fold(rows))
    }
}

/// The whole source: the reading, the event path, the queue list, and the store in the same database
/// ([`PostgresStore`]: an advisory lock on a session of its own, the pause and the learned summary in the learned
/// table).
impl From<DelayedJobSource> for Source {
    fn from(source: DelayedJobSource) -> Self {
        let store = PostgresStore::new(source.db.clone(), &source.table);
        dyno_scaler_postgres::whole_source(source, store)
    }
}

#[async_trait]
impl Inspect for DelayedJobSource {
    /// The queues of the rows in the table (DelayedJob deletes a job once done: the queues with work pending or
    /// failed); rows without a queue belong to `null_queue` where it is set.
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        let sql = format!(
            "SELECT DISTINCT COALESCE(queue, $1)::text FROM {} WHERE queue IS NOT NULL OR $1::text IS NOT NULL",
            self.table
        );
        self.db.names(sql, self.config.null_queue.clone()).await.map(Some)
    }

    /// When the recommended partial indexes are missing: what a snapshot reads without them, and what they save.
    async fn advice(&self, took: std::time::Duration) -> Option<String> {
        match self.indexed().await {
            Ok(false) => Some(format!(
                "the recommended partial indexes are missing: each snapshot reads the whole table in one pass (this \
                 one took {} ms); with them it reads only live rows (1.1 million rows: about 100 ms -> 2 ms, \
                 BENCHMARKS.md). Their SQL is in the README (\"Optional migration for big tables\")",
                took.as_millis()
            )),
            _ => None,
        }
    }
}

#[async_trait]
impl Events for DelayedJobSource {
    /// `LISTEN` on [`events::CHANNEL`] where the insert trigger is installed ([`DelayedJobSource::trigger`]).
    async fn watch(&self, hints: &dyno_scaler_core::events::Hints) -> Result<(), SourceError> {
        self.trigger().listen(hints).await
    }
}
