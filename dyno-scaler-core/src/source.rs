//! The `QueueSource` trait: where the work is read from.

use async_trait::async_trait;

use serde::Serialize;

use crate::error::SourceError;
use crate::events::Hints;
use crate::snapshot::Snapshot;

/// What a source can report, so the policy, the simulator, the conformance suite and the program read it instead
/// of guessing from the source's name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Its worker records name the host each worker runs on (a Sidekiq identity starts with `$DYNO`).
    pub names_hosts: bool,
    /// It reports the age of the oldest ready job (Resque's stock payloads carry no time).
    pub latency: bool,
    /// It has a registry of live workers (`Snapshot::workers` is `Some`).
    pub worker_registry: bool,
    /// It reports which workers are quiet (take no new jobs) and can quiet them ([`QueueSource::quiet`]).
    pub quiet: bool,
    /// It keeps what the adaptive policy learned across restarts ([`QueueSource::remember`]).
    pub remembers: bool,
    /// How many jobs one worker runs at once by the job system's own default, for when no reading says
    /// ([`Snapshot::threads`]): DelayedJob and Resque 1 (one job at a time per process), Solid Queue 3 (a worker's
    /// `threads`), GoodJob 5 (`max_threads`), Sidekiq 5 (7.0+'s `concurrency`). `None`: the source cannot say.
    pub worker_threads: Option<u32>,
}

/// A job backend that can report how much work is waiting and running.
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

    /// Tells the workers with these identities to take no new jobs (Sidekiq's TSTP); they finish what they run.
    /// Only where `capabilities().quiet`; the default refuses.
    async fn quiet(&self, _identities: &[String]) -> Result<(), SourceError> {
        Err(SourceError::Other { source_name: self.name().to_owned(), message: "cannot quiet workers".into() })
    }

    /// Keeps `summary` (what the policy learned for `process_type`: a few KB of JSON) in the source's own store.
    /// Only where `capabilities().remembers`; the default keeps nothing.
    async fn remember(&self, _process_type: &str, _summary: &str) -> Result<(), SourceError> {
        Ok(())
    }

    /// The summary last kept for `process_type`, if any.
    async fn recall(&self, _process_type: &str) -> Result<Option<String>, SourceError> {
        Ok(None)
    }

    /// The lease (and pause) of `process_type` in this source's own store, so that one scaler instance acts
    /// ([`lease`](crate::lease)). The default has none: every instance acts, and nothing can pause it.
    fn lease(&self, _process_type: &str) -> Option<std::sync::Arc<dyn crate::lease::Lease>> {
        None
    }

    /// Every queue name the store has recorded (Sidekiq's `queues` set, Resque's `<ns>:queues`, the distinct queue
    /// names of a Postgres table), sorted, so that a watched queue it has never seen can be named as a likely typo
    /// ([`crate::check::unseen_queues`]). Read once at start and by `check` and `status`, never per cycle. The
    /// default: `None`, the store keeps no such list.
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        Ok(None)
    }

    /// What would make this source cheaper to read, given that a snapshot just took `snapshot_took` (an index
    /// its store lacks, ...), for `check`. The default has nothing to say.
    async fn advice(&self, _snapshot_took: std::time::Duration) -> Option<String> {
        None
    }

    /// Listens to the store for signs of new work and calls [`Hints::wake`] for each, after saying through
    /// [`Hints::active`] what it listens to; runs until dropped. Returns `Ok(())` after [`Hints::polling`] when the
    /// store offers no event path, and an error when a running path breaks (the caller backs off and calls again:
    /// see [`watch_events`](crate::events::watch_events)). The default has no event path.
    async fn watch(&self, hints: &Hints) -> Result<(), SourceError> {
        hints.polling(format!("the {} source has no event path", self.name()));
        Ok(())
    }
}
