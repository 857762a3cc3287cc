//! A Resque reading in two pipelined round trips: (1) the server time, the queue and worker sets, the heartbeats
//! and the delayed-job timestamps (plus the lists themselves when the queues are configured); (2) every list's
//! length and oldest job, every worker's job, and the delayed lists. A key of the wrong type fails its own command,
//! not the pipeline: the rest of the reading stands, and the key is named in `unreadable`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_core::{Snapshot, SourceError};
use dyno_scaler_redis::{array, as_f64, as_i64, map_redis_error, strings};
use redis::Value;

use crate::reading::{self, Delayed, build, readable};
use crate::worker_name;
use crate::{NAME, ResqueSource};

/// What the first round trip read.
struct First {
    time: Value,
    workers: Vec<String>,
    heartbeats: Value,
    due_stamps: Vec<String>,
    due_count: Value,
    future_stamps: Vec<String>,
    future_count: Value,
    processed: Value,
    /// The queues: configured, or the `queues` set's members.
    queues: Vec<String>,
    /// Each configured queue's length and oldest job (empty when the set was read: the second round reads them).
    lists: Vec<Value>,
}

/// What the second round trip read, split by part.
struct Second {
    lists: Option<Vec<Value>>,
    jobs: Vec<Value>,
    due: Vec<Value>,
    future: Vec<Value>,
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl ResqueSource {
    /// The whole reading.
    pub(crate) async fn read(&self) -> Result<Snapshot, SourceError> {
        // Ages are measured against the exact time; the due window of resque-scheduler's whole-second stamps
        // against the second.
        let exact_start = unix_now();
        let mut unreadable = Vec::new();
        let first = self.first(exact_start as u64, &mut unreadable).await?;
        let second = self.second(&first).await?;
        Ok(self.assemble(exact_start, first, second, unreadable))
    }

    fn schedule_key(&self) -> String {
        format!("{}delayed_queue_schedule", self.prefix)
    }

    async fn first(&self, now: u64, unreadable: &mut Vec<String>) -> Result<First, SourceError> {
        let (p, c) = (&self.prefix, &self.config);
        let schedule = self.schedule_key();
        let mut one = redis::pipe();
        one.ignore_errors();
        one.cmd("TIME");
        one.smembers(format!("{p}workers"));
        one.hgetall(format!("{p}workers:heartbeat"));
        one.cmd("ZRANGEBYSCORE").arg(&schedule).arg("-inf").arg(now).arg("LIMIT").arg(0).arg(c.delayed_cap);
        one.zcount(&schedule, "-inf", now);
        let future = format!("({now}");
        one.cmd("ZRANGEBYSCORE").arg(&schedule).arg(&future).arg("+inf").arg("LIMIT").arg(0).arg(c.future_sample);
        one.zcount(&schedule, &future, "+inf");
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
        let mut r1: Vec<Value> =
            one.query_async(&mut self.conn.clone()).await.map_err(|e| map_redis_error(NAME, &c.url, e))?;
        let mut rest = r1.split_off(8);
        let (queues, lists) = match &c.queues {
            Some(qs) => (qs.clone(), rest),
            None => {
                let set = readable(rest.remove(0), &format!("{p}queues"), unreadable);
                (set.map(strings).unwrap_or_default(), Vec::new())
            }
        };
        let [time, workers, heartbeats, due_stamps, due_count, future_stamps, future_count, processed]: [Value; 8] =
            r1.try_into().map_err(|_| SourceError::Protocol {
                source_name: NAME.into(),
                message: "short reply".into(),
                cause: None,
            })?;
        let mut read = |v: Value, key: &str| readable(v, key, unreadable).unwrap_or(Value::Nil);
        let workers = strings(read(workers, &format!("{p}workers")));
        let heartbeats = read(heartbeats, &format!("{p}workers:heartbeat"));
        let due_stamps = strings(read(due_stamps, &schedule));
        // The other three commands on the same key fail alike: named once.
        let quiet = |v: Value| readable(v, &schedule, &mut Vec::new()).unwrap_or(Value::Nil);
        let (due_count, future_stamps, future_count) =
            (quiet(due_count), strings(quiet(future_stamps)), quiet(future_count));
        Ok(First {
            time,
            workers,
            heartbeats,
            due_stamps,
            due_count,
            future_stamps,
            future_count,
            processed,
            queues,
            lists,
        })
    }

    async fn second(&self, first: &First) -> Result<Second, SourceError> {
        let (p, c) = (&self.prefix, &self.config);
        let mut two = redis::pipe();
        two.ignore_errors();
        if c.queues.is_none() {
            for q in &first.queues {
                let key = format!("{p}queue:{q}");
                two.llen(&key).lindex(&key, 0);
            }
        }
        for id in &first.workers {
            // The running job, and node-resque's liveness key (`worker:ping:<name>`, the id without its queues).
            two.get(format!("{p}worker:{id}")).get(format!("{p}worker:ping:{}", worker_name(id)));
        }
        // Due lists: exact length, and a few jobs of each to split them per queue.
        let per_stamp = (c.delayed_cap / first.due_stamps.len().max(1)).clamp(1, 10) as isize;
        for ts in &first.due_stamps {
            let key = format!("{p}delayed:{ts}");
            two.llen(&key).lrange(&key, 0, per_stamp - 1);
        }
        for ts in &first.future_stamps {
            let key = format!("{p}delayed:{ts}");
            two.llen(&key).lrange(&key, 0, 0);
        }
        let r2: Vec<Value> = if two.cmd_iter().next().is_none() {
            Vec::new()
        } else {
            two.query_async(&mut self.conn.clone()).await.map_err(|e| map_redis_error(NAME, &c.url, e))?
        };
        let mut r2 = r2.into_iter();
        let lists = c.queues.is_none().then(|| r2.by_ref().take(first.queues.len() * 2).collect());
        let jobs = r2.by_ref().take(first.workers.len() * 2).collect();
        let due = r2.by_ref().take(first.due_stamps.len() * 2).collect();
        Ok(Second { lists, jobs, due, future: r2.collect() })
    }

    fn assemble(&self, exact_start: f64, first: First, second: Second, unreadable: Vec<String>) -> Snapshot {
        let now = exact_start as u64;
        let server_now = match array(first.time).as_slice() {
            [s, us] => as_f64(s).unwrap_or(now as f64) + as_f64(us).unwrap_or(0.0) / 1e6,
            _ => now as f64,
        };
        let delayed = Delayed {
            due_stamps: &first.due_stamps,
            due_count: as_i64(&first.due_count).unwrap_or(0).max(0) as u64,
            due: second.due,
            future_stamps: first.future_stamps.len() as u64,
            future_count: as_i64(&first.future_count).unwrap_or(0).max(0) as u64,
            future: second.future,
        };
        // resque-scheduler's members are the timestamps themselves: the first future one is when to look again.
        let exact_now = unix_now();
        let next_due = first.future_stamps.first().and_then(|t| t.parse::<f64>().ok()).filter(|t| *t > exact_now);
        let workers =
            reading::Workers { ids: &first.workers, jobs: second.jobs, heartbeats: first.heartbeats, server_now };
        let lists = second.lists.unwrap_or(first.lists);
        let mut snap = build(exact_start, &self.config, &first.queues, lists, workers, delayed);
        snap.next_due = next_due.and_then(|t| Duration::try_from_secs_f64(t - exact_now).ok());
        // The completion counter (incremented as each job ends), and one thread per live worker.
        snap.processed = as_i64(&first.processed).and_then(|n| u64::try_from(n).ok());
        snap.threads = snap.workers.as_ref().map(|w| w.len() as u64);
        snap.skipped += unreadable.len() as u64;
        snap.unreadable.splice(0..0, unreadable);
        snap
    }
}
