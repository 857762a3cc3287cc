//! Solid Queue source against the real Postgres, tables as Solid Queue v1.5's generator makes them, rows as Solid
//! Queue writes them. Each test creates its own schema, so tests run in parallel.

use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::conformance::{ConformanceBackend, run_conformance};
use dyno_scaler_core::{QueueSource, Snapshot, Source};
use dyno_scaler_solid_queue::{SolidQueueConfig, SolidQueueSource};
use dyno_scaler_test_support::{db_url, solid_queue_ddl, unique};
use sqlx::{AssertSqlSafe, PgPool};

const NOW: &str = "(now() AT TIME ZONE 'UTC')";

struct Backend {
    pool: PgPool,
    schema: String,
}

fn at(secs: i64) -> String {
    format!("{NOW} + make_interval(secs => {secs})")
}

impl Backend {
    async fn new(tag: &str) -> Self {
        let pool =
            PgPool::connect(&db_url()).await.unwrap_or_else(|e| panic!("Postgres at {} is required: {e}", db_url()));
        let schema = unique(tag);
        let ddl = format!("CREATE SCHEMA {schema}; {}", solid_queue_ddl(&schema));
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
        Self { pool, schema }
    }

    fn config(&self, queues: Option<Vec<String>>) -> SolidQueueConfig {
        let mut c = SolidQueueConfig::new(db_url());
        c.schema = Some(self.schema.clone());
        c.queues = queues;
        c
    }

    async fn exec(&self, sql: String) -> Option<i64> {
        sqlx::query_scalar(AssertSqlSafe(sql.replace("{s}", &self.schema))).fetch_optional(&self.pool).await.unwrap()
    }

    /// `SolidQueue::Job.enqueue`: the job row (`scheduled_at` as given, now by default), returning its id.
    async fn job(&self, queue: &str, scheduled_at: &str) -> i64 {
        self.exec(format!(
            "INSERT INTO {{s}}.solid_queue_jobs (queue_name, class_name, arguments, priority, active_job_id, \
               scheduled_at, created_at, updated_at) \
             VALUES ('{queue}', 'SyncJob', '{{\"job_class\":\"SyncJob\",\"arguments\":[]}}', 0, gen_random_uuid()::text, \
               {scheduled_at}, {NOW}, {NOW}) RETURNING id"
        ))
        .await
        .unwrap()
    }

