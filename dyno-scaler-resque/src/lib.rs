//! dyno-scaler [`QueueSource`] for [Resque](https://github.com/resque/resque) (Redis).
//!
//! One snapshot is two pipelined round trips, whatever the number of queues: queue lengths and the oldest job
//! of each queue, the registered workers with their running job and heartbeat, and resque-scheduler's delayed
//! jobs (due ones count as ready: the scheduler has not moved them yet, and never will while no scheduler
//! runs). Due delayed jobs are counted exactly up to `delayed_cap` due timestamps and estimated beyond.
//!
//! Workers whose heartbeat is missing or older than `stale_after` (default 300 s, Resque's own pruning rule)
//! are dead registrations left behind by a killed dyno: they are ignored, so they never look busy forever.
//!
//! **Latency.** Stock Resque payloads (`{"class", "args"}`) carry no time, so `oldest_ready_age` is `None`
//! unless the oldest job carries one: Active Job's wrapper (`args[0].enqueued_at`, ISO 8601) or the
//! `timestamp` field that the Judoscale agent adds. Due delayed jobs give their due time. Use size-based
//! rules (thresholds, jobs per worker) for Resque.
//!
//! Resque worker ids carry the host name, not the dyno name, so the policy cannot tell which dyno is busy:
//! by default it scales down only when nothing runs.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::events::Hints;
use dyno_scaler_core::secret::debug_source;
use dyno_scaler_core::{
    Capabilities, Events, Inspect, QueueSource, Secret, SettingError, Snapshot, Source, SourceError, check,
};
use dyno_scaler_redis::events::Watch;
use redis::Value;

pub use dyno_scaler_redis::TlsVerify;
use reading::{Delayed, build, readable};
pub use reading::{MalformedPayload, payload_enqueued_at};

mod reading;
use dyno_scaler_redis::{RedisStore, array, as_f64, as_i64, connect, map_redis_error, strings};

pub(crate) const NAME: &str = "resque";

/// Settings of a [`ResqueSource`]; as a TOML table or JSON object they take the field names below (durations as
/// `"300s"`), every field but `url` optional.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResqueConfig {
    /// Redis URL. Secret: it may hold a password.
    pub url: Secret,
    /// Key namespace, `resque` by default (keys are `<namespace>:queue:<q>`).
    pub namespace: String,
    /// Queues to watch; `None` watches every queue in `<ns>:queues`.
    pub queues: Option<Vec<String>>,
    /// A worker whose heartbeat is missing or older than this is dead.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Whether a `rediss://` URL's certificate is checked (Heroku's Redis needs [`TlsVerify::None`]).
    #[serde(rename = "redis_tls_verify")]
    pub tls_verify: TlsVerify,
    /// Bound on one snapshot, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How many due delayed timestamps (and delayed jobs split per queue) one snapshot reads at most.
    pub delayed_cap: usize,
    /// How many future delayed timestamps are sampled to estimate the scheduled count (not demand).
    pub future_sample: usize,
}

impl Default for ResqueConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl ResqueConfig {
    /// Checks every setting, naming the one that cannot be used.
    pub fn validate(&self) -> Result<(), SettingError> {
        check::url("url", self.url.expose(), &["redis", "rediss"])?;
        check::not_empty("namespace", Some(&self.namespace))?;
        check::queues("queues", &self.queues)?;
        check::duration("stale_after", self.stale_after, Duration::from_secs(1), Duration::from_secs(24 * 3600))?;
        check::duration("timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60))
    }

    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            namespace: "resque".into(),
            queues: None,
            stale_after: Duration::from_secs(300),
            tls_verify: TlsVerify::Full,
            timeout: Duration::from_secs(2),
            delayed_cap: 100,
            future_sample: 20,
        }
    }
}

/// Reads Resque's queues, workers and resque-scheduler's delayed jobs.
#[derive(Clone)]
pub struct ResqueSource {
    config: ResqueConfig,
    conn: dyno_scaler_redis::Conn,
    prefix: String,
}

impl std::fmt::Debug for ResqueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        debug_source(f, "ResqueSource", &c.url, &[("namespace", &c.namespace), ("queues", &c.queues)])
    }
}

