//! The `Platform` trait: where worker processes run.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::snapshot::Snapshot;

use crate::error::PlatformError;

/// One running process (dyno) of a process type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// The platform's name of the process (`worker.3`).
    pub name: String,
    /// The platform's state (`up`, `starting`, ...).
    pub state: String,
}

/// Where a worker's host is, as the platform sees it, for a scale-down of one process type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// One of this process type's processes, the `n`th to stop as the quantity goes down (0: the first).
    Stops(u32),
    /// A process of another process type: this one's scale-down does not stop it.
    Elsewhere,
    /// The platform cannot tell (Heroku Fir: the stop order is not by name).
    Unknown,
}

/// The placement of every worker host of `snapshot` for `process_type` at `current` processes, by `platform`.
pub fn placements(
    platform: &dyn Platform,
    process_type: &str,
    current: u32,
    snapshot: &Snapshot,
) -> BTreeMap<String, Placement> {
    snapshot
        .workers
        .iter()
        .flatten()
        .filter_map(|w| w.dyno.as_ref())
        .map(|host| (host.clone(), platform.place(process_type, current, host)))
        .collect()
}

/// What a platform's client has seen of its API, for metrics: requests by answer, and the rate-limit budget left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlatformTelemetry {
    /// Requests sent, by HTTP status (`"200"`, `"429"`, ...) or `"error"` when no answer came; every attempt counts.
    pub requests: BTreeMap<String, u64>,
    /// The last rate-limit budget the API reported (Heroku's `RateLimit-Remaining`), if any.
    pub rate_limit_remaining: Option<u64>,
}

/// A runtime that runs a number of identical worker processes per process type.
///
/// Quantities are always absolute, so retries and several scaler instances are safe.
#[async_trait]
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// A short name of the platform (`heroku`, `memory`).
    fn name(&self) -> &str;

    /// The quantity the platform currently maintains for `process_type`.
    async fn current_quantity(&self, process_type: &str) -> Result<u32, PlatformError>;

    /// Sets the quantity of `process_type` to exactly `quantity`.
    async fn set_quantity(&self, process_type: &str, quantity: u32) -> Result<(), PlatformError>;

    /// The processes a change of `process_type` from `from` to `to` (`to < from`) stops, by name, where the
    /// platform knows them (`None`: unknown). Heroku Cedar stops the highest-numbered first: `type.(to+1..=from)`.
    fn victims(&self, _process_type: &str, _from: u32, _to: u32) -> Option<Vec<String>> {
        None
    }

    /// Where the worker host `host` (as the queue names it, e.g. Sidekiq's `$DYNO`) is for a scale-down of
    /// `process_type` from `current`: which of its processes stops when, or another type's, or unknown.
    fn place(&self, _process_type: &str, _current: u32, _host: &str) -> Placement {
        Placement::Unknown
    }

    /// Hears the queue's reading of `process_type` before it is asked its quantity and before a decision: which
    /// hosts are busy, for a platform that chooses its victims (Kubernetes: idle pods first), and whether work waits
    /// (Heroku probes an outage sooner then). The default does nothing.
    fn hear(&self, _process_type: &str, _snapshot: &Snapshot) {}

    /// Forgets whatever the client keeps of `process_type`'s quantity, so the next [`current_quantity`] asks the
    /// platform: a scaler calls it when it takes the lease, since what it read as a follower may be minutes old and
    /// the last holder may have changed it since. The default keeps nothing to forget.
    ///
    /// [`current_quantity`]: Platform::current_quantity
    fn refresh(&self, _process_type: &str) {}

    /// What the client has seen of the platform's API so far (for metrics); the default has seen nothing.
    fn telemetry(&self) -> PlatformTelemetry {
        PlatformTelemetry::default()
    }

    /// The live processes of `process_type`, where the platform can list them (`Ok(None)` otherwise).
    async fn list_processes(&self, _process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        Ok(None)
    }
}
