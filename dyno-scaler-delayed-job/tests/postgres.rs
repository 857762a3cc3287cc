//! DelayedJob source against the real Postgres. Each test creates its own schema, so tests run in parallel.

use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::conformance::{ConformanceBackend, run_conformance};
use dyno_scaler_core::{QueueSource, Source, SourceError};
use dyno_scaler_delayed_job::{DelayedJobConfig, DelayedJobSource, RECOMMENDED_INDEXES};
use dyno_scaler_test_support::{db_url, delayed_jobs_ddl, unique};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

fn ddl(schema: &str, tz: bool) -> String {
    format!("CREATE SCHEMA {schema}; {}", delayed_jobs_ddl(&format!("{schema}.delayed_jobs"), tz))
}

const HANDLER: &str = "--- !ruby/object:ActiveJob::QueueAdapters::DelayedJobAdapter::JobWrapper\njob_data:\n  job_class: SyncJob\n  job_id: 0d1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9\n  queue_name: default\n  arguments:\n  - 7\n";

struct Backend {
    pool: PgPool,
    schema: String,
    tz: bool,
}

impl Backend {
    async fn new(tag: &str, tz: bool) -> Self {
        let pool =
            PgPoolOptions::new().max_connections(4).connect(&db_url()).await.unwrap_or_else(|e| {
                panic!("Postgres at {} is required for these tests (run scripts/test): {e}", db_url())
            });
        let schema = unique(tag);
        sqlx::raw_sql(AssertSqlSafe(ddl(&schema, tz))).execute(&pool).await.unwrap();
        Self { pool, schema, tz }
    }

    fn table(&self) -> String {
        format!("{}.delayed_jobs", self.schema)
    }

    /// The app's clock as DelayedJob writes it (UTC wall clock, or timestamptz).
    fn now_expr(&self) -> &'static str {
        if self.tz { "now()" } else { "(now() AT TIME ZONE 'UTC')" }
    }

    /// `Delayed::Job.enqueue`: one INSERT (offsets in seconds from now; None = NULL).
    async fn insert(
        &self,
        queue: Option<&str>,
        priority: i32,
        run_at: Option<f64>,
        locked_at: Option<f64>,
        failed: bool,
    ) {
        let n = self.now_expr();
        let off = |o: Option<f64>| o.map_or("NULL".to_string(), |s| format!("{n} + make_interval(secs => {s})"));
        let sql = format!(
            "INSERT INTO {} (priority, attempts, handler, run_at, locked_at, locked_by, failed_at, queue, created_at, updated_at)
             VALUES ($1, 0, $2, {}, {}, $3, {}, $4, {n}, {n})",
            self.table(),
            off(run_at),
            off(locked_at),
            if failed { n.to_string() } else { "NULL".into() },
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(priority)
            .bind(HANDLER)
            .bind(locked_at.map(|_| "host:4f3c2a1e-7b6d-4c5a-9e8f-0a1b2c3d4e5f pid:4"))
            .bind(queue)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    fn config(&self, queues: Option<Vec<String>>) -> DelayedJobConfig {
        let mut c = DelayedJobConfig::new(db_url());
        c.table = self.table();
        c.queues = queues;
        c
    }

    async fn snapshot(&self, c: DelayedJobConfig) -> dyno_scaler_core::Snapshot {
        DelayedJobSource::new(c).unwrap().snapshot().await.unwrap()
    }
}

#[async_trait]
impl ConformanceBackend for Backend {
    async fn reset(&self) {
        sqlx::query(AssertSqlSafe(format!("TRUNCATE {}", self.table()))).execute(&self.pool).await.unwrap();
    }
    async fn push_ready(&self, queue: &str, age: Duration) {
        self.insert(Some(queue), 0, Some(-age.as_secs_f64()), None, false).await;
    }
    async fn push_scheduled(&self, queue: &str, delay: Duration) {
        self.insert(Some(queue), 0, Some(delay.as_secs_f64()), None, false).await;
    }
    async fn push_due(&self, queue: &str, overdue: Duration) {
        // DelayedJob has no separate schedule: a past run_at is due.
        self.insert(Some(queue), 0, Some(-overdue.as_secs_f64()), None, false).await;
    }
    async fn push_running(&self, queue: &str, _host: &str) {
        self.insert(Some(queue), 0, Some(-5.0), Some(-2.0), false).await;
    }
    async fn push_dead_running(&self, queue: &str, _host: &str) {
        // Locked longer ago than max_run_time (4 h): its worker is gone, and DelayedJob runs it again.
        self.insert(Some(queue), 0, Some(-5.0 * 3600.0), Some(-5.0 * 3600.0), false).await;
    }
    async fn push_malformed(&self, queue: &str) -> bool {
        self.insert(Some(queue), 0, None, None, false).await;
        false // a NULL run_at never matches DelayedJob's `run_at <= now`: no worker takes it
    }
    async fn source(&self, queues: Option<Vec<String>>) -> Source {
        DelayedJobSource::new(self.config(queues)).unwrap().into()
    }
}

#[tokio::test]
async fn conformance_timestamp_columns() {
    // With the recommended partial indexes: the part-by-part statement (the other run reads in one pass).
    let b = Backend::new("conf", false).await;
    let ddl = RECOMMENDED_INDEXES.replace("CONCURRENTLY ", "").replace(" delayed_jobs ", &format!(" {} ", b.table()));
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&b.pool).await.unwrap();
    assert!(DelayedJobSource::new(b.config(None)).unwrap().indexed().await.unwrap());
    run_conformance(&b).await;
}

