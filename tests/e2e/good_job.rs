//! GoodJob end to end: `DYNO_SCALER_SOURCE=good_job` reads the tables GoodJob's generator makes and hears
//! GoodJob's own `NOTIFY good_job` (no trigger), so work scales up with the poll a minute away.

use std::time::{Duration, Instant};

use dyno_scaler_test_support::good_jobs_ddl;
use sqlx::{AssertSqlSafe, PgPool};

use super::common::*;

#[tokio::test]
async fn good_job_work_scales_up_on_its_own_notify() {
    let fake = fake().await;
    let pool = PgPool::connect(&db_url()).await.expect("Postgres is required (run scripts/test)");
    let schema = unique("e2e_gj");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}; {}", good_jobs_ddl(&schema))))
        .execute(&pool)
        .await
        .unwrap();
    let table = format!("{schema}.good_jobs");
    let env = env_heroku(
        &fake,
        &[
            ("DYNO_SCALER_SOURCE", "good_job"),
            ("DATABASE_URL", &db_url()),
            ("DYNO_SCALER_TABLE", &table),
            ("DYNO_SCALER_POLL_INTERVAL", "60s"),
        ],
    );
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("events: listen (LISTEN good_job"), "{}", out.all());
    // GoodJob needs no trigger: installing one is a no-op that succeeds, so release-phase scripts stay idempotent.
    for verb in ["install-trigger", "uninstall-trigger"] {
        let out = run(&[verb], &env).await;
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(out.stdout.contains("the good_job source needs no trigger"), "{}", out.all());
    }
    let child = command(&["run"], &env).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // GoodJob::Adapter#enqueue: the INSERT, then its NOTIFY.
    let sql = format!(
        "INSERT INTO {table} (id, active_job_id, queue_name, priority, serialized_params, scheduled_at, created_at, \
           updated_at, job_class) SELECT u, u, 'default', 0, '{{}}', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', \
           now() AT TIME ZONE 'UTC', 'SyncJob' FROM (SELECT gen_random_uuid() AS u) g; \
         NOTIFY good_job, '{{\"queue_name\":\"default\"}}';"
    );
    let start = Instant::now();
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    assert!(eventually(Duration::from_secs(5), || fake.quantity(APP, "worker") == Some(1)).await);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    stop_daemon(child).await;
}
