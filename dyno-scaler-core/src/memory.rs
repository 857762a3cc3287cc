//! In-memory implementations of [`QueueSource`] and [`Platform`], for tests of policies and of programs
//! that embed the scaler. They are real implementations: the conformance suite runs against them too.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::{PlatformError, SourceError};
use crate::platform::{Placement, Platform, ProcessInfo};
use crate::snapshot::{QueueStats, Snapshot, WorkerInfo};
use crate::source::{Capabilities, QueueSource};

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
}

impl InMemoryQueue {
    /// An empty queue reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, state: Arc::default(), filter: None, capabilities: None }
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

    /// Every identity [`QueueSource::quiet`] was asked to quiet, in order.
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

    /// Enqueues an entry that cannot be read (as the oldest of the queue).
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
            match q.ready.pop_front() {
                Some(_) => {
                    q.running += 1;
                    true
                }
                None => false,
            }
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
            true
        })
    }

    /// Removes every job and worker record.
    pub fn clear(&self) {
        self.with(|s| {
            s.queues.clear();
            s.workers = None;
        });
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

#[async_trait]
impl QueueSource for InMemoryQueue {
    fn name(&self) -> &str {
        "memory"
    }

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

    fn capabilities(&self) -> Capabilities {
        self.capabilities.unwrap_or_else(|| {
            let registry = self.with(|s| s.workers.is_some());
            Capabilities { names_hosts: registry, latency: true, worker_registry: registry, quiet: registry }
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
        let mut snap = Snapshot { workers: s.workers.clone(), ..Snapshot::default() };
        for (name, q) in &s.queues {
            if let Some(filter) = &self.filter
                && !filter.iter().any(|f| f == name)
            {
                continue;
            }
            let mut stats = QueueStats { running: q.running, ..QueueStats::default() };
            let mut oldest: Option<SystemTime> = None;
            let mut bad = 0;
            for entry in &q.ready {
                stats.ready += 1;
                match entry {
                    Some(t) => oldest = Some(oldest.map_or(*t, |o| o.min(*t))),
                    None => bad += 1,
                }
            }
            for due in &q.scheduled {
                if *due <= now {
                    stats.ready += 1;
                    oldest = Some(oldest.map_or(*due, |o| o.min(*due)));
                } else {
                    stats.scheduled += 1;
                }
            }
            stats.oldest_ready_age = oldest.map(|t| now.duration_since(t).unwrap_or_default());
            snap.skipped += bad;
            snap.add(name, stats);
        }
        Ok(snap)
    }
}

/// One call an [`InMemoryPlatform`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformCall {
    /// `current_quantity(process_type)`.
    Current(String),
    /// `set_quantity(process_type, quantity)`.
    Set(String, u32),
    /// `list_processes(process_type)`.
    List(String),
}

#[derive(Debug, Default)]
struct PlatformState {
    quantities: HashMap<String, u32>,
    limits: HashMap<String, u32>,
    calls: Vec<PlatformCall>,
    failures: VecDeque<PlatformError>,
    completed_sets: usize,
    victims_unknown: bool,
}

/// A platform held in memory: it records every call, can enforce per-type limits, can be told to fail the
/// next calls, and can be slowed down.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPlatform {
    state: Arc<Mutex<PlatformState>>,
    delay: Arc<Mutex<Duration>>,
}

impl InMemoryPlatform {
    /// An empty platform (every process type at 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the platform unable to say which processes a scale-down stops (as Heroku Fir).
    pub fn set_victims_unknown(&self, unknown: bool) {
        self.with(|s| s.victims_unknown = unknown);
    }

    fn with<R>(&self, f: impl FnOnce(&mut PlatformState) -> R) -> R {
        f(&mut self.state.lock().expect("platform lock"))
    }

    /// Sets a quantity directly (as a person scaling by hand would); not recorded as a call.
    pub fn set(&self, process_type: &str, quantity: u32) {
        self.with(|s| s.quantities.insert(process_type.into(), quantity));
    }

    /// The quantity of `process_type`.
    pub fn quantity(&self, process_type: &str) -> u32 {
        self.with(|s| s.quantities.get(process_type).copied().unwrap_or(0))
    }

    /// Refuses quantities above `limit` for `process_type` with [`PlatformError::LimitExceeded`].
    pub fn set_limit(&self, process_type: &str, limit: u32) {
        self.with(|s| s.limits.insert(process_type.into(), limit));
    }

    /// Makes the next call fail with `error` (queued: several calls queue several failures).
    pub fn fail_next(&self, error: PlatformError) {
        self.with(|s| s.failures.push_back(error));
    }

    /// Makes every call take `delay` before it answers.
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().expect("delay lock") = delay;
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<PlatformCall> {
        self.with(|s| s.calls.clone())
    }

    /// The `set_quantity` calls received.
    pub fn set_calls(&self) -> Vec<(String, u32)> {
        self.with(|s| {
            s.calls
                .iter()
                .filter_map(|c| match c {
                    PlatformCall::Set(t, q) => Some((t.clone(), *q)),
                    _ => None,
                })
                .collect()
        })
    }

    /// How many `set_quantity` calls have finished (after their delay).
    pub fn completed_sets(&self) -> usize {
        self.with(|s| s.completed_sets)
    }

    async fn enter(&self, call: PlatformCall) -> Result<(), PlatformError> {
        let failure = self.with(|s| {
            s.calls.push(call);
            s.failures.pop_front()
        });
        let delay = *self.delay.lock().expect("delay lock");
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        failure.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl Platform for InMemoryPlatform {
    fn name(&self) -> &str {
        "memory"
    }

    /// Heroku Cedar's rule: `type.N` is the `current - N`th to stop; another type's `t.N` is elsewhere; unless
    /// [`InMemoryPlatform::set_victims_unknown`].
    fn place(&self, process_type: &str, current: u32, host: &str) -> Placement {
        if self.with(|s| s.victims_unknown) {
            return Placement::Unknown;
        }
        // A fake of Heroku Cedar (the real rule is the Heroku adapter's `cedar` module).
        match host.rsplit_once('.').map(|(ty, n)| (ty, n.parse::<u32>())) {
            Some((ty, Ok(n))) if ty == process_type && (1..=current).contains(&n) => Placement::Stops(current - n),
            Some((ty, Ok(_))) if !ty.is_empty() => Placement::Elsewhere,
            _ => Placement::Unknown,
        }
    }

    /// Heroku Cedar's rule (the highest-numbered first), unless [`InMemoryPlatform::set_victims_unknown`].
    fn victims(&self, process_type: &str, from: u32, to: u32) -> Option<Vec<String>> {
        if self.with(|s| s.victims_unknown) {
            return None;
        }
        Some((to + 1..=from).rev().map(|n| format!("{process_type}.{n}")).collect())
    }

    async fn current_quantity(&self, process_type: &str) -> Result<u32, PlatformError> {
        self.enter(PlatformCall::Current(process_type.into())).await?;
        Ok(self.quantity(process_type))
    }

    async fn set_quantity(&self, process_type: &str, quantity: u32) -> Result<(), PlatformError> {
        let result = self.enter(PlatformCall::Set(process_type.into(), quantity)).await;
        self.with(|s| {
            s.completed_sets += 1;
            result?;
            if let Some(limit) = s.limits.get(process_type).copied()
                && quantity > limit
            {
                return Err(PlatformError::LimitExceeded {
                    requested: quantity,
                    limit: Some(limit),
                    message: format!("Cannot run more than {limit} dynos of {process_type}."),
                });
            }
            s.quantities.insert(process_type.into(), quantity);
            Ok(())
        })
    }

    async fn list_processes(&self, process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        self.enter(PlatformCall::List(process_type.into())).await?;
        let n = self.quantity(process_type);
        Ok(Some((1..=n).map(|i| ProcessInfo { name: format!("{process_type}.{i}"), state: "up".into() }).collect()))
    }
}
