//! The `QueueSource` trait: where the work is read from.

use async_trait::async_trait;

use serde::Serialize;

use std::sync::Arc;
use std::time::Duration;

use crate::error::SourceError;
use crate::events::Hints;
use crate::snapshot::Snapshot;
use crate::store::Store;

/// What a source can report, so the policy, the simulator, the conformance suite and the program read it instead
/// of guessing from the source's name.
///
/// ```
/// use dyno_scaler_core::Capabilities;
/// let c = Capabilities::new(true, true, true).with_quiet(true).with_threads(5);
/// assert!(c.names_hosts && c.quiet && c.worker_threads == Some(5));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// Its worker records name the host each worker runs on (a Sidekiq identity starts with `$DYNO`).
    pub names_hosts: bool,
    /// It reports the age of the oldest ready job (Resque's stock payloads carry no time).
    pub latency: bool,
    /// It has a registry of live workers (`Snapshot::workers` is `Some`).
    pub worker_registry: bool,
    /// It reports which workers are quiet (take no new jobs) and can quiet them ([`Quiet`]).
    pub quiet: bool,
    /// How many jobs one worker runs at once by the job system's own default, for when no reading says
    /// ([`Snapshot::threads`]): DelayedJob and Resque 1 (one job at a time per process), Solid Queue 3 (a worker's
    /// `threads`), GoodJob 5 (`max_threads`), Sidekiq 5 (7.0+'s `concurrency`). `None`: the source cannot say.
    pub worker_threads: Option<u32>,
}

impl Capabilities {
    /// A source that names its workers' hosts, reports latency, has a worker registry, as said; it quiets no
    /// worker and states no default threads.
    pub const fn new(names_hosts: bool, latency: bool, worker_registry: bool) -> Self {
        Self { names_hosts, latency, worker_registry, quiet: false, worker_threads: None }
    }

    /// Reports quiet workers and can quiet them.
    pub const fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// The job system's default threads a worker.
    pub const fn with_threads(mut self, threads: u32) -> Self {
        self.worker_threads = Some(threads);
        self
    }
}

/// A job backend that can report how much work is waiting and running: the one trait every source implements.
/// What a source may also do is a trait of its own ([`Quiet`], [`Events`], [`Inspect`]), and where the lease, the
/// pause and the learned summary live is a [`Store`]; a [`Source`] carries them together.
///
/// Implementations take the whole reading in as few round trips as the backend allows and never panic on
/// bad data: malformed entries are skipped and counted in [`Snapshot::skipped`].
///
/// ```
/// use dyno_scaler_core::{InMemoryQueue, QueueSource, ManualClock};
/// use std::sync::Arc;
/// # tokio_test();
/// # fn tokio_test() {
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let clock = Arc::new(ManualClock::at_secs(1_000));
/// let queue = InMemoryQueue::new(clock.clone());
/// queue.push("default");
/// let source: Arc<dyn QueueSource> = Arc::new(queue);
/// let snap = source.snapshot().await.unwrap();
/// assert_eq!(snap.totals().ready, 1);
/// # });
/// # }
/// ```
#[async_trait]
pub trait QueueSource: Send + Sync + std::fmt::Debug {
    /// A short name of the backend kind (`sidekiq`, `resque`, `delayed_job`, `memory`).
    fn name(&self) -> &str;

    /// What this source can report.
    fn capabilities(&self) -> Capabilities;

    /// Takes one reading.
    async fn snapshot(&self) -> Result<Snapshot, SourceError>;
}

/// A source that can tell its workers to take no new jobs, so that a scale-down stops only idle workers
/// (quiet-then-drain, [`crate::drain`]).
#[async_trait]
pub trait Quiet: Send + Sync + std::fmt::Debug {
    /// Tells the workers with these identities to take no new jobs (Sidekiq's TSTP); they finish what they run.
    async fn quiet(&self, identities: &[String]) -> Result<(), SourceError>;
}

/// A source whose store says when work arrives (a Redis keyspace event, a Postgres `NOTIFY`), so the scaler reacts
/// at once instead of at the next poll.
#[async_trait]
pub trait Events: Send + Sync + std::fmt::Debug {
    /// Listens to the store for signs of new work and calls [`Hints::wake`] for each, after saying through
    /// [`Hints::active`] what it listens to; runs until dropped. Returns `Ok(())` after [`Hints::polling`] when the
    /// store offers no event path after all, and an error when a running path breaks (the caller backs off and
    /// calls again: see [`watch_events`](crate::events::watch_events)).
    async fn watch(&self, hints: &Hints) -> Result<(), SourceError>;
}

