//! Sidekiq source against the real Redis. Each test writes under its own namespace prefix (or its own
//! Redis database for the un-namespaced layout), so tests run in parallel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dyno_scaler_core::conformance::{ConformanceBackend, run_conformance};
use dyno_scaler_core::{
    Direction, Policy, PolicyConfig, PolicyInput, PolicyState, QueueSource, Quiet, Source, SourceError,
};
use dyno_scaler_sidekiq::{SidekiqConfig, SidekiqSource};
use dyno_scaler_test_support::{OwnRedis, redis_url, unique};
use redis::AsyncCommands;

mod bad_data;

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn jid() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    format!("{:024x}", N.fetch_add(1, Ordering::Relaxed) * 0x9e37_79b9)
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Version {
    /// Sidekiq 6.4: float seconds, running work in `<identity>:workers`.
    V6,
    /// Sidekiq 8: integer milliseconds, running work in `<identity>:work`.
    V8,
}

pub(crate) struct Backend {
    url: String,
    /// Key prefix (`<ns>:`), empty for the bare layout.
    prefix: String,
    namespace: Option<String>,
    version: Version,
    conn: redis::aio::MultiplexedConnection,
    procs: AtomicU64,
}

impl Backend {
    /// A backend under `namespace` in the shared Redis, or (bare keyspace) in a private server at `url`.
    async fn new(namespace: Option<String>, url: Option<String>, version: Version) -> Self {
        let url = url.unwrap_or_else(redis_url);
        let client = redis::Client::open(url.as_str()).unwrap();
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} is required for these tests (run scripts/test): {e}"));
        let prefix = namespace.as_ref().map(|n| format!("{n}:")).unwrap_or_default();
        Self { url, prefix, namespace, version, conn, procs: AtomicU64::new(0) }
    }

    fn k(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn ts(&self, t: f64) -> String {
        match self.version {
            Version::V6 => format!("{t:.7}"),
            Version::V8 => format!("{}", (t * 1000.0) as u64),
        }
    }

    /// The job JSON exactly as `Sidekiq::Client.push` writes it (key order of the 6.4 capture).
    fn job(&self, queue: &str, created: f64, enqueued: Option<f64>) -> String {
        let mut j = format!(
            r#"{{"retry":true,"queue":"{queue}","class":"HardWorker","args":[1,"a"],"jid":"{}","created_at":{}"#,
            jid(),
            self.ts(created)
        );
        if let Some(e) = enqueued {
            j.push_str(&format!(r#","enqueued_at":{}"#, self.ts(e)));
        }
        j.push('}');
        j
    }

    async fn push_raw(&self, queue: &str, payload: &str) {
        let mut c = self.conn.clone();
        let _: () = redis::pipe()
            .sadd(self.k("queues"), queue)
            .ignore()
            .lpush(self.k(&format!("queue:{queue}")), payload)
            .ignore()
            .query_async(&mut c)
            .await
            .unwrap();
    }

    /// A live Sidekiq process on dyno `dyno` running `jobs` jobs of `queue`.
    async fn process(&self, dyno: &str, queue: &str, jobs: u32, beat_age: f64) -> String {
        let n = self.procs.fetch_add(1, Ordering::Relaxed);
        let identity = format!("{dyno}:{}:{:012x}", 4 + n, 0xa1b2c3d4e5f6u64 + n);
        let info = format!(
            r#"{{"hostname":"{dyno}","started_at":{:.2},"pid":{},"tag":"app","concurrency":5,"queues":["{queue}"],"labels":[],"identity":"{identity}"}}"#,
            now() - 100.0,
            4 + n
        );
        let work_key = match self.version {
            Version::V6 => format!("{identity}:workers"),
            Version::V8 => format!("{identity}:work"),
        };
        let mut c = self.conn.clone();
        let mut p = redis::pipe();
        p.sadd(self.k("processes"), &identity).ignore();
        p.hset_multiple(
            self.k(&identity),
            &[
                ("info", info.as_str()),
                ("busy", &jobs.to_string()),
                ("beat", &format!("{:.4}", now() - beat_age)),
                ("rtt_us", "412"),
                ("quiet", "false"),
                ("rss", "245760"),
            ],
        )
        .ignore();
        p.expire(self.k(&identity), 60).ignore();
        for t in 0..jobs {
            let payload = self.job(queue, now() - 5.0, Some(now() - 5.0));
            let entry = serde_json::json!({"queue": queue, "payload": payload, "run_at": now() as u64}).to_string();
            p.hset(self.k(&work_key), format!("tid{t}"), entry).ignore();
        }
        if jobs > 0 {
            p.expire(self.k(&work_key), 60).ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
        identity
    }

    fn config(&self, queues: Option<Vec<String>>) -> SidekiqConfig {
        let mut c = SidekiqConfig::new(self.url.clone());
        c.namespace = self.namespace.clone();
        c.queues = queues;
        c
    }
}

#[async_trait]
impl ConformanceBackend for Backend {
    async fn reset(&self) {
        let mut c = self.conn.clone();
        if self.prefix.is_empty() {
            // The bare keyspace lives in a private server of the test own: emptying it disturbs no one.
            let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
        } else {
            let keys: Vec<String> = c.keys(format!("{}*", self.prefix)).await.unwrap();
            if !keys.is_empty() {
                let _: () = c.del(keys).await.unwrap();
            }
        }
    }
    async fn push_ready(&self, queue: &str, age: Duration) {
        let t = now() - age.as_secs_f64();
        self.push_raw(queue, &self.job(queue, t, Some(t))).await;
    }
    async fn push_scheduled(&self, queue: &str, delay: Duration) {
        let mut c = self.conn.clone();
        let at = now() + delay.as_secs_f64();
        let _: () = c.zadd(self.k("schedule"), self.job(queue, now(), None), format!("{at:.6}")).await.unwrap();
    }
    async fn push_due(&self, queue: &str, overdue: Duration) {
        // A retry whose time has come (as the retry handler writes it).
        let mut c = self.conn.clone();
        let at = now() - overdue.as_secs_f64();
        let job = self.job(queue, at - 30.0, Some(at - 30.0));
        let job = format!(
            r#"{},"error_message":"boom","error_class":"RuntimeError","failed_at":{},"retry_count":0}}"#,
            &job[..job.len() - 1],
            self.ts(at - 15.0)
        );
        let _: () = c.zadd(self.k("retry"), job, format!("{at:.7}")).await.unwrap();
    }
    async fn push_running(&self, queue: &str, host: &str) {
        self.process(host, queue, 1, 1.0).await;
    }
    async fn push_dead_running(&self, queue: &str, host: &str) {
        // Its last beat is older than Sidekiq's 60 s expiry (the hash is still there, as after a SIGKILL).
        self.process(host, queue, 1, 120.0).await;
    }
    async fn push_malformed(&self, queue: &str) -> bool {
        // Oldest position: RPUSH puts it at index -1.
        let mut c = self.conn.clone();
        let _: () = c.sadd(self.k("queues"), queue).await.unwrap();
        let _: () = c.rpush(self.k(&format!("queue:{queue}")), "{not json").await.unwrap();
        true // a fetcher pops it (and sends it to the dead set): the list's length counts it, as Queue#size does
    }
    async fn source(&self, queues: Option<Vec<String>>) -> Source {
        SidekiqSource::new(self.config(queues)).unwrap().into()
    }
}

#[tokio::test]
async fn conformance_sidekiq_8_namespaced() {
    run_conformance(&Backend::new(Some(unique("conf8")), None, Version::V8).await).await;
}

#[tokio::test]
async fn conformance_sidekiq_6_namespaced() {
    run_conformance(&Backend::new(Some(unique("conf6")), None, Version::V6).await).await;
}

#[tokio::test]
async fn conformance_sidekiq_bare_keyspace() {
    // Sidekiq 7+ has no namespace: its own Redis database.
    let server = OwnRedis::start();
    run_conformance(&Backend::new(None, Some(server.url()), Version::V8).await).await;
}

#[tokio::test]
async fn reads_the_sidekiq_6_4_capture_byte_for_byte() {
    let b = Backend::new(Some(unique("capture")), None, Version::V6).await;
    b.reset().await;
    // The exact payloads of shared/reference/sidekiq-6.4-capture.md, re-timed to now.
    let base = now() - 20.0;
    let captured = [
        (
            "default",
            r#"{"retry":true,"queue":"default","class":"HardWorker","args":[1,"a"],"jid":"32c0136bad478160dae2d87d","created_at":T0,"enqueued_at":T1}"#,
        ),
        (
            "default",
            r#"{"retry":true,"queue":"default","class":"HardWorker","args":[2,{"k":"v"}],"jid":"d638562c2b0133296a6ded95","created_at":T0,"enqueued_at":T1}"#,
        ),
        (
            "default",
            r#"{"retry":true,"queue":"default","args":[3,null,1.5],"class":"HardWorker","jid":"ec6012b177de857486d1bb10","created_at":T0,"enqueued_at":T1}"#,
        ),
        (
            "critical",
            r#"{"retry":true,"queue":"critical","class":"CriticalWorker","args":["c1"],"jid":"f491f508c5970ee74b368216","created_at":T0,"enqueued_at":T1}"#,
        ),
        (
            "critical",
            r#"{"retry":5,"queue":"critical","args":["c2"],"class":"CriticalWorker","jid":"878847fadbe22676a2d2a754","created_at":T0,"enqueued_at":T1}"#,
        ),
    ];
    for (i, (q, tpl)) in captured.iter().enumerate() {
        let t = base + i as f64 * 0.001;
        let job = tpl.replace("T0", &format!("{:.7}", t - 0.0003)).replace("T1", &format!("{t:.7}"));
        b.push_raw(q, &job).await;
    }
    let mut c = b.conn.clone();
    let later = r#"{"retry":true,"queue":"default","class":"HardWorker","args":["later"],"jid":"a7259b01980860794a3a1e7e","created_at":1795730965.622497}"#;
    let _: () = c.zadd(b.k("schedule"), later, format!("{:.6}", now() + 3600.0)).await.unwrap();
    // The 6.4 heartbeat hash (HMSET info busy beat rtt_us quiet rss) of a process on dyno worker.1.
    let id = b.process("worker.1", "critical", 0, 2.0).await;

    let s = SidekiqSource::new(b.config(None)).unwrap().snapshot().await.unwrap();
    let d = s.queues["default"];
    assert_eq!((d.ready, d.running, d.scheduled), (3, 0, 1));
    let age = d.oldest_ready_age.unwrap().as_secs_f64();
    assert!((19.0..22.0).contains(&age), "latency of the oldest default job: {age}");
    assert_eq!(s.queues["critical"].ready, 2);
    assert_eq!(s.skipped, 0);
    let workers = s.workers.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].identity, id);
    assert_eq!(workers[0].dyno.as_deref(), Some("worker.1"));
}

#[tokio::test]
async fn dead_and_stale_processes_are_ignored() {
    let b = Backend::new(Some(unique("stale")), None, Version::V8).await;
    b.reset().await;
    b.process("worker.1", "default", 2, 1.0).await;
    b.process("worker.2", "default", 1, 120.0).await; // heartbeat two minutes old
    let mut c = b.conn.clone();
    let _: () = c.sadd(b.k("processes"), "worker.3:9:000000000000").await.unwrap(); // hash expired
    let _: () = c.sadd(b.k("processes"), "worker.4:9:000000000001").await.unwrap();
    let _: () = c.hset(b.k("worker.4:9:000000000001"), "info", "{}").await.unwrap(); // no beat: bad record
    let s = SidekiqSource::new(b.config(None)).unwrap().snapshot().await.unwrap();
    assert_eq!(s.queues["default"].running, 2, "{s:?}");
    let workers = s.workers.unwrap();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(workers[0].busy, 2);
    assert_eq!(s.skipped, 1, "the process record without a heartbeat is counted");
}

/// The classic policy alone, without quiet-then-drain (which lets one idle beat start a shrink it then proves).
fn policy_alone() -> Policy {
    Policy::new(PolicyConfig {
        max_workers: 3,
        down_delay: Duration::ZERO,
        quiet_victims: false,
        ..PolicyConfig::classic()
    })
    .unwrap()
}

#[tokio::test]
async fn busy_dynos_guide_the_policy() {
    let b = Backend::new(Some(unique("busy")), None, Version::V8).await;
    b.reset().await;
    let ids = [
        b.process("worker.1", "default", 0, 1.0).await,
        b.process("worker.2", "default", 1, 1.0).await,
        b.process("worker.3", "default", 0, 1.0).await,
    ];
    let source = SidekiqSource::new(b.config(None)).unwrap();
    let policy = policy_alone();
    let decide = |s: &dyno_scaler_core::Snapshot, st: &PolicyState| {
        // Heroku Cedar places the processes: worker.3 stops first.
        let placements = dyno_scaler_core::cedar::placements("worker", 3, s);
        let input = PolicyInput {
            process_type: "worker",
            snapshot: s,
            current: 3,
            now: SystemTime::now(),
            platform_limit: None,
            placements: Some(&placements),
            source_threads: None,
        };
        policy.decide(&input, st)
    };
    // One heartbeat showed worker.3 idle: a job it fetched after that beat would be invisible, so it stays.
    let (d, state) = decide(&source.snapshot().await.unwrap(), &PolicyState::default());
    assert_eq!(d.direction(), Direction::Hold, "{}", d.reason);
    assert!(d.reason.contains("heartbeats"), "{}", d.reason);
    // The same beat read again proves nothing new.
    let (d, state) = decide(&source.snapshot().await.unwrap(), &state);
    assert_eq!(d.direction(), Direction::Hold, "{}", d.reason);
    // The next heartbeat shows it idle again: it may stop, worker.2 (busy) may not.
    let mut c = b.conn.clone();
    for id in &ids {
        let _: () = c.hset(b.k(id), "beat", format!("{:.4}", now())).await.unwrap();
    }
    let (d, _) = decide(&source.snapshot().await.unwrap(), &state);
    assert_eq!(d.direction(), Direction::Down);
    assert_eq!(d.to, 2, "worker.2 runs a job, only worker.3 may stop: {}", d.reason);
}

#[tokio::test]
async fn due_entries_split_per_queue_beyond_the_sample() {
    let b = Backend::new(Some(unique("sample")), None, Version::V8).await;
    b.reset().await;
    for i in 0..300 {
        let q = if i % 3 == 0 { "a" } else { "b" };
        b.push_due(q, Duration::from_secs(10 + i)).await;
    }
    let mut cfg = b.config(None);
    cfg.due_sample = 30;
    let s = SidekiqSource::new(cfg).unwrap().snapshot().await.unwrap();
    assert_eq!(s.totals().ready, 300, "{s:?}");
    let a = s.queues["a"].ready as i64;
    assert!((a - 100).abs() <= 20, "estimated split {a} of 300");
    // The oldest due entry's age is exact: the sample takes the oldest first.
    let age = s.totals().oldest_ready_age.unwrap().as_secs();
    assert!((308..=312).contains(&age), "{age}");
}

#[tokio::test]
async fn unreachable_redis_is_a_typed_error_within_the_timeout() {
    let mut cfg = SidekiqConfig::new("redis://:s3cret-pw@127.0.0.1:1/0");
    cfg.timeout = Duration::from_millis(500);
    let source = SidekiqSource::new(cfg).unwrap();
    let started = std::time::Instant::now();
    let err = source.snapshot().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, SourceError::Unavailable { .. } | SourceError::Timeout { .. }), "{err:?}");
    let mut shown = format!("{err} {err:?} {source:?}");
    // The client's error is kept as the cause, scrubbed like the message.
    let mut cause = std::error::Error::source(&err);
    if matches!(err, SourceError::Unavailable { .. }) {
        assert!(cause.is_some(), "the cause is kept: {err:?}");
    }
    while let Some(c) = cause {
        shown.push_str(&format!(" {c} {c:?}"));
        cause = c.source();
    }
    assert!(!shown.contains("s3cret-pw"), "password leaked: {shown}");
}

