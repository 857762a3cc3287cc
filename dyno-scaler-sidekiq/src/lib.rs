//! dyno-scaler [`QueueSource`] for [Sidekiq](https://sidekiq.org) (Redis).
//!
//! One snapshot is one round trip: a Lua script reads, for every queue, its length and its oldest job
//! (`LINDEX queue:<q> -1`), counts due and future entries of the `schedule` and `retry` sets with `ZCOUNT`
//! (due entries are ready work Sidekiq's poller has not moved yet), splits them per queue from a bounded
//! sample, and reads every process hash and its running-work hash. Nothing is scanned without a bound and
//! `KEYS` is never used.
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

mod redis_util;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::secret::redact_url;
use dyno_scaler_core::{QueueSource, QueueStats, Secret, Snapshot, SourceError, WorkerInfo};
use redis::Value;
use redis::aio::ConnectionManager;

use redis_util::{as_f64, as_i64, as_str, connect, map_redis_error};

const NAME: &str = "sidekiq";
static SCRIPT: &str = include_str!("snapshot.lua");

/// Settings of a [`SidekiqSource`].
#[derive(Debug, Clone)]
pub struct SidekiqConfig {
    /// Redis URL (`redis://[:password@]host:port/db`, or `rediss://` for TLS). Secret: it may hold a password.
    pub url: Secret,
    /// Key prefix for apps that use `redis-namespace` with Sidekiq ≤ 6 (e.g. `myapp`); empty by default.
    pub namespace: Option<String>,
    /// Queues to watch; `None` watches every queue in the `queues` set.
    pub queues: Option<Vec<String>>,
    /// A process whose last heartbeat is older than this is dead (Sidekiq's own expiry is 60 s).
    pub heartbeat_ttl: Duration,
    /// Bound on one snapshot, connection included.
    pub timeout: Duration,
    /// How many due `schedule`/`retry` entries (per set) are decoded to split them per queue; beyond it the
    /// split is estimated in proportion (totals stay exact).
    pub due_sample: usize,
    /// Same for future entries (they are not demand; only reported).
    pub future_sample: usize,
}

impl SidekiqConfig {
    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            namespace: None,
            queues: None,
            heartbeat_ttl: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
            due_sample: 500,
            future_sample: 200,
        }
    }
}

/// Reads Sidekiq's queues, scheduled and retry sets, and processes.
#[derive(Clone)]
pub struct SidekiqSource {
    config: SidekiqConfig,
    conn: ConnectionManager,
    script: redis::Script,
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
    /// A source for `config`. Connects lazily: Redis may be down now and come up later.
    pub fn new(config: SidekiqConfig) -> Result<Self, SourceError> {
        let conn = connect(NAME, &config.url, config.timeout)?;
        let prefix = match config.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}:"),
            _ => String::new(),
        };
        Ok(Self { config, conn, script: redis::Script::new(SCRIPT), prefix })
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

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let mut inv = self.script.prepare_invoke();
        inv.arg(&self.prefix).arg(self.config.due_sample).arg(self.config.future_sample);
        if let Some(qs) = &self.config.queues {
            for q in qs {
                inv.arg(q);
            }
        }
        let mut conn = self.conn.clone();
        let fut = inv.invoke_async::<Value>(&mut conn);
        let value = match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(map_redis_error(NAME, &self.config.url, e)),
            Err(_) => return Err(SourceError::Timeout { source_name: NAME.into(), timeout: self.config.timeout }),
        };
        parse(value, &self.config).map_err(|message| SourceError::Protocol { source_name: NAME.into(), message })
    }
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

fn job_age(raw: &[u8], now: f64) -> Option<Duration> {
    let job: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let ts = job.get("enqueued_at").filter(|v| !v.is_null()).or_else(|| job.get("created_at"))?;
    let ts = job_timestamp(ts)?;
    Some(Duration::from_secs_f64((now - ts).max(0.0)))
}

/// The host part of an identity `<host>:<pid>:<nonce>` (the host may itself contain `:`).
fn identity_host(identity: &str) -> &str {
    let mut parts = identity.rsplitn(3, ':');
    let _nonce = parts.next();
    let _pid = parts.next();
    parts.next().unwrap_or(identity)
}

