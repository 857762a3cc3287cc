//! GoodJob source against the real Postgres, tables as GoodJob v4's install generator makes them, rows as GoodJob
//! writes them. Each test creates its own schema, so tests run in parallel.

use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::conformance::{ConformanceBackend, run_conformance};
use dyno_scaler_core::events::{EventMode, Hints, wait_status, watch_events};
use dyno_scaler_core::{QueueSource, Snapshot, Source};
use dyno_scaler_good_job::{GoodJobConfig, GoodJobSource, RECOMMENDED_INDEXES};
use dyno_scaler_test_support::{db_url, good_jobs_ddl, unique};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tokio::sync::Mutex;

mod threads;

const NOW: &str = "(now() AT TIME ZONE 'UTC')";

struct Backend {
    pool: PgPool,
    schema: String,
    /// A worker's session: the advisory locks of the jobs it runs live as long as it does.
    worker: Mutex<PgConnection>,
}

impl Backend {
    async fn new(tag: &str) -> Self {
        let pool =
            PgPool::connect(&db_url()).await.unwrap_or_else(|e| panic!("Postgres at {} is required: {e}", db_url()));
        let schema = unique(tag);
        let ddl = format!("CREATE SCHEMA {schema}; {}", good_jobs_ddl(&schema));
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
        let worker = Mutex::new(PgConnection::connect(&db_url()).await.unwrap());
        Self { pool, schema, worker }
    }

    fn config(&self, queues: Option<Vec<String>>) -> GoodJobConfig {
        let mut c = GoodJobConfig::new(db_url());
        c.table = format!("{}.good_jobs", self.schema);
        c.queues = queues;
        c
    }

    /// `GoodJob::Adapter#enqueue`: one INSERT (the id is the Active Job id), `scheduled_at` `offset` seconds from now.
    async fn insert(&self, queue: &str, offset: &str, performed: bool, locked_by: Option<&str>) -> String {
        let sql = format!(
            "INSERT INTO {}.good_jobs (id, active_job_id, queue_name, priority, serialized_params, scheduled_at, \
               performed_at, created_at, updated_at, job_class, locked_by_id, locked_at, lock_type) \
             SELECT u, u, $1, 0, jsonb_build_object('job_class', 'SyncJob', 'job_id', u::text, 'queue_name', $1, \
               'arguments', '[]'::jsonb, 'executions', 0), {offset}, {}, {NOW}, {NOW}, 'SyncJob', $2::uuid, \
               CASE WHEN $2 IS NULL THEN NULL ELSE {NOW} END, CASE WHEN $2 IS NULL THEN NULL ELSE 1 END \
             FROM (SELECT gen_random_uuid() AS u) g RETURNING id::text",
            self.schema,
            if performed { NOW } else { "NULL" }
        );
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(queue).bind(locked_by).fetch_one(&self.pool).await.unwrap()
    }

    /// A process record (`GoodJob::Process`), updated `age` seconds ago.
    async fn process(&self, age: f64) -> String {
        let sql = format!(
            "INSERT INTO {}.good_job_processes (created_at, updated_at, state, lock_type) \
             VALUES ({NOW}, {NOW} - make_interval(secs => $1), '{{\"hostname\":\"web-1\",\"pid\":4}}', 1) RETURNING id::text",
            self.schema
        );
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(age).fetch_one(&self.pool).await.unwrap()
    }

