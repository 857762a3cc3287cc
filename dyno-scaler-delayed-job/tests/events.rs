//! The DelayedJob event path against real Postgres: the trigger subcommands' SQL, `LISTEN` woken by the inserts
//! `delayed_job_active_record` makes, the due time of a job for later, and a Postgres restart mid-run.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::conformance::{self, events_reach, settled};
use dyno_scaler_core::events::{EventMode, EventStatus, Hints};
use dyno_scaler_core::{QueueSource, Source};
use dyno_scaler_delayed_job::{DelayedJobConfig, DelayedJobSource};
use dyno_scaler_test_support::{OwnPostgres, db_url, delayed_jobs_ddl, unique};
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::watch::{Receiver, Sender};

async fn schema(url: &str, tag: &str) -> (PgPool, String) {
    let pool = PgPool::connect(url).await.unwrap_or_else(|e| panic!("Postgres at {url} is required: {e}"));
    let schema = unique(tag);
    let ddl = delayed_jobs_ddl(&format!("{schema}.delayed_jobs"), false);
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}; {ddl}"))).execute(&pool).await.unwrap();
    (pool, schema)
}

fn source(url: &str, schema: &str) -> Arc<DelayedJobSource> {
    let mut c = DelayedJobConfig::new(url);
    c.table = format!("{schema}.delayed_jobs");
    Arc::new(DelayedJobSource::new(c).unwrap())
}

/// `Delayed::Job.enqueue` as `delayed_job_active_record` writes it, `run_in` seconds from now.
async fn enqueue(pool: &PgPool, schema: &str, run_in: f64) {
    let n = "(now() AT TIME ZONE 'UTC')";
    let sql = format!(
        "INSERT INTO {schema}.delayed_jobs (priority, attempts, handler, run_at, queue, created_at, updated_at) \
         VALUES (0, 0, '--- !ruby/object:Struct::Job {{}}', {n} + make_interval(secs => $1), 'default', {n}, {n})"
    );
    sqlx::query(AssertSqlSafe(sql)).bind(run_in).execute(pool).await.unwrap();
}

/// The table's definition and the schema's functions, as the catalog has them.
async fn catalog(pool: &PgPool, schema: &str) -> Vec<String> {
    let sql = "SELECT 'column ' || attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
               UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = $2 \
               UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgrelid = to_regclass($1) \
               UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = to_regnamespace($2)::oid \
               ORDER BY 1";
    sqlx::query_scalar(sql).bind(format!("{schema}.delayed_jobs")).bind(schema).fetch_all(pool).await.unwrap()
}

fn watching(source: Arc<DelayedJobSource>) -> (Hints, Receiver<EventStatus>, Sender<bool>) {
    conformance::watching(Source::new(source.clone()).with_events(source))
}

#[tokio::test]
async fn trigger_install_is_idempotent_and_uninstall_leaves_the_table_as_it_was() {
    let (pool, schema) = schema(&db_url(), "ev_trig").await;
    let source = source(&db_url(), &schema);
    let before = catalog(&pool, &schema).await;
    assert!(!source.trigger().installed().await.unwrap());
    source.trigger().install().await.unwrap();
    source.trigger().install().await.unwrap();
    assert!(source.trigger().installed().await.unwrap());
    let installed = catalog(&pool, &schema).await;
    assert!(installed.contains(&"trigger dyno_scaler_notify".to_owned()), "{installed:?}");
    assert_eq!(installed.len(), before.len() + 2, "one trigger and one function added: {installed:?}");
    source.trigger().uninstall().await.unwrap();
    source.trigger().uninstall().await.unwrap();
    assert!(!source.trigger().installed().await.unwrap());
    assert_eq!(catalog(&pool, &schema).await, before);
    // The printed SQL is what runs, and names the table.
    assert!(source.trigger().install_sql().contains(&format!("ON \"{schema}\".\"delayed_jobs\"")));
}

#[tokio::test]
async fn without_the_trigger_the_source_polls_and_says_how_to_add_it() {
    let (_pool, schema) = schema(&db_url(), "ev_none").await;
    let (_hints, mut status, _stop) = watching(source(&db_url(), &schema));
    let s = settled(&mut status, |s| s.mode != EventMode::Starting).await;
    assert_eq!(s.mode, EventMode::Polling, "{s}");
    assert!(s.detail.contains("install-trigger"), "{s}");
}

#[tokio::test]
async fn inserts_wake_the_listener_and_a_job_for_later_reports_when_it_falls_due() {
    let (pool, schema) = schema(&db_url(), "ev_listen").await;
    let (_, other) = self::schema(&db_url(), "ev_other").await;
    let src = source(&db_url(), &schema);
    src.trigger().install().await.unwrap();
    source(&db_url(), &other).trigger().install().await.unwrap();
    let (hints, mut status, _stop) = watching(src.clone());
    assert_eq!(settled(&mut status, |s| s.mode != EventMode::Starting).await.mode, EventMode::Listen);
    enqueue(&pool, &schema, 0.0).await;
    events_reach(&hints, 1).await;
    // Another table's inserts notify the same channel but do not wake this scaler (this one's did).
    let seen = hints.events();
    enqueue(&pool, &other, 0.0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hints.events(), seen);
    // A job for later wakes the listener too; the snapshot says when it falls due.
    enqueue(&pool, &schema, 30.0).await;
    events_reach(&hints, seen + 1).await;
    let due = src.snapshot().await.unwrap().next_due.expect("a due time");
    assert!(due > Duration::from_secs(28) && due <= Duration::from_secs(30), "{due:?}");
}

#[tokio::test]
async fn a_restarted_postgres_is_listened_to_again() {
    let server = OwnPostgres::start();
    let (pool, schema) = schema(&server.url(), "ev_restart").await;
    let src = source(&server.url(), &schema);
    src.trigger().install().await.unwrap();
    let (hints, mut status, _stop) = watching(src);
    assert_eq!(settled(&mut status, |s| s.mode != EventMode::Starting).await.mode, EventMode::Listen);
    server.stop();
    let s = settled(&mut status, |s| s.mode == EventMode::Polling).await;
    assert!(s.detail.contains("event path lost"), "{s}");
    server.restart();
    settled(&mut status, |s| s.mode == EventMode::Listen).await;
    let seen = hints.events();
    enqueue(&pool, &schema, 0.0).await;
    events_reach(&hints, seen + 1).await;
}