    /// A worker process (`SolidQueue::Process.register`) on `host` whose last heartbeat was `age` seconds ago.
    async fn process(&self, host: &str, age: i64) -> i64 {
        self.process_with(host, age, r#"{"polling_interval":0.1,"queues":"*","thread_pool_size":3}"#).await
    }

    /// A worker process with the given `metadata` text (Solid Queue writes JSON).
    async fn process_with(&self, host: &str, age: i64, metadata: &str) -> i64 {
        self.exec(format!(
            "INSERT INTO {{s}}.solid_queue_processes (kind, last_heartbeat_at, pid, hostname, metadata, created_at, name) \
             VALUES ('Worker', {}, 4, '{host}', '{metadata}', {NOW}, 'worker-' || substr(md5(random()::text), 1, 20)) \
             RETURNING id",
            at(-age)
        ))
        .await
        .unwrap()
    }

    async fn claimed(&self, queue: &str, host: &str, heartbeat_age: i64) {
        let process = self.process(host, heartbeat_age).await;
        let job = self.job(queue, NOW).await;
        self.exec(format!(
            "INSERT INTO {{s}}.solid_queue_claimed_executions (job_id, process_id, created_at) VALUES ({job}, {process}, {NOW})"
        ))
        .await;
    }

    /// Several statements, no result.
    async fn script(&self, sql: String) {
        sqlx::raw_sql(AssertSqlSafe(sql.replace("{s}", &self.schema))).execute(&self.pool).await.unwrap();
    }

    async fn snap(&self, queues: Option<Vec<String>>) -> Snapshot {
        SolidQueueSource::new(self.config(queues)).unwrap().snapshot().await.unwrap()
    }
}

#[async_trait]
impl ConformanceBackend for Backend {
    async fn reset(&self) {
        self.script("TRUNCATE {s}.solid_queue_jobs, {s}.solid_queue_processes, {s}.solid_queue_pauses CASCADE".into())
            .await;
    }
    async fn push_ready(&self, queue: &str, age: Duration) {
        // A job enqueued `age` ago and not yet claimed: the job row and its ready execution.
        let job = self.job(queue, &at(-(age.as_secs() as i64))).await;
        self.exec(format!(
            "INSERT INTO {{s}}.solid_queue_ready_executions (job_id, queue_name, priority, created_at) \
             VALUES ({job}, '{queue}', 0, {})",
            at(-(age.as_secs() as i64))
        ))
        .await;
    }
    async fn push_scheduled(&self, queue: &str, delay: Duration) {
        let when = at(delay.as_secs() as i64);
        let job = self.job(queue, &when).await;
        self.exec(format!(
            "INSERT INTO {{s}}.solid_queue_scheduled_executions (job_id, queue_name, priority, scheduled_at, created_at) \
             VALUES ({job}, '{queue}', 0, {when}, {NOW})"
        ))
        .await;
    }
    async fn push_due(&self, queue: &str, overdue: Duration) {
        // Due, but the dispatcher has not moved it to ready yet.
        let when = at(-(overdue.as_secs() as i64));
        let job = self.job(queue, &when).await;
        self.exec(format!(
            "INSERT INTO {{s}}.solid_queue_scheduled_executions (job_id, queue_name, priority, scheduled_at, created_at) \
             VALUES ({job}, '{queue}', 0, {when}, {when})"
        ))
        .await;
    }
    async fn push_running(&self, queue: &str, host: &str) {
        self.claimed(queue, host, 10).await;
    }
    async fn push_dead_running(&self, queue: &str, host: &str) {
        // Its process stopped heartbeating 10 minutes ago (Solid Queue prunes it after 5).
        self.claimed(queue, host, 600).await;
    }
    async fn push_malformed(&self, queue: &str) -> bool {
        let job = self.job(queue, NOW).await;
        self.exec(format!(
            "INSERT INTO {{s}}.solid_queue_ready_executions (job_id, queue_name, priority, created_at) \
             VALUES ({job}, '{queue}', 0, '-infinity')"
        ))
        .await;
        true // a ready execution is claimed whatever its time says
    }
    async fn source(&self, queues: Option<Vec<String>>) -> Source {
        SolidQueueSource::new(self.config(queues)).unwrap().into()
    }
}

#[tokio::test]
async fn conformance() {
    // With the insert triggers: the suite's event case runs the LISTEN path (the timestamptz run polls).
    let b = Backend::new("sq_conf").await;
    let source = SolidQueueSource::new(b.config(None)).unwrap();
    source.trigger().install().await.unwrap();
    source.trigger().install().await.unwrap();
    run_conformance(&b).await;
    source.trigger().uninstall().await.unwrap();
    source.trigger().uninstall().await.unwrap();
    let left = b
        .exec(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{s}' AND t.tgname = 'dyno_scaler_notify'"
                .into(),
        )
        .await;
    assert_eq!(left, Some(0), "uninstall-trigger leaves no trigger");
}

#[tokio::test]
async fn conformance_timestamptz_columns() {
    let b = Backend::new("sq_tz").await;
    let mut sql = String::new();
    for (table, cols) in [
        ("jobs", &["scheduled_at", "finished_at", "created_at", "updated_at"][..]),
        ("ready_executions", &["created_at"][..]),
        ("scheduled_executions", &["scheduled_at", "created_at"][..]),
        ("claimed_executions", &["created_at"][..]),
        ("blocked_executions", &["expires_at", "created_at"][..]),
        ("processes", &["last_heartbeat_at", "created_at"][..]),
        ("pauses", &["created_at"][..]),
    ] {
        let alter: Vec<String> =
            cols.iter().map(|c| format!("ALTER COLUMN {c} TYPE timestamptz USING {c} AT TIME ZONE 'UTC'")).collect();
        sql.push_str(&format!("ALTER TABLE {{s}}.solid_queue_{table} {};", alter.join(", ")));
    }
    b.script(sql).await;
    run_conformance(&b).await;
}

#[tokio::test]
async fn paused_queues_are_not_demand_and_expired_blocks_are() {
    let b = Backend::new("sq_pause").await;
    b.push_ready("mailers", Duration::from_secs(5)).await;
    b.push_ready("default", Duration::from_secs(5)).await;
    assert_eq!(b.snap(None).await.totals().ready, 2);
    b.exec(format!("INSERT INTO {{s}}.solid_queue_pauses (queue_name, created_at) VALUES ('mailers', {NOW})")).await;
    let s = b.snap(None).await;
    assert_eq!(s.totals().ready, 1, "a paused queue's jobs wait for the resume, not for a worker: {s:?}");
    // Blocked by a concurrency limit: demand only once the block has expired.
    for (key, expires) in [("k1", at(600)), ("k2", at(-90))] {
        let job = b.job("default", NOW).await;
        b.exec(format!(
            "INSERT INTO {{s}}.solid_queue_blocked_executions (job_id, queue_name, priority, concurrency_key, expires_at, \
               created_at) VALUES ({job}, 'default', 0, '{key}', {expires}, {NOW})"
        ))
        .await;
    }
    let s = b.snap(None).await;
    assert_eq!(s.queues["default"].ready, 2, "the expired block is ready, the other is not: {s:?}");
    let age = s.queues["default"].oldest_ready_age.unwrap().as_secs();
    assert!((88..=92).contains(&age), "latency from the expired block's expires_at: {age}");
    // An expired block whose semaphore is still held (value 0, not expired) stays blocked: Solid Queue releases
    // only keys without a semaphore or with room (`BlockedExecution.releasable`).
    let job = b.job("default", NOW).await;
    b.script(format!(
        "INSERT INTO {{s}}.solid_queue_blocked_executions (job_id, queue_name, priority, concurrency_key, expires_at, \
           created_at) VALUES ({job}, 'default', 0, 'k3', {}, {NOW}); \
         INSERT INTO {{s}}.solid_queue_semaphores (key, value, expires_at, created_at, updated_at) \
           VALUES ('k3', 0, {}, {NOW}, {NOW})",
        at(-30),
        at(300)
    ))
    .await;
    assert_eq!(b.snap(None).await.queues["default"].ready, 2, "held by its semaphore");
    // With room in the semaphore, or the semaphore itself expired, it is released at the next maintenance.
    b.script("UPDATE {s}.solid_queue_semaphores SET value = 1".into()).await;
    assert_eq!(b.snap(None).await.queues["default"].ready, 3, "room in the semaphore");
    b.script(format!("UPDATE {{s}}.solid_queue_semaphores SET value = 0, expires_at = {}", at(-1))).await;
    assert_eq!(b.snap(None).await.queues["default"].ready, 3, "an expired semaphore is dropped first");
}

#[tokio::test]
async fn a_select_only_role_in_another_time_zone_reads_the_same() {
    let b = Backend::new("sq_role").await;
    b.push_ready("default", Duration::from_secs(300)).await;
    b.push_running("default", "w").await;
    let role = unique("ro");
    b.script(format!(
        "CREATE ROLE {role} LOGIN; ALTER ROLE {role} SET timezone = 'Asia/Tokyo'; \
         GRANT USAGE ON SCHEMA {{s}} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {{s}} TO {role}"
    ))
    .await;
    let url = db_url().replacen("postgres@", &format!("{role}@"), 1);
    let mut c = b.config(None);
    c.url = dyno_scaler_core::Secret::new(url);
    let s = SolidQueueSource::new(c).unwrap().snapshot().await.unwrap();
    assert_eq!((s.totals().ready, s.totals().running), (1, 1), "{s:?}");
    let age = s.totals().oldest_ready_age.unwrap().as_secs();
    assert!((298..=305).contains(&age), "UTC timestamps read in Tokyo: {age} s, not 9 hours off");
    b.script(format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
}

#[tokio::test]
async fn the_worker_registry_counts_each_live_workers_claims_whatever_their_queue() {
    let b = Backend::new("sq_workers").await;
    let busy = b.process("pod-a", 5).await;
    b.process("pod-b", 5).await;
    b.claimed("alpha", "pod-dead", 600).await;
    for queue in ["alpha", "beta"] {
        let job = b.job(queue, NOW).await;
        b.exec(format!(
            "INSERT INTO {{s}}.solid_queue_claimed_executions (job_id, process_id, created_at) VALUES ({job}, {busy}, {NOW})"
        ))
        .await;
    }
    // Watching alpha only: beta's claim runs elsewhere, and still makes its worker busy.
    let s = b.snap(Some(vec!["alpha".into()])).await;
    let mut workers: Vec<_> =
        s.workers.clone().unwrap().into_iter().map(|w| (w.dyno.unwrap_or_default(), w.busy)).collect();
    workers.sort();
    assert_eq!(workers, [("pod-a".to_owned(), 2), ("pod-b".to_owned(), 0)], "the dead process is no worker: {s:?}");
    assert_eq!((s.totals().running, s.running_elsewhere), (1, 1), "{s:?}");
}

/// Each live Worker's `thread_pool_size` (Solid Queue's `metadata`, as `SolidQueue::Worker#metadata` writes it),
/// Solid Queue's default of 3 where its record does not say, over the hosts they run on.
#[tokio::test]
async fn threads_per_worker_are_read_from_the_live_workers_metadata() {
    let b = Backend::new("sq_threads").await;
    assert_eq!(b.snap(None).await.threads, None, "no live worker, no figure");
    let ten = r#"{"polling_interval":0.1,"queues":"*","thread_pool_size":10}"#;
    b.process_with("pod-a", 5, ten).await;
    b.process_with("pod-a", 5, ten).await;
    b.process_with("pod-b", 5, "{not json").await;
    b.process_with("pod-c", 600, r#"{"thread_pool_size":50}"#).await; // dead: its threads are gone
    let s = b.snap(None).await;
    assert_eq!(s.threads, Some(23), "10 + 10 + the default 3: {s:?}");
    assert_eq!(s.threads_per_worker(), Some(11.5), "over two hosts: {s:?}");
    let source = SolidQueueSource::new(b.config(None)).unwrap();
    assert_eq!(source.capabilities().worker_threads, Some(3), "Solid Queue's default `threads`");
}

#[tokio::test]
async fn one_source_looks_up_each_claims_queue_once_and_a_late_claim_at_the_next_snapshot() {
    let b = Backend::new("sq_claims").await;
    let process = b.process("pod-a", 5).await;
    let claim = |id: i64, job: i64| {
        format!(
            "INSERT INTO {{s}}.solid_queue_claimed_executions (id, job_id, process_id, created_at) \
             VALUES ({id}, {job}, {process}, {NOW})"
        )
    };
    let (j1, j2) = (b.job("alpha", NOW).await, b.job("alpha", NOW).await);
    b.exec(claim(100, j1)).await;
    b.exec(claim(200, j2)).await;
    let source = SolidQueueSource::new(b.config(None)).unwrap();
    let figures = |s: &Snapshot| {
        let running = |q: &str| s.queues.get(q).map_or(0, |q| q.running);
        let busy = s.workers.as_ref().unwrap().iter().map(|w| w.busy).sum::<u32>();
        (running("alpha"), running("beta"), running("gamma"), s.running_elsewhere, busy)
    };
    assert_eq!(figures(&source.snapshot().await.unwrap()), (2, 0, 0, 0, 2));
    // A job's queue never changes in Solid Queue: changed here, it shows that a claim seen before is not looked up.
    b.exec(format!("UPDATE {{s}}.solid_queue_jobs SET queue_name = 'beta' WHERE id = {j1}")).await;
    assert_eq!(figures(&source.snapshot().await.unwrap()), (2, 0, 0, 0, 2));
    assert_eq!(figures(&b.snap(None).await), (1, 1, 0, 0, 2), "a new source looks every claim up");
    // A claim committed late, below the highest id already seen: busy at once, its queue known one snapshot later.
    let j3 = b.job("alpha", NOW).await;
    b.exec(claim(150, j3)).await;
    assert_eq!(figures(&source.snapshot().await.unwrap()), (2, 0, 0, 1, 3));
    assert_eq!(figures(&source.snapshot().await.unwrap()), (3, 0, 0, 0, 3));
    // A finished claim is forgotten; a new one (a higher id) is looked up at once.
    b.exec(format!("DELETE FROM {{s}}.solid_queue_claimed_executions WHERE job_id = {j2}")).await;
    let j4 = b.job("gamma", NOW).await;
    b.exec(claim(300, j4)).await;
    assert_eq!(figures(&source.snapshot().await.unwrap()), (2, 0, 1, 0, 3));
}
