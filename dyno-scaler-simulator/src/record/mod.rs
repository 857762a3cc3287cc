//! A trace from what the daemon observes: `dyno-scaler record` folds each reading of a source in
//! ([`Recorder::observe`]) and writes the jobs it implies ([`Recorder::csv`]).
//!
//! A reading names no job, so the jobs are reckoned from counts, the way the adaptive policy learns:
//!
//! - **arrivals**: what is in the system (ready and running) less what was, plus what completed in between (the
//!   store's completion counter, e.g. Sidekiq's `stat:processed`), never counted twice (a count that dips while a
//!   heartbeat lags is made up before anything new counts), spread evenly over the interval between two readings;
//! - **run time**: the running count integrated over time (busy job-seconds; every thread while jobs wait, and
//!   lagging heartbeats settled by the next one: [`busy`]), shared among the jobs by Little's law over the ten
//!   minutes around their arrival, so that the total run time is the busy time observed.
//!
//! Without a completion counter, arrivals are what the ready and running counts gained (a lower bound). No job's
//! arguments or payload are read or written: only counts and queue names. The recording is bounded: past
//! [`MAX_JOBS`] jobs it stops counting ([`Recorder::full`]).
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use dyno_scaler_core::{QueueStats, Snapshot};
//! use dyno_scaler_simulator::record::Recorder;
//! let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
//! let reading = |ready, running, processed| {
//!     let mut s = Snapshot::default();
//!     s.processed = Some(processed);
//!     s.add("default", QueueStats::new(ready, running, 0));
//!     s
//! };
//! let mut r = Recorder::default();
//! r.observe(at(0), &reading(0, 0, 100));
//! r.observe(at(10), &reading(0, 2, 100)); // two jobs came and run
//! r.observe(at(20), &reading(0, 0, 102)); // and finished
//! assert_eq!(r.jobs(), 2);
//! assert_eq!(r.busy_secs(), 20.0);
//! let csv = r.csv();
//! assert!(csv.starts_with("arrived_at,queue,duration_ms\n2027-01-15T08:00:02.500Z,default,10000\n"), "{csv}");
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_core::Snapshot;

mod busy;

/// The most jobs one recording holds (about 40 MB of CSV).
pub const MAX_JOBS: u64 = 1_000_000;
/// Minutes each side of an arrival whose busy time and completions give its jobs' run time.
const WINDOW_MINUTES: usize = 5;

/// One interval's arrivals: from, to (seconds since the epoch), how many, and of which queue.
#[derive(Debug, Clone)]
struct Arrivals {
    from: f64,
    to: f64,
    count: u64,
    queue: usize,
}

/// The last reading's figures.
#[derive(Debug, Clone)]
struct Last {
    at: f64,
    in_queue: BTreeMap<String, u64>,
}

