//! In-memory implementations of [`QueueSource`] and [`Platform`](crate::Platform), for tests of policies and of programs
//! that embed the scaler. They are real implementations: the conformance suite runs against them too.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::SourceError;
use crate::snapshot::{QueueStats, Snapshot, WorkerInfo};
use crate::source::{Capabilities, Inspect, QueueSource, Quiet, Source};

mod lease;
mod platform;
mod store;
pub use lease::InMemoryLease;
pub use platform::{InMemoryPlatform, PlatformCall};
pub use store::InMemoryStore;

#[derive(Debug, Default)]
struct MemQueue {
    /// Enqueue times of ready jobs, oldest first; `None` marks a malformed entry.
    ready: VecDeque<Option<SystemTime>>,
    running: u64,
    /// Due times of scheduled jobs.
    scheduled: Vec<SystemTime>,
}

#[derive(Debug, Default)]
struct MemState {
    queues: BTreeMap<String, MemQueue>,
    workers: Option<Vec<WorkerInfo>>,
    failure: Option<String>,
    quiet_requests: Vec<String>,
    /// Jobs finished ([`Snapshot::processed`]).
    processed: u64,
}

/// A job queue held in memory.
///
/// Clones share the same queue; [`InMemoryQueue::watching`] gives a view restricted to some queues.
#[derive(Debug, Clone)]
pub struct InMemoryQueue {
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<MemState>>,
    filter: Option<Vec<String>>,
    capabilities: Option<Capabilities>,
    store: InMemoryStore,
}

impl InMemoryQueue {
    /// An empty queue reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let store = InMemoryStore::with_clock(clock.clone());
        Self { clock, state: Arc::default(), filter: None, capabilities: None, store }
    }

    /// The same queue claiming other capabilities (to test how callers treat a source that, say, cannot name
    /// hosts). By default it has latency, and a worker registry naming hosts once [`InMemoryQueue::set_workers`]
    /// gave it workers.
    pub fn with_capabilities(&self, capabilities: Capabilities) -> Self {
        Self { capabilities: Some(capabilities), ..self.clone() }
    }

    /// A heartbeat of every worker that reports heartbeats: its `beat` becomes the clock's now.
    pub fn heartbeat(&self) {
        let now = self.clock.now();
        self.with(|s| {
            for w in s.workers.iter_mut().flatten().filter(|w| w.beat.is_some()) {
                w.beat = Some(now);
            }
        });
    }

    /// Sets how many jobs the worker `identity` runs (its next heartbeat shows it).
    pub fn set_busy(&self, identity: &str, busy: u32) {
        self.with(|s| {
            for w in s.workers.iter_mut().flatten().filter(|w| w.identity == identity) {
                w.busy = busy;
            }
        });
    }

    /// Every identity [`Quiet::quiet`] was asked to quiet, in order.
    pub fn quiet_requests(&self) -> Vec<String> {
        self.with(|s| s.quiet_requests.clone())
    }

    /// The worker records set, if any.
    pub fn workers(&self) -> Option<Vec<WorkerInfo>> {
        self.with(|s| s.workers.clone())
    }

    /// A view of the same queue that reports only `queues`.
    pub fn watching<I: IntoIterator<Item = S>, S: Into<String>>(&self, queues: I) -> Self {
        Self { filter: Some(queues.into_iter().map(Into::into).collect()), ..self.clone() }
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemState) -> R) -> R {
        f(&mut self.state.lock().expect("queue lock"))
    }

    /// Enqueues one job now.
    pub fn push(&self, queue: &str) {
        let now = self.clock.now();
        self.push_at(queue, now);
    }

    /// Enqueues `n` jobs now.
    pub fn push_many(&self, queue: &str, n: usize) {
        let now = self.clock.now();
        self.with(|s| s.queues.entry(queue.into()).or_default().ready.extend(std::iter::repeat_n(Some(now), n)));
    }

    /// Enqueues one job with the given enqueue time.
    pub fn push_at(&self, queue: &str, enqueued_at: SystemTime) {
        self.with(|s| s.queues.entry(queue.into()).or_default().ready.push_back(Some(enqueued_at)));
    }

    /// Enqueues an entry that cannot be read (as the oldest of the queue): snapshots count it as skipped, not as
    /// ready, and [`InMemoryQueue::start`] discards it.
    pub fn push_malformed(&self, queue: &str) {
        self.with(|s| s.queues.entry(queue.into()).or_default().ready.push_front(None));
    }

    /// Schedules one job due at `due`.
    pub fn schedule(&self, queue: &str, due: SystemTime) {
        self.with(|s| s.queues.entry(queue.into()).or_default().scheduled.push(due));
    }

    /// A worker takes the oldest ready job of `queue`; false when there is none.
    pub fn start(&self, queue: &str) -> bool {
        self.with(|s| {
            let q = s.queues.entry(queue.into()).or_default();
            // An unreadable entry ahead of it is thrown away, as a job library drops what it cannot parse.
            while let Some(entry) = q.ready.pop_front() {
                if entry.is_some() {
                    q.running += 1;
                    return true;
                }
            }
            false
        })
    }

    /// Adds `n` running jobs to `queue` directly.
    pub fn add_running(&self, queue: &str, n: u64) {
        self.with(|s| s.queues.entry(queue.into()).or_default().running += n);
    }

    /// A running job of `queue` ends; false when none was running.
    pub fn finish(&self, queue: &str) -> bool {
        self.with(|s| {
            let q = s.queues.entry(queue.into()).or_default();
            if q.running == 0 {
                return false;
            }
            q.running -= 1;
            s.processed += 1;
            true
        })
    }

    /// Removes every job, worker record and kept summary.
    pub fn clear(&self) {
        self.with(|s| {
            s.queues.clear();
            s.workers = None;
        });
        self.store.forget();
    }

    /// Sets the worker records the source reports (`None`: a backend without a worker registry).
    pub fn set_workers(&self, workers: Option<Vec<WorkerInfo>>) {
        self.with(|s| s.workers = workers);
    }

    /// Makes every snapshot fail with `message` until called with `None`.
    pub fn fail_with(&self, message: Option<&str>) {
        self.with(|s| s.failure = message.map(str::to_owned));
    }
}

