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

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::secret::redact_url;
use dyno_scaler_core::timefmt::plausible_age;
use dyno_scaler_core::{
    Capabilities, QueueSource, QueueStats, Secret, SettingError, Snapshot, SourceError, WorkerInfo, check,
};
use redis::Value;
use redis::aio::ConnectionManager;

pub use dyno_scaler_redis::TlsVerify;
use dyno_scaler_redis::{array, as_f64, as_i64, as_str, connect, items, map_redis_error, scale, strings};

const NAME: &str = "sidekiq";

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
    pub heartbeat_ttl: Duration,
    /// Whether a `rediss://` URL's certificate is checked (Heroku's Redis needs [`TlsVerify::None`]).
    #[serde(rename = "redis_tls_verify")]
    pub tls_verify: TlsVerify,
    /// Bound on one snapshot, connection included.
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
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for SidekiqSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidekiqSource")
            .field("url", &redact_url(self.config.url.expose()))
            .field("namespace", &self.config.namespace)
            .field("queues", &self.config.queues)
            .finish()
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
        Capabilities { names_hosts: true, latency: true, worker_registry: true, quiet: true }
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let fut = self.read();
        match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout { source_name: NAME.into(), timeout: self.config.timeout }),
        }
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
        let now_s = format!("{now:.6}");
        let after_now = format!("({now_s}");
        let mut conn = self.conn.clone();
        let err = |e| map_redis_error(NAME, &c.url, e);

        // A key of the wrong type fails its own command, not the pipeline: the rest of the reading stands.
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
            one.cmd("ZRANGEBYSCORE").arg(&key).arg(&after_now).arg("+inf").arg("LIMIT").arg(0).arg(c.future_sample);
        }
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
        let mut r1: Vec<Value> = one.query_async(&mut conn).await.map_err(err)?;
        let mut rest = r1.split_off(8);
        let mut unreadable = Vec::new();
        let processes: Vec<String> =
            readable(rest.remove(0), &format!("{p}processes"), &mut unreadable).map(strings).unwrap_or_default();
        let (queues, mut lists): (Vec<String>, Vec<Value>) = match &c.queues {
            Some(qs) => (qs.clone(), rest),
            None => (
                readable(rest.remove(0), &format!("{p}queues"), &mut unreadable).map(strings).unwrap_or_default(),
                Vec::new(),
            ),
        };

        let mut two = redis::pipe();
        two.ignore_errors();
        if c.queues.is_none() {
            for q in &queues {
                list_reads(&mut two, p, q);
            }
        }
        for id in &processes {
            two.cmd("HMGET").arg(format!("{p}{id}")).arg(&["info", "busy", "beat", "quiet"]);
            two.hgetall(format!("{p}{id}:work")).hgetall(format!("{p}{id}:workers"));
        }
        // The second trip is needed for the processes, and for the lists unless the first trip read them.
        let lists_pending = c.queues.is_none() && !queues.is_empty();
        let mut r2: Vec<Value> = if lists_pending || !processes.is_empty() {
            two.query_async(&mut conn).await.map_err(err)?
        } else {
            Vec::new()
        };
        if c.queues.is_none() {
            let procs = r2.split_off(queues.len() * 2);
            lists = std::mem::replace(&mut r2, procs);
        }
        let mut snap = build(now, c, &r1, &queues, lists, &processes, r2);
        snap.skipped += unreadable.len() as u64;
        snap.unreadable.extend(unreadable);
        Ok(snap)
    }
}

