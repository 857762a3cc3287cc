//! How the source's sessions are set, read back from a real server.

use std::time::Duration;

use dyno_scaler_core::Secret;
use dyno_scaler_postgres::Db;
use dyno_scaler_test_support::db_url;

async fn show(db: &Db, setting: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}"))).fetch_one(&db.pool()).await.unwrap()
}

#[tokio::test]
async fn sessions_run_without_jit_or_parallel_workers_and_generic_plans_only_where_asked() {
    let url = Secret::new(db_url());
    let db = Db::new("test", &url, Duration::from_secs(2), None).unwrap();
    assert_eq!(
        (show(&db, "jit").await, show(&db, "max_parallel_workers_per_gather").await),
        ("off".into(), "0".into())
    );
    assert_eq!(show(&db, "plan_cache_mode").await, "auto", "the server's default unless asked");
    let generic = Db::new("test", &url, Duration::from_secs(2), None).unwrap().generic_plans();
    assert_eq!(show(&generic, "plan_cache_mode").await, "force_generic_plan");
    assert_eq!(show(&generic, "jit").await, "off", "the other settings kept");
    assert_eq!(show(&generic, "statement_timeout").await, "2s");
}