    /// Enqueues as `GoodJob::Adapter` does: the INSERT, then `NOTIFY good_job` with the queue (and the schedule).
    async fn enqueue(&self, queue: &str, offset_secs: i64) {
        self.insert(queue, &at(offset_secs), false, None).await;
        let payload = format!(r#"{{"queue_name":"{queue}","scheduled_at":"in {offset_secs}s"}}"#);
        sqlx::query("SELECT pg_notify('good_job', $1)").bind(payload).execute(&self.pool).await.unwrap();
    }

    /// A source reading the held locks at most once per `every`.
    fn checking_locks_every(&self, every: Duration) -> GoodJobSource {
        let mut c = self.config(None);
        c.lock_check = every;
        GoodJobSource::new(c).unwrap()
    }

    /// The job `id` performed again (a new `performed_at`), as a worker that picks an interrupted job up does.
    async fn perform_again(&self, id: &str) {
        let sql = format!(
            "UPDATE {}.good_jobs SET performed_at = {NOW} + interval '1 second' WHERE id = $1::uuid",
            self.schema
        );
        sqlx::query(AssertSqlSafe(sql)).bind(id).execute(&self.pool).await.unwrap();
    }

    async fn snap(&self) -> Snapshot {
        GoodJobSource::new(self.config(None)).unwrap().snapshot().await.unwrap()
    }
}

fn at(secs: i64) -> String {
    format!("{NOW} + make_interval(secs => {secs})")
}

#[async_trait]
impl ConformanceBackend for Backend {
    async fn reset(&self) {
        let sql = format!("TRUNCATE {0}.good_jobs, {0}.good_job_processes", self.schema);
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&self.pool).await.unwrap();
        let _ = sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *self.worker.lock().await).await;
    }
    async fn push_ready(&self, queue: &str, age: Duration) {
        self.enqueue(queue, -(age.as_secs() as i64)).await;
    }
    async fn push_scheduled(&self, queue: &str, delay: Duration) {
        self.enqueue(queue, delay.as_secs() as i64).await;
    }
    async fn push_due(&self, queue: &str, overdue: Duration) {
        self.enqueue(queue, -(overdue.as_secs() as i64)).await;
    }
    async fn push_running(&self, queue: &str, _host: &str) {
        // The advisory-lock mode (the default): the worker's session holds the job's lock while it runs.
        let id = self.insert(queue, &at(-1), true, None).await;
        sqlx::query("SELECT pg_advisory_lock(('x' || substr(md5('good_jobs-' || $1), 1, 16))::bit(64)::bigint)")
            .bind(id)
            .execute(&mut *self.worker.lock().await)
            .await
            .unwrap();
    }
    async fn push_dead_running(&self, queue: &str, _host: &str) {
        // Its process was killed: the row says performed, but no session holds its lock.
        self.insert(queue, &at(-60), true, None).await;
    }
    async fn push_malformed(&self, queue: &str) -> bool {
        self.insert(queue, "'-infinity'", false, None).await;
        true // due at -infinity: GoodJob's `scheduled_at <= now` takes it first
    }
    async fn source(&self, queues: Option<Vec<String>>) -> Source {
        GoodJobSource::new(self.config(queues)).unwrap().into()
    }
}

#[tokio::test]
async fn conformance() {
    run_conformance(&Backend::new("gj_conf").await).await;
}

impl Backend {
    /// The optional index of [`RECOMMENDED_INDEXES`] on this table.
    async fn recommended_indexes(&self) {
        let ddl = RECOMMENDED_INDEXES
            .replace("CONCURRENTLY ", "")
            .replace(" good_jobs ", &format!(" {}.good_jobs ", self.schema));
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&self.pool).await.unwrap();
    }
}

#[tokio::test]
async fn conformance_with_the_recommended_indexes() {
    let b = Backend::new("gj_idx").await;
    b.recommended_indexes().await;
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = '{}' AND indexname LIKE '%dyno_scaler%'",
        b.schema
    )))
    .fetch_one(&b.pool)
    .await
    .unwrap();
    assert_eq!(n, 1, "the index made");
    run_conformance(&b).await;
}

#[tokio::test]
async fn conformance_timestamptz_columns() {
    // An app whose migrations made `timestamptz` columns (Rails' `datetime_type = :timestamptz`).
    let b = Backend::new("gj_tz").await;
    let cols = ["scheduled_at", "performed_at", "finished_at", "created_at", "updated_at", "cron_at", "locked_at"];
    let alter: Vec<String> =
        cols.iter().map(|c| format!("ALTER COLUMN {c} TYPE timestamptz USING {c} AT TIME ZONE 'UTC'")).collect();
    let sql = format!(
        "ALTER TABLE {0}.good_jobs {1}; ALTER TABLE {0}.good_job_processes ALTER COLUMN updated_at TYPE timestamptz, \
         ALTER COLUMN created_at TYPE timestamptz",
        b.schema,
        alter.join(", ")
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&b.pool).await.unwrap();
    run_conformance(&b).await;
}

#[tokio::test]
async fn skip_locked_jobs_run_while_their_process_is_fresh() {
    let b = Backend::new("gj_skip").await;
    let live = b.process(10.0).await;
    let dead = b.process(600.0).await;
    b.insert("default", &at(-5), true, Some(&live)).await;
    b.insert("default", &at(-5), true, Some(&dead)).await;
    let s = b.snap().await;
    assert_eq!(s.totals().running, 1, "only the live process's job runs: {s:?}");
    // A job finished is nothing at all.
    let sql = format!("UPDATE {}.good_jobs SET finished_at = {NOW}", b.schema);
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&b.pool).await.unwrap();
    assert_eq!(b.snap().await.totals(), Default::default());
}

