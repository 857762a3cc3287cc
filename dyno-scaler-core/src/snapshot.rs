//! The reading a [`QueueSource`](crate::QueueSource) returns: per-queue figures and the workers seen.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Figures for one queue at the moment of the snapshot.
///
/// Built with its constructors (it may gain fields):
///
/// ```
/// use dyno_scaler_core::QueueStats;
/// use std::time::Duration;
/// let q = QueueStats::new(3, 1, 0).with_oldest(Duration::from_secs(7));
/// assert_eq!((q.ready, q.running, q.oldest_ready_age), (3, 1, Some(Duration::from_secs(7))));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// Jobs runnable now (waiting for a worker).
    pub ready: u64,
    /// Jobs being worked on.
    pub running: u64,
    /// Jobs due later; not demand.
    pub scheduled: u64,
    /// Age of the oldest ready job (queue latency); `None` when nothing is ready or the age is unknown.
    #[serde(serialize_with = "crate::serde_secs::option")]
    pub oldest_ready_age: Option<Duration>,
}

impl QueueStats {
    /// `ready`, `running` and `scheduled` jobs, no latency known.
    pub const fn new(ready: u64, running: u64, scheduled: u64) -> Self {
        Self { ready, running, scheduled, oldest_ready_age: None }
    }

    /// `n` ready jobs.
    pub const fn ready(n: u64) -> Self {
        Self::new(n, 0, 0)
    }

    /// `n` running jobs.
    pub const fn running(n: u64) -> Self {
        Self::new(0, n, 0)
    }

    /// With the age of the oldest ready job.
    pub const fn with_oldest(mut self, age: Duration) -> Self {
        self.oldest_ready_age = Some(age);
        self
    }

    /// Folds another queue's figures into this one (sums, and the larger latency).
    pub fn merge(&mut self, other: &QueueStats) {
        self.ready += other.ready;
        self.running += other.running;
        self.scheduled += other.scheduled;
        self.oldest_ready_age = match (self.oldest_ready_age, other.oldest_ready_age) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// One worker process the backend can see (a Sidekiq process, a Resque worker, ...).
///
/// ```
/// use dyno_scaler_core::WorkerInfo;
/// let w = WorkerInfo::new("worker.3:4:a1b2", Some("worker.3".into()), 2).with_quiet(true);
/// assert_eq!((w.dyno.as_deref(), w.busy, w.quiet, w.beat), (Some("worker.3"), 2, true, None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The backend's identity of the worker (e.g. `worker.3:4:a1b2c3d4e5f6`).
    pub identity: String,
    /// The platform process (dyno) the worker runs in, when the backend tells it (e.g. `worker.3`).
    pub dyno: Option<String>,
    /// Jobs the worker is running.
    pub busy: u32,
    /// The worker takes no new jobs (quiet or stopping).
    pub quiet: bool,
    /// When the backend last heard from the worker, where `busy` is only as fresh as that heartbeat (Sidekiq
    /// publishes it every 5 s in 6.x, 10 s in 7+). `None` where `busy` is written as the job starts.
    #[serde(serialize_with = "crate::serde_secs::option_time")]
    pub beat: Option<std::time::SystemTime>,
}

impl WorkerInfo {
    /// The worker `identity`, on host `dyno` where the backend names it, running `busy` jobs; not quiet, no
    /// heartbeat.
    pub fn new(identity: impl Into<String>, dyno: Option<String>, busy: u32) -> Self {
        Self { identity: identity.into(), dyno, busy, quiet: false, beat: None }
    }

    /// Quiet (takes no new jobs) or not.
    pub fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Heard from at `beat` (a time, or `None`: unknown).
    pub fn with_beat(mut self, beat: impl Into<Option<std::time::SystemTime>>) -> Self {
        self.beat = beat.into();
        self
    }
}

/// One reading of a queue backend.
///
/// `workers` is `None` when the backend cannot list its workers at all (DelayedJob): the policy then knows
/// only the `running` counts. It is `Some` (possibly empty) when the backend has a worker registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Figures per queue name.
    pub queues: BTreeMap<String, QueueStats>,
    /// The workers seen, when the backend has a registry.
    pub workers: Option<Vec<WorkerInfo>>,
    /// Jobs running from queues outside the source's filter: not demand, but the workers running them are busy
    /// and must not be stopped.
    pub running_elsewhere: u64,
    /// Entries skipped because they could not be read (malformed job, missing timestamp, broken process record).
    pub skipped: u64,
    /// Parts of the backend that could not be read at all, named (a key of the wrong type, ...). The rest of the
    /// reading stands, so work that is seen still scales up; while anything is unreadable nothing scales down.
    pub unreadable: Vec<String>,
    /// The backend's cumulative count of finished jobs (Sidekiq's and Resque's `stat:processed`), where it keeps
    /// one: the policy learns throughput and job duration from it.
    pub processed: Option<u64>,
    /// Threads the live workers run at once in total (Sidekiq's `concurrency` summed; one per Resque worker; Solid
    /// Queue's `thread_pool_size`; GoodJob's schedulers' `max_threads`), where the backend says.
    pub threads: Option<u64>,
    /// The hosts those threads run on, where the source counts them without a worker registry (GoodJob's process
    /// records' hostnames); otherwise the hosts of `workers` are.
    pub thread_hosts: Option<u64>,
    /// How long until the earliest job scheduled for later is due, where the source reads it: the scaler wakes
    /// then instead of at its next poll.
    #[serde(serialize_with = "crate::serde_secs::option")]
    pub next_due: Option<Duration>,
    /// What a web process type's requests did over the source's window (the `request_queue` source): their rate,
    /// time in the app and queue time, for the web rule ([`crate::policy::DemandRule::QueueTime`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<crate::requests::RequestStats>,
}

