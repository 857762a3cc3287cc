//! dyno-scaler [`QueueSource`] for [Solid Queue](https://github.com/rails/solid_queue) (Postgres, v1), the default
//! job backend of Rails 8.
//!
//! Figures follow Solid Queue's execution tables, with the database's clock:
//!
//! * **ready**: ready executions of queues that are not paused (`solid_queue_pauses`), plus scheduled executions
//!   already due (the dispatcher moves them only every second, and not at all while no dispatcher runs), plus
//!   blocked executions whose `expires_at` has passed and whose concurrency key Solid Queue would release (no
//!   semaphore, or one with room or itself expired: `BlockedExecution.releasable`);
//! * **running**: claimed executions of a process whose heartbeat is fresh (`process_alive_threshold`, 5 minutes
//!   as in Solid Queue): a claim left by a dead process is not a running job;
//! * **workers**: the live Worker processes with their claims and host names (a pod's name on Kubernetes);
//! * **scheduled**: future scheduled executions, not demand (counted up to `scheduled_cap`, soonest first);
//! * **latency**: the oldest of a ready execution's `created_at`, a due one's `scheduled_at` and an expired
//!   block's `expires_at`; a time before 2001 is bad data (still ready, no latency, counted as skipped).
//!
//! Every figure comes from one statement over the executions tables (never a scan of `solid_queue_jobs`, which
//! keeps a day of finished jobs; it is read only for the queue of a claim not seen at an earlier snapshot, by primary
//! key: a job's queue never changes). The source only reads.
//! Solid Queue has no `NOTIFY`: `dyno-scaler install-trigger` adds insert triggers on the ready and scheduled
//! executions for the event path; without them the source polls.
#![deny(missing_docs)]

use async_trait::async_trait;
use dyno_scaler_core::secret::debug_source;
use dyno_scaler_core::{
    Capabilities, Events, Inspect, QueueSource, SettingError, Snapshot, Source, SourceError, WorkerInfo,
};
use dyno_scaler_postgres::trigger::InsertTrigger;
use dyno_scaler_postgres::{Db, PostgresStore, fold, now_for, quote_table};
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::OnceCell;

mod claims;
mod config;
mod history;

use claims::Claims;

pub use config::SolidQueueConfig;

const NAME: &str = "solid_queue";

/// Reads Solid Queue's `solid_queue_*` tables.
pub struct SolidQueueSource {
    config: SolidQueueConfig,
    db: Db,
    /// `"schema".` or empty.
    prefix: String,
    sql: OnceCell<String>,
    claims: Mutex<Claims>,
}

impl std::fmt::Debug for SolidQueueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        debug_source(f, "SolidQueueSource", &c.url, &[("schema", &c.schema), ("queues", &c.queues)])
    }
}

impl SolidQueueSource {
    /// A source for `config`, checked first. Connects lazily: Postgres may be down now and come up later.
    pub fn new(config: SolidQueueConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let db = Db::new(NAME, &config.url, config.timeout, config.learned_table.as_deref())?.generic_plans();
        let prefix = config.schema.as_deref().and_then(quote_table).map(|s| format!("{s}.")).unwrap_or_default();
        Ok(Self { config, db, prefix, sql: OnceCell::new(), claims: Mutex::default() })
    }

    fn table(&self, name: &str) -> String {
        format!("{}\"solid_queue_{name}\"", self.prefix)
    }

    /// The statement one snapshot runs (built once the column type is known).
    pub async fn query_sql(&self) -> Result<&str, SourceError> {
        self.sql
            .get_or_try_init(|| async {
                let name = match &self.config.schema {
                    Some(s) => format!("{s}.solid_queue_scheduled_executions"),
                    None => "solid_queue_scheduled_executions".into(),
                };
                let ty = self.db.column_type(&name, "scheduled_at").await?;
                Ok(build_sql(self, now_for(&ty)))
            })
            .await
            .map(String::as_str)
    }

    fn bound(&self, sql: String) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let c = &self.config;
        let (top, unknown) = self.claims.lock().unwrap_or_else(|e| e.into_inner()).params();
        sqlx::query(AssertSqlSafe(sql))
            .bind(c.queues.clone())
            .bind(i64::try_from(c.scheduled_cap).unwrap_or(i64::MAX))
            .bind(c.process_alive_threshold.as_secs_f64())
            .bind(top)
            .bind(unknown)
    }

    /// The insert trigger of the event path, on the ready and the scheduled executions (a job enqueued now, or
    /// for later: its snapshot then says when it falls due): what `dyno-scaler install-trigger` installs.
    pub fn trigger(&self) -> InsertTrigger {
        let name = |t: &str| match &self.config.schema {
            Some(s) => format!("{s}.solid_queue_{t}"),
            None => format!("solid_queue_{t}"),
        };
        InsertTrigger::new(self.db.clone(), vec![name("ready_executions"), name("scheduled_executions")])
    }

    /// The plan of the snapshot statement on `conn` (`EXPLAIN (options)`), for benchmarks.
    pub async fn explain(&self, conn: &mut sqlx::PgConnection, options: &str) -> Result<String, SourceError> {
        let sql = format!("EXPLAIN ({options}) {}", self.query_sql().await?);
        let rows = self.bound(sql).fetch_all(conn).await.map_err(|e| self.db.map_err(e))?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>().join("\n"))
    }
}