#[tokio::test]
async fn running_jobs_are_read_by_due_time_within_a_clock_apart() {
    // The running part reads GoodJob's `scheduled_at` index up to five minutes past the database's clock: a job
    // the app's clock (a minute ahead) found due, and one written without `scheduled_at`, run; a row performed
    // with a time an hour ahead is no job GoodJob would have started.
    for indexed in [false, true] {
        let b = Backend::new("gj_skew").await;
        if indexed {
            b.recommended_indexes().await;
        }
        running_by_due_time(&b).await;
    }
}

async fn running_by_due_time(b: &Backend) {
    for offset in ["NULL".to_owned(), at(60), at(-3600), at(3600)] {
        let id = b.insert("default", &offset, true, None).await;
        sqlx::query("SELECT pg_advisory_lock(('x' || substr(md5('good_jobs-' || $1), 1, 16))::bit(64)::bigint)")
            .bind(id)
            .execute(&mut *b.worker.lock().await)
            .await
            .unwrap();
    }
    let s = b.snap().await;
    assert_eq!(s.totals().running, 3, "{s:?}");
    assert_eq!((s.totals().ready, s.totals().scheduled), (0, 0), "{s:?}");
}

#[tokio::test]
async fn a_lock_keyed_by_the_active_job_id_counts_too() {
    // GoodJob versions that key the lock by `active_job_id` (a different uuid than `id` for rows written so).
    let b = Backend::new("gj_ajid").await;
    let sql = format!(
        "INSERT INTO {}.good_jobs (id, active_job_id, queue_name, scheduled_at, performed_at, created_at, updated_at) \
         VALUES (gen_random_uuid(), gen_random_uuid(), 'default', {NOW}, {NOW}, {NOW}, {NOW}) RETURNING active_job_id::text",
        b.schema
    );
    let ajid: String = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&b.pool).await.unwrap();
    assert_eq!(b.snap().await.totals().running, 0, "no lock held yet");
    sqlx::query("SELECT pg_advisory_lock(('x' || substr(md5('good_jobs-' || $1), 1, 16))::bit(64)::bigint)")
        .bind(ajid)
        .execute(&mut *b.worker.lock().await)
        .await
        .unwrap();
    assert_eq!(b.snap().await.totals().running, 1);
}

#[tokio::test]
async fn goodjobs_own_notify_wakes_the_scaler_with_no_trigger() {
    let b = Backend::new("gj_listen").await;
    let source = Source::from(GoodJobSource::new(b.config(None)).unwrap());
    let (hints, mut status) = Hints::new();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(watch_events(source, hints.clone(), stop));
    let s = wait_status(&mut status, Duration::from_secs(10), |s| s.mode != EventMode::Starting).await.unwrap();
    assert_eq!(s.mode, EventMode::Listen, "{s}");
    // What GoodJob::Notifier sends on an enqueue.
    sqlx::query("SELECT pg_notify('good_job', '{\"queue_name\":\"default\"}')").execute(&b.pool).await.unwrap();
    assert!(hints.seen(1, Duration::from_secs(5)).await);
}

