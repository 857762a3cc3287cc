//! Threads per worker from GoodJob's process records.

use dyno_scaler_good_job::GoodJobSource;

use super::{Backend, NOW};

impl Backend {
    /// A process record whose `state` is `state` (as `GoodJob::Process.current_state` writes it), updated `age`
    /// seconds ago.
    async fn process_state(&self, state: &str, age: i64) {
        let sql = format!(
            "INSERT INTO {}.good_job_processes (created_at, updated_at, state, lock_type) \
             VALUES ({NOW}, {NOW} - make_interval(secs => {age}), '{state}'::jsonb, NULL)",
            self.schema
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&self.pool).await.unwrap();
    }
}

/// Each live process's schedulers' `max_threads` (`GoodJob::Scheduler#stats`) summed, over the hosts they run on;
/// a stale record, a record without schedulers and a figure that is no number count nothing.
#[tokio::test]
async fn threads_per_worker_are_read_from_the_live_process_records() {
    use dyno_scaler_core::QueueSource;
    let b = Backend::new("gj_threads").await;
    let s = GoodJobSource::new(b.config(None)).unwrap().snapshot().await.unwrap();
    assert_eq!((s.threads, s.thread_hosts), (None, None), "no process record, no figure: {s:?}");
    let scheduler = |n: &str| {
        format!(r#"{{"name":"GoodJob::Scheduler(queues=*)","queues":"*","max_threads":{n},"active_threads":0}}"#)
    };
    let state = |host: &str, schedulers: &[String]| {
        format!(r#"{{"id":"x","hostname":"{host}","pid":4,"schedulers":[{}]}}"#, schedulers.join(","))
    };
    b.process_state(&state("dyno-a", &[scheduler("10")]), 5).await;
    b.process_state(&state("dyno-a", &[scheduler("2"), scheduler("3")]), 5).await; // a second capsule, two pools
    b.process_state(&state("dyno-b", &[scheduler("5")]), 5).await;
    b.process_state(r#"{"hostname":"web-1","pid":9}"#, 5).await; // enqueues only: no scheduler
    b.process_state(&state("dyno-c", &[scheduler(r#""many""#)]), 5).await;
    b.process_state(&state("dyno-d", &[scheduler("50")]), 600).await; // stale: gone
    let source = GoodJobSource::new(b.config(None)).unwrap();
    let s = source.snapshot().await.unwrap();
    assert_eq!((s.threads, s.thread_hosts), (Some(20), Some(2)), "15 on dyno-a and 5 on dyno-b: {s:?}");
    assert_eq!(s.threads_per_worker(), Some(10.0));
    assert_eq!(source.capabilities().worker_threads, Some(5), "GoodJob's default `max_threads`");
}
