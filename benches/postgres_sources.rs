//! Solid Queue and GoodJob snapshots on tables as a busy app has them: 1,000,000 finished jobs kept, 100,000
//! scheduled, 5,000 ready and 5,000 running, with only the indexes the gems' generators create; beside the queries
//! HireFire and Judoscale run on the same tables (from their published agents). Prints timings and plans.
//!
//! `cargo bench --bench postgres_sources` (needs Postgres; DYNO_SCALER_TEST_DATABASE_URL)

mod support;

use support::{median, time_snapshot};

use std::time::{Duration, Instant};

use dyno_scaler::good_job::{GoodJobConfig, GoodJobSource};
use dyno_scaler::solid_queue::{SolidQueueConfig, SolidQueueSource};
use dyno_scaler_test_support::{good_jobs_ddl, solid_queue_ddl};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

async fn peer(pool: &PgPool, label: &str, sql: &str) {
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(pool).await.unwrap();
        times.push(t.elapsed());
    }
    println!("  {label:<58} {:>10.2?}", median(times));
}

/// What the plans are printed with.
const EXPLAIN: &str = "ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON";

/// A connection with JIT off, as the sources' own.
async fn jit_off(pool: &PgPool) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET jit = off").execute(&mut *conn).await.unwrap();
    conn
}

/// Prints the statement's plan; with `BENCH_KEEP` set, says that schema `s` is kept, with the statement `sql`.
fn kept(s: &str, plan: &str, sql: &str) -> bool {
    println!("{plan}");
    let keep = std::env::var_os("BENCH_KEEP").is_some();
    if keep {
        println!("kept {s}; the statement:\n{sql}");
    }
    keep
}

async fn load(pool: &PgPool, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(pool).await.unwrap();
}

const NOW: &str = "(now() AT TIME ZONE 'UTC')";