#[tokio::test]
async fn conformance_timestamptz_columns() {
    // With the insert trigger: the suite's event case runs the LISTEN path (the other run checks it polls).
    let b = Backend::new("conftz", true).await;
    assert!(!DelayedJobSource::new(b.config(None)).unwrap().indexed().await.unwrap(), "the stock index only");
    DelayedJobSource::new(b.config(None)).unwrap().trigger().install().await.unwrap();
    run_conformance(&b).await;
}

#[tokio::test]
async fn delayed_job_semantics() {
    let b = Backend::new("sem", false).await;
    b.insert(Some("default"), 0, Some(-60.0), None, false).await; // ready
    b.insert(Some("default"), 0, Some(-6.0 * 3600.0), Some(-5.0 * 3600.0), false).await; // stale lock: ready again
    b.insert(Some("default"), 0, Some(-30.0), Some(-10.0), false).await; // running
    b.insert(Some("default"), 0, Some(600.0), None, false).await; // scheduled
    b.insert(Some("default"), 0, Some(-60.0), None, true).await; // failed: nothing
    b.insert(None, 0, Some(-5.0), None, false).await; // NULL queue → default
    b.insert(Some("mailers"), 10, Some(-1.0), None, false).await;
    let s = b.snapshot(b.config(None)).await;
    let d = s.queues["default"];
    assert_eq!((d.ready, d.running, d.scheduled), (3, 1, 1), "{s:?}");
    let age = d.oldest_ready_age.unwrap().as_secs();
    assert!((6 * 3600 - 5..=6 * 3600 + 5).contains(&age), "the stale-locked job is the oldest ready: {age}");
    assert_eq!(s.queues["mailers"].ready, 1);
    assert_eq!(s.workers, None, "DelayedJob has no worker registry");
    // Future rows are counted up to the cap.
    let mut c = b.config(None);
    c.scheduled_cap = 0;
    assert_eq!(b.snapshot(c).await.totals().scheduled, 0);

    // Filters: a row without a queue is not `default`'s (DelayedJob reserves with `queue IN (...)`), unless the
    // user says NULL means that queue; priority range.
    let s = b.snapshot(b.config(Some(vec!["default".into()]))).await;
    assert!(!s.queues.contains_key("mailers"));
    assert_eq!(s.queues["default"].ready, 2, "{s:?}");
    let mut c = b.config(Some(vec!["default".into()]));
    c.null_queue = Some("default".into());
    assert_eq!(b.snapshot(c).await.queues["default"].ready, 3);
    let mut c = b.config(None);
    c.min_priority = Some(5);
    let s = b.snapshot(c).await;
    assert_eq!(s.totals().ready, 1, "only priority >= 5: {s:?}");
    let mut c = b.config(None);
    c.max_priority = Some(0);
    c.max_run_time = Duration::from_secs(3600 * 24);
    let s = b.snapshot(c.clone()).await;
    // The 5-hour-old lock is neither ready (max_run_time has not passed) nor running (its worker is long gone).
    assert_eq!((s.totals().ready, s.totals().running), (2, 1), "{s:?}");
    c.stale_lock_after = Duration::from_secs(3600 * 24);
    let s = b.snapshot(c).await;
    assert_eq!(
        (s.totals().ready, s.totals().running),
        (2, 2),
        "a longer stale-lock age keeps the old lock running: {s:?}"
    );
}

