//! GoodJob end to end: `DYNO_SCALER_SOURCE=good_job` reads the tables GoodJob's generator makes and hears
//! GoodJob's own `NOTIFY good_job` (no trigger), so work scales up with the poll a minute away.

use std::time::{Duration, Instant};

use dyno_scaler_test_support::good_job_enqueue_sql;
use sqlx::AssertSqlSafe;

use super::common::*;

#[tokio::test]
async fn good_job_work_scales_up_on_its_own_notify() {
    let fake = fake().await;
    let (pool, table) = good_job_table("e2e_gj").await;
    let env = env_good_job(&fake, &table);
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
    let sql = good_job_enqueue_sql(&table);
    let start = Instant::now();
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    assert!(eventually(Duration::from_secs(5), || fake.quantity(APP, "worker") == Some(1)).await);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    stop_daemon(child).await;
}