#[tokio::test]
async fn recovers_by_itself_when_redis_returns() {
    let mut server = OwnRedis::start();
    let mut cfg = SidekiqConfig::new(server.url());
    cfg.timeout = Duration::from_millis(500);
    let source = SidekiqSource::new(cfg).unwrap();
    source.snapshot().await.expect("first snapshot");
    server.stop();
    let err = source.snapshot().await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. } | SourceError::Timeout { .. }), "{err:?}");
    server.restart();
    let mut ok = false;
    for _ in 0..20 {
        if source.snapshot().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "the source did not reconnect after Redis came back");
}

#[tokio::test]
async fn a_job_of_an_unwatched_queue_protects_an_unnamed_dyno() {
    let b = Backend::new(Some(unique("elsewhere")), None, Version::V6).await;
    // Heroku Fir names dynos without numbers: where the busy process runs cannot be mapped to the stop order.
    b.process("worker-23z34x56y-w78k9", "mailers", 1, 1.0).await;
    let s = SidekiqSource::new(b.config(Some(vec!["default".into()]))).unwrap().snapshot().await.unwrap();
    assert_eq!((s.totals().running, s.running_elsewhere), (0, 1), "{s:?}");
    let policy = policy_alone();
    let input = PolicyInput::new("worker", &s, 2);
    let d = policy.decide(&input, &PolicyState::default()).0;
    assert_eq!(d.direction(), Direction::Hold, "{}", d.reason);
}

