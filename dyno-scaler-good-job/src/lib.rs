//! dyno-scaler [`QueueSource`] for [GoodJob](https://github.com/bensheldon/good_job) (Postgres, v4).
//!
//! Figures follow GoodJob's own job states (`GoodJob::Job` scopes), with the database's clock:
//!
//! * **ready** (GoodJob's "queued"): `finished_at IS NULL AND performed_at IS NULL AND scheduled_at <= now` (a
//!   `NULL` `scheduled_at`, written before v4.8.2, counts as now);
//! * **running**: `performed_at IS NOT NULL AND finished_at IS NULL`, and only while a live process holds the job:
//!   in GoodJob's default advisory-lock mode, while the job's advisory lock is held (GoodJob's key:
//!   the first 64 bits of `md5('good_jobs-' || id)`, seen in `pg_locks`); under the skip-locked and hybrid
//!   strategies (`lock_type` 1 or 2), while the process in `locked_by_id` has updated its record within
//!   `process_expiry`. A row left by a killed process is not running: its session ended, and its lock with it. It
//!   is **ready**: GoodJob hands it to the next worker at once, so it scales up, never down. The keys are computed
//!   here and the held locks read at most once per `lock_check` (5 s), the verdicts standing in between
//!   ([`locks`](crate::locks) says why and how). Only rows due by five minutes past the database's clock (or without `scheduled_at`) are
//!   read for it: GoodJob starts a job once due by the app's clock;
//! * paused jobs (the queues, job classes and labels in `good_job_settings`' `pauses`) are not ready where the app
//!   enables pauses (`enable_pauses`), as GoodJob's `exclude_paused` scope does not dequeue them;
//! * **scheduled**: `scheduled_at > now`, not demand (counted up to `scheduled_cap` rows, soonest first);
//! * **latency**: `now - min(scheduled_at, or created_at)` over ready rows; a time before 2001 is bad data (still
//!   ready, no latency, counted as skipped).
//!
//! Every figure comes from one statement. The source only reads (`SELECT` on the tables; `pg_locks` is visible to
//! every role). Its event path is GoodJob's own `NOTIFY good_job` on every enqueue: no trigger, no setting.
#![deny(missing_docs)]

use async_trait::async_trait;
use dyno_scaler_core::events::Hints;
use dyno_scaler_core::secret::debug_source;
use dyno_scaler_core::{
    Capabilities, Events, Inspect, QueueSource, QueueStats, SettingError, Snapshot, Source, SourceError,
};
use dyno_scaler_postgres::{Db, PostgresStore, fold, now_for, quote_table, schema_prefix};
use sqlx::{AssertSqlSafe, Row};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::OnceCell;

mod config;
mod history;
mod locks;
mod wire;

use locks::{Liveness, Started};
use wire::{Time, Uuid};

pub use config::GoodJobConfig;

const NAME: &str = "good_job";

/// An optional index for big tables (a migration of the app, never made by dyno-scaler): the unfinished rows by
/// `scheduled_at` with every column the snapshot reads, so that the due range and the scheduled rows are read from
/// the index alone, without the table's rows (BENCHMARKS.md gives the figures with and without it). It replaces the
/// two partial indexes recommended before (`index_good_jobs_dyno_scaler_queued` and `_started`), which the snapshot
/// no longer uses.
pub const RECOMMENDED_INDEXES: &str = "\
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_good_jobs_dyno_scaler_due ON good_jobs (scheduled_at)
  INCLUDE (queue_name, performed_at, created_at, id, active_job_id, locked_by_id) WHERE finished_at IS NULL;";

/// The channel GoodJob notifies on every enqueue (`GoodJob::Notifier`).
pub const CHANNEL: &str = "good_job";

/// Reads GoodJob's `good_jobs` table.
pub struct GoodJobSource {
    config: GoodJobConfig,
    db: Db,
    jobs: String,
    processes: String,
    settings: String,
    /// The table name in GoodJob's advisory-lock keys (the model's `table_name`, unqualified).
    key_table: String,
    sql: OnceCell<String>,
    liveness: Mutex<Liveness>,
}

impl std::fmt::Debug for GoodJobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        debug_source(f, "GoodJobSource", &c.url, &[("table", &self.jobs), ("queues", &c.queues)])
    }
}