async fn good_job(pool: &PgPool, url: &str) {
    let s = format!("dst_bench_gj_{}", std::process::id());
    let t = Instant::now();
    load(pool, format!("CREATE SCHEMA {s}; {}", good_jobs_ddl(&s))).await;
    let row = |scheduled: &str, performed: &str, finished: &str, n: u32| {
        format!(
            "INSERT INTO {s}.good_jobs (id, active_job_id, queue_name, priority, serialized_params, scheduled_at, \
               performed_at, finished_at, created_at, updated_at, job_class, executions_count) \
             SELECT u, u, CASE WHEN g % 3 = 0 THEN 'mailers' ELSE 'default' END, 0, '{{\"job_class\":\"SyncJob\"}}', \
               {scheduled}, {performed}, {finished}, {NOW} - interval '1 day', {NOW}, 'SyncJob', 1 \
             FROM (SELECT gen_random_uuid() AS u, g FROM generate_series(1, {n}) g) x;"
        )
    };
    let past = format!("{NOW} - make_interval(secs => g % 86400)");
    let future = format!("{NOW} + make_interval(secs => g)");
    load(pool, row(&past, &past, &past, 1_000_000)).await;
    load(pool, row(&future, "NULL", "NULL", 100_000)).await;
    load(pool, row(&format!("{NOW} - make_interval(secs => g)"), "NULL", "NULL", 5_000)).await;
    load(pool, row(&past, NOW, "NULL", 5_000)).await;
    load(pool, format!("VACUUM ANALYZE {s}.good_jobs")).await;
    // A worker session holding the running jobs' advisory locks, as GoodJob's default mode does.
    let mut worker = PgConnection::connect(url).await.unwrap();
    let held = format!(
        "SELECT count(pg_advisory_lock(('x' || substr(md5('good_jobs-' || id::text), 1, 16))::bit(64)::bigint)) \
         FROM {s}.good_jobs WHERE performed_at IS NOT NULL AND finished_at IS NULL"
    );
    let locks: i64 = sqlx::query_scalar(AssertSqlSafe(held)).fetch_one(&mut worker).await.unwrap();
    println!("\nGoodJob: {s}.good_jobs, 1,110,000 rows loaded in {:.1?}; {locks} advisory locks held", t.elapsed());
    let mut cfg = GoodJobConfig::new(url);
    cfg.table = format!("{s}.good_jobs");
    cfg.timeout = Duration::from_secs(30);
    let source = GoodJobSource::new(cfg.clone()).unwrap();
    let (took, figures) = time_snapshot(&source).await;
    println!("  dyno-scaler snapshot (one statement), locks read per 5 s   {took:>10.2?}  ({figures})");
    cfg.lock_check = Duration::ZERO;
    let every = GoodJobSource::new(cfg).unwrap();
    let (took, figures) = time_snapshot(&every).await;
    println!("  dyno-scaler snapshot reading the locks (lock_check 0s)     {took:>10.2?}  ({figures})");
    // HireFire's agent, hirefire-resource-ruby 1.0.8 (07a3aa7), lib/hirefire/macro/good_job.rb: no queue filter
    // unless queues are named (l.29, l.57); `performed_at IS NULL`, not discarded (`error_event` 5,
    // helpers/good_job.rb l.21-29), due (l.30-32, l.58-60); the latency reads the first such job, whole
    // (`query.first`, l.33-35).
    let hf = format!(
        "performed_at IS NULL AND (error_event IS NULL OR error_event <> 5) AND (scheduled_at <= {NOW} OR scheduled_at IS NULL)"
    );
    peer(
        pool,
        "HireFire job_queue_size (queued, not running)",
        &format!("SELECT count(*) FROM {s}.good_jobs WHERE {hf}"),
    )
    .await;
    peer(
        pool,
        "HireFire job_queue_latency",
        &format!("SELECT * FROM {s}.good_jobs WHERE {hf} ORDER BY scheduled_at, created_at LIMIT 1"),
    )
    .await;
    // Judoscale's agent, judoscale-ruby 26d2486, judoscale-good_job/lib/judoscale/good_job/metrics_collector.rb:
    // the queue names once (l.37-39), then the oldest unperformed job per queue (l.42-48); the running jobs per
    // queue (GoodJob's `running` scope) only with JUDOSCALE_LONG_JOBS=true (l.51-56).
    peer(
        pool,
        "Judoscale queue names (its first collection only)",
        &format!("SELECT DISTINCT queue_name FROM {s}.good_jobs"),
    )
    .await;
    peer(
        pool,
        "Judoscale queue time per queue (its default)",
        &format!(
            "SELECT queue_name, min(coalesce(scheduled_at, created_at)) FROM {s}.good_jobs \
             WHERE performed_at IS NULL AND finished_at IS NULL GROUP BY queue_name"
        ),
    )
    .await;
    peer(
        pool,
        "Judoscale busy per queue (JUDOSCALE_LONG_JOBS)",
        &format!(
            "SELECT queue_name, count(*) FROM {s}.good_jobs WHERE performed_at IS NOT NULL AND finished_at IS NULL \
             GROUP BY queue_name"
        ),
    )
    .await;
    let ddl = dyno_scaler::good_job::RECOMMENDED_INDEXES
        .replace("CONCURRENTLY ", "")
        .replace(" good_jobs ", &format!(" {s}.good_jobs "));
    load(pool, ddl).await;
    load(pool, format!("VACUUM ANALYZE {s}.good_jobs")).await;
    let (took, figures) = time_snapshot(&source).await;
    println!("  dyno-scaler snapshot, with the recommended index           {took:>10.2?}  ({figures})");
    let (took, figures) = time_snapshot(&every).await;
    println!("    the same, reading the locks (lock_check 0s)              {took:>10.2?}  ({figures})");
    let plan = source.explain(&mut *jit_off(pool).await, EXPLAIN).await.unwrap();
    if kept(&s, &plan, source.query_sql().await.unwrap()) {
        return;
    }
    drop(worker);
    load(pool, format!("DROP SCHEMA {s} CASCADE")).await;
}