/// Takes GoodJob's advisory lock of the job `id` on `conn`, as a worker does while it runs the job.
async fn lock(conn: &mut PgConnection, id: &str) {
    sqlx::query("SELECT pg_advisory_lock(('x' || substr(md5('good_jobs-' || $1), 1, 16))::bit(64)::bigint)")
        .bind(id)
        .execute(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_held_locks_are_read_once_per_lock_check_and_verdicts_stand_between() {
    let b = Backend::new("gj_lockcheck").await;
    let source = b.checking_locks_every(Duration::from_secs(300));
    let running = || async { source.snapshot().await.unwrap().totals().running };
    let first = b.insert("default", &at(-5), true, None).await;
    lock(&mut *b.worker.lock().await, &first).await;
    assert_eq!(running().await, 1, "the first snapshot reads the locks");
    // The worker is killed: its lock goes. Until the next read the verdict stands (the job still counts: never the
    // other way round), while a fresh reading (lock_check 0s) sees it at once.
    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *b.worker.lock().await).await.unwrap();
    assert_eq!(running().await, 1, "the verdict of the last read stands");
    let fresh = b.checking_locks_every(Duration::ZERO);
    assert_eq!(fresh.snapshot().await.unwrap().totals().running, 0, "read now: no lock held, nothing runs");
    // A job started since the last read runs until the next one (a live worker just started it) ...
    let second = b.insert("default", &at(-5), true, None).await;
    assert_eq!(running().await, 2);
    // ... and the dead attempt stays dead for the reader of every snapshot, until it is performed again.
    assert_eq!(fresh.snapshot().await.unwrap().totals().running, 0);
    lock(&mut *b.worker.lock().await, &second).await;
    assert_eq!(fresh.snapshot().await.unwrap().totals().running, 1);
    b.perform_again(&first).await;
    lock(&mut *b.worker.lock().await, &first).await;
    assert_eq!(fresh.snapshot().await.unwrap().totals().running, 2, "performed again, under its lock");
}

#[tokio::test]
async fn between_reads_the_jobs_found_dead_stay_dead_until_performed_again() {
    // Between two reads of the locks the statement sends no attempts, only the jobs found dead still started.
    let b = Backend::new("gj_between").await;
    let source = b.checking_locks_every(Duration::from_secs(300));
    let running = || async { source.snapshot().await.unwrap().queues.get("default").map_or(0, |q| q.running) };
    let alive = b.insert("default", &at(-5), true, None).await;
    lock(&mut *b.worker.lock().await, &alive).await;
    let dead = b.insert("default", &at(-5), true, None).await;
    b.insert("mailers", &at(-5), true, None).await;
    assert_eq!(running().await, 1, "the first snapshot reads the locks: one held");
    assert_eq!(running().await, 1, "between reads the dead job stays dead");
    let started = b.insert("default", &at(-5), true, None).await;
    assert_eq!(running().await, 2, "a job started since runs");
    b.perform_again(&dead).await;
    assert_eq!(running().await, 3, "the dead job performed again: a new attempt runs");
    let sql = format!("UPDATE {}.good_jobs SET finished_at = {NOW} WHERE id IN ($1::uuid, $2::uuid)", b.schema);
    sqlx::query(AssertSqlSafe(sql)).bind(&dead).bind(&started).execute(&b.pool).await.unwrap();
    assert_eq!(running().await, 1, "finished jobs run no more");
}

#[tokio::test]
async fn a_lock_with_the_same_key_in_another_database_is_not_this_jobs() {
    let b = Backend::new("gj_otherdb").await;
    let id = b.insert("default", &at(-5), true, None).await;
    let url = db_url();
    let other = format!("{}/postgres", url.rsplit_once('/').unwrap().0);
    let mut elsewhere = PgConnection::connect(&other).await.unwrap();
    lock(&mut elsewhere, &id).await;
    assert_eq!(b.snap().await.totals().running, 0, "the key is held, but in database postgres");
    lock(&mut *b.worker.lock().await, &id).await;
    assert_eq!(b.snap().await.totals().running, 1, "held here: it runs");
}

#[tokio::test]
async fn paused_queues_job_classes_and_labels_are_not_demand_when_the_app_enables_pauses() {
    let b = Backend::new("gj_pauses").await;
    // Jobs as GoodJob writes them: queue, class, labels (`good_job_labels`), due a minute ago.
    for (queue, class, labels) in [
        ("default", "SyncJob", "NULL"),
        ("default", "SyncJob", "ARRAY['bulk']"),
        ("default", "SlowJob", "NULL"),
        ("mailers", "SyncJob", "NULL"),
        ("mailers", "SyncJob", "ARRAY['urgent']"),
    ] {
        let sql = format!(
            "INSERT INTO {}.good_jobs (id, active_job_id, queue_name, scheduled_at, created_at, updated_at, job_class, \
               labels) SELECT u, u, $1, {NOW} - interval '1 minute', {NOW}, {NOW}, $2, {labels} \
             FROM (SELECT gen_random_uuid() AS u) g",
            b.schema
        );
        sqlx::query(AssertSqlSafe(sql)).bind(queue).bind(class).execute(&b.pool).await.unwrap();
    }
    // A running job of a queue paused later: pauses stop dequeues, not jobs.
    let id = b.insert("mailers", &at(-5), true, None).await;
    lock(&mut *b.worker.lock().await, &id).await;
    let mut cfg = b.config(None);
    cfg.enable_pauses = true;
    let ready = |s: &Snapshot, q: &str| s.queues.get(q).map_or(0, |x| x.ready);
    let s = GoodJobSource::new(cfg.clone()).unwrap().snapshot().await.unwrap();
    assert_eq!((ready(&s, "default"), ready(&s, "mailers")), (3, 2), "nothing paused yet: {s:?}");
    // `GoodJob.pause(queue: "mailers")`, `pause(job_class: "SlowJob")`, `pause(label: "bulk")`: one settings row.
    let sql = format!(
        "INSERT INTO {}.good_job_settings (created_at, updated_at, key, value) VALUES ({NOW}, {NOW}, 'pauses', \
           '{{\"queues\": [\"mailers\"], \"job_classes\": [\"SlowJob\"], \"labels\": [\"bulk\"]}}')",
        b.schema
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&b.pool).await.unwrap();
    let s = GoodJobSource::new(cfg).unwrap().snapshot().await.unwrap();
    assert_eq!((ready(&s, "default"), ready(&s, "mailers")), (1, 0), "only the unpaused default job: {s:?}");
    assert_eq!(s.totals().running, 1, "the paused queue's running job still runs");
    // Without `enable_pauses` GoodJob dequeues them all, so they are all demand.
    let s = b.snap().await;
    assert_eq!((ready(&s, "default"), ready(&s, "mailers")), (3, 2), "{s:?}");
}

#[tokio::test]
async fn rows_without_a_due_time_are_ready_since_created_and_bad_times_are_skipped() {
    // Rows written before GoodJob v4.8.2 have no `scheduled_at`: due since `created_at`. They and rows with a time
    // before 2001 are read apart from the due range; their figures merge with the range's in the same queue.
    let b = Backend::new("gj_odd").await;
    b.insert("default", &at(-30), false, None).await;
    let sql = format!(
        "INSERT INTO {}.good_jobs (id, active_job_id, queue_name, scheduled_at, created_at, updated_at) \
         SELECT u, u, 'default', NULL, {NOW} - interval '2 minutes', {NOW} FROM (SELECT gen_random_uuid() AS u) g",
        b.schema
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&b.pool).await.unwrap();
    b.insert("default", "'1999-01-01'", false, None).await;
    let id = b.insert("mailers", "'-infinity'", true, None).await;
    lock(&mut *b.worker.lock().await, &id).await;
    let s = b.snap().await;
    let default = &s.queues["default"];
    assert_eq!(default.ready, 3, "the range's row, the one without scheduled_at, the one of 1999: {s:?}");
    let age = default.oldest_ready_age.unwrap().as_secs();
    assert!((118..200).contains(&age), "latency from the created_at of the row without scheduled_at: {s:?}");
    assert_eq!(s.skipped, 1, "the time of 1999 cannot be meant: {s:?}");
    assert_eq!(s.queues["mailers"].running, 1, "a started row with a bad time still runs while locked: {s:?}");
}

#[tokio::test]
async fn a_killed_advisory_workers_job_is_ready_at_once_whatever_its_fresh_record_says() {
    // As GoodJob 4 leaves it in its default advisory-lock mode: the job performed, `locked_by_id` the process (its
    // record fresh for minutes after a `kill -9`), no `lock_type`; the lock was the session's and went with it.
    let b = Backend::new("gj_killed").await;
    let source = b.checking_locks_every(Duration::ZERO);
    let process = b.process(1.0).await;
    let id = b.insert("default", &at(-5), true, None).await;
    let sql =
        format!("UPDATE {}.good_jobs SET locked_by_id = $1::uuid, locked_at = {NOW} WHERE id = $2::uuid", b.schema);
    sqlx::query(AssertSqlSafe(sql)).bind(&process).bind(&id).execute(&b.pool).await.unwrap();
    lock(&mut *b.worker.lock().await, &id).await;
    let s = source.snapshot().await.unwrap();
    assert_eq!((s.totals().running, s.totals().ready), (1, 0), "running under its lock: {s:?}");
    // kill -9: the session ends, its lock with it; the process record stays fresh.
    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *b.worker.lock().await).await.unwrap();
    let s = source.snapshot().await.unwrap();
    assert_eq!((s.totals().running, s.totals().ready), (0, 1), "GoodJob hands it to the next worker: {s:?}");
    // Between two reads of the locks too.
    let slow = b.checking_locks_every(Duration::from_secs(300));
    assert_eq!(slow.snapshot().await.unwrap().totals().ready, 1);
    let s = slow.snapshot().await.unwrap();
    assert_eq!((s.totals().running, s.totals().ready), (0, 1), "between reads: {s:?}");
    // Under skip-locked, a job whose process record expired is ready work too.
    let expired = b.process(600.0).await;
    b.insert("default", &at(-5), true, Some(&expired)).await;
    let s = source.snapshot().await.unwrap();
    assert_eq!((s.totals().running, s.totals().ready), (0, 2), "{s:?}");
}