impl InMemoryQueue {
    /// The store beside the queue (its lease, pause and learned summaries), shared by clones.
    pub fn store(&self) -> &InMemoryStore {
        &self.store
    }
}

/// The whole source: the reading, quieting, inspection and the store.
impl From<InMemoryQueue> for Source {
    fn from(queue: InMemoryQueue) -> Self {
        let store = Arc::new(queue.store.clone());
        let queue = Arc::new(queue);
        Source::new(queue.clone()).with_quiet(queue.clone()).with_inspect(queue).with_store(store)
    }
}

#[async_trait]
impl Quiet for InMemoryQueue {
    /// Marks the workers quiet (their next [`InMemoryQueue::heartbeat`] publishes it with a fresh time).
    async fn quiet(&self, identities: &[String]) -> Result<(), SourceError> {
        self.with(|s| {
            for w in s.workers.iter_mut().flatten().filter(|w| identities.contains(&w.identity)) {
                w.quiet = true;
            }
            s.quiet_requests.extend(identities.iter().cloned());
        });
        Ok(())
    }
}

#[async_trait]
impl Inspect for InMemoryQueue {
    /// Every queue a job was pushed to, scheduled in or run from.
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        Ok(Some(self.with(|s| s.queues.keys().cloned().collect())))
    }
}

#[async_trait]
impl QueueSource for InMemoryQueue {
    fn name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.unwrap_or_else(|| {
            let registry = self.with(|s| s.workers.is_some());
            Capabilities {
                names_hosts: registry,
                latency: true,
                worker_registry: registry,
                quiet: registry,
                worker_threads: None,
            }
        })
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let now = self.clock.now();
        let s = self.state.lock().expect("queue lock");
        if let Some(message) = &s.failure {
            return Err(SourceError::Unavailable {
                source_name: "memory".into(),
                message: message.clone(),
                cause: None,
            });
        }
        let mut snap = Snapshot { workers: s.workers.clone(), processed: Some(s.processed), ..Snapshot::default() };
        for (name, q) in &s.queues {
            if let Some(filter) = &self.filter
                && !filter.iter().any(|f| f == name)
            {
                // Not demand, but the workers running these jobs are busy.
                snap.running_elsewhere += q.running;
                continue;
            }
            let mut stats = QueueStats { running: q.running, ..QueueStats::default() };
            let mut oldest: Option<SystemTime> = None;
            let mut bad = 0;
            for entry in &q.ready {
                match entry {
                    Some(t) => {
                        stats.ready += 1;
                        oldest = Some(oldest.map_or(*t, |o| o.min(*t)));
                    }
                    None => bad += 1, // no job at all: skipped and counted, not work
                }
            }
            for due in &q.scheduled {
                if *due <= now {
                    stats.ready += 1;
                    oldest = Some(oldest.map_or(*due, |o| o.min(*due)));
                } else {
                    stats.scheduled += 1;
                    let wait = due.duration_since(now).unwrap_or_default();
                    snap.next_due = Some(snap.next_due.map_or(wait, |n| n.min(wait)));
                }
            }
            stats.oldest_ready_age = oldest.map(|t| now.duration_since(t).unwrap_or_default());
            snap.skipped += bad;
            snap.add(name, stats);
        }
        Ok(snap)
    }
}