fn parse(value: Value, config: &SidekiqConfig) -> Result<Snapshot, String> {
    let Value::Array(top) = value else { return Err("script reply is not an array".into()) };
    let [now, queues, counts, sampled, bad, procs]: [Value; 6] =
        top.try_into().map_err(|_| "script reply has the wrong length".to_string())?;
    let now = as_f64(&now).ok_or("no server time")?;
    let watched = |q: &str| config.queues.as_ref().is_none_or(|w| w.iter().any(|x| x == q));
    let mut snap = Snapshot { workers: Some(Vec::new()), ..Snapshot::default() };

    // Lists.
    for entry in array(queues) {
        let [name, len, oldest]: [Value; 3] = array(entry).try_into().map_err(|_| "bad queue entry")?;
        let name = as_str(&name).ok_or("queue name")?.to_owned();
        let ready = as_i64(&len).unwrap_or(0).max(0) as u64;
        let mut stats = QueueStats { ready, ..QueueStats::default() };
        if let Value::BulkString(raw) = &oldest {
            match job_age(raw, now) {
                Some(age) => stats.oldest_ready_age = Some(age),
                None => snap.skipped += 1,
            }
        }
        snap.add(&name, stats);
    }

    // Sorted sets: exact totals, per-queue split from the sample.
    let counts: Vec<u64> = array(counts).iter().map(|v| as_i64(v).unwrap_or(0).max(0) as u64).collect();
    let (due_total, future_total) = match counts.as_slice() {
        [sd, sf, rd, rf] => (sd + rd, sf + rf),
        _ => return Err("bad sorted-set counts".into()),
    };
    let bad = as_i64(&bad).unwrap_or(0).max(0) as u64;
    snap.skipped += bad;
    let mut per: BTreeMap<String, (u64, u64, Option<f64>)> = BTreeMap::new();
    for entry in array(sampled) {
        let [q, due, future, oldest]: [Value; 4] = array(entry).try_into().map_err(|_| "bad sample entry")?;
        let q = as_str(&q).ok_or("sample queue")?.to_owned();
        per.insert(q, (as_i64(&due).unwrap_or(0) as u64, as_i64(&future).unwrap_or(0) as u64, as_f64(&oldest)));
    }
    let sampled_due: u64 = per.values().map(|e| e.0).sum();
    let sampled_future: u64 = per.values().map(|e| e.1).sum();
    let scale = |n: u64, sampled: u64, total: u64| -> u64 {
        if sampled == 0 || total <= sampled { n } else { (n as f64 * total as f64 / sampled as f64).round() as u64 }
    };
    for (q, (due, future, oldest)) in per {
        if !watched(&q) {
            continue;
        }
        let stats = QueueStats {
            ready: scale(due, sampled_due, due_total.saturating_sub(bad)),
            scheduled: scale(future, sampled_future, future_total),
            oldest_ready_age: oldest.map(|s| Duration::from_secs_f64((now - s).max(0.0))),
            running: 0,
        };
        snap.add(&q, stats);
    }

    // Processes.
    let ttl = config.heartbeat_ttl.as_secs_f64();
    let workers = snap.workers.as_mut().expect("set above");
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    for entry in array(procs) {
        let [id, info, _concurrency, busy, beat, quiet, work]: [Value; 7] =
            array(entry).try_into().map_err(|_| "bad process entry")?;
        let Some(identity) = as_str(&id).map(str::to_owned) else {
            snap.skipped += 1;
            continue;
        };
        let Some(beat) = as_f64(&beat) else {
            // Hash expired (dead process left in the set) or a record without a heartbeat.
            if !matches!(info, Value::Nil) {
                snap.skipped += 1;
            }
            continue;
        };
        if now - beat > ttl {
            continue;
        }
        let Some(busy) = as_i64(&busy).and_then(|b| u32::try_from(b).ok()) else {
            snap.skipped += 1;
            continue;
        };
        let host = as_str(&info)
            .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
            .and_then(|i| i.get("hostname").and_then(|h| h.as_str()).map(str::to_owned))
            .unwrap_or_else(|| identity_host(&identity).to_owned());
        let work = array(work);
        for pair in work.chunks(2) {
            let job = pair.get(1).and_then(as_str).and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
            match job.as_ref().and_then(|j| j.get("queue")).and_then(|q| q.as_str()) {
                Some(q) => *running.entry(q.to_owned()).or_default() += 1,
                None => snap.skipped += 1,
            }
        }
        workers.push(WorkerInfo { identity, dyno: Some(host), busy, quiet: as_str(&quiet) == Some("true") });
    }
    for (q, n) in running {
        if watched(&q) {
            snap.add(&q, QueueStats { running: n, ..QueueStats::default() });
        }
    }
    Ok(snap)
}

fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
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