impl GoodJobSource {
    /// A source for `config`, checked first. Connects lazily: Postgres may be down now and come up later.
    pub fn new(config: GoodJobConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let db = Db::new(NAME, &config.url, config.timeout, config.learned_table.as_deref())?.generic_plans();
        let jobs = quote_table(&config.table).unwrap_or_default();
        let processes = format!("{}\"good_job_processes\"", schema_prefix(&config.table));
        let settings = format!("{}\"good_job_settings\"", schema_prefix(&config.table));
        let key_table = config.table.rsplit('.').next().unwrap_or("good_jobs").to_owned();
        Ok(Self { config, db, jobs, processes, settings, key_table, sql: OnceCell::new(), liveness: Mutex::default() })
    }

    /// The statement one snapshot runs (built once the column type is known).
    pub async fn query_sql(&self) -> Result<&str, SourceError> {
        self.sql
            .get_or_try_init(|| async {
                let ty = self.db.column_type(&self.config.table, "scheduled_at").await?;
                Ok(build_sql(self, &ty))
            })
            .await
            .map(String::as_str)
    }

    fn bound(
        &self,
        sql: String,
        read_locks: bool,
    ) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let c = &self.config;
        sqlx::query(AssertSqlSafe(sql))
            .bind(c.queues.clone())
            .bind(i64::try_from(c.scheduled_cap).unwrap_or(i64::MAX))
            .bind(c.process_expiry.as_secs_f64())
            .bind(read_locks)
            .bind(if read_locks { Vec::new() } else { Liveness::dead_ids(&self.liveness) })
    }

    /// The plan of the snapshot statement on `conn` (`EXPLAIN (options)`) between two reads of the locks (the
    /// common case), for benchmarks.
    pub async fn explain(&self, conn: &mut sqlx::PgConnection, options: &str) -> Result<String, SourceError> {
        let sql = format!("EXPLAIN ({options}) {}", self.query_sql().await?);
        let rows = self.bound(sql, false).fetch_all(conn).await.map_err(|e| self.db.map_err(e))?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>().join("\n"))
    }
}