#[tokio::test]
async fn a_killed_workers_lock_does_not_pin_the_formation_and_other_queues_protect() {
    let b = Backend::new("killed", false).await;
    // Heroku SIGKILLed the worker 2 hours ago: its lock is fresh by max_run_time (4 h), stale by the 1 h age.
    b.insert(Some("default"), 0, Some(-3.0 * 3600.0), Some(-2.0 * 3600.0), false).await;
    let s = b.snapshot(b.config(None)).await;
    assert_eq!((s.totals().ready, s.totals().running), (0, 0), "{s:?}");
    let policy = dyno_scaler_core::Policy::new(dyno_scaler_core::PolicyConfig {
        max_workers: 3,
        down_delay: Duration::ZERO,
        ..dyno_scaler_core::PolicyConfig::classic()
    })
    .unwrap();
    let input = dyno_scaler_core::PolicyInput::new("worker", &s, 2);
    assert_eq!(policy.decide(&input, &Default::default()).0.to, 0, "nothing pins the scale-down");
    // A job running from a queue outside the filter is not demand, but it holds the scale-down.
    b.insert(Some("mailers"), 0, Some(-30.0), Some(-10.0), false).await;
    let s = b.snapshot(b.config(Some(vec!["default".into()]))).await;
    assert_eq!((s.totals().running, s.running_elsewhere), (0, 1), "{s:?}");
    let input = dyno_scaler_core::PolicyInput { snapshot: &s, ..input };
    assert_eq!(policy.decide(&input, &Default::default()).0.to, 2, "the mailers job's dyno is not stopped");
}

#[tokio::test]
async fn works_with_a_select_only_role_and_writes_nothing() {
    let b = Backend::new("ro", false).await;
    b.insert(Some("default"), 0, Some(-10.0), None, false).await;
    let role = unique("reader");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {s} TO {role}; GRANT SELECT ON {s}.delayed_jobs TO {role};",
        s = b.schema
    )))
    .execute(&b.pool)
    .await
    .unwrap();
    let url = db_url().replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    assert!(url.contains(&role), "test database URL must name the postgres user: {url}");
    let mut c = b.config(None);
    c.url = dyno_scaler_core::Secret::new(url);
    let before: i64 =
        sqlx::query_scalar("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE schemaname = $1")
            .bind(&b.schema)
            .fetch_one(&b.pool)
            .await
            .unwrap();
    let s = b.snapshot(c).await;
    assert_eq!(s.totals().ready, 1);
    let after: i64 =
        sqlx::query_scalar("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE schemaname = $1")
            .bind(&b.schema)
            .fetch_one(&b.pool)
            .await
            .unwrap();
    assert_eq!(before, after, "the adapter must not write");
    sqlx::raw_sql(AssertSqlSafe(format!("DROP OWNED BY {role}; DROP ROLE {role};"))).execute(&b.pool).await.unwrap();
}

