//! The `Platform` trait: where worker processes run.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::Serialize;

use crate::snapshot::Snapshot;

use crate::error::PlatformError;

/// One running process (dyno) of a process type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// The platform's name of the process (`worker.3`).
    pub name: String,
    /// The platform's state (`up`, `starting`, ...).
    pub state: String,
}

impl ProcessInfo {
    /// The process `name` in `state`.
    pub fn new(name: impl Into<String>, state: impl Into<String>) -> Self {
        Self { name: name.into(), state: state.into() }
    }
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

/// What the queue knows of a process type's worker hosts, given with every request to the platform: which hosts it
/// names, which are busy, and whether work waits. A platform that chooses its victims reads it (Kubernetes: idle pods
/// first), one that backs off in an outage too (Heroku probes sooner while work waits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hosts {
    /// Every host the queue's worker records name.
    pub named: BTreeSet<String>,
    /// The hosts with a job running.
    pub busy: BTreeSet<String>,
    /// The hosts whose every worker is quiet (takes no new job): the victims of a scale-down being drained.
    pub quiet: BTreeSet<String>,
    /// Whether jobs are ready and waiting.
    pub work_waiting: bool,
}

impl Hosts {
    /// What `snapshot` says of its hosts.
    ///
    /// ```
    /// use dyno_scaler_core::{platform::Hosts, QueueStats, Snapshot, WorkerInfo};
    /// let mut snap = Snapshot::default();
    /// snap.add("default", QueueStats::ready(2));
    /// let w = |host: &str, busy| WorkerInfo::new(format!("{host}:1"), Some(host.into()), busy);
    /// let snap = snap.with_workers(vec![w("worker.1", 1), w("worker.2", 0).with_quiet(true)]);
    /// let hosts = Hosts::of(&snap);
    /// assert_eq!((hosts.named.len(), hosts.busy.len(), hosts.quiet.len(), hosts.work_waiting), (2, 1, 1, true));
    /// ```
    pub fn of(snapshot: &Snapshot) -> Self {
        let mut hosts = Self { work_waiting: snapshot.totals().ready > 0, ..Self::default() };
        for w in snapshot.workers.iter().flatten() {
            if let Some(host) = &w.dyno {
                hosts.named.insert(host.clone());
                if w.busy > 0 {
                    hosts.busy.insert(host.clone());
                }
            }
        }
        hosts.quiet = snapshot.quiet_dynos().into_iter().map(String::from).collect();
        hosts
    }
}

/// What the platform runs for a process type, read with what the queue knows of its hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Formation {
    /// The quantity the platform maintains.
    pub quantity: u32,
    /// Where each host of the request stands for a scale-down from `quantity`.
    pub placements: BTreeMap<String, Placement>,
    /// The processes in the order a scale-down stops them, the first first, where the platform knows it (`None`:
    /// Heroku Fir, whose stop order is not by name).
    pub stop_order: Option<Vec<String>>,
}

impl Formation {
    /// `quantity` processes, no host placed, the stop order unknown.
    pub fn new(quantity: u32) -> Self {
        Self { quantity, ..Self::default() }
    }

    /// The same, with `placements` and the stop order `stop_order`.
    pub fn placed(mut self, placements: BTreeMap<String, Placement>, stop_order: Option<Vec<String>>) -> Self {
        self.placements = placements;
        self.stop_order = stop_order;
        self
    }

    /// The processes a scale-down to `to` stops, by name, where the platform knows them.
    ///
    /// ```
    /// use dyno_scaler_core::platform::Formation;
    /// let f = Formation::new(3).placed(Default::default(), Some(vec!["worker.3".into(), "worker.2".into(), "worker.1".into()]));
    /// assert_eq!(f.victims(1), Some(vec!["worker.3".to_string(), "worker.2".to_string()]));
    /// assert_eq!(f.victims(3), Some(vec![]));
    /// assert_eq!(Formation::new(3).victims(1), None);
    /// ```
    pub fn victims(&self, to: u32) -> Option<Vec<String>> {
        let n = self.quantity.saturating_sub(to) as usize;
        self.stop_order.as_ref().map(|order| order.iter().take(n).cloned().collect())
    }
}