/// The snapshot statement. Parameters: $1 queues (text[] or NULL), $2 the scheduled-rows cap, $3 the process
/// expiry in seconds, $4 whether to read the advisory locks held, $5 the ids of the jobs found dead at the last
/// read (text[]; [`locks`]).
fn build_sql(s: &GoodJobSource, column_type: &str) -> String {
    let now = now_for(column_type);
    let tz = column_type.contains("with time zone");
    let (jobs, processes) = (&s.jobs, &s.processes);
    let filter = |q: &str| {
        if s.config.queues.is_some() { format!("COALESCE({q}, 'default') = ANY($1)") } else { "true".into() }
    };
    // GoodJob's `exclude_paused` scope, as it dequeues when the app enables pauses: not demand.
    let paused = |kind: &str| {
        format!("(SELECT jsonb_array_elements_text(value->'{kind}') FROM {} WHERE key = 'pauses')", s.settings)
    };
    let unpaused = if s.config.enable_pauses {
        format!(
            " AND queue_name NOT IN {} AND job_class NOT IN {} AND NOT COALESCE(labels && ARRAY{}, false)",
            paused("queues"),
            paused("job_classes"),
            paused("labels")
        )
    } else {
        String::new()
    };
    let floor = "'2001-09-09'";
    // The range's ends as parameters the planner cannot see (InitPlans, computed once): with `now()` itself it
    // estimates `scheduled_at <= now` from a histogram of every row ever kept, nearly all of them finished in the
    // past, and reads every unfinished row through another index instead of the range of GoodJob's `scheduled_at`
    // index that holds the due ones. A range between two unknowns is estimated narrow (0.5%), so that index is
    // chosen whatever the statistics say; with one unknown end the estimate is a third of the unfinished rows, and
    // with some samples the planner read all of them instead (40 ms on the benchmark's tables).
    let at = format!("(SELECT {now})");
    let origin = format!("(SELECT {floor}::{})", if tz { "timestamptz" } else { "timestamp" });
    // A process whose record is fresh (`process_expiry`) vouches for the jobs it locked (the skip-locked and hybrid
    // strategies); the ids of those processes, computed once.
    // Only there: GoodJob records `locked_by_id` in the advisory-lock mode too (with no `lock_type`), and there
    // the lock is the truth: a killed worker's lock is gone at once while its record stays fresh for minutes.
    let vouched = format!(
        "COALESCE(lock_type IN (1, 2) AND locked_by_id = ANY((SELECT COALESCE(array_agg(p.id), '{{}}') \
           FROM {processes} p WHERE p.updated_at > {now} - make_interval(secs => $3))::uuid[]), false)"
    );
    // Per queue (grouped by the raw name: the planner knows its few values and hashes them; NULL is `default`,
    // merged by the caller), the started rows (performed, not finished) are counted, and those vouched for. When
    // the snapshot reads the locks ($4), the others go out as arrays, each one's attempt (id and performed_at) and
    // Active Job id where it differs, for [`locks`] to check; between reads, they all run but the jobs found dead.
    let started = "performed_at IS NOT NULL";
    let checked = format!("FILTER (WHERE $4 AND {started} AND NOT {vouched})");
    let head = format!(
        "SELECT CASE WHEN {} THEN 'ready' ELSE 'other' END AS kind, COALESCE(queue_name, 'default') AS q",
        filter("queue_name")
    );
    let arrays = format!(
        "count(*) FILTER (WHERE {started})::int8 AS started, count(*) FILTER (WHERE {started} AND {vouched})::int8 \
           AS vouched, array_agg(id) {checked} AS ids, array_agg(performed_at) {checked} AS ats, \
         array_agg(NULLIF(active_job_id, id)) {checked} AS ajids"
    );
    // One pass over the due rows, from GoodJob's `scheduled_at` index: the ready ones (GoodJob's queued: not
    // performed) and the started ones. A job runs only once due (GoodJob dequeues `scheduled_at <= now` by the app's
    // clock; five minutes cover a clock apart from the database's), so the started rows are in the range too (a job
    // that calls `retry_job` moves its own `scheduled_at` ahead for the last moments of its run). Each row is
    // tested once per figure, no more: no join, no subquery, no computed column (each cost about 0.5 ms a pass on
    // the benchmark's 10,000 due rows).
    let ready = format!("performed_at IS NULL AND scheduled_at <= {at}{unpaused}");
    let due = format!(
        "{head}, count(*) FILTER (WHERE {ready})::int8 AS c, \
                EXTRACT(EPOCH FROM ({now} - min(scheduled_at) FILTER (WHERE {ready})))::float8 AS age, 0::int8 AS bad, \
                {arrays}, NULL::int8[] AS keys \
           FROM {jobs} WHERE finished_at IS NULL AND scheduled_at <= {at} + interval '5 minutes' \
             AND scheduled_at >= {origin} GROUP BY queue_name"
    );
    // The rows outside that range: written without `scheduled_at` (before v4.8.2: due since `created_at`), or with a
    // time before 2001 that cannot be meant (still ready, no latency, counted as bad). Two index conditions, nearly
    // always no row at all.
    let since = "COALESCE(scheduled_at, created_at)";
    let queued_odd = format!("performed_at IS NULL{unpaused}");
    let odd = format!(
        "{head}, count(*) FILTER (WHERE {queued_odd})::int8, \
                EXTRACT(EPOCH FROM ({now} - min({since}) FILTER (WHERE {queued_odd} AND {since} >= {floor})))::float8, \
                count(*) FILTER (WHERE {queued_odd} AND NOT COALESCE({since} >= {floor}, false))::int8, {arrays}, NULL \
           FROM {jobs} WHERE finished_at IS NULL AND (scheduled_at < {floor} OR scheduled_at IS NULL) GROUP BY queue_name"
    );
    let dead = dead_sql(jobs, &at, &vouched);
    let (locks, threads) = (LOCKS_SQL, threads_sql(processes, now));
    let scheduled = scheduled_sql(jobs, &at, now, &filter("queue_name"));
    format!("{due} UNION ALL {odd} UNION ALL {dead} UNION ALL {locks} UNION ALL {threads} UNION ALL {scheduled}")
}

/// Between reads, the jobs found dead (`$5`) that are still started, by primary key (nearly always none): each
/// one's attempt, to tell the same attempt (still dead) from the job performed again (running).
fn dead_sql(jobs: &str, at: &str, vouched: &str) -> String {
    let started = "performed_at IS NOT NULL";
    format!(
        "SELECT 'dead', COALESCE(queue_name, 'default'), 0, NULL, 0, 0, 0, array_agg(id), array_agg(performed_at), \
           NULL, NULL FROM {jobs} WHERE id = ANY((SELECT $5::uuid[])::uuid[]) AND finished_at IS NULL AND {started} \
           AND (scheduled_at <= {at} + interval '5 minutes' OR scheduled_at IS NULL) AND NOT {vouched} \
         GROUP BY queue_name"
    )
}

