//! Resque source against the real Redis. Each test uses its own namespace (or its own database for the
//! default `resque` namespace), so tests run in parallel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dyno_scaler_core::conformance::{ConformanceBackend, run_conformance};
use dyno_scaler_core::timefmt::{format_rfc3339, format_rfc3339_nanos};
use dyno_scaler_core::{Policy, PolicyConfig, PolicyInput, PolicyState, QueueSource, Snapshot, Source, SourceError};
use dyno_scaler_resque::{ResqueConfig, ResqueSource};
use dyno_scaler_test_support::{OwnRedis, redis_url, unique};
use redis::AsyncCommands;

mod bad_data;

fn ago(d: Duration) -> SystemTime {
    SystemTime::now() - d
}

pub(crate) struct Backend {
    url: String,
    ns: String,
    active_job: bool,
    conn: redis::aio::MultiplexedConnection,
    workers: AtomicU64,
}

impl Backend {
    /// A backend under namespace `ns` in the shared Redis, or in a private server at `url`.
    async fn new(ns: String, url: Option<String>, active_job: bool) -> Self {
        let url = url.unwrap_or_else(redis_url);
        let conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} is required for these tests (run scripts/test): {e}"));
        Self { url, ns, active_job, conn, workers: AtomicU64::new(0) }
    }

    fn k(&self, key: &str) -> String {
        format!("{}:{key}", self.ns)
    }

    /// A payload as `Resque::Job.create` writes it, or as Rails' Active Job adapter wraps it.
    fn payload(&self, queue: &str, enqueued: SystemTime) -> String {
        if self.active_job {
            format!(
                r#"{{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{{"job_class":"SyncJob","job_id":"0d1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9","provider_job_id":null,"queue_name":"{queue}","priority":null,"arguments":[7],"executions":0,"exception_executions":{{}},"locale":"en","timezone":"UTC","enqueued_at":"{}"}}]}}"#,
                format_rfc3339_nanos(enqueued)
            )
        } else {
            r#"{"class":"ImageResizer","args":[42,"thumb"]}"#.to_string()
        }
    }

    /// `Resque.push`: SADD queues + RPUSH queue:<q>, pipelined.
    async fn push_payload(&self, queue: &str, payload: &str) {
        let mut c = self.conn.clone();
        let _: () = redis::pipe()
            .sadd(self.k("queues"), queue)
            .ignore()
            .rpush(self.k(&format!("queue:{queue}")), payload)
            .ignore()
            .query_async(&mut c)
            .await
            .unwrap();
    }

    /// A registered worker with a heartbeat `beat_age` old (None: no heartbeat), working on `job_queue`.
    async fn worker(&self, queues: &str, beat_age: Option<Duration>, job_queue: Option<&str>) -> String {
        let n = self.workers.fetch_add(1, Ordering::Relaxed);
        let id = format!("4f3c2a1e-7b6d-4c5a-9e8f-0a1b2c3d4e5f:{}:{queues}", 4 + n);
        let mut c = self.conn.clone();
        let mut p = redis::pipe();
        p.sadd(self.k("workers"), &id).ignore();
        p.set(self.k(&format!("worker:{id}:started")), "2024-06-12 09:03:01 +0000").ignore();
        if let Some(age) = beat_age {
            let beat = format_rfc3339(ago(age)).replace('Z', "+00:00");
            p.hset(self.k("workers:heartbeat"), &id, beat).ignore();
        }
        if let Some(q) = job_queue {
            let job = format!(
                r#"{{"queue":"{q}","run_at":"{}","payload":{}}}"#,
                format_rfc3339(ago(Duration::from_secs(3))),
                self.payload(q, ago(Duration::from_secs(5)))
            );
            p.set(self.k(&format!("worker:{id}")), job).ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
        id
    }

    /// A worker exactly as node-resque 9.7 registers it: `workers` member `<name>:<queues>`, `worker:ping:<name>`
    /// refreshed every 5 s (pinged `ping_age` ago), no `workers:heartbeat` entry, its job at
    /// `worker:<name>:<queues>`.
    async fn node_worker(&self, queues: &str, ping_age: Option<Duration>, job_queue: Option<&str>) -> String {
        let n = self.workers.fetch_add(1, Ordering::Relaxed);
        let name = format!("node-host-{n}:{}", 4100 + n);
        let id = format!("{name}:{queues}");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut c = self.conn.clone();
        let mut p = redis::pipe();
        p.sadd(self.k("workers"), &id).ignore();
        p.set(self.k(&format!("worker:{id}:started")), now).ignore();
        if let Some(age) = ping_age {
            let ping = format!(r#"{{"time":{},"name":"{name}","queues":"{queues}"}}"#, now - age.as_secs());
            p.set(self.k(&format!("worker:ping:{name}")), ping).ignore();
        }
        if let Some(q) = job_queue {
            let job = format!(
                r#"{{"run_at":"Fri Nov 27 2026 16:00:00 GMT+0000 (Coordinated Universal Time)","queue":"{q}","worker":"{name}","payload":{{"class":"resize","queue":"{q}","args":[1]}}}}"#
            );
            p.set(self.k(&format!("worker:{id}")), job).ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
        id
    }

    /// resque-scheduler's `enqueue_at`.
    async fn delayed(&self, queue: &str, at: SystemTime) {
        let ts = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let job = format!(r#"{{"class":"ImageResizer","args":[42,"thumb"],"queue":"{queue}"}}"#);
        let mut c = self.conn.clone();
        let _: () = redis::pipe()
            .rpush(self.k(&format!("delayed:{ts}")), &job)
            .ignore()
            .sadd(self.k(&format!("timestamps:{job}")), format!("delayed:{ts}"))
            .ignore()
            .zadd(self.k("delayed_queue_schedule"), ts, ts)
            .ignore()
            .query_async(&mut c)
            .await
            .unwrap();
    }

    fn config(&self, queues: Option<Vec<String>>) -> ResqueConfig {
        let mut c = ResqueConfig::new(self.url.clone());
        c.namespace = self.ns.clone();
        c.queues = queues;
        c
    }
}

#[async_trait]
impl ConformanceBackend for Backend {
    async fn reset(&self) {
        let mut c = self.conn.clone();
        let keys: Vec<String> = c.keys(format!("{}:*", self.ns)).await.unwrap();
        if !keys.is_empty() {
            let _: () = c.del(keys).await.unwrap();
        }
    }
    async fn push_ready(&self, queue: &str, age: Duration) {
        self.push_payload(queue, &self.payload(queue, ago(age))).await;
    }
    async fn push_scheduled(&self, queue: &str, delay: Duration) {
        self.delayed(queue, SystemTime::now() + delay).await;
    }
    async fn push_due(&self, queue: &str, overdue: Duration) {
        self.delayed(queue, ago(overdue)).await;
    }
    async fn push_running(&self, queue: &str, _host: &str) {
        self.worker("*", Some(Duration::from_secs(10)), Some(queue)).await;
    }
    async fn push_dead_running(&self, queue: &str, _host: &str) {
        // Its heartbeat is older than Resque's 300 s pruning age.
        self.worker("*", Some(Duration::from_secs(1000)), Some(queue)).await;
    }
    async fn push_malformed(&self, queue: &str) -> bool {
        let mut c = self.conn.clone();
        let _: () = c.sadd(self.k("queues"), queue).await.unwrap();
        let _: () = c.lpush(self.k(&format!("queue:{queue}")), "{not json").await.unwrap();
        true // a worker pops it (and fails on it): the list's length counts it, as Resque.size does
    }
    async fn source(&self, queues: Option<Vec<String>>) -> Source {
        ResqueSource::new(self.config(queues)).unwrap().into()
    }
}

/// What the policy (at most 3 workers, no down delay) decides for `worker` at `current` dynos from `s`.
fn decided(s: &Snapshot, current: u32) -> u32 {
    let p =
        Policy::new(PolicyConfig { max_workers: 3, down_delay: Duration::ZERO, ..PolicyConfig::classic() }).unwrap();
    p.decide(&PolicyInput::new("worker", s, current), &PolicyState::default()).0.to
}

#[tokio::test]
async fn conformance_stock_payloads() {
    run_conformance(&Backend::new(unique("stock"), None, false).await).await;
}

#[tokio::test]
async fn conformance_active_job_payloads() {
    run_conformance(&Backend::new(unique("aj"), None, true).await).await;
}

#[tokio::test]
async fn conformance_default_namespace() {
    // The default `resque` namespace, in a private server (nothing else there to disturb).
    let server = OwnRedis::start();
    let b = Backend::new("resque".into(), Some(server.url()), false).await;
    run_conformance(&b).await;
    b.reset().await;
    for _ in 0..3 {
        b.push_ready("alpha", Duration::from_secs(1)).await;
    }
    let s = ResqueSource::new(ResqueConfig::new(b.url.clone())).unwrap().snapshot().await.unwrap();
    assert_eq!(s.totals().ready, 3, "ResqueConfig::new reads the default namespace: {s:?}");
}

#[tokio::test]
async fn stale_workers_are_not_busy_and_silent_ones_are_alive() {
    let b = Backend::new(unique("stale"), None, false).await;
    b.reset().await;
    b.worker("default", Some(Duration::from_secs(30)), Some("default")).await; // live, busy
    b.worker("default", Some(Duration::from_secs(30)), None).await; // live, idle
    b.worker("default", Some(Duration::from_secs(600)), Some("default")).await; // killed dyno, key left behind
    // Never sent a heartbeat (Resque before 1.26): alive, as Resque's own pruning rule has it.
    b.worker("default", None, Some("default")).await;
    let s = ResqueSource::new(b.config(None)).unwrap().snapshot().await.unwrap();
    assert_eq!(s.queues["default"].running, 2, "{s:?}");
    let workers = s.workers.clone().unwrap();
    assert_eq!(workers.len(), 3);
    assert!(workers.iter().all(|w| w.dyno.is_none()), "Resque ids do not name dynos");
    // The policy holds while the live worker runs a job: Resque cannot say which dyno it is on.
    assert_eq!(decided(&s, 2), 2);
}

#[tokio::test]
async fn node_resque_workers_are_alive_while_they_ping() {
    let b = Backend::new(unique("node"), None, false).await;
    b.reset().await;
    b.node_worker("default", Some(Duration::from_secs(3)), Some("default")).await; // busy, pinging
    b.node_worker("default", Some(Duration::from_secs(3)), None).await; // idle, pinging
    b.node_worker("default", Some(Duration::from_secs(3600)), Some("default")).await; // stopped pinging an hour ago
    let s = ResqueSource::new(b.config(None)).unwrap().snapshot().await.unwrap();
    assert_eq!(s.queues["default"].running, 1, "{s:?}");
    assert_eq!(s.workers.as_ref().unwrap().len(), 2, "{s:?}");
    assert_eq!(decided(&s, 2), 2, "a busy node-resque worker holds the quantity");
}

#[tokio::test]
async fn running_is_filtered_by_the_payload_queue() {
    let b = Backend::new(unique("filter"), None, false).await;
    b.reset().await;
    b.worker("*", Some(Duration::from_secs(5)), Some("mailers")).await;
    b.worker("*", Some(Duration::from_secs(5)), Some("default")).await;
    let s = ResqueSource::new(b.config(Some(vec!["default".into()]))).unwrap().snapshot().await.unwrap();
    assert_eq!(s.totals().running, 1);
    assert!(!s.queues.contains_key("mailers"));
    // A job of an unwatched queue is not demand, but its worker is busy: it protects its dyno.
    assert_eq!(s.running_elsewhere, 1, "{s:?}");
    assert_eq!(s.workers.as_ref().unwrap().iter().filter(|w| w.busy > 0).count(), 2);
    b.reset().await;
    b.worker("*", Some(Duration::from_secs(5)), Some("mailers")).await;
    let s = ResqueSource::new(b.config(Some(vec!["default".into()]))).unwrap().snapshot().await.unwrap();
    assert_eq!((s.totals().running, s.running_elsewhere), (0, 1));
    assert_eq!(decided(&s, 1), 1, "the unwatched job's worker is not stopped");
}

#[tokio::test]
async fn unreachable_redis_is_a_typed_error() {
    let mut cfg = ResqueConfig::new("redis://user:pa55word@127.0.0.1:1");
    cfg.timeout = Duration::from_millis(500);
    let source = ResqueSource::new(cfg).unwrap();
    let err = source.snapshot().await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. } | SourceError::Timeout { .. }), "{err:?}");
    let shown = format!("{err} {err:?} {source:?}");
    assert!(!shown.contains("pa55word"), "{shown}");
}