#[tokio::test]
async fn quiet_sends_sidekiqs_own_remote_signal_and_skips_embedded_processes() {
    let b = Backend::new(Some(unique("quiet")), None, Version::V6).await;
    let normal = b.process("worker.3", "default", 1, 1.0).await;
    let embedded = b.process("worker.4", "default", 0, 1.0).await;
    let mut c = b.conn.clone();
    let info: String = c.hget(b.k(&embedded), "info").await.unwrap();
    let info = info.replacen('{', r#"{"embedded":true,"#, 1);
    let _: () = c.hset(b.k(&embedded), "info", info).await.unwrap();
    let source = SidekiqSource::new(b.config(None)).unwrap();
    assert!(source.capabilities().quiet);
    source.quiet(&[normal.clone(), embedded.clone()]).await.unwrap();
    // What `Sidekiq::Process#quiet!` writes: LPUSH <identity>-signals TSTP, EXPIRE 60.
    let signals: Vec<String> = c.lrange(b.k(&format!("{normal}-signals")), 0, -1).await.unwrap();
    assert_eq!(signals, vec!["TSTP".to_string()]);
    let ttl: i64 = c.ttl(b.k(&format!("{normal}-signals"))).await.unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
    let none: Vec<String> = c.lrange(b.k(&format!("{embedded}-signals")), 0, -1).await.unwrap();
    assert!(none.is_empty(), "an embedded process ignores remote signals: not sent");
    // The process reads the signal at its next beat and reports quiet: the source says so.
    let _: () = c.hset(b.k(&normal), "quiet", "true").await.unwrap();
    let s = source.snapshot().await.unwrap();
    let w = s.workers.unwrap().into_iter().find(|w| w.identity == normal).unwrap();
    assert!(w.quiet && w.beat.is_some());
}

#[tokio::test]
async fn reads_the_completion_counter_and_the_threads_of_live_processes() {
    let b = Backend::new(Some(unique("counter")), None, Version::V6).await;
    b.reset().await;
    let source = SidekiqSource::new(b.config(None)).unwrap();
    let s = source.snapshot().await.unwrap();
    assert_eq!((s.processed, s.threads), (None, None), "no counter and no process yet: {s:?}");
    // Two live processes of concurrency 5 and a dead one; the counter as Sidekiq's heartbeat flush leaves it.
    b.process("worker.1", "default", 1, 1.0).await;
    b.process("worker.2", "default", 0, 1.0).await;
    b.process("worker.3", "default", 0, 120.0).await;
    let mut c = b.conn.clone();
    let _: () = c.incr(b.k("stat:processed"), 1234).await.unwrap();
    let s = source.snapshot().await.unwrap();
    assert_eq!((s.processed, s.threads), (Some(1234), Some(10)), "{s:?}");
    // A counter of the wrong type is no counter, not a failed reading.
    let _: () = c.del(b.k("stat:processed")).await.unwrap();
    let _: () = c.rpush(b.k("stat:processed"), "x").await.unwrap();
    let s = source.snapshot().await.unwrap();
    assert_eq!(s.processed, None);
}

#[tokio::test]
async fn keeps_what_the_policy_learned_beside_the_queues_for_a_week() {
    let b = Backend::new(Some(unique("learned")), None, Version::V6).await;
    b.reset().await;
    let source = Source::from(SidekiqSource::new(b.config(None)).unwrap()).store.expect("Sidekiq's Redis is its store");
    assert!(source.remembers());
    assert_eq!(source.recall("worker").await.unwrap(), None);
    source.remember("worker", r#"{"gaps":[1.0]}"#).await.unwrap();
    assert_eq!(source.recall("worker").await.unwrap().as_deref(), Some(r#"{"gaps":[1.0]}"#));
    assert_eq!(source.recall("urgent").await.unwrap(), None, "per process type");
    let mut c = b.conn.clone();
    let key = b.k("dyno-scaler:learned:worker");
    let ttl: i64 = c.ttl(&key).await.unwrap();
    assert!((7 * 86_400 - 5..=7 * 86_400).contains(&ttl), "{ttl}");
    // Something else under the key: no summary, not an error.
    let _: () = c.del(&key).await.unwrap();
    let _: () = c.rpush(&key, "x").await.unwrap();
    assert_eq!(source.recall("worker").await.unwrap(), None);
}

#[tokio::test]
async fn reads_the_threads_of_sidekiq_8_1_2_from_the_hash_field_before_info() {
    let b = Backend::new(Some(unique("threads81")), None, Version::V8).await;
    b.reset().await;
    let source = SidekiqSource::new(b.config(None)).unwrap();
    // As Sidekiq 8.1.2+ writes a process (reference §1.7): `concurrency` is a field of the hash, not of `info`.
    let identity = "worker.3:4:a1b2c3d4e5f6";
    let info = r#"{"hostname":"worker.3","started_at":1718180000.12,"pid":4,"tag":"app","capsules":{"default":{"mode":"weighted","concurrency":10,"weights":{"default":1}}},"queues":["default"],"weights":[{"default":1}],"labels":[],"identity":"worker.3:4:a1b2c3d4e5f6","version":"8.1.7","embedded":false}"#;
    let mut c = b.conn.clone();
    let beat = format!("{:.4}", now());
    let _: () = redis::pipe()
        .sadd(b.k("processes"), identity)
        .ignore()
        .hset_multiple(
            b.k(identity),
            &[("info", info), ("concurrency", "10"), ("busy", "0"), ("beat", beat.as_str()), ("quiet", "false")],
        )
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    let s = source.snapshot().await.unwrap();
    assert_eq!(s.threads, Some(10), "{s:?}");
    // A process of Sidekiq up to 8.1.1 beside it still counts by `info.concurrency` (5 threads).
    b.process("worker.1", "default", 0, 1.0).await;
    let s = source.snapshot().await.unwrap();
    assert_eq!(s.threads, Some(15), "{s:?}");
}