/// The jobs scheduled for later, per queue (at most `$2` of them, the soonest), and when the soonest falls due.
fn scheduled_sql(jobs: &str, at: &str, now: &str, only: &str) -> String {
    let queued = "finished_at IS NULL AND performed_at IS NULL";
    format!(
        "SELECT 'scheduled', COALESCE(s.q, 'default'), count(*)::int8, NULL, 0, 0, 0, NULL, NULL, NULL, NULL FROM ( \
           SELECT queue_name AS q FROM {jobs} WHERE {queued} AND scheduled_at > {at} AND {only} \
           ORDER BY scheduled_at LIMIT $2) s GROUP BY s.q \
         UNION ALL \
         (SELECT 'due', NULL, 0::int8, EXTRACT(EPOCH FROM (scheduled_at - {now}))::float8, 0, 0, 0, NULL, NULL, NULL, NULL \
           FROM {jobs} WHERE {queued} AND scheduled_at > {at} AND scheduled_at < 'infinity' AND {only} \
           ORDER BY scheduled_at LIMIT 1)"
    )
}

// The advisory locks held in this database (a bigint key shows as classid: the high 32 bits, objid: the low).
const LOCKS_SQL: &str = "SELECT 'locks', NULL, 0, NULL, 0, 0, 0, NULL, NULL, NULL, \
               COALESCE(array_agg((l.classid::int8 << 32) | l.objid::int8), '{}') FROM pg_locks l \
             WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) HAVING $4";

/// The threads of the live processes (fresh records), summed over each one's schedulers' `max_threads`
/// (`GoodJob::Scheduler#stats` in the record's `state`), and the hosts they run on; a record of another shape
/// counts nothing rather than failing the statement. `$3`: the process expiry in seconds.
fn threads_sql(processes: &str, now: &str) -> String {
    format!(
        "SELECT 'threads', NULL, COALESCE(sum(t.n), 0)::int8, NULL, 0, count(DISTINCT t.host)::int8, 0, NULL, NULL, \
           NULL, NULL FROM (SELECT COALESCE(p.state->>'hostname', p.id::text) AS host, \
             (SELECT sum((x->>'max_threads')::numeric) FROM jsonb_array_elements(CASE WHEN \
               jsonb_typeof(p.state->'schedulers') = 'array' THEN p.state->'schedulers' ELSE '[]' END) x \
              WHERE jsonb_typeof(x->'max_threads') = 'number') AS n \
           FROM {processes} p WHERE p.updated_at > {now} - make_interval(secs => $3)) t WHERE t.n > 0"
    )
}

/// The started rows of one queue: how many, how many a fresh process vouches for, and (at a read of the locks) the
/// others, for [`Liveness`].
#[derive(Default)]
struct Queue {
    ours: bool,
    started: u64,
    vouched: u64,
    unvouched: Started,
}

fn count(row: &sqlx::postgres::PgRow, column: &str) -> u64 {
    row.get::<i64, _>(column).max(0) as u64
}

/// The attempts of a row's arrays (none between reads of the locks).
fn attempts(row: &sqlx::postgres::PgRow) -> Vec<locks::Attempt> {
    let ids: Vec<Uuid> = row.get::<Option<_>, _>("ids").unwrap_or_default();
    let ats: Vec<Time> = row.get::<Option<_>, _>("ats").unwrap_or_default();
    ids.into_iter().zip(ats).collect()
}