#[tokio::test]
async fn the_partial_index_serves_the_query() {
    let b = Backend::new("idx", false).await;
    for i in 0..2000 {
        b.insert(Some("default"), 0, Some(-100.0 - i as f64), None, true).await;
    }
    b.insert(Some("default"), 0, Some(-1.0), None, false).await;
    let ddl = RECOMMENDED_INDEXES.replace("CONCURRENTLY ", "").replace(" delayed_jobs ", &format!(" {} ", b.table()));
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&b.pool).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE {}", b.table()))).execute(&b.pool).await.unwrap();
    let source = DelayedJobSource::new(b.config(None)).unwrap();
    let mut conn = b.pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await.unwrap();
    let plan = source.explain(&mut conn, "COSTS OFF").await.unwrap();
    assert!(plan.contains("delayed_jobs_dyno_scaler_run_at"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert_eq!(source.snapshot().await.unwrap().totals().ready, 1);
}

#[tokio::test]
async fn a_missing_table_is_a_clear_error() {
    let mut c = DelayedJobConfig::new(db_url());
    c.table = "no_such_schema.delayed_jobs".into();
    let err = DelayedJobSource::new(c).unwrap().snapshot().await.unwrap_err();
    assert!(err.to_string().contains("no_such_schema.delayed_jobs"), "{err}");
    let mut c = DelayedJobConfig::new(db_url());
    c.table = "jobs; DROP TABLE x".into();
    assert!(DelayedJobSource::new(c).is_err());
}

#[tokio::test]
async fn a_slow_database_times_out_within_the_bound() {
    let b = Backend::new("slow", false).await;
    // Another session holds an exclusive lock: our SELECT waits until the statement timeout.
    let mut tx = b.pool.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", b.table())))
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut c = b.config(None);
    c.timeout = Duration::from_millis(300);
    let source = DelayedJobSource::new(c).unwrap();
    let started = std::time::Instant::now();
    let err = source.snapshot().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(matches!(err, SourceError::Timeout { .. }), "{err:?}");
    tx.rollback().await.unwrap();
    source.snapshot().await.expect("works again once the lock is gone");
}

/// A TCP proxy in front of Postgres that the test can cut and restore.
async fn proxy(listener: tokio::net::TcpListener, upstream: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { return };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            }
        });
    }
}

#[tokio::test]
async fn the_pool_recovers_when_postgres_returns() {
    let b = Backend::new("recover", false).await;
    b.insert(Some("default"), 0, Some(-1.0), None, false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = "127.0.0.1:5432".to_string();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.spawn(proxy(listener, upstream.clone()));
    let url = db_url().replace("127.0.0.1:5432", &format!("127.0.0.1:{port}"));
    let mut c = b.config(None);
    c.url = dyno_scaler_core::Secret::new(url);
    c.timeout = Duration::from_millis(500);
    let source = DelayedJobSource::new(c).unwrap();
    assert_eq!(source.snapshot().await.unwrap().totals().ready, 1);
    // Cut every connection and stop listening.
    rt.shutdown_background();
    let err = source.snapshot().await.unwrap_err();
    assert!(
        matches!(err, SourceError::Unavailable { .. } | SourceError::Timeout { .. } | SourceError::Protocol { .. }),
        "{err:?}"
    );
    // Back on the same port (the stopped runtime lets go of it asynchronously: try for a while).
    let mut listener = None;
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => {
                listener = Some(l);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let listener = listener.expect("the port is free again");
    tokio::spawn(proxy(listener, upstream));
    let mut ok = false;
    for _ in 0..20 {
        if source.snapshot().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the pool did not recover");
}

#[tokio::test]
async fn unreachable_database_is_a_typed_error_without_the_password() {
    let mut c = DelayedJobConfig::new("postgres://app:t0psecret@127.0.0.1:1/app");
    c.timeout = Duration::from_millis(300);
    let source = DelayedJobSource::new(c).unwrap();
    let err = source.snapshot().await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. } | SourceError::Timeout { .. }), "{err:?}");
    let shown = format!("{err} {err:?} {source:?}");
    assert!(!shown.contains("t0psecret"), "{shown}");
}

