//! dyno-scaler [`QueueSource`] for [Sidekiq](https://sidekiq.org) (Redis).
//!
//! One snapshot is two pipelined round trips, whatever the number of queues: the first reads the `queues` and
//! `processes` sets and counts due and future entries of the `schedule` and `retry` sets with `ZCOUNT` (due
//! entries are ready work Sidekiq's poller has not moved yet) with a bounded sample of each to split them per
//! queue; the second reads every queue's length and oldest job (`LINDEX queue:<q> -1`) and every process hash
//! with its running-work hash. Nothing is scanned without a bound and `KEYS` is never used. (A Lua script
//! doing the same in one round trip measured 3–4× slower: each `redis.call` costs more than a pipelined
//! command.)
//!
//! Both timestamp formats are read: Sidekiq 8 integer milliseconds and Sidekiq ≤ 7 float seconds.
//! Process identities start with the host name, which on Heroku is `$DYNO` (`worker.3`), so the policy knows
//! which dynos are busy.
//!
//! ```no_run
//! use dyno_scaler_sidekiq::{SidekiqConfig, SidekiqSource};
//! use dyno_scaler_core::QueueSource;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let source = SidekiqSource::new(SidekiqConfig::new("redis://127.0.0.1:6379/0"))?;
//! let snapshot = source.snapshot().await?;
//! println!("{} ready", snapshot.totals().ready);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::events::Hints;
use dyno_scaler_core::secret::debug_source;
use dyno_scaler_core::{
    Capabilities, Events, Inspect, QueueSource, Quiet, Secret, SettingError, Snapshot, Source, SourceError, check,
};
use dyno_scaler_redis::events::Watch;
use redis::Value;

pub use dyno_scaler_redis::TlsVerify;
pub use reading::job_timestamp;

mod reading;
use dyno_scaler_redis::{RedisStore, connect, map_redis_error, strings};
use reading::build;

pub(crate) const NAME: &str = "sidekiq";

/// Settings of a [`SidekiqSource`]; as a TOML table or JSON object they take the field names below (durations as
/// `"60s"`), every field but `url` optional.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SidekiqConfig {
    /// Redis URL (`redis://[:password@]host:port/db`, or `rediss://` for TLS). Secret: it may hold a password.
    pub url: Secret,
    /// Key prefix for apps that use `redis-namespace` with Sidekiq ≤ 6 (e.g. `myapp`); empty by default.
    pub namespace: Option<String>,
    /// Queues to watch; `None` watches every queue in the `queues` set.
    pub queues: Option<Vec<String>>,
    /// A process whose last heartbeat is older than this is dead (Sidekiq's own expiry is 60 s).
    #[serde(with = "humantime_serde")]
    pub heartbeat_ttl: Duration,
    /// Whether a `rediss://` URL's certificate is checked (Heroku's Redis needs [`TlsVerify::None`]).
    #[serde(rename = "redis_tls_verify")]
    pub tls_verify: TlsVerify,
    /// Bound on one snapshot, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How many due `schedule`/`retry` entries (per set) are decoded to split them per queue; beyond it the
    /// split is estimated in proportion (totals stay exact).
    pub due_sample: usize,
    /// Same for future entries (they are not demand; only reported).
    pub future_sample: usize,
}

impl Default for SidekiqConfig {
    fn default() -> Self {
        Self::new("")
    }
}

impl SidekiqConfig {
    /// Checks every setting, naming the one that cannot be used.
    pub fn validate(&self) -> Result<(), SettingError> {
        check::url("url", self.url.expose(), &["redis", "rediss"])?;
        check::not_empty("namespace", self.namespace.as_deref())?;
        check::queues("queues", &self.queues)?;
        check::duration("heartbeat_ttl", self.heartbeat_ttl, Duration::from_secs(1), Duration::from_secs(3600))?;
        check::duration("timeout", self.timeout, Duration::from_millis(10), Duration::from_secs(60))
    }

    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            namespace: None,
            queues: None,
            heartbeat_ttl: Duration::from_secs(60),
            tls_verify: TlsVerify::Full,
            timeout: Duration::from_secs(2),
            due_sample: 100,
            future_sample: 20,
        }
    }
}

/// Reads Sidekiq's queues, scheduled and retry sets, and processes.
#[derive(Clone)]
pub struct SidekiqSource {
    config: SidekiqConfig,
    conn: dyno_scaler_redis::Conn,
    prefix: String,
}