/// The snapshot from the statement's rows: the started rows of each queue counted with [`Liveness`], the rest by
/// [`fold`]. `now`: when the snapshot started (and read the locks, if it did).
fn assemble(s: &GoodJobSource, rows: Vec<sqlx::postgres::PgRow>, now: Instant) -> Snapshot {
    let mut rest = Vec::new();
    let mut queues: HashMap<String, Queue> = HashMap::new();
    let mut dead: HashMap<String, Vec<locks::Attempt>> = HashMap::new();
    let mut held: Option<HashSet<i64>> = None;
    let mut threads = None;
    for row in rows {
        let kind = row.get::<String, _>("kind");
        match kind.as_str() {
            "ready" | "other" => {
                let queue = queues.entry(row.get("q")).or_default();
                queue.ours = kind == "ready";
                queue.started += count(&row, "started");
                queue.vouched += count(&row, "vouched");
                queue.unvouched.attempts.extend(attempts(&row));
                queue
                    .unvouched
                    .active_job_ids
                    .extend(row.get::<Option<Vec<Option<Uuid>>>, _>("ajids").unwrap_or_default());
                // The ready figures of a watched queue (an unwatched one's are no demand of this source).
                if queue.ours && (count(&row, "c") > 0 || count(&row, "bad") > 0) {
                    rest.push(row);
                }
            }
            "dead" => dead.entry(row.get("q")).or_default().extend(attempts(&row)),
            "locks" => held = Some(row.get::<Vec<i64>, _>("keys").into_iter().collect()),
            "threads" => threads = (count(&row, "c") > 0).then(|| (count(&row, "c"), count(&row, "started"))),
            _ => rest.push(row),
        }
    }
    let mut snap = fold(rest);
    (snap.threads, snap.thread_hosts) = threads.unzip();
    // In one order: a read of the locks counts every queue's attempts at once.
    let queues: Vec<(String, Queue)> = queues.into_iter().collect();
    // Each queue's (running, dead): a started job that no live lock (or, under skip-locked, no fresh process)
    // holds is work GoodJob hands the next worker at once, so it is ready, not nothing.
    let figures: Vec<(u64, u64)> = match &held {
        Some(held) => {
            let lists: Vec<&Started> = queues.iter().map(|(_, q)| &q.unvouched).collect();
            let alive = Liveness::read(&s.liveness, &s.key_table, &lists, held, now);
            queues
                .iter()
                .zip(alive)
                .map(|((_, q), alive)| (q.vouched + alive, (q.unvouched.attempts.len() as u64).saturating_sub(alive)))
                .collect()
        }
        None => queues
            .iter()
            .map(|(name, q)| {
                let gone = dead.get(name).map_or(0, |d| Liveness::still_dead(&s.liveness, d));
                (q.started.saturating_sub(gone), gone)
            })
            .collect(),
    };
    for ((name, q), (running, dead)) in queues.iter().zip(figures) {
        if !q.ours {
            snap.running_elsewhere += running;
        } else if running > 0 || dead > 0 {
            snap.add(name, QueueStats::new(dead, running, 0));
        }
    }
    snap
}

#[async_trait]
impl QueueSource for GoodJobSource {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // GoodJob's process records name a hostname (`Socket.gethostname`), not a dyno.
        // GoodJob's default `max_threads`; its process records say their own.
        Capabilities::new(false, true, false).with_threads(5)
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let now = Instant::now();
        let read_locks = Liveness::due(&self.liveness, now, self.config.lock_check);
        let work = async {
            let sql = self.query_sql().await?;
            self.bound(sql.to_owned(), read_locks).fetch_all(&self.db.pool()).await.map_err(|e| self.db.map_err(e))
        };
        let rows = self.db.bounded(work).await?;
        Ok(assemble(self, rows, now))
    }
}

/// The whole source: the reading, the event path, the queue list, and the store in the same database
/// ([`PostgresStore`]: an advisory lock on a session of its own, the pause and the learned summary in the learned
/// table).
impl From<GoodJobSource> for Source {
    fn from(source: GoodJobSource) -> Self {
        let store = PostgresStore::new(source.db.clone(), &source.jobs);
        dyno_scaler_postgres::whole_source_with_history(source, store)
    }
}

#[async_trait]
impl Inspect for GoodJobSource {
    /// The queues of every job row kept (finished ones too, while GoodJob preserves them).
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        let sql =
            format!("SELECT DISTINCT COALESCE(queue_name, 'default')::text FROM {} WHERE $1::text IS NULL", self.jobs);
        self.db.names(sql, None).await.map(Some)
    }
}

#[async_trait]
impl Events for GoodJobSource {
    /// `LISTEN good_job`: GoodJob notifies it on every enqueue (unless `enable_listen_notify` is off).
    async fn watch(&self, hints: &Hints) -> Result<(), SourceError> {
        self.db.listen(CHANNEL, "notified by GoodJob on every enqueue", hints, |_| true).await
    }
}