async fn solid_queue(pool: &PgPool, url: &str) {
    let s = format!("dst_bench_sq_{}", std::process::id());
    let t = Instant::now();
    load(pool, format!("CREATE SCHEMA {s}; {}", solid_queue_ddl(&s))).await;
    let jobs = |scheduled: &str, finished: &str, n: u32| {
        format!(
            "INSERT INTO {s}.solid_queue_jobs (queue_name, class_name, arguments, priority, active_job_id, scheduled_at, \
               finished_at, created_at, updated_at) \
             SELECT CASE WHEN g % 3 = 0 THEN 'mailers' ELSE 'default' END, 'SyncJob', '{{}}', 0, gen_random_uuid()::text, \
               {scheduled}, {finished}, {NOW} - interval '1 day', {NOW} FROM generate_series(1, {n}) g;"
        )
    };
    let past = format!("{NOW} - make_interval(secs => g % 86400)");
    load(pool, jobs(&past, &past, 1_000_000)).await;
    load(pool, jobs(&format!("{NOW} + make_interval(secs => g)"), "NULL", 100_000)).await;
    load(
        pool,
        format!(
            "INSERT INTO {s}.solid_queue_scheduled_executions (job_id, queue_name, priority, scheduled_at, created_at) \
             SELECT id, queue_name, 0, scheduled_at, created_at FROM {s}.solid_queue_jobs WHERE finished_at IS NULL;"
        ),
    )
    .await;
    load(pool, jobs(NOW, "NULL", 10_000)).await;
    load(
        pool,
        format!(
            "INSERT INTO {s}.solid_queue_processes (kind, last_heartbeat_at, pid, hostname, metadata, created_at, name) \
               VALUES ('Worker', {NOW}, 4, 'web-1', '{{}}', {NOW}, 'worker-1');
             INSERT INTO {s}.solid_queue_ready_executions (job_id, queue_name, priority, created_at) \
               SELECT id, queue_name, 0, {NOW} - make_interval(secs => id % 100) FROM {s}.solid_queue_jobs \
               WHERE finished_at IS NULL AND scheduled_at <= {NOW} AND id % 2 = 0;
             INSERT INTO {s}.solid_queue_claimed_executions (job_id, process_id, created_at) \
               SELECT j.id, p.id, {NOW} FROM {s}.solid_queue_jobs j, {s}.solid_queue_processes p \
               WHERE j.finished_at IS NULL AND j.scheduled_at <= {NOW} AND j.id % 2 = 1;
"
        ),
    )
    .await;
    for t in ["jobs", "ready_executions", "scheduled_executions", "claimed_executions", "processes"] {
        load(pool, format!("VACUUM ANALYZE {s}.solid_queue_{t}")).await;
    }
    println!("\nSolid Queue: {s}, 1,110,000 jobs loaded in {:.1?}", t.elapsed());
    let mut cfg = SolidQueueConfig::new(url);
    cfg.schema = Some(s.clone());
    cfg.timeout = Duration::from_secs(30);
    let source = SolidQueueSource::new(cfg).unwrap();
    let (took, figures) = time_snapshot(&source).await;
    println!("  dyno-scaler snapshot (one statement)                       {took:>10.2?}  ({figures})");
    // The statement alone through sqlx, planned per execution (Postgres's choice for it) and once (the source's
    // sessions), 25 runs of each in turn, six times: what planning costs, and what the source adds around it.
    let sql = source.query_sql().await.unwrap().to_owned();
    let mut modes = Vec::new();
    for mode in ["auto", "force_generic_plan"] {
        let opts = url.parse::<sqlx::postgres::PgConnectOptions>().unwrap().options([
            ("jit", "off"),
            ("max_parallel_workers_per_gather", "0"),
            ("plan_cache_mode", mode),
        ]);
        let conn = PgConnection::connect_with(&opts).await.unwrap();
        modes.push((mode, conn, Vec::new()));
    }
    for _ in 0..6 {
        for (_, conn, times) in modes.iter_mut() {
            for _ in 0..25 {
                let t = Instant::now();
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(None::<Vec<String>>)
                    .bind(1000i64)
                    .bind(300f64)
                    .bind(i64::MAX)
                    .bind(Vec::<i64>::new())
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
                times.push(t.elapsed());
            }
        }
    }
    for (mode, _, times) in modes {
        println!("    the statement alone, plan_cache_mode = {mode:<20} {:>10.2?}", median(times));
    }
    // HireFire's agent, hirefire-resource-ruby 1.0.8 (07a3aa7), lib/hirefire/macro/solid_queue.rb: each call
    // first resolves the queues (l.76-96: `SolidQueue::Queue.all` minus `SolidQueue::Pause.pluck(:queue_name)`),
    // then filters every count or minimum by them (`where(queue_name: queues)`, l.112-162). `Queue.all` is Solid
    // Queue 1.5's `Job.distinct_values_of(:queue_name)` (rails/solid_queue 29e818d,
    // app/models/solid_queue/record/distinct_values.rb l.12-38: a loose index scan by recursive CTE on
    // PostgreSQL); 1.4 ran `SELECT DISTINCT queue_name FROM solid_queue_jobs` (shown too).
    let queues = format!(
        "WITH RECURSIVE t AS ((SELECT queue_name FROM {s}.solid_queue_jobs WHERE queue_name IS NOT NULL \
           ORDER BY queue_name LIMIT 1) UNION ALL SELECT (SELECT queue_name FROM {s}.solid_queue_jobs \
           WHERE queue_name > t.queue_name ORDER BY queue_name LIMIT 1) FROM t WHERE t.queue_name IS NOT NULL) \
         SELECT queue_name FROM t WHERE queue_name IS NOT NULL; SELECT queue_name FROM {s}.solid_queue_pauses;"
    );
    let names = "('default', 'mailers')";
    peer(pool, "HireFire queues, Solid Queue 1.5 (recursive CTE) + pauses", &queues).await;
    peer(
        pool,
        "HireFire queues, Solid Queue 1.4 (DISTINCT over jobs)",
        &format!("SELECT DISTINCT queue_name FROM {s}.solid_queue_jobs"),
    )
    .await;
    let size = format!(
        "SELECT count(*) FROM {s}.solid_queue_ready_executions WHERE queue_name IN {names}; \
         SELECT count(*) FROM {s}.solid_queue_scheduled_executions WHERE scheduled_at <= {NOW} AND queue_name IN {names}; \
         SELECT count(*) FROM {s}.solid_queue_jobs j JOIN {s}.solid_queue_claimed_executions c ON c.job_id = j.id \
           WHERE j.queue_name IN {names}; \
         SELECT count(*) FROM {s}.solid_queue_blocked_executions WHERE expires_at < {NOW} AND queue_name IN {names}"
    );
    peer(pool, "HireFire job_queue_size (4 counts, the queues filtered)", &size).await;
    let latency = format!(
        "SELECT min(created_at) FROM {s}.solid_queue_ready_executions WHERE queue_name IN {names}; \
         SELECT min(scheduled_at) FROM {s}.solid_queue_scheduled_executions WHERE scheduled_at <= {NOW} \
           AND queue_name IN {names}; \
         SELECT min(expires_at) FROM {s}.solid_queue_blocked_executions WHERE expires_at < {NOW} AND queue_name IN {names}"
    );
    peer(pool, "HireFire job_queue_latency (3 minimums, filtered)", &latency).await;
    peer(pool, "HireFire size + latency, each resolving the queues", &format!("{queues} {size}; {queues} {latency}"))
        .await;
    // Judoscale's agent, judoscale-ruby 26d2486, judoscale-solid_queue/lib/judoscale/solid_queue/metrics_collector.rb:
    // the queue names once (l.24-26, `Job.distinct.pluck(:queue_name)`, kept after), then per collection the
    // oldest ready execution per queue (l.28-30) and, only with JUDOSCALE_LONG_JOBS=true (`track_busy_jobs`,
    // judoscale-ruby/lib/judoscale/config.rb l.29), the claimed jobs per queue (l.33-38).
    let judoscale_qt =
        format!("SELECT queue_name, min(created_at) FROM {s}.solid_queue_ready_executions GROUP BY queue_name");
    let judoscale_busy = format!(
        "SELECT j.queue_name, count(*) FROM {s}.solid_queue_jobs j \
           JOIN {s}.solid_queue_claimed_executions c ON c.job_id = j.id GROUP BY j.queue_name"
    );
    peer(pool, "Judoscale queue time per queue (its default)", &judoscale_qt).await;
    peer(pool, "Judoscale queue time + busy (JUDOSCALE_LONG_JOBS)", &format!("{judoscale_qt}; {judoscale_busy}")).await;
    let plan = source.explain(&mut *jit_off(pool).await, EXPLAIN).await.unwrap();
    if kept(&s, &plan, source.query_sql().await.unwrap()) {
        return;
    }
    load(pool, format!("DROP SCHEMA {s} CASCADE")).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("DYNO_SCALER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pool = PgPool::connect(&url).await.expect("Postgres is required");
    let only = std::env::var("BENCH_SOURCES").unwrap_or_else(|_| "good_job,solid_queue".into());
    if only.contains("good_job") {
        good_job(&pool, &url).await;
    }
    if only.contains("solid_queue") {
        solid_queue(&pool, &url).await;
    }
}
