//! dyno-scaler [`QueueSource`] for [Resque](https://github.com/resque/resque) (Redis).
//!
//! One snapshot is one round trip (a Lua script): queue lengths and the oldest job of each queue, the
//! registered workers with their running job and heartbeat, and resque-scheduler's delayed jobs (due ones
//! count as ready: the scheduler has not moved them yet, and never will while no scheduler runs).
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

mod redis_util;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::secret::redact_url;
use dyno_scaler_core::timefmt::parse_rfc3339;
use dyno_scaler_core::{QueueSource, QueueStats, Secret, Snapshot, SourceError, WorkerInfo};
use redis::Value;
use redis::aio::ConnectionManager;

use redis_util::{as_f64, as_i64, as_str, connect, map_redis_error};

const NAME: &str = "resque";
static SCRIPT: &str = include_str!("snapshot.lua");

/// Settings of a [`ResqueSource`].
#[derive(Debug, Clone)]
pub struct ResqueConfig {
    /// Redis URL. Secret: it may hold a password.
    pub url: Secret,
    /// Key namespace, `resque` by default (keys are `<namespace>:queue:<q>`).
    pub namespace: String,
    /// Queues to watch; `None` watches every queue in `<ns>:queues`.
    pub queues: Option<Vec<String>>,
    /// A worker whose heartbeat is missing or older than this is dead.
    pub stale_after: Duration,
    /// Bound on one snapshot, connection included.
    pub timeout: Duration,
    /// How many delayed timestamps (and decoded delayed jobs) one snapshot reads at most.
    pub delayed_cap: usize,
}

impl ResqueConfig {
    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            namespace: "resque".into(),
            queues: None,
            stale_after: Duration::from_secs(300),
            timeout: Duration::from_secs(2),
            delayed_cap: 1000,
        }
    }
}

/// Reads Resque's queues, workers and resque-scheduler's delayed jobs.
#[derive(Clone)]
pub struct ResqueSource {
    config: ResqueConfig,
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl std::fmt::Debug for ResqueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResqueSource")
            .field("url", &redact_url(self.config.url.expose()))
            .field("namespace", &self.config.namespace)
            .field("queues", &self.config.queues)
            .finish()
    }
}

impl ResqueSource {
    /// A source for `config`. Connects lazily: Redis may be down now and come up later.
    pub fn new(config: ResqueConfig) -> Result<Self, SourceError> {
        let conn = connect(NAME, &config.url, config.timeout)?;
        let prefix = if config.namespace.is_empty() { String::new() } else { format!("{}:", config.namespace) };
        Ok(Self { config, conn, script: redis::Script::new(SCRIPT), prefix })
    }
}

