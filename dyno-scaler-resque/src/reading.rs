//! Turning the replies of one snapshot's two round trips into a [`Snapshot`]: payload times, resque-scheduler's
//! delayed jobs split per queue, live workers and their jobs.

use std::collections::{BTreeMap, HashMap};

use dyno_scaler_core::timefmt::{parse_rfc3339, plausible_age};
use dyno_scaler_core::{QueueStats, Snapshot, WorkerInfo};
use dyno_scaler_redis::{Collected, add_queue_lists, array, as_i64, as_str, items, ratio, watched};
use redis::Value;

use crate::{NAME, ResqueConfig};

pub(crate) struct Delayed<'a> {
    pub(crate) due_stamps: &'a [String],
    /// Due timestamps in all (the walk is capped).
    pub(crate) due_count: u64,
    /// LLEN and LRANGE per due timestamp walked.
    pub(crate) due: Vec<Value>,
    pub(crate) future_stamps: u64,
    pub(crate) future_count: u64,
    /// LLEN and LRANGE per future timestamp sampled.
    pub(crate) future: Vec<Value>,
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

/// node-resque's ping (`{"time": <epoch s>, "name", "queues"}`): `Some(None)` when there is none, `None` when
/// it cannot be read.
fn ping_time(v: &Value) -> Option<Option<f64>> {
    match v {
        Value::Nil => Some(None),
        Value::BulkString(b) => {
            let ping: serde_json::Value = serde_json::from_slice(b).ok()?;
            ping.get("time").and_then(serde_json::Value::as_f64).map(Some)
        }
        _ => None,
    }
}

fn job_queue(raw: &Value) -> Option<String> {
    let Value::BulkString(b) = raw else { return None };
    let job: serde_json::Value = serde_json::from_slice(b).ok()?;
    job.get("queue").and_then(|q| q.as_str()).map(str::to_owned)
}

/// The workers' part of a reading: their ids, then per id its job and its node-resque ping, the heartbeats hash,
/// and the Redis server's time (in which the heartbeats are written).
pub(crate) struct Workers<'a> {
    pub(crate) ids: &'a [String],
    pub(crate) jobs: Vec<Value>,
    pub(crate) heartbeats: Value,
    pub(crate) server_now: f64,
}

pub(crate) fn build(
    now: f64,
    config: &ResqueConfig,
    queues: &[String],
    lists: Vec<Value>,
    workers: Workers<'_>,
    delayed: Delayed<'_>,
) -> Snapshot {
    let p = format!("{}:", config.namespace);
    let mut r = Reading { now, config, p, out: Collected::new() };
    // Lists: length and the oldest job (index 0). A time that cannot be meant is skipped like a malformed job.
    add_queue_lists(
        NAME,
        &r.p,
        queues,
        lists,
        &mut r.out.snap,
        &mut r.out.unreadable,
        |raw| match payload_enqueued_at(raw) {
            Ok(None) => Ok(None),
            Ok(Some(ts)) => plausible_age(ts, now).map(Some).ok_or(()),
            Err(MalformedPayload) => Err(()),
        },
    );
    r.delayed(delayed);
    r.workers(workers);
    r.out.finish()
}

/// One snapshot being read: its time, the settings, the key prefix, and what is read so far.
struct Reading<'a> {
    now: f64,
    config: &'a ResqueConfig,
    /// The namespace's key prefix (`ns:`).
    p: String,
    out: Collected,
}