/// A request to run `quantity` processes of `process_type`, with what the queue knows of its hosts.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ScaleRequest<'a> {
    /// The process type.
    pub process_type: &'a str,
    /// The quantity wanted: absolute, so retries and several scaler instances are safe.
    pub quantity: u32,
    /// What the queue knows of its hosts (the busy ones are stopped last where the platform chooses).
    pub hosts: &'a Hosts,
}

impl<'a> ScaleRequest<'a> {
    /// `quantity` processes of `process_type`, with `hosts`.
    pub fn new(process_type: &'a str, quantity: u32, hosts: &'a Hosts) -> Self {
        Self { process_type, quantity, hosts }
    }
}

/// What a platform's client has seen of its API, for metrics: requests by answer, and the rate-limit budget left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PlatformTelemetry {
    /// Requests sent, by HTTP status (`"200"`, `"429"`, ...) or `"error"` when no answer came; every attempt counts.
    pub requests: BTreeMap<String, u64>,
    /// The last rate-limit budget the API reported (Heroku's `RateLimit-Remaining`), if any.
    pub rate_limit_remaining: Option<u64>,
}

impl PlatformTelemetry {
    /// `requests` by answer, and the rate-limit budget left where the API reports one.
    pub fn new(requests: BTreeMap<String, u64>, rate_limit_remaining: Option<u64>) -> Self {
        Self { requests, rate_limit_remaining }
    }
}

/// A runtime that runs a number of identical worker processes per process type.
///
/// Two requests, each carrying all it needs, in any order: [`Platform::formation`] reads what runs (and where the
/// queue's hosts stand), [`Platform::scale`] sets the quantity. Quantities are always absolute, so retries and
/// several scaler instances are safe.
#[async_trait]
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// A short name of the platform (`heroku`, `memory`).
    fn name(&self) -> &str;

    /// What runs for `process_type`: its quantity, where each of `hosts` stands for a scale-down, and the stop order
    /// where the platform knows it. `fresh`: read the platform itself, not a cache (a scaler that just took the
    /// lease, or doubts that a request of its landed).
    async fn formation(&self, process_type: &str, hosts: &Hosts, fresh: bool) -> Result<Formation, PlatformError>;

    /// Sets the quantity the request asks for; an error says why not (a limit, a refusal, an outage).
    async fn scale(&self, request: &ScaleRequest<'_>) -> Result<(), PlatformError>;

    /// What the client has seen of the platform's API so far (for metrics); the default has seen nothing.
    fn telemetry(&self) -> PlatformTelemetry {
        PlatformTelemetry::default()
    }

    /// The live processes of `process_type`, where the platform can list them (`Ok(None)` otherwise).
    async fn list_processes(&self, _process_type: &str) -> Result<Option<Vec<ProcessInfo>>, PlatformError> {
        Ok(None)
    }
}

/// Shorthands over the two requests for callers that know nothing of the queue's hosts (tools, tests).
#[async_trait]
pub trait PlatformExt: Platform {
    /// The quantity of `process_type` (a formation read with no hosts, from the cache where the client keeps one).
    async fn current_quantity(&self, process_type: &str) -> Result<u32, PlatformError> {
        Ok(self.formation(process_type, &Hosts::default(), false).await?.quantity)
    }

    /// Sets the quantity of `process_type` to exactly `quantity`, knowing nothing of its hosts.
    async fn set_quantity(&self, process_type: &str, quantity: u32) -> Result<(), PlatformError> {
        self.scale(&ScaleRequest::new(process_type, quantity, &Hosts::default())).await
    }
}

impl<P: Platform + ?Sized> PlatformExt for P {}