impl Snapshot {
    /// A reading of a backend with a worker registry: `workers` (possibly none).
    pub fn with_workers(mut self, workers: Vec<WorkerInfo>) -> Self {
        self.workers = Some(workers);
        self
    }

    /// The dynos (worker hosts) on which every process is quiet: they take no new job.
    ///
    /// ```
    /// use dyno_scaler_core::{Snapshot, WorkerInfo};
    /// let w = |dyno: &str, quiet| WorkerInfo::new(format!("{dyno}:1:a"), Some(dyno.into()), 0).with_quiet(quiet);
    /// let s = Snapshot::default().with_workers(vec![w("worker.1", true), w("worker.2", true), w("worker.2", false)]);
    /// assert_eq!(s.quiet_dynos(), ["worker.1"]);
    /// ```
    pub fn quiet_dynos(&self) -> Vec<&str> {
        let mut dynos: BTreeMap<&str, bool> = BTreeMap::new();
        for w in self.workers.iter().flatten() {
            if let Some(d) = &w.dyno {
                *dynos.entry(d).or_insert(true) &= w.quiet;
            }
        }
        dynos.into_iter().filter(|(_, quiet)| *quiet).map(|(d, _)| d).collect()
    }

    /// The dynos (worker hosts) on which a process ran a job at its last heartbeat.
    ///
    /// ```
    /// use dyno_scaler_core::{Snapshot, WorkerInfo};
    /// let w = |dyno: &str, busy| WorkerInfo::new(format!("{dyno}:1:a"), Some(dyno.into()), busy);
    /// let s = Snapshot::default().with_workers(vec![w("worker.1", 0), w("worker.2", 0), w("worker.2", 3)]);
    /// assert_eq!(s.busy_dynos(), ["worker.2"]);
    /// ```
    pub fn busy_dynos(&self) -> Vec<&str> {
        let busy = self.workers.iter().flatten().filter(|w| w.busy > 0).filter_map(|w| w.dyno.as_deref());
        busy.collect::<std::collections::BTreeSet<_>>().into_iter().collect()
    }

    /// The sum over all queues (latency: the largest).
    pub fn totals(&self) -> QueueStats {
        let mut total = QueueStats::default();
        for q in self.queues.values() {
            total.merge(q);
        }
        total
    }

    /// Adds `stats` to the queue `name`, creating it when absent.
    pub fn add(&mut self, name: &str, stats: QueueStats) {
        self.queues.entry(name.to_owned()).or_default().merge(&stats);
    }

    /// The hosts the workers of this reading run on (a worker that names none is a host of its own).
    pub fn worker_hosts(&self) -> usize {
        let workers = self.workers.as_deref().unwrap_or_default();
        fn host(w: &WorkerInfo) -> &str {
            w.dyno.as_deref().unwrap_or(w.identity.as_str())
        }
        if workers.len() <= 64 {
            // A few dozen records (the usual): counted where they lie, with nothing allocated.
            return (0..workers.len()).filter(|&i| !workers[..i].iter().any(|o| host(o) == host(&workers[i]))).count();
        }
        workers.iter().map(host).collect::<std::collections::BTreeSet<_>>().len()
    }

    /// Threads per worker host in this reading, where the backend says: `threads` over `thread_hosts`, or over
    /// the hosts of `workers`.
    ///
    /// ```
    /// use dyno_scaler_core::Snapshot;
    /// let mut s = Snapshot::default();
    /// (s.threads, s.thread_hosts) = (Some(20), Some(2));
    /// assert_eq!(s.threads_per_worker(), Some(10.0));
    /// assert_eq!(Snapshot::default().threads_per_worker(), None);
    /// ```
    pub fn threads_per_worker(&self) -> Option<f64> {
        let threads = self.threads? as f64;
        let hosts = self.thread_hosts.map_or_else(|| self.worker_hosts(), |h| h as usize);
        (threads > 0.0 && hosts > 0).then(|| threads / hosts as f64)
    }
}