impl std::fmt::Debug for SidekiqSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        debug_source(f, "SidekiqSource", &c.url, &[("namespace", &c.namespace), ("queues", &c.queues)])
    }
}

impl SidekiqSource {
    /// A source for `config`, checked first. Connects lazily: Redis may be down now and come up later.
    pub fn new(config: SidekiqConfig) -> Result<Self, SettingError> {
        config.validate()?;
        let conn = connect(NAME, &config.url, config.tls_verify, config.timeout)?;
        let prefix = match config.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}:"),
            _ => String::new(),
        };
        Ok(Self { config, conn, prefix })
    }

    /// The settings.
    pub fn config(&self) -> &SidekiqConfig {
        &self.config
    }
}

#[async_trait]
impl QueueSource for SidekiqSource {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        // Sidekiq 7.0+'s default `concurrency` (6.x: 10); each process records its own.
        Capabilities::new(true, true, true).with_quiet(true).with_threads(5)
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let fut = self.read();
        match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout { source_name: NAME.into(), timeout: self.config.timeout }),
        }
    }
}

/// The whole source: the reading, quieting, the event path, the queue list, and the store beside the queue's keys
/// ([`RedisStore`]: a lease key with NX and a TTL, the learned summary).
impl From<SidekiqSource> for Source {
    fn from(source: SidekiqSource) -> Self {
        let store = RedisStore::new(source.conn.clone(), NAME, &source.config.url, &source.prefix);
        let source = Arc::new(source);
        Source::new(source.clone())
            .with_quiet(source.clone())
            .with_events(source.clone())
            .with_inspect(source)
            .with_store(Arc::new(store))
    }
}

#[async_trait]
impl Inspect for SidekiqSource {
    /// The library's own set of every queue pushed to (`SADD queues` on each push).
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        let key = format!("{}queues", self.prefix);
        dyno_scaler_redis::members(self.conn.clone(), (NAME, &self.config.url), &key).await.map(Some)
    }
}

#[async_trait]
impl Events for SidekiqSource {
    /// Client tracking on the queue lists and the schedule and retry sets, else keyspace notifications, else
    /// none ([`dyno_scaler_redis::events`]).
    async fn watch(&self, hints: &Hints) -> Result<(), SourceError> {
        let prefixes: Vec<String> =
            ["queue:", "schedule", "retry"].iter().map(|k| format!("{}{k}", self.prefix)).collect();
        let c = &self.config;
        let w = Watch { name: NAME, url: &c.url, verify: c.tls_verify, timeout: c.timeout, prefixes: &prefixes };
        dyno_scaler_redis::events::watch(w, hints).await
    }
}

#[async_trait]
impl Quiet for SidekiqSource {
    /// Sidekiq's own remote quiet (`Sidekiq::Process#quiet!`): `LPUSH <identity>-signals TSTP` and `EXPIRE 60`
    /// in one transaction per process; the process reads it at its next heartbeat. Embedded processes ignore
    /// remote signals and are skipped.
    async fn quiet(&self, identities: &[String]) -> Result<(), SourceError> {
        let p = &self.prefix;
        let mut conn = self.conn.clone();
        let err = |e| map_redis_error(NAME, &self.config.url, e);
        let mut infos = redis::pipe();
        for id in identities {
            infos.hget(format!("{p}{id}"), "info");
        }
        let infos: Vec<Option<String>> = infos.query_async(&mut conn).await.map_err(err)?;
        let mut signal = redis::pipe();
        signal.atomic();
        for (id, info) in identities.iter().zip(infos) {
            let embedded = info
                .and_then(|i| serde_json::from_str::<serde_json::Value>(&i).ok())
                .and_then(|i| i.get("embedded").and_then(serde_json::Value::as_bool))
                .unwrap_or(false);
            if !embedded {
                let key = format!("{p}{id}-signals");
                signal.lpush(&key, "TSTP").ignore().expire(&key, 60).ignore();
            }
        }
        let _: () = signal.query_async(&mut conn).await.map_err(err)?;
        Ok(())
    }
}