#[tokio::test]
async fn delayed_jobs_beyond_the_cap_are_estimated() {
    let b = Backend::new(unique("cap"), None, false).await;
    b.reset().await;
    for i in 0..300u64 {
        let q = if i % 3 == 0 { "a" } else { "b" };
        b.delayed(q, ago(Duration::from_secs(10 + i))).await;
    }
    b.delayed("a", SystemTime::now() + Duration::from_secs(600)).await;
    let mut cfg = b.config(None);
    cfg.delayed_cap = 30;
    let s = ResqueSource::new(cfg).unwrap().snapshot().await.unwrap();
    let total = s.totals().ready as i64;
    assert!((total - 300).abs() <= 3, "estimated {total} of 300: {s:?}");
    let a = s.queues["a"].ready as i64;
    assert!((a - 100).abs() <= 30, "{a}");
    assert_eq!(s.totals().scheduled, 1);
}

#[tokio::test]
async fn reads_the_completion_counter_and_one_thread_per_live_worker() {
    let b = Backend::new(unique("counter"), None, false).await;
    b.reset().await;
    let source = ResqueSource::new(b.config(None)).unwrap();
    let s = source.snapshot().await.unwrap();
    assert_eq!((s.processed, s.threads), (None, Some(0)), "{s:?}");
    b.worker("default", Some(Duration::from_secs(30)), Some("default")).await;
    b.worker("default", Some(Duration::from_secs(30)), None).await;
    b.worker("default", Some(Duration::from_secs(600)), None).await; // dead
    let mut c = b.conn.clone();
    let _: () = c.incr(format!("{}:stat:processed", b.ns), 77).await.unwrap();
    let s = source.snapshot().await.unwrap();
    assert_eq!((s.processed, s.threads), (Some(77), Some(2)), "{s:?}");
}

#[tokio::test]
async fn keeps_what_the_policy_learned_in_the_resque_namespace() {
    let b = Backend::new(unique("learned"), None, false).await;
    b.reset().await;
    let store = Source::from(ResqueSource::new(b.config(None)).unwrap()).store.expect("Resque's Redis is its store");
    assert!(store.remembers());
    store.remember("worker", "{}").await.unwrap();
    assert_eq!(store.recall("worker").await.unwrap().as_deref(), Some("{}"));
    let mut c = b.conn.clone();
    let kept: Option<String> = c.get(format!("{}:dyno-scaler:learned:worker", b.ns)).await.unwrap();
    assert_eq!(kept.as_deref(), Some("{}"));
}