#[async_trait]
impl QueueSource for ResqueSource {
    fn name(&self) -> &str {
        NAME
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let mut inv = self.script.prepare_invoke();
        inv.arg(&self.prefix).arg(self.config.delayed_cap);
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

/// A queue entry that is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Resque payload")]
pub struct MalformedPayload;

/// When a Resque payload says it was enqueued, in seconds since the epoch: the Judoscale `timestamp` field or
/// Active Job's `args[0].enqueued_at`. `Ok(None)` for a stock payload, `Err` for one that is not a JSON object.
///
/// ```
/// use dyno_scaler_resque::payload_enqueued_at;
/// assert_eq!(payload_enqueued_at(br#"{"class":"ImageResizer","args":[42,"thumb"]}"#), Ok(None));
/// assert_eq!(payload_enqueued_at(br#"{"class":"X","args":[],"timestamp":1718182981.5}"#), Ok(Some(1718182981.5)));
/// let aj = br#"{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"SyncJob","enqueued_at":"2024-06-12T09:03:01.000000000Z"}]}"#;
/// assert_eq!(payload_enqueued_at(aj), Ok(Some(1718182981.0)));
/// assert!(payload_enqueued_at(b"{oops").is_err());
/// ```
pub fn payload_enqueued_at(raw: &[u8]) -> Result<Option<f64>, MalformedPayload> {
    let job: serde_json::Value = serde_json::from_slice(raw).map_err(|_| MalformedPayload)?;
    let obj = job.as_object().ok_or(MalformedPayload)?;
    if let Some(ts) = obj.get("timestamp").and_then(|v| v.as_f64()) {
        return Ok(Some(ts));
    }
    let aj = obj
        .get("args")
        .and_then(|a| a.get(0))
        .and_then(|a| a.get("enqueued_at"))
        .and_then(|e| e.as_str())
        .and_then(parse_rfc3339);
    Ok(aj)
}

fn parse(value: Value, config: &ResqueConfig) -> Result<Snapshot, String> {
    let Value::Array(top) = value else { return Err("script reply is not an array".into()) };
    let [now, queues, workers, heartbeats, sampled, totals, bad]: [Value; 7] =
        top.try_into().map_err(|_| "script reply has the wrong length".to_string())?;
    let now = as_f64(&now).ok_or("no server time")?;
    let watched = |q: &str| config.queues.as_ref().is_none_or(|w| w.iter().any(|x| x == q));
    let age_of = |ts: f64| Duration::from_secs_f64((now - ts).max(0.0));
    let mut snap = Snapshot { workers: Some(Vec::new()), ..Snapshot::default() };

    for entry in array(queues) {
        let [name, len, oldest]: [Value; 3] = array(entry).try_into().map_err(|_| "bad queue entry")?;
        let name = as_str(&name).ok_or("queue name")?.to_owned();
        let mut stats = QueueStats { ready: as_i64(&len).unwrap_or(0).max(0) as u64, ..QueueStats::default() };
        if let Value::BulkString(raw) = &oldest {
            match payload_enqueued_at(raw) {
                Ok(ts) => stats.oldest_ready_age = ts.map(age_of),
                Err(MalformedPayload) => snap.skipped += 1,
            }
        }
        snap.add(&name, stats);
    }

    // Delayed jobs.
    let totals: Vec<u64> = array(totals).iter().map(|v| as_i64(v).unwrap_or(0).max(0) as u64).collect();
    let [due_total, future_total] = totals.as_slice() else { return Err("bad delayed totals".into()) };
    let bad = as_i64(&bad).unwrap_or(0).max(0) as u64;
    snap.skipped += bad;
    let mut per: BTreeMap<String, (u64, u64, Option<f64>)> = BTreeMap::new();
    for entry in array(sampled) {
        let [q, due, future, oldest]: [Value; 4] = array(entry).try_into().map_err(|_| "bad delayed entry")?;
        let q = as_str(&q).ok_or("delayed queue")?.to_owned();
        per.insert(q, (as_i64(&due).unwrap_or(0) as u64, as_i64(&future).unwrap_or(0) as u64, as_f64(&oldest)));
    }
    let sampled_due: u64 = per.values().map(|e| e.0).sum();
    let sampled_future: u64 = per.values().map(|e| e.1).sum();
    let scale = |n: u64, sampled: u64, total: u64| -> u64 {
        if sampled == 0 || total <= sampled { n } else { (n as f64 * total as f64 / sampled as f64).round() as u64 }
    };
    for (q, (due, future, oldest)) in per {
        if watched(&q) {
            snap.add(
                &q,
                QueueStats {
                    ready: scale(due, sampled_due, due_total.saturating_sub(bad)),
                    scheduled: scale(future, sampled_future, *future_total),
                    oldest_ready_age: oldest.map(age_of),
                    running: 0,
                },
            );
        }
    }

    // Workers: live iff their heartbeat exists and is fresh.
    let hb = array(heartbeats);
    let beats: HashMap<&str, Option<f64>> = hb
        .chunks(2)
        .filter_map(|p| Some((as_str(p.first()?)?, p.get(1).and_then(as_str).and_then(parse_rfc3339))))
        .collect();
    let stale = config.stale_after.as_secs_f64();
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    let list = snap.workers.as_mut().expect("set above");
    for entry in array(workers) {
        let [id, job]: [Value; 2] = array(entry).try_into().map_err(|_| "bad worker entry")?;
        let Some(id) = as_str(&id) else { continue };
        match beats.get(id) {
            Some(Some(beat)) if now - beat <= stale => {}
            Some(None) => {
                snap.skipped += 1; // unreadable heartbeat
                continue;
            }
            _ => continue, // dead registration
        }
        let busy_queue = match &job {
            Value::BulkString(raw) => {
                match serde_json::from_slice::<serde_json::Value>(raw)
                    .ok()
                    .and_then(|j| j.get("queue").and_then(|q| q.as_str()).map(str::to_owned))
                {
                    Some(q) => Some(q),
                    None => {
                        snap.skipped += 1;
                        continue;
                    }
                }
            }
            _ => None,
        };
        if let Some(q) = &busy_queue {
            if !watched(q) {
                continue;
            }
            *running.entry(q.clone()).or_default() += 1;
        }
        list.push(WorkerInfo {
            identity: id.to_owned(),
            dyno: None,
            busy: u32::from(busy_queue.is_some()),
            quiet: false,
        });
    }
    for (q, n) in running {
        snap.add(&q, QueueStats { running: n, ..QueueStats::default() });
    }
    Ok(snap)
}

fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
}
