//! Turning the replies of one snapshot's two round trips into a [`Snapshot`]: timestamps, identities, the
//! per-queue split of the sorted sets, live processes and their work.

use std::collections::BTreeMap;
use std::time::Duration;

use dyno_scaler_core::timefmt::plausible_age;
use dyno_scaler_core::{QueueStats, Snapshot, WorkerInfo};
use dyno_scaler_redis::{Collected, add_queue_lists, array, as_f64, as_i64, as_str, items, scale, watched};
use redis::Value;

use crate::{NAME, SidekiqConfig, readable};

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

pub(crate) fn build(
    now: f64,
    config: &SidekiqConfig,
    sets: &[Value],
    queues: &[String],
    lists: Vec<Value>,
    processes: &[String],
    procs: Vec<Value>,
) -> Snapshot {
    let p = match config.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}:"),
        _ => String::new(),
    };
    let mut r = Reading { now, config, p, out: Collected::new() };
    // Lists: length and the oldest job (index -1).
    add_queue_lists(NAME, &r.p, queues, lists, &mut r.out.snap, &mut r.out.unreadable, |raw| {
        job_age(raw, now).map(Some).ok_or(())
    });
    r.sorted_sets(sets);
    r.processes(processes, procs);
    r.out.finish()
}

/// One snapshot being read: its time, the settings, the key prefix, and what is read so far.
struct Reading<'a> {
    now: f64,
    config: &'a SidekiqConfig,
    /// The namespace's key prefix (`ns:`), or empty.
    p: String,
    out: Collected,
}

impl Reading<'_> {
    fn watched(&self, q: &str) -> bool {
        watched(self.config.queues.as_deref(), q)
    }

    /// The `schedule` and `retry` sets: exact totals by `ZCOUNT`, the per-queue split from bounded samples.
    fn sorted_sets(&mut self, sets: &[Value]) {
        let now = self.now;
        let mut due_total = 0u64;
        let mut future_total = 0u64;
        let mut per: BTreeMap<String, (u64, u64, Option<f64>)> = BTreeMap::new();
        let mut bad = 0u64;
        let mut next_due: Option<f64> = None;
        for (set, name) in sets.chunks(4).zip(["schedule", "retry"]) {
            let [due, future, due_sample, future_sample] = set else { continue };
            if let Some(refused) = set.iter().find(|v| matches!(v, Value::ServerError(_))) {
                readable(refused.clone(), &format!("{}{name}", self.p), &mut self.out.unreadable);
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
            for pair in items(future_sample).chunks(2) {
                if let Some(due) = pair.get(1).and_then(as_f64).filter(|s| *s > now) {
                    next_due = Some(next_due.map_or(due, |n: f64| n.min(due)));
                }
                match pair.first().and_then(|m| if let Value::BulkString(b) = m { sorted_set_queue(b) } else { None }) {
                    Some(q) => per.entry(q).or_default().1 += 1,
                    None => bad += 1,
                }
            }
        }
        self.out.snap.skipped += bad;
        self.out.snap.next_due = next_due.and_then(|d| std::time::Duration::try_from_secs_f64(d - now).ok());
        let sampled_due: u64 = per.values().map(|e| e.0).sum();
        let sampled_future: u64 = per.values().map(|e| e.1).sum();
        for (q, (due, future, oldest)) in per {
            if self.watched(&q) {
                self.out.snap.add(&q, {
                    let mut q = QueueStats::new(
                        scale(due, sampled_due, due_total.saturating_sub(bad)),
                        0,
                        scale(future, sampled_future, future_total),
                    );
                    q.oldest_ready_age = oldest.and_then(|ts| plausible_age(ts, now));
                    q
                });
            }
        }
    }

    /// The processes: live iff the hash has a beat younger than the heartbeat TTL; their work, per queue.
    fn processes(&mut self, processes: &[String], procs: Vec<Value>) {
        let now = self.now;
        let ttl = self.config.heartbeat_ttl.as_secs_f64();
        let mut running: BTreeMap<String, u64> = BTreeMap::new();
        let mut procs = procs.into_iter();
        for identity in processes {
            let (Some(fields), Some(work7), Some(work6)) = (procs.next(), procs.next(), procs.next()) else { break };
            let Some(fields) = readable(fields, &format!("{}{identity}", self.p), &mut self.out.unreadable).map(array)
            else {
                continue;
            };
            let work7 =
                readable(work7, &format!("{}{identity}:work", self.p), &mut self.out.unreadable).unwrap_or(Value::Nil);
            let work6 = readable(work6, &format!("{}{identity}:workers", self.p), &mut self.out.unreadable)
                .unwrap_or(Value::Nil);
            let [info, busy, beat, quiet, concurrency] = fields.as_slice() else {
                self.out.snap.skipped += 1;
                continue;
            };
            let Some(beat) = as_f64(beat) else {
                // Hash expired (a dead process left in the set) or a record without a heartbeat.
                if !matches!(info, Value::Nil) {
                    self.out.snap.skipped += 1;
                }
                continue;
            };
            if now - beat > ttl {
                continue;
            }
            let Some(busy) = as_i64(busy).and_then(|b| u32::try_from(b).ok()) else {
                self.out.snap.skipped += 1;
                continue;
            };
            let info = as_str(info).and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok());
            let host = info
                .as_ref()
                .and_then(|i| i.get("hostname").and_then(|h| h.as_str()).map(str::to_owned))
                .unwrap_or_else(|| identity_host(identity).to_owned());
            // Sidekiq 8.1.2+ writes the threads as a field of the hash (sidekiq #6943); older ones inside `info`.
            let threads = as_i64(concurrency)
                .and_then(|n| u64::try_from(n).ok())
                .or_else(|| info.as_ref().and_then(|i| i.get("concurrency")).and_then(serde_json::Value::as_u64));
            if let Some(n) = threads {
                *self.out.snap.threads.get_or_insert(0) += n;
            }
            let work = match array(work7) {
                w if w.is_empty() => array(work6),
                w => w,
            };
            for pair in work.chunks(2) {
                let job = pair.get(1).and_then(as_str).and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
                match job.as_ref().and_then(|j| j.get("queue")).and_then(|q| q.as_str()) {
                    Some(q) => *running.entry(q.to_owned()).or_default() += 1,
                    None => self.out.snap.skipped += 1,
                }
            }
            self.out.snap.workers.get_or_insert_with(Vec::new).push(
                WorkerInfo::new(identity.clone(), Some(host), busy)
                    .with_quiet(as_str(quiet) == Some("true"))
                    .with_beat(Duration::try_from_secs_f64(beat).ok().map(|d| std::time::UNIX_EPOCH + d)),
            );
        }
        for (q, n) in running {
            if self.watched(&q) {
                self.out.snap.add(&q, QueueStats::running(n));
            } else {
                // Not demand, but the process running it is busy (its `busy` count says so too).
                self.out.snap.running_elsewhere += n;
            }
        }
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
