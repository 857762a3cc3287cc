//! DelayedJob snapshot on a big table: 1,000,000 failed rows, 100,000 scheduled and 10,000 ready (half of
//! them locked by workers), with only the stock `(priority, run_at)` index, then with the recommended partial
//! indexes. Prints timings and the plans.
//!
//! `cargo bench --bench delayed_job` (needs Postgres; DYNO_SCALER_TEST_DATABASE_URL)

mod support;

use support::{median, time_snapshot};

use std::time::{Duration, Instant};

use dyno_scaler::delayed_job::{DelayedJobConfig, DelayedJobSource, RECOMMENDED_INDEXES};
use dyno_scaler_test_support::delayed_jobs_ddl;
use sqlx::{AssertSqlSafe, PgPool};

async fn plan(pool: &PgPool, source: &DelayedJobSource) -> String {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET max_parallel_workers_per_gather = 0").execute(&mut *conn).await.unwrap();
    source.explain(&mut conn, "ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON").await.unwrap()
}

async fn peer(pool: &PgPool, table: &str, label: &str, sql: &str) {
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        sqlx::raw_sql(AssertSqlSafe(sql.replace("TABLE", table))).execute(pool).await.unwrap();
        times.push(t.elapsed());
    }
    println!("  {label:<44} {:>10.2?}", median(times));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("DYNO_SCALER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pool = PgPool::connect(&url).await.expect("Postgres is required");
    let schema = format!("dst_bench_{}", std::process::id());
    let table = format!("{schema}.delayed_jobs");
    let t = Instant::now();
    let ddl = delayed_jobs_ddl(&table, false);
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE SCHEMA {schema}; {ddl}
         INSERT INTO {table} (handler, attempts, last_error, run_at, failed_at, queue, created_at, updated_at)
           SELECT '--- !ruby/object:Delayed::PerformableMethod', 25, 'boom', now() - interval '2 days', now() - interval '1 day',
                  'default', now(), now() FROM generate_series(1, 1000000);
         INSERT INTO {table} (handler, run_at, queue, created_at, updated_at)
           SELECT '--- !ruby/object:Delayed::PerformableMethod', (now() AT TIME ZONE 'UTC') + (g || ' seconds')::interval,
                  CASE WHEN g % 3 = 0 THEN 'mailers' ELSE 'default' END, now(), now() FROM generate_series(1, 100000) g;
         INSERT INTO {table} (handler, run_at, locked_at, locked_by, queue, created_at, updated_at)
           SELECT '--- !ruby/object:Delayed::PerformableMethod', (now() AT TIME ZONE 'UTC') - (g || ' seconds')::interval,
                  CASE WHEN g % 2 = 0 THEN (now() AT TIME ZONE 'UTC') - interval '10 seconds' END,
                  CASE WHEN g % 2 = 0 THEN 'host:abc pid:' || g END,
                  CASE WHEN g % 3 = 0 THEN 'mailers' ELSE 'default' END, now(), now() FROM generate_series(1, 10000) g;"
    )))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("VACUUM ANALYZE {table}"))).execute(&pool).await.unwrap();
    println!("table {table}: 1,110,000 rows loaded in {:.1?}", t.elapsed());

    let mut cfg = DelayedJobConfig::new(url.clone());
    cfg.table = table.clone();
    cfg.timeout = Duration::from_secs(30);
    let source = DelayedJobSource::new(cfg.clone()).unwrap();
    let (t_stock, figures) = time_snapshot(&source).await;
    println!("dyno-scaler snapshot, stock index only:      {t_stock:>10.2?}  ({figures})");
    println!("peers' queries on the same table (stock index):");
    // HireFire's agent, hirefire-resource-ruby 1.0.8 (07a3aa7), lib/hirefire/macro/delayed_job.rb (ActiveRecord):
    // not failed and due (l.30-35, l.63-68), no queue filter unless queues are named; the latency reads the
    // first such job, whole (`query.first`, l.41).
    let hf_size = "SELECT count(*) FROM TABLE WHERE failed_at IS NULL AND run_at <= (now() AT TIME ZONE 'UTC')";
    let hf_latency =
        "SELECT * FROM TABLE WHERE failed_at IS NULL AND run_at <= (now() AT TIME ZONE 'UTC') ORDER BY run_at LIMIT 1";
    peer(&pool, &table, "HireFire job_queue_size", hf_size).await;
    peer(&pool, &table, "HireFire job_queue_latency", hf_latency).await;
    peer(&pool, &table, "HireFire size + latency", &format!("{hf_size}; {hf_latency}")).await;
    // Judoscale's agent, judoscale-ruby 26d2486, judoscale-delayed_job/lib/judoscale/delayed_job/metrics_collector.rb:
    // METRICS_SQL (l.12-18) every collection; BUSY_METRICS_SQL (l.20-27) only with JUDOSCALE_LONG_JOBS=true (l.44).
    let js_latency = "SELECT COALESCE(queue, 'default'), min(run_at) FROM TABLE WHERE locked_at IS NULL AND failed_at IS NULL GROUP BY queue";
    let js_busy = "SELECT COALESCE(queue, 'default'), count(*) FROM TABLE WHERE locked_at IS NOT NULL \
                   AND locked_by IS NOT NULL AND failed_at IS NULL GROUP BY 1";
    peer(&pool, &table, "Judoscale latency (its default)", js_latency).await;
    peer(&pool, &table, "Judoscale latency + busy (JUDOSCALE_LONG_JOBS)", &format!("{js_latency}; {js_busy}")).await;
    let stock_plan = plan(&pool, &source).await;

    let ddl = RECOMMENDED_INDEXES.replace("CONCURRENTLY ", "").replace(" delayed_jobs ", &format!(" {table} "));
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("VACUUM ANALYZE {table}"))).execute(&pool).await.unwrap();
    let source = DelayedJobSource::new(cfg).unwrap();
    let (t_idx, figures) = time_snapshot(&source).await;
    println!("dyno-scaler snapshot, with partial indexes:  {t_idx:>10.2?}  ({figures})");
    println!(
        "\n--- plan, stock index ---\n{stock_plan}\n\n--- plan, partial indexes ---\n{}",
        plan(&pool, &source).await
    );
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&pool).await.unwrap();
}