impl Reading<'_> {
    fn watched(&self, q: &str) -> bool {
        watched(self.config.queues.as_deref(), q)
    }

    /// Delayed jobs: per-queue counts from the sampled jobs of each timestamp, scaled to each list's length, then
    /// to the timestamps not walked.
    fn delayed(&mut self, delayed: Delayed<'_>) {
        let mut per: BTreeMap<String, (f64, f64, Option<f64>)> = BTreeMap::new();
        self.walk(&mut per, &delayed.due, Some(delayed.due_stamps), true);
        self.walk(&mut per, &delayed.future, None, false);
        let due_scale = ratio(delayed.due_stamps.len() as u64, delayed.due_count);
        let future_scale = ratio(delayed.future_stamps, delayed.future_count);
        for (q, (due, future, oldest)) in per {
            if self.watched(&q) {
                let stats = {
                    let mut q =
                        QueueStats::new((due * due_scale).round() as u64, 0, (future * future_scale).round() as u64);
                    q.oldest_ready_age = oldest.and_then(|ts| plausible_age(ts, self.now));
                    q
                };
                self.out.snap.add(&q, stats);
            }
        }
    }

    /// Adds the sampled jobs of `pairs` (LLEN and LRANGE per timestamp) to `per`: (due, future, oldest due time).
    fn walk(
        &mut self,
        per: &mut BTreeMap<String, (f64, f64, Option<f64>)>,
        pairs: &[Value],
        stamps: Option<&[String]>,
        due: bool,
    ) {
        for (k, pair) in pairs.chunks(2).enumerate() {
            if pair.iter().any(|v| matches!(v, Value::ServerError(_))) {
                let stamp = stamps.and_then(|s| s.get(k)).map_or("(future)", String::as_str);
                let bad = pair.iter().find(|v| matches!(v, Value::ServerError(_))).cloned().unwrap_or(Value::Nil);
                readable(bad, &format!("{}delayed:{stamp}", self.p), &mut self.out.unreadable);
                continue;
            }
            let len = pair.first().and_then(as_i64).unwrap_or(0).max(0) as u64;
            let sample = pair.get(1).map(items).unwrap_or_default();
            let good: Vec<String> = sample.iter().filter_map(job_queue).collect();
            self.out.snap.skipped += (sample.len() - good.len()) as u64;
            let weight = if good.is_empty() { 0.0 } else { len as f64 / sample.len() as f64 };
            let ts = stamps.and_then(|s| s.get(k)).and_then(|t| t.parse::<f64>().ok());
            for q in good {
                let e = per.entry(q).or_default();
                if due {
                    e.0 += weight;
                    e.2 = match (e.2, ts) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                } else {
                    e.1 += weight;
                }
            }
        }
    }

    /// Workers: live iff their heartbeat (written in Redis server time) exists and is fresh; what each runs.
    fn workers(&mut self, w: Workers<'_>) {
        let hb = array(w.heartbeats);
        let beats: HashMap<&str, Option<f64>> = hb
            .chunks(2)
            .filter_map(|p| Some((as_str(p.first()?)?, p.get(1).and_then(as_str).and_then(parse_rfc3339))))
            .collect();
        let stale = self.config.stale_after.as_secs_f64();
        let mut running: BTreeMap<String, u64> = BTreeMap::new();
        let mut skipped = 0;
        let mut jobs = w.jobs.into_iter();
        for id in w.ids {
            let (Some(job), Some(ping)) = (jobs.next(), jobs.next()) else { break };
            let Some(job) = readable(job, &format!("{}worker:{id}", self.p), &mut self.out.unreadable) else {
                continue;
            };
            // Liveness: Resque >= 1.26 keeps a heartbeat hash and prunes a worker whose heartbeat is stale; a
            // worker that never sent one (node-resque, older Resque) is alive unless node-resque's ping says
            // otherwise.
            match beats.get(id.as_str()) {
                Some(Some(beat)) if w.server_now - beat <= stale => {}
                Some(None) => {
                    skipped += 1; // unreadable heartbeat
                    continue;
                }
                Some(Some(_)) => continue, // dead registration
                None => match ping_time(&ping) {
                    Some(Some(at)) if w.server_now - at > stale => continue, // node-resque stopped pinging
                    Some(_) => {}
                    None => {
                        skipped += 1; // unreadable ping
                        continue;
                    }
                },
            }
            let busy_queue = match &job {
                Value::BulkString(_) => match job_queue(&job) {
                    Some(q) => Some(q),
                    None => {
                        skipped += 1;
                        continue;
                    }
                },
                _ => None,
            };
            if let Some(q) = &busy_queue {
                // A job of an unwatched queue is not demand, but its worker is busy.
                if self.watched(q) {
                    *running.entry(q.clone()).or_default() += 1;
                } else {
                    self.out.snap.running_elsewhere += 1;
                }
            }
            self.out.snap.workers.get_or_insert_with(Vec::new).push(WorkerInfo::new(
                id.clone(),
                None,
                u32::from(busy_queue.is_some()),
            ));
        }
        self.out.snap.skipped += skipped;
        for (q, n) in running {
            self.out.snap.add(&q, QueueStats::running(n));
        }
    }
}

pub(crate) fn readable(v: Value, key: &str, unreadable: &mut Vec<String>) -> Option<Value> {
    dyno_scaler_redis::readable(NAME, v, key, unreadable)
}