/// The snapshot statement. Parameters: $1 queues (text[] or NULL), $2 the scheduled cap, $3 the alive threshold
/// in seconds, $4 and $5 the claims whose queues to look up ([`claims`]: above this claim id, of these jobs).
fn build_sql(s: &SolidQueueSource, now: &str) -> String {
    let [ready, scheduled, blocked, claimed, jobs, processes, pauses, semaphores] = [
        "ready_executions",
        "scheduled_executions",
        "blocked_executions",
        "claimed_executions",
        "jobs",
        "processes",
        "pauses",
        "semaphores",
    ]
    .map(|t| s.table(t));
    let only = |alias: &str| {
        if s.config.queues.is_some() { format!("{alias}.queue_name = ANY($1)") } else { "true".to_owned() }
    };
    let floor = "'2001-09-09'";
    // One ready part per table: the count, the latency from `at`, and the rows whose `at` cannot be meant. Paused
    // queues are left out once counted (a check per queue, not per row).
    let part = |table: &str, at: &str, cond: &str| {
        format!(
            "SELECT 'ready'::text AS kind, x.queue_name::text AS q, count(*)::int8 AS c, \
                    EXTRACT(EPOCH FROM ({now} - min(x.{at}) FILTER (WHERE x.{at} >= {floor})))::float8 AS age, \
                    count(*) FILTER (WHERE x.{at} < {floor})::int8 AS bad, NULL::text AS host, NULL::int8 AS process, \
                    NULL::int8[] AS ids \
               FROM {table} x WHERE {cond} AND {} GROUP BY x.queue_name \
               HAVING NOT EXISTS (SELECT 1 FROM {pauses} z WHERE z.queue_name = x.queue_name)",
            only("x"),
        )
    };
    // A Worker's threads: the `thread_pool_size` of its `metadata` (JSON text; matched, not parsed, so that a
    // broken record cannot fail the statement), else Solid Queue's default of 3.
    let pool = "COALESCE(substring(p.metadata FROM '\"thread_pool_size\"\\s*:\\s*([0-9]{1,6})')::int8, 3)";
    // A process is alive while its heartbeat is within the threshold: its claims run, and a Worker is listed.
    let fresh = format!("p.last_heartbeat_at > {now} - make_interval(secs => $3)");
    // The claims: each live process's job ids (grouped first, the process checked once), the queues of the claims
    // not looked up before (a primary-key lookup each), and the highest claim id (the end of the primary key). All
    // from the one snapshot of the statement. The claims to look up are a range of the primary key and a list of job
    // ids: the range is given a second end (which bounds nothing) so that the planner, not seeing `$4`, estimates it
    // narrow (0.5%) and reads both from their indexes, not every claim (a third, with one end unseen).
    format!(
        "{} UNION ALL {} UNION ALL {} \
         UNION ALL \
         SELECT 'claims', NULL, count(*)::int8, NULL, 0, NULL, k.process_id, array_agg(k.job_id) FROM {claimed} k \
           GROUP BY k.process_id HAVING EXISTS (SELECT 1 FROM {processes} p WHERE p.id = k.process_id AND {fresh}) \
         UNION ALL \
         SELECT 'claimed', j.queue_name::text, count(*)::int8, NULL, 0, NULL, NULL, array_agg(j.id) \
           FROM {claimed} k JOIN {jobs} j ON j.id = k.job_id \
           WHERE (k.id > $4 AND k.id <= 9223372036854775807) OR k.job_id = ANY($5) GROUP BY j.queue_name \
         UNION ALL \
         SELECT 'top', NULL, COALESCE(max(k.id), 0)::int8, NULL, 0, NULL, NULL, NULL FROM {claimed} k \
         UNION ALL \
         SELECT 'worker', p.name::text, {pool}, NULL, 0, p.hostname::text, p.id, NULL FROM {processes} p \
           WHERE p.kind = 'Worker' AND {fresh} \
         UNION ALL \
         SELECT 'scheduled', f.q, count(*)::int8, NULL, 0, NULL, NULL, NULL FROM ( \
           SELECT x.queue_name::text AS q FROM {scheduled} x WHERE x.scheduled_at > {now} AND {} \
           ORDER BY x.scheduled_at LIMIT $2) f GROUP BY f.q \
         UNION ALL \
         (SELECT 'due', NULL, 0::int8, EXTRACT(EPOCH FROM (x.scheduled_at - {now}))::float8, 0, NULL, NULL, NULL \
           FROM {scheduled} x WHERE x.scheduled_at > {now} AND x.scheduled_at < 'infinity' AND {} \
           ORDER BY x.scheduled_at LIMIT 1)",
        part(&ready, "created_at", "true"),
        part(&scheduled, "scheduled_at", &format!("x.scheduled_at <= {now}")),
        // Solid Queue releases an expired block only where its key has no semaphore or one with room
        // (`BlockedExecution.releasable`); a semaphore past its `expires_at` is dropped first (`expire_semaphores`).
        part(
            &blocked,
            "expires_at",
            &format!(
                "x.expires_at < {now} AND NOT EXISTS (SELECT 1 FROM {semaphores} m WHERE m.key = x.concurrency_key \
                 AND m.value <= 0 AND m.expires_at >= {now})"
            )
        ),
        only("x"),
        only("x"),
    )
}