impl ResqueSource {
    /// A source for `config`. Connects lazily: Redis may be down now and come up later.
    /// A source for `config`, checked first. Connects lazily: Redis may be down now and come up later.
    pub fn new(config: ResqueConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let conn = connect(NAME, &config.url, config.tls_verify, config.timeout)?;
        let prefix = if config.namespace.is_empty() { String::new() } else { format!("{}:", config.namespace) };
        Ok(Self { config, conn, prefix })
    }
}

#[async_trait]
impl QueueSource for ResqueSource {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // Worker ids carry the host name, not the dyno; stock payloads carry no time.
        Capabilities {
            names_hosts: false,
            latency: false,
            worker_registry: true,
            quiet: false,
            worker_threads: Some(1), // a Resque worker process runs one job at a time
        }
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        match tokio::time::timeout(self.config.timeout, self.read()).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout { source_name: NAME.into(), timeout: self.config.timeout }),
        }
    }
}

/// The whole source: the reading, the event path, the queue list, and the store beside the queue's keys
/// ([`RedisStore`]: a lease key with NX and a TTL, the learned summary).
impl From<ResqueSource> for Source {
    fn from(source: ResqueSource) -> Self {
        let store = RedisStore::new(source.conn.clone(), NAME, &source.config.url, &source.prefix);
        let source = Arc::new(source);
        Source::new(source.clone()).with_events(source.clone()).with_inspect(source).with_store(Arc::new(store))
    }
}

#[async_trait]
impl Inspect for ResqueSource {
    /// The library's own set of every queue pushed to (`SADD queues` on each push).
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        let key = format!("{}queues", self.prefix);
        dyno_scaler_redis::members(self.conn.clone(), (NAME, &self.config.url), &key).await.map(Some)
    }
}

#[async_trait]
impl Events for ResqueSource {
    /// Client tracking on the queue lists and the resque-scheduler delayed keys, else keyspace notifications, else
    /// none ([`dyno_scaler_redis::events`]).
    async fn watch(&self, hints: &Hints) -> Result<(), SourceError> {
        let prefixes: Vec<String> = ["queue:", "delayed"].iter().map(|k| format!("{}{k}", self.prefix)).collect();
        let c = &self.config;
        let w = Watch { name: NAME, url: &c.url, verify: c.tls_verify, timeout: c.timeout, prefixes: &prefixes };
        dyno_scaler_redis::events::watch(w, hints).await
    }
}

/// A worker id is `<host>:<pid>:<queues>` (node-resque: `<name>:<queues>`, where the name is `<host>:<pid>`).
fn worker_name(id: &str) -> &str {
    id.rsplit_once(':').map_or(id, |(name, _)| name)
}