#[tokio::test]
async fn stale_locks_are_read_through_the_locked_rows() {
    let b = Backend::new("stale", false).await;
    b.insert(Some("q"), 0, Some(600.0), Some(-5.0 * 3600.0), false).await; // dead worker's lock, due later
    b.insert(Some("q"), 0, None, Some(-5.0 * 3600.0), false).await; // dead worker's lock, no run_at: bad data
    b.insert(Some("q"), 0, None, Some(-60.0), false).await; // a live lock without run_at: running
    b.insert(Some("q"), 0, Some(-7200.0), Some(-5.0 * 3600.0), false).await; // stale lock, due: ready
    let s = b.snapshot(b.config(None)).await;
    let q = s.queues["q"];
    assert_eq!((q.ready, q.running, q.scheduled, s.skipped), (1, 1, 1, 1), "{s:?}");
    assert!(q.oldest_ready_age.unwrap() >= Duration::from_secs(7190), "{q:?}");
}

#[tokio::test]
async fn infinite_and_ancient_run_at_do_not_fail_the_reading_nor_fake_latency() {
    for tz in [false, true] {
        let b = Backend::new("inf", tz).await;
        b.insert(Some("q"), 0, Some(-30.0), None, false).await;
        let ty = if tz { "timestamptz" } else { "timestamp" };
        let sql = format!(
            "INSERT INTO {} (priority, attempts, handler, run_at, queue) VALUES
               (0, 0, 'x', '-infinity'::{ty}, 'q'), (0, 0, 'x', '1970-01-01'::{ty}, 'q'), (0, 0, 'x', 'infinity'::{ty}, 'q')",
            b.table()
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&b.pool).await.unwrap();
        let s = b.snapshot(b.config(None)).await;
        let q = s.queues["q"];
        assert_eq!((q.ready, q.scheduled), (3, 1), "DelayedJob runs them, so they are ready: {s:?}");
        let age = q.oldest_ready_age.expect("latency from the sane row");
        assert!(age >= Duration::from_secs(29) && age < Duration::from_secs(120), "{age:?}");
        assert_eq!(s.skipped, 2, "the two times that cannot be meant are counted");
    }
}

#[tokio::test]
async fn keeps_what_the_policy_learned_only_in_the_table_it_is_given() {
    let b = Backend::new("learned", true).await;
    // Without the setting: nothing kept, and nothing to recall.
    let store = |c| Source::from(DelayedJobSource::new(c).unwrap()).store.expect("the database is the store");
    let plain = store(b.config(None));
    assert!(!plain.remembers());
    plain.remember("worker", "{}").await.unwrap();
    assert_eq!(plain.recall("worker").await.unwrap(), None);
    // With the operator's table (made from the crate's own statement) in the test's schema.
    let create = dyno_scaler_delayed_job::learned::CREATE
        .replace("TABLE dyno_scaler_learned", &format!("TABLE {}.dyno_scaler_learned", b.schema));
    sqlx::raw_sql(AssertSqlSafe(create)).execute(&b.pool).await.unwrap();
    let mut c = b.config(None);
    c.learned_table = Some(format!("{}.dyno_scaler_learned", b.schema));
    let source = store(c);
    assert!(source.remembers());
    assert_eq!(source.recall("worker").await.unwrap(), None);
    source.remember("worker", r#"{"v":1}"#).await.unwrap();
    source.remember("worker", r#"{"v":2}"#).await.unwrap();
    assert_eq!(source.recall("worker").await.unwrap().as_deref(), Some(r#"{"v":2}"#));
    assert_eq!(source.recall("urgent").await.unwrap(), None);
    // A summary older than a week is not recalled.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "UPDATE {}.dyno_scaler_learned SET updated_at = now() - interval '8 days'",
        b.schema
    )))
    .execute(&b.pool)
    .await
    .unwrap();
    assert_eq!(source.recall("worker").await.unwrap(), None);
    // A bad name is refused, naming the setting.
    let mut bad = b.config(None);
    bad.learned_table = Some("learned; DROP TABLE x".into());
    assert_eq!(DelayedJobSource::new(bad).unwrap_err().setting, "learned_table");
}
