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

use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::secret::redact_url;
use dyno_scaler_core::{Capabilities, QueueSource, QueueStats, SettingError, Snapshot, SourceError};
use dyno_scaler_postgres::{Db, now_for, quote_table};

mod config;
pub mod events;
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
    /// The quoted learned table, if one is set.
    learned: Option<String>,
}

impl std::fmt::Debug for DelayedJobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayedJobSource")
            .field("url", &redact_url(self.config.url.expose()))
            .field("table", &self.table)
            .field("queues", &self.config.queues)
            .finish()
    }
}

impl DelayedJobSource {
    /// A source for `config`. Connects lazily: Postgres may be down now and come up later.
    pub fn new(config: DelayedJobConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let table = quote_table(&config.table).unwrap_or_default();
        let db = Db::new(NAME, &config.url, config.timeout)?;
        let learned = config.learned_table.as_deref().and_then(quote_table);
        Ok(Self { config, db, table, sql: OnceCell::new(), learned })
    }

    /// The query one snapshot runs (built once the column type is known).
    pub async fn query_sql(&self) -> Result<&str, SourceError> {
        self.sql
            .get_or_try_init(|| async {
                let ty = self.db.column_type(&self.config.table, "run_at").await?;
                Ok(build_sql(&self.table, now_for(&ty), &self.config))
            })
            .await
            .map(String::as_str)
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

/// The snapshot query: index-friendly parts in one statement (the last one finds when the next job falls due).
/// Parameters: $1 max_run_time seconds, $2 default queue, $3 queues (text[] or NULL), $4/$5 priority bounds,
/// $6 the scheduled-rows cap, $7 the stale-lock age in seconds, $8 the queue of NULL-queue rows under a filter.
fn build_sql(table: &str, now: &str, c: &DelayedJobConfig) -> String {
    // DelayedJob reserves with `queue IN (...)` when its workers are given queues: a row without a queue is
    // never theirs, unless the user says which queue such rows belong to ($8, `null_queue`).
    let mut only: Vec<&str> = Vec::new();
    if c.queues.is_some() {
        only.push("(queue = ANY($3) OR (queue IS NULL AND $8::text = ANY($3)))");
    }
    if c.min_priority.is_some() {
        only.push("priority >= $4");
    }
    if c.max_priority.is_some() {
        only.push("priority <= $5");
    }
    let filters = std::iter::once("failed_at IS NULL").chain(only.iter().copied()).collect::<Vec<_>>().join(" AND ");
    // `now()` is stable within a statement: every part sees the same instant, and the planner can use it in
    // index conditions (a CTE here would hide it from them). Unlocked rows and locked rows are read apart, so
    // each part is a range of one partial index: the ready part never walks the rows that workers hold.
    let fresh = format!("({now} - make_interval(secs => $1))");
    // A lock younger than the stale-lock age ($7, at most max_run_time) is a running job; an older one belongs to
    // a worker that was killed (Heroku kills 30 s after SIGTERM): not running, and not ready either until
    // DelayedJob's max_run_time lets another worker take it.
    let live = format!("({now} - make_interval(secs => least($7, $1)))");
    let q = "COALESCE(queue, $2)::text";
    // A run_at before this ('-infinity', 0001-01-01, the epoch) cannot be meant: the row is still ready (DelayedJob
    // will run it), but it says nothing of latency and is counted as skipped.
    let floor = "'2001-09-09'";
    // Jobs running outside the filter: not demand, but their workers are busy.
    let elsewhere = if only.is_empty() { "true".to_owned() } else { only.join(" AND ") };
    let unlocked = format!("{filters} AND locked_at IS NULL");
    let stale = format!("{filters} AND locked_at < {fresh}");
    format!(
        "SELECT 'ready'::text AS kind, r.q AS q, count(*)::int8 AS c, \
                EXTRACT(EPOCH FROM ({now} - min(r.run_at) FILTER (WHERE r.run_at >= {floor})))::float8 AS age FROM ( \
           SELECT {q} AS q, run_at FROM {table} WHERE {unlocked} AND run_at <= {now} \
           UNION ALL \
           SELECT {q}, run_at FROM {table} WHERE {stale} AND run_at <= {now}) r \
           GROUP BY r.q \
         UNION ALL \
         SELECT 'running', {q}, count(*)::int8, NULL FROM {table} WHERE {filters} AND locked_at >= {live} GROUP BY 2 \
         UNION ALL \
         SELECT 'elsewhere', NULL, count(*)::int8, NULL FROM {table} \
           WHERE failed_at IS NULL AND locked_at >= {live} AND NOT ({elsewhere}) \
         UNION ALL \
         SELECT 'scheduled', s.q, count(*)::int8, NULL FROM ( \
           (SELECT {q} AS q FROM {table} WHERE {unlocked} AND run_at > {now} ORDER BY run_at LIMIT $6) \
           UNION ALL \
           (SELECT {q} FROM {table} WHERE {stale} AND run_at > {now} ORDER BY locked_at LIMIT $6)) s \
           GROUP BY s.q \
         UNION ALL \
         SELECT 'bad', NULL, count(*)::int8, NULL FROM ( \
           SELECT 1 FROM {table} WHERE {unlocked} AND (run_at IS NULL OR run_at < {floor}) \
           UNION ALL \
           SELECT 1 FROM {table} WHERE {stale} AND (run_at IS NULL OR run_at < {floor})) b \
         UNION ALL \
         (SELECT 'due', NULL, 0::int8, EXTRACT(EPOCH FROM (run_at - {now}))::float8 FROM {table} \
           WHERE {unlocked} AND run_at > {now} AND run_at < 'infinity' ORDER BY run_at LIMIT 1)"
    )
}

#[async_trait]
impl QueueSource for DelayedJobSource {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // Locks name a host and pid, not a dyno; there is no worker registry.
        Capabilities {
            names_hosts: false,
            latency: true,
            worker_registry: false,
            quiet: false,
            remembers: self.learned.is_some(),
        }
    }

    async fn remember(&self, process_type: &str, summary: &str) -> Result<(), SourceError> {
        match &self.learned {
            Some(table) => {
                learned::remember(&self.db.pool, table, process_type, summary).await.map_err(|e| self.map_err(e))
            }
            None => Ok(()),
        }
    }

    async fn recall(&self, process_type: &str) -> Result<Option<String>, SourceError> {
        match &self.learned {
            Some(table) => learned::recall(&self.db.pool, table, process_type).await.map_err(|e| self.map_err(e)),
            None => Ok(None),
        }
    }

    /// `LISTEN` on [`events::CHANNEL`] where the insert trigger is installed ([`DelayedJobSource::install_trigger`]).
    async fn watch(&self, hints: &dyno_scaler_core::events::Hints) -> Result<(), SourceError> {
        self.listen(hints).await
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let work = async {
            let sql = self.query_sql().await?;
            self.bound(sql.to_owned()).fetch_all(&self.db.pool).await.map_err(|e| self.map_err(e))
        };
        // The statement timeout bounds the query; this bounds connecting too.
        let rows = self.db.bounded(work).await?;
        let mut snap = Snapshot::default();
        for row in rows {
            let kind: String = row.get("kind");
            let count: i64 = row.get("c");
            let count = count.max(0) as u64;
            if kind == "bad" {
                snap.skipped += count;
                continue;
            }
            if kind == "elsewhere" {
                snap.running_elsewhere += count;
                continue;
            }
            if kind == "due" {
                let due: Option<f64> = row.get("age");
                snap.next_due = due.and_then(|d| Duration::try_from_secs_f64(d.max(0.0)).ok());
                continue;
            }
            let q: String = row.get("q");
            let mut stats = QueueStats::default();
            match kind.as_str() {
                "ready" => {
                    stats.ready = count;
                    let age: Option<f64> = row.get("age");
                    stats.oldest_ready_age = age.and_then(|a| Duration::try_from_secs_f64(a.max(0.0)).ok());
                }
                "running" => stats.running = count,
                _ => stats.scheduled = count,
            }
            snap.add(&q, stats);
        }
        Ok(snap)
    }
}