fn readable(v: Value, key: &str, unreadable: &mut Vec<String>) -> Option<Value> {
    dyno_scaler_redis::readable(NAME, v, key, unreadable)
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn list_reads(pipe: &mut redis::Pipeline, prefix: &str, queue: &str) {
    let key = format!("{prefix}queue:{queue}");
    pipe.llen(&key).lindex(&key, -1);
}

/// Seconds since the epoch of a Sidekiq job timestamp: a float is seconds (Sidekiq ≤ 7), an integer is
/// milliseconds (Sidekiq 8), except integers below 10^11, which only make sense as seconds.
///
/// ```
/// use dyno_scaler_sidekiq::job_timestamp;
/// use serde_json::json;
/// assert_eq!(job_timestamp(&json!(1718182985.5)), Some(1718182985.5));
/// assert_eq!(job_timestamp(&json!(1718182985125u64)), Some(1718182985.125));
/// assert_eq!(job_timestamp(&json!(1718182985u64)), Some(1718182985.0));
/// assert_eq!(job_timestamp(&json!("yesterday")), None);
/// ```
pub fn job_timestamp(v: &serde_json::Value) -> Option<f64> {
    if let Some(i) = v.as_i64().or_else(|| v.as_u64().and_then(|u| i64::try_from(u).ok())) {
        return Some(if i.abs() < 100_000_000_000 { i as f64 } else { i as f64 / 1000.0 });
    }
    v.as_f64().filter(|f| f.is_finite())
}

/// Only the two timestamps of a job; every other field is skipped without being built.
#[derive(serde::Deserialize)]
struct Stamps {
    #[serde(default)]
    enqueued_at: Option<serde_json::Value>,
    #[serde(default)]
    created_at: Option<serde_json::Value>,
}

fn job_age(raw: &[u8], now: f64) -> Option<Duration> {
    let job: Stamps = serde_json::from_slice(raw).ok()?;
    let ts = job.enqueued_at.filter(|v| !v.is_null()).or(job.created_at)?;
    plausible_age(job_timestamp(&ts)?, now)
}

/// The host part of an identity `<host>:<pid>:<nonce>` (the host may itself contain `:`).
fn identity_host(identity: &str) -> &str {
    let mut parts = identity.rsplitn(3, ':');
    let _nonce = parts.next();
    let _pid = parts.next();
    parts.next().unwrap_or(identity)
}

/// Queue of a job in the `schedule`/`retry` sets (`retry_queue` wins), read without trusting the shape.
fn sorted_set_queue(raw: &[u8]) -> Option<String> {
    let job: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let q = job.get("retry_queue").and_then(|q| q.as_str()).or_else(|| job.get("queue").and_then(|q| q.as_str()))?;
    Some(q.to_owned())
}

fn build(
    now: f64,
    config: &SidekiqConfig,
    sets: &[Value],
    queues: &[String],
    lists: Vec<Value>,
    processes: &[String],
    procs: Vec<Value>,
) -> Snapshot {
    let watched = |q: &str| config.queues.as_ref().is_none_or(|w| w.iter().any(|x| x == q));
    let p = match config.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}:"),
        _ => String::new(),
    };
    let mut snap = Snapshot { workers: Some(Vec::new()), ..Snapshot::default() };
    let mut unreadable = Vec::new();

    // Lists: length and the oldest job (index -1).
    let mut lists = lists.into_iter();
    for q in queues {
        let (Some(len), Some(oldest)) = (lists.next(), lists.next()) else { break };
        let Some(len) = readable(len, &format!("{p}queue:{q}"), &mut unreadable) else { continue };
        let mut stats = QueueStats { ready: as_i64(&len).unwrap_or(0).max(0) as u64, ..QueueStats::default() };
        if let Value::BulkString(raw) = &oldest {
            match job_age(raw, now) {
                Some(age) => stats.oldest_ready_age = Some(age),
                None => snap.skipped += 1,
            }
        }
        snap.add(q, stats);
    }

    // Sorted sets: exact totals by ZCOUNT, the per-queue split from bounded samples.
    let mut due_total = 0u64;
    let mut future_total = 0u64;
    let mut per: BTreeMap<String, (u64, u64, Option<f64>)> = BTreeMap::new();
    let mut bad = 0u64;
    for (set, name) in sets.chunks(4).zip(["schedule", "retry"]) {
        let [due, future, due_sample, future_sample] = set else { continue };
        if let Some(refused) = set.iter().find(|v| matches!(v, Value::ServerError(_))) {
            readable(refused.clone(), &format!("{p}{name}"), &mut unreadable);
            continue;
        }
        due_total += as_i64(due).unwrap_or(0).max(0) as u64;
        future_total += as_i64(future).unwrap_or(0).max(0) as u64;
        for pair in items(due_sample).chunks(2) {
            // A score that cannot be a time (0, negative) is still due, but says nothing of latency.
            let score = pair.get(1).and_then(as_f64).filter(|s| plausible_age(*s, now).is_some());
            match pair.first().and_then(|m| if let Value::BulkString(b) = m { sorted_set_queue(b) } else { None }) {
                Some(q) => {
                    let e = per.entry(q).or_default();
                    e.0 += 1;
                    e.2 = match (e.2, score) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => bad += 1,
            }
        }
        for m in items(future_sample) {
            match if let Value::BulkString(b) = m { sorted_set_queue(b) } else { None } {
                Some(q) => per.entry(q).or_default().1 += 1,
                None => bad += 1,
            }
        }
    }
    snap.skipped += bad;
    let sampled_due: u64 = per.values().map(|e| e.0).sum();
    let sampled_future: u64 = per.values().map(|e| e.1).sum();
    for (q, (due, future, oldest)) in per {
        if watched(&q) {
            snap.add(
                &q,
                QueueStats {
                    ready: scale(due, sampled_due, due_total.saturating_sub(bad)),
                    scheduled: scale(future, sampled_future, future_total),
                    oldest_ready_age: oldest.and_then(|ts| plausible_age(ts, now)),
                    running: 0,
                },
            );
        }
    }

    // Processes: live iff the hash has a beat younger than the heartbeat TTL.
    let ttl = config.heartbeat_ttl.as_secs_f64();
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    let workers = snap.workers.as_mut().expect("set above");
    let mut procs = procs.into_iter();
    for identity in processes {
        let (Some(fields), Some(work7), Some(work6)) = (procs.next(), procs.next(), procs.next()) else { break };
        let Some(fields) = readable(fields, &format!("{p}{identity}"), &mut unreadable).map(array) else { continue };
        let work7 = readable(work7, &format!("{p}{identity}:work"), &mut unreadable).unwrap_or(Value::Nil);
        let work6 = readable(work6, &format!("{p}{identity}:workers"), &mut unreadable).unwrap_or(Value::Nil);
        let [info, busy, beat, quiet] = fields.as_slice() else {
            snap.skipped += 1;
            continue;
        };
        let Some(beat) = as_f64(beat) else {
            // Hash expired (a dead process left in the set) or a record without a heartbeat.
            if !matches!(info, Value::Nil) {
                snap.skipped += 1;
            }
            continue;
        };
        if now - beat > ttl {
            continue;
        }
        let Some(busy) = as_i64(busy).and_then(|b| u32::try_from(b).ok()) else {
            snap.skipped += 1;
            continue;
        };
        let host = as_str(info)
            .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
            .and_then(|i| i.get("hostname").and_then(|h| h.as_str()).map(str::to_owned))
            .unwrap_or_else(|| identity_host(identity).to_owned());
        let work = match array(work7) {
            w if w.is_empty() => array(work6),
            w => w,
        };
        for pair in work.chunks(2) {
            let job = pair.get(1).and_then(as_str).and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
            match job.as_ref().and_then(|j| j.get("queue")).and_then(|q| q.as_str()) {
                Some(q) => *running.entry(q.to_owned()).or_default() += 1,
                None => snap.skipped += 1,
            }
        }
        workers.push(WorkerInfo {
            identity: identity.clone(),
            dyno: Some(host),
            busy,
            quiet: as_str(quiet) == Some("true"),
        });
    }
    for (q, n) in running {
        if watched(&q) {
            snap.add(&q, QueueStats { running: n, ..QueueStats::default() });
        }
    }
    snap.skipped += unreadable.len() as u64;
    snap.unreadable = unreadable;
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_host_parses_from_the_right() {
        assert_eq!(identity_host("worker.3:4:a1b2c3d4e5f6"), "worker.3");
        assert_eq!(identity_host("vm:26481:b5d81fc0cfb1"), "vm");
        assert_eq!(identity_host("fe80::1:4:abc"), "fe80::1");
    }

    #[test]
    fn job_age_reads_both_formats_and_falls_back_to_created_at() {
        let now = 1_718_183_000.0;
        let v8 = br#"{"queue":"default","created_at":1718182985123,"enqueued_at":1718182985125}"#;
        let v7 = br#"{"queue":"default","created_at":1718182985.1234567,"enqueued_at":1718182985.1251234}"#;
        let sched = br#"{"queue":"default","created_at":1718182990.0}"#;
        assert!((job_age(v8, now).unwrap().as_secs_f64() - 14.875).abs() < 1e-6);
        assert!((job_age(v7, now).unwrap().as_secs_f64() - 14.8748766).abs() < 1e-6);
        assert_eq!(job_age(sched, now).unwrap().as_secs(), 10);
        assert_eq!(job_age(b"not json", now), None);
        assert_eq!(job_age(br#"{"queue":"x","enqueued_at":"soon"}"#, now), None);
        assert_eq!(job_age(br#"{"queue":"x"}"#, now), None);
        // Clock skew: a job from the future has age 0.
        assert_eq!(job_age(br#"{"enqueued_at":1718183100.0}"#, now), Some(Duration::ZERO));
    }
}
