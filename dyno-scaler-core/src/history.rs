//! The jobs a store keeps after they ran: what `dyno-scaler export-trace` writes as a trace for the simulator. A
//! source whose store keeps finished jobs with their times (GoodJob, Solid Queue) offers [`History`].

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::SourceError;

/// One job that ran to its end, as its store kept it: no argument, no payload, only its times and its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FinishedJob {
    /// When it could first run: enqueued, or due when scheduled for later.
    pub arrived_at: SystemTime,
    /// Its queue.
    pub queue: String,
    /// How long it ran (where the store keeps no start time, as Solid Queue: from arrival to its end, its wait
    /// included; the source's documentation says which).
    pub run: Duration,
}

impl FinishedJob {
    /// A job of `queue` that arrived at `arrived_at` and ran `run`.
    pub fn new(arrived_at: SystemTime, queue: impl Into<String>, run: Duration) -> Self {
        Self { arrived_at, queue: queue.into(), run }
    }
}

/// A store that keeps finished jobs with their times.
#[async_trait]
pub trait History: Send + Sync + std::fmt::Debug {
    /// Every job of the source's queues that arrived within `since` before now and has finished, in order of
    /// arrival, handed to `each` a batch at a time (memory stays bounded whatever the table holds). Returns how
    /// many.
    async fn finished(
        &self,
        since: Duration,
        each: &mut (dyn FnMut(Vec<FinishedJob>) + Send),
    ) -> Result<u64, SourceError>;
}