impl SidekiqSource {
    /// Two pipelined round trips: (1) the queue and process sets and the sorted-set counts and samples
    /// (plus the lists themselves when the queues are configured); (2) every list's length and oldest job and
    /// every process's hash and running work.
    async fn read(&self) -> Result<Snapshot, SourceError> {
        let p = &self.prefix;
        let c = &self.config;
        let now = epoch_now();
        let mut conn = self.conn.clone();
        let err = |e| map_redis_error(NAME, &c.url, e);
        let mut r1: Vec<Value> = self.first_trip(now).query_async(&mut conn).await.map_err(err)?;
        let mut rest = r1.split_off(8);
        let mut unreadable = Vec::new();
        // The completion counter (flushed at each heartbeat); unreadable or absent: no counter.
        let processed = dyno_scaler_redis::as_i64(&rest.remove(0)).and_then(|n| u64::try_from(n).ok());
        let processes: Vec<String> =
            readable(rest.remove(0), &format!("{p}processes"), &mut unreadable).map(strings).unwrap_or_default();
        let (queues, mut lists): (Vec<String>, Vec<Value>) = match &c.queues {
            Some(qs) => (qs.clone(), rest),
            None => (
                readable(rest.remove(0), &format!("{p}queues"), &mut unreadable).map(strings).unwrap_or_default(),
                Vec::new(),
            ),
        };
        // The second trip is needed for the processes, and for the lists unless the first trip read them.
        let lists_pending = c.queues.is_none() && !queues.is_empty();
        let mut r2: Vec<Value> = if lists_pending || !processes.is_empty() {
            self.second_trip(&queues, &processes).query_async(&mut conn).await.map_err(err)?
        } else {
            Vec::new()
        };
        if c.queues.is_none() {
            let procs = r2.split_off(queues.len() * 2);
            lists = std::mem::replace(&mut r2, procs);
        }
        let mut snap = build(now, c, &r1, &queues, lists, &processes, r2);
        snap.processed = processed;
        snap.skipped += unreadable.len() as u64;
        snap.unreadable.extend(unreadable);
        Ok(snap)
    }

    /// The first trip: the schedule and retry sets' counts and samples around `now`, the completion counter, the
    /// process set, and the queue set (or the configured queues' lists). A key of the wrong type fails its own
    /// command, not the pipeline: the rest of the reading stands.
    fn first_trip(&self, now: f64) -> redis::Pipeline {
        let (p, c) = (&self.prefix, &self.config);
        let now_s = format!("{now:.6}");
        let after_now = format!("({now_s}");
        let mut one = redis::pipe();
        one.ignore_errors();
        for set in ["schedule", "retry"] {
            let key = format!("{p}{set}");
            one.zcount(&key, "-inf", &now_s).zcount(&key, &after_now, "+inf");
            // ZRANGEBYSCORE rather than ZRANGE ... BYSCORE: Sidekiq 6 supports Redis 5, which has only the former.
            one.cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(&now_s)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(c.due_sample);
            // With scores: the soonest future entry says when the scaler must look again.
            one.cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg(&after_now)
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(c.future_sample);
        }
        one.get(format!("{p}stat:processed"));
        one.smembers(format!("{p}processes"));
        match &c.queues {
            Some(qs) => {
                for q in qs {
                    list_reads(&mut one, p, q);
                }
            }
            None => {
                one.smembers(format!("{p}queues"));
            }
        }
        one
    }

    /// The second trip: each queue's length and oldest job (unless the first read them), and each process's hash
    /// and running work.
    fn second_trip(&self, queues: &[String], processes: &[String]) -> redis::Pipeline {
        let p = &self.prefix;
        let mut two = redis::pipe();
        two.ignore_errors();
        if self.config.queues.is_none() {
            for q in queues {
                list_reads(&mut two, p, q);
            }
        }
        for id in processes {
            two.cmd("HMGET").arg(format!("{p}{id}")).arg(&["info", "busy", "beat", "quiet", "concurrency"]);
            two.hgetall(format!("{p}{id}:work")).hgetall(format!("{p}{id}:workers"));
        }
        two
    }
}

pub(crate) fn readable(v: Value, key: &str, unreadable: &mut Vec<String>) -> Option<Value> {
    dyno_scaler_redis::readable(NAME, v, key, unreadable)
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn list_reads(pipe: &mut redis::Pipeline, prefix: &str, queue: &str) {
    let key = format!("{prefix}queue:{queue}");
    pipe.llen(&key).lindex(&key, -1);
}