/// What a source's store can say about itself, for `check` and `status` (never read per cycle).
#[async_trait]
pub trait Inspect: Send + Sync + std::fmt::Debug {
    /// Every queue name the store has recorded (Sidekiq's `queues` set, Resque's `<ns>:queues`, the distinct queue
    /// names of a Postgres table), sorted, so that a watched queue it has never seen can be named as a likely typo
    /// ([`crate::check::unseen_queues`]). `None`: the store keeps no such list.
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        Ok(None)
    }

    /// What would make this source cheaper to read, given that a snapshot just took `snapshot_took` (an index
    /// its store lacks, ...). The default has nothing to say.
    async fn advice(&self, _snapshot_took: Duration) -> Option<String> {
        None
    }
}

/// A queue source and the parts it also offers: quieting, an event path, inspection, and the store that keeps
/// its process types' lease, pause and learned summary. Each part is optional; the scaler uses what is there.
///
/// An adapter gives its whole source with `Source::from(adapter_source)`; `Source::from(Arc::new(queue))` gives
/// the queue alone (no quieting, no events, no store).
///
/// ```
/// use dyno_scaler_core::{InMemoryQueue, ManualClock, Source};
/// use std::sync::Arc;
/// let queue = InMemoryQueue::new(Arc::new(ManualClock::at_secs(0)));
/// let bare = Source::from(Arc::new(queue.clone()));
/// assert!(bare.quiet.is_none() && bare.store.is_none());
/// let whole = Source::from(queue);
/// assert!(whole.quiet.is_some() && whole.store.is_some());
/// assert_eq!(whole.name(), "memory");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Source {
    /// The reading.
    pub queue: Arc<dyn QueueSource>,
    /// Quieting workers, where the source can.
    pub quiet: Option<Arc<dyn Quiet>>,
    /// The event path, where the store has one.
    pub events: Option<Arc<dyn Events>>,
    /// What the store can say about itself.
    pub inspect: Option<Arc<dyn Inspect>>,
    /// Where the lease, the pause and the learned summary are kept.
    pub store: Option<Arc<dyn Store>>,
    /// The finished jobs the store keeps, where it keeps them with their times ([`crate::History`]).
    pub history: Option<Arc<dyn crate::History>>,
}

impl Source {
    /// The queue alone.
    pub fn new(queue: Arc<dyn QueueSource>) -> Self {
        Self { queue, quiet: None, events: None, inspect: None, store: None, history: None }
    }

    /// With quieting.
    pub fn with_quiet(mut self, quiet: Arc<dyn Quiet>) -> Self {
        self.quiet = Some(quiet);
        self
    }

    /// With an event path.
    pub fn with_events(mut self, events: Arc<dyn Events>) -> Self {
        self.events = Some(events);
        self
    }

    /// With inspection.
    pub fn with_inspect(mut self, inspect: Arc<dyn Inspect>) -> Self {
        self.inspect = Some(inspect);
        self
    }

    /// With a store (replacing the source's own: a store configured apart from it).
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// With the finished jobs its store keeps.
    pub fn with_history(mut self, history: Arc<dyn crate::History>) -> Self {
        self.history = Some(history);
        self
    }

    /// The source's name ([`QueueSource::name`]).
    pub fn name(&self) -> &str {
        self.queue.name()
    }

    /// The queue names the store has recorded, where it can say ([`Inspect::queues_seen`]).
    pub async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        match &self.inspect {
            Some(i) => i.queues_seen().await,
            None => Ok(None),
        }
    }

    /// Runs the event path ([`Events::watch`]), or says that the source has none.
    pub async fn watch(&self, hints: &Hints) -> Result<(), SourceError> {
        match &self.events {
            Some(e) => e.watch(hints).await,
            None => {
                hints.polling(format!("the {} source has no event path", self.name()));
                Ok(())
            }
        }
    }
}

impl<S: QueueSource + 'static> From<Arc<S>> for Source {
    fn from(queue: Arc<S>) -> Self {
        Self::new(queue)
    }
}

impl From<Arc<dyn QueueSource>> for Source {
    fn from(queue: Arc<dyn QueueSource>) -> Self {
        Self::new(queue)
    }
}