/// The recording in progress.
#[derive(Debug, Default)]
pub struct Recorder {
    start: Option<f64>,
    last: Option<Last>,
    /// Arrivals counted so far.
    arrived: u64,
    /// Jobs in the system and the completion counter at the first reading.
    base: Option<(u64, Option<u64>)>,
    arrivals: Vec<Arrivals>,
    queues: Vec<String>,
    /// Per minute from the start: busy job-seconds and completions.
    minutes: Vec<(f64, f64)>,
    /// The busy time, settled as heartbeats come.
    clock: busy::BusyTime,
    /// Completions counted so far.
    done: u64,
    full: bool,
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Recorder {
    /// Folds in the reading `snap` taken at `at`. Readings must come in time order; a reading with a part
    /// unreadable still counts what it read.
    pub fn observe(&mut self, at: SystemTime, snap: &Snapshot) {
        let now = secs(at);
        let start = *self.start.get_or_insert(now);
        let in_queue: BTreeMap<String, u64> =
            snap.queues.iter().map(|(q, s)| (q.clone(), s.ready + s.running)).collect();
        let in_system = in_queue.values().sum::<u64>() + snap.running_elsewhere;
        let (in_0, processed_0) = *self.base.get_or_insert((in_system, snap.processed));
        let Some(last) = self.last.take().filter(|l| now > l.at) else {
            self.clock.advance(0.0, snap);
            self.last = Some(Last { at: now, in_queue });
            return;
        };
        let dt = now - last.at;
        let minute = ((last.at - start) / 60.0) as usize;
        if self.minutes.len() <= minute {
            self.minutes.resize(minute + 1, (0.0, 0.0));
        }
        self.minutes[minute].0 += self.clock.advance(dt, snap);
        let implied = match (processed_0, snap.processed) {
            (Some(p0), Some(p)) => (in_system + p.saturating_sub(p0)).saturating_sub(in_0),
            // No counter: what the counts gained, a lower bound.
            _ => self.arrived + in_system.saturating_sub(last.in_queue.values().sum::<u64>()),
        };
        let new = implied.saturating_sub(self.arrived);
        if let (Some(p0), Some(p)) = (processed_0, snap.processed) {
            let done = p.saturating_sub(p0);
            self.minutes[minute].1 += done.saturating_sub(self.done) as f64;
            self.done = self.done.max(done);
        }
        if new > 0 && !self.full {
            let new = new.min(MAX_JOBS - self.arrived);
            self.arrived += new;
            self.full = self.arrived >= MAX_JOBS;
            self.split(last.at, now, new, &last.in_queue, &in_queue);
        }
        self.last = Some(Last { at: now, in_queue });
    }

    /// Shares `count` arrivals between `from` and `to` among the queues whose counts grew (the one with the most
    /// work when none did).
    fn split(&mut self, from: f64, to: f64, count: u64, before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
        let grew: Vec<(&String, u64)> =
            after.iter().map(|(q, n)| (q, n.saturating_sub(before.get(q).copied().unwrap_or(0)))).collect();
        let total: u64 = grew.iter().map(|g| g.1).sum();
        let shares: Vec<(String, u64)> = if total == 0 {
            let busiest = after.iter().max_by_key(|(_, n)| **n).map_or("default", |(q, _)| q.as_str());
            vec![(busiest.to_owned(), count)]
        } else {
            let mut given = 0;
            let mut out: Vec<(String, u64)> = grew
                .iter()
                .filter(|g| g.1 > 0)
                .map(|(q, n)| {
                    let share = count * n / total;
                    given += share;
                    ((*q).clone(), share)
                })
                .collect();
            if let Some(first) = out.iter_mut().max_by_key(|s| s.1) {
                first.1 += count - given;
            }
            out
        };
        for (queue, n) in shares.into_iter().filter(|s| s.1 > 0) {
            let queue = match self.queues.iter().position(|q| *q == queue) {
                Some(i) => i,
                None => {
                    self.queues.push(queue);
                    self.queues.len() - 1
                }
            };
            self.arrivals.push(Arrivals { from, to, count: n, queue });
        }
    }

    /// Jobs recorded.
    pub fn jobs(&self) -> u64 {
        self.arrived
    }

    /// Busy job-seconds observed: the recording's total run time.
    pub fn busy_secs(&self) -> f64 {
        self.clock.settled
    }

    /// Whether [`MAX_JOBS`] were recorded and counting stopped.
    pub fn full(&self) -> bool {
        self.full
    }

    /// The mean run time of a job arriving in `minute`, before the total is matched to the busy time.
    fn local_run(&self, minute: usize, arrivals_per_minute: &[f64]) -> f64 {
        let lo = minute.saturating_sub(WINDOW_MINUTES);
        let hi = (minute + WINDOW_MINUTES + 1).min(self.minutes.len().max(arrivals_per_minute.len()));
        let (mut busy, mut done, mut came) = (0.0, 0.0, 0.0);
        for m in lo..hi {
            let (b, d) = self.minutes.get(m).copied().unwrap_or_default();
            busy += b;
            done += d;
            came += arrivals_per_minute.get(m).copied().unwrap_or(0.0);
        }
        let jobs = if done > 0.0 { done } else { came };
        if jobs > 0.0 { busy / jobs } else { 0.0 }
    }

    /// The recording as a trace CSV (`arrived_at,queue,duration_ms`, times in RFC 3339 UTC with milliseconds).
    pub fn csv(&self) -> String {
        let start = self.start.unwrap_or(0.0);
        let minute = |t: f64| ((t - start).max(0.0) / 60.0) as usize;
        let mut per_minute = vec![0.0; self.minutes.len() + 1];
        for a in &self.arrivals {
            let m = minute(a.from);
            if per_minute.len() <= m {
                per_minute.resize(m + 1, 0.0);
            }
            per_minute[m] += a.count as f64;
        }
        let runs: Vec<f64> = (0..per_minute.len()).map(|m| self.local_run(m, &per_minute)).collect();
        let reckoned: f64 = self.arrivals.iter().map(|a| a.count as f64 * runs[minute(a.from)]).sum();
        let scale = if reckoned > 0.0 { self.clock.settled / reckoned } else { 0.0 };
        let mut out = String::with_capacity(40 * self.arrived as usize + 32);
        out.push_str(crate::trace::HEADER);
        out.push('\n');
        for a in &self.arrivals {
            let run_ms = (runs[minute(a.from)] * scale * 1000.0).round().max(0.0);
            let step = (a.to - a.from) / a.count as f64;
            for i in 0..a.count {
                let at = a.from + step * (i as f64 + 0.5);
                let _ = writeln!(out, "{},{},{run_ms}", time(at), csv_field(&self.queues[a.queue]));
            }
        }
        out
    }
}

/// `at` (seconds since the epoch) in RFC 3339 UTC with milliseconds.
pub fn time(at: f64) -> String {
    let ms = (at.max(0.0) * 1000.0).round() as u64;
    let base = dyno_scaler_core::timefmt::format_rfc3339(UNIX_EPOCH + Duration::from_secs(ms / 1000));
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms % 1000)
}

/// A queue name as one CSV field of a trace: a comma or a line break would split it, so they become `_`.
pub fn csv_field(queue: &str) -> String {
    queue.replace([',', '\n', '\r'], "_")
}