impl ResqueSource {
    /// Two pipelined round trips: (1) the server time, the queue and worker sets, the heartbeats and the
    /// delayed-job timestamps (plus the lists themselves when the queues are configured); (2) every list's length
    /// and oldest job, every worker's job, and the delayed lists.
    async fn read(&self) -> Result<Snapshot, SourceError> {
        let p = &self.prefix;
        let c = &self.config;
        // Ages are measured against the exact time; the due window of resque-scheduler's whole-second stamps
        // against the second.
        let exact_start =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let now = exact_start as u64;
        let mut conn = self.conn.clone();
        let err = |e| map_redis_error(NAME, &c.url, e);
        let schedule = format!("{p}delayed_queue_schedule");

        // A key of the wrong type fails its own command, not the pipeline: the rest of the reading stands.
        let mut unreadable = Vec::new();
        let mut one = redis::pipe();
        one.ignore_errors();
        one.cmd("TIME");
        one.smembers(format!("{p}workers"));
        one.hgetall(format!("{p}workers:heartbeat"));
        one.cmd("ZRANGEBYSCORE").arg(&schedule).arg("-inf").arg(now).arg("LIMIT").arg(0).arg(c.delayed_cap);
        one.zcount(&schedule, "-inf", now);
        one.cmd("ZRANGEBYSCORE")
            .arg(&schedule)
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("LIMIT")
            .arg(0)
            .arg(c.future_sample);
        one.zcount(&schedule, format!("({now}"), "+inf");
        one.get(format!("{p}stat:processed"));
        match &c.queues {
            Some(qs) => {
                for q in qs {
                    let key = format!("{p}queue:{q}");
                    one.llen(&key).lindex(&key, 0);
                }
            }
            None => {
                one.smembers(format!("{p}queues"));
            }
        }
        let mut r1: Vec<Value> = one.query_async(&mut conn).await.map_err(err)?;
        let mut rest = r1.split_off(8);
        let (queues, mut lists): (Vec<String>, Vec<Value>) = match &c.queues {
            Some(qs) => (qs.clone(), rest),
            None => (
                readable(rest.remove(0), &format!("{p}queues"), &mut unreadable).map(strings).unwrap_or_default(),
                Vec::new(),
            ),
        };
        let [time, workers, heartbeats, due_stamps, due_count, future_stamps, future_count, processed]: [Value; 8] =
            r1.try_into().map_err(|_| SourceError::Protocol {
                source_name: NAME.into(),
                message: "short reply".into(),
                cause: None,
            })?;
        let mut read = |v: Value, key: &str| readable(v, key, &mut unreadable).unwrap_or(Value::Nil);
        let workers = strings(read(workers, &format!("{p}workers")));
        let heartbeats = read(heartbeats, &format!("{p}workers:heartbeat"));
        let due_stamps = strings(read(due_stamps, &schedule));
        // The other three commands on the same key fail alike: named once.
        let due_count = readable(due_count, &schedule, &mut Vec::new()).unwrap_or(Value::Nil);
        let future_stamps = strings(readable(future_stamps, &schedule, &mut Vec::new()).unwrap_or(Value::Nil));
        let future_count = readable(future_count, &schedule, &mut Vec::new()).unwrap_or(Value::Nil);

        let mut two = redis::pipe();
        two.ignore_errors();
        if c.queues.is_none() {
            for q in &queues {
                let key = format!("{p}queue:{q}");
                two.llen(&key).lindex(&key, 0);
            }
        }
        for id in &workers {
            // The running job, and node-resque's liveness key (`worker:ping:<name>`, the id without its queues).
            two.get(format!("{p}worker:{id}")).get(format!("{p}worker:ping:{}", worker_name(id)));
        }
        // Due lists: exact length, and a few jobs of each to split them per queue.
        let per_stamp = (c.delayed_cap / due_stamps.len().max(1)).clamp(1, 10) as isize;
        for ts in &due_stamps {
            let key = format!("{p}delayed:{ts}");
            two.llen(&key).lrange(&key, 0, per_stamp - 1);
        }
        for ts in &future_stamps {
            let key = format!("{p}delayed:{ts}");
            two.llen(&key).lrange(&key, 0, 0);
        }
        let r2: Vec<Value> =
            if two.cmd_iter().next().is_none() { Vec::new() } else { two.query_async(&mut conn).await.map_err(err)? };
        let mut r2 = r2.into_iter();
        if c.queues.is_none() {
            lists = r2.by_ref().take(queues.len() * 2).collect();
        }
        let jobs: Vec<Value> = r2.by_ref().take(workers.len() * 2).collect();
        let due: Vec<Value> = r2.by_ref().take(due_stamps.len() * 2).collect();
        let future: Vec<Value> = r2.collect();
        let server_now = match array(time).as_slice() {
            [s, us] => as_f64(s).unwrap_or(now as f64) + as_f64(us).unwrap_or(0.0) / 1e6,
            _ => now as f64,
        };
        let delayed = Delayed {
            due_stamps: &due_stamps,
            due_count: as_i64(&due_count).unwrap_or(0).max(0) as u64,
            due,
            future_stamps: future_stamps.len() as u64,
            future_count: as_i64(&future_count).unwrap_or(0).max(0) as u64,
            future,
        };
        // resque-scheduler's members are the timestamps themselves: the first future one is when to look again.
        let exact_now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let next_due = future_stamps.first().and_then(|t| t.parse::<f64>().ok()).filter(|t| *t > exact_now);
        let workers = reading::Workers { ids: &workers, jobs, heartbeats, server_now };
        let mut snap = build(exact_start, c, &queues, lists, workers, delayed);
        snap.next_due = next_due.and_then(|t| Duration::try_from_secs_f64(t - exact_now).ok());
        // The completion counter (incremented as each job ends), and one thread per live worker.
        snap.processed = as_i64(&processed).and_then(|n| u64::try_from(n).ok());
        snap.threads = snap.workers.as_ref().map(|w| w.len() as u64);
        snap.skipped += unreadable.len() as u64;
        snap.unreadable.splice(0..0, unreadable);
        Ok(snap)
    }
}