/// A live Worker process (`solid_queue_processes`, `kind = 'Worker'`, heartbeat fresh) and its claims (`busy`, by
/// process id): busy is written as a job is claimed, so it needs no heartbeat to be current (`beat: None`).
fn worker(row: &sqlx::postgres::PgRow, busy: &HashMap<i64, i64>) -> WorkerInfo {
    let claims = busy.get(&row.get::<i64, _>("process")).copied().unwrap_or(0);
    WorkerInfo::new(row.get::<String, _>("q"), row.get("host"), u32::try_from(claims).unwrap_or(u32::MAX))
}

#[async_trait]
impl QueueSource for SolidQueueSource {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // Solid Queue's processes record `Socket.gethostname`: a pod's name on Kubernetes; on Heroku a UUID, which
        // names no dyno (the busy floor then holds while any worker is busy, as without a registry).
        // A Solid Queue worker's default `threads`; its `metadata` says its own.
        Capabilities::new(true, true, true).with_threads(3)
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let work = async {
            let sql = self.query_sql().await?;
            self.bound(sql.to_owned()).fetch_all(&self.db.pool()).await.map_err(|e| self.db.map_err(e))
        };
        let rows = self.db.bounded(work).await?;
        let (mut workers, mut live, mut looked_up, mut top, mut rest) = (vec![], vec![], vec![], 0, vec![]);
        for row in rows {
            match row.get::<String, _>("kind").as_str() {
                "worker" => workers.push(row),
                "claims" => live.push((row.get::<i64, _>("process"), row.get::<Vec<i64>, _>("ids"))),
                "claimed" => looked_up.push((row.get::<String, _>("q"), row.get::<Vec<i64>, _>("ids"))),
                "top" => top = row.get::<i64, _>("c"),
                _ => rest.push(row),
            }
        }
        let tally = self.claims.lock().unwrap_or_else(|e| e.into_inner()).learn(
            looked_up,
            &live,
            top,
            self.config.queues.as_deref(),
        );
        let mut snap = fold(rest);
        for (queue, running) in tally.running {
            snap.add(&queue, dyno_scaler_core::QueueStats::running(running));
        }
        snap.running_elsewhere += tally.elsewhere;
        snap.workers = Some(workers.iter().map(|w| worker(w, &tally.busy)).collect());
        snap.threads = (!workers.is_empty()).then(|| workers.iter().map(|w| w.get::<i64, _>("c").max(0) as u64).sum());
        Ok(snap)
    }
}

/// The whole source: the reading, the event path, the queue list, and the store in the same database
/// ([`PostgresStore`]: an advisory lock on a session of its own, the pause and the learned summary in the learned
/// table).
impl From<SolidQueueSource> for Source {
    fn from(source: SolidQueueSource) -> Self {
        let store = PostgresStore::new(source.db.clone(), &source.prefix);
        dyno_scaler_postgres::whole_source_with_history(source, store)
    }
}

#[async_trait]
impl Inspect for SolidQueueSource {
    /// `SolidQueue::Queue.all`'s list: the queues of every job row kept (finished ones for a day by default).
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        let sql = format!("SELECT DISTINCT queue_name::text FROM {} WHERE $1::text IS NULL", self.table("jobs"));
        self.db.names(sql, None).await.map(Some)
    }
}

#[async_trait]
impl Events for SolidQueueSource {
    /// `LISTEN dyno_scaler` where the insert triggers are installed (Solid Queue itself sends no `NOTIFY`).
    async fn watch(&self, hints: &dyno_scaler_core::events::Hints) -> Result<(), SourceError> {
        self.trigger().listen(hints).await
    }
}
