//! `Scaler`: one process type = one source + one platform + one policy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::ScalerError;
use crate::gate::Gate;
use crate::platform::Platform;
use crate::policy::{Decision, Direction, Policy, PolicyState};
use crate::snapshot::Snapshot;
use crate::source::Source;

/// What one reconcile saw and did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The process type.
    pub process_type: String,
    /// The source's name.
    pub source: String,
    /// The queue reading.
    pub snapshot: Snapshot,
    /// The decision.
    pub decision: Decision,
    /// Whether the platform was asked to change the quantity.
    pub applied: bool,
    /// Whether the change was skipped because of a dry run.
    pub dry_run: bool,
    /// The victims of a scale-down waiting until their quieted processes are idle.
    pub draining: Vec<String>,
    /// Whether this instance acted on the decision: it held the lease (or has none) and no pause held.
    pub acting: bool,
    /// Who holds the process type's lease, where it has an exclusive one.
    pub leader: Option<String>,
    /// The pause in force, if any.
    pub paused: Option<crate::lease::Pause>,
    /// The platform's limit learned from a refusal (a 422 "cannot run more than N"): the quantity's ceiling since.
    pub platform_limit: Option<u32>,
    /// How long the cycle took, lease and platform call included.
    #[serde(skip)]
    pub took: Duration,
}

impl Report {
    /// The quantity the platform runs after this cycle: the decision's when it was applied, else the one read.
    pub fn quantity_after(&self) -> u32 {
        if self.applied { self.decision.to } else { self.decision.from }
    }
}

mod apply;
mod lead;
mod learned;
mod looping;
mod observe;
pub mod settle;
mod shrink;

pub use apply::LIMIT_MEMORY;
pub use learned::KEEP_EVERY;
pub use looping::WAKE_GAP;

#[derive(Debug, Default)]
struct State {
    policy: PolicyState,
    /// Ceiling learned from a refused quantity (HTTP 422), and when ([`LIMIT_MEMORY`]).
    limit: Option<u32>,
    limit_at: Option<std::time::SystemTime>,
    /// A change the platform refused for a reason it did not explain as a limit: `(from, to)`. Not asked again
    /// until the current quantity or the decision changes.
    refused: Option<(u32, u32)>,
    /// A scale-down waiting for its quieted victims.
    drain: Option<crate::drain::Drain>,
    /// The learned summary was looked for in the source's store.
    recalled: bool,
    /// When the learned summary was last written there.
    kept_at: Option<std::time::SystemTime>,
    /// Until when a platform call that failed or was abandoned may still land ([`settle`]).
    doubt_until: Option<tokio::time::Instant>,
    /// When the formation was last read afresh for a doubt.
    reread_at: Option<tokio::time::Instant>,
}

struct Inner {
    cfg: ScalerBuilder,
    looping: AtomicBool,
    state: tokio::sync::Mutex<State>,
    wake: Arc<Notify>,
    hints: crate::events::Hints,
    closed: Arc<AtomicBool>,
    hooks_started: AtomicBool,
    last: Mutex<Option<Report>>,
    /// What the lease's store last said (apart from the state, so renewals never wait for a slow cycle).
    lead: tokio::sync::Mutex<crate::lease::Leadership>,
    /// The next formation is read from the platform itself, not a cache (set on a takeover and in doubt).
    fresh: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Keeps one process type's quantity matched to its queue.
///
/// Cheap to clone (clones share state). Reconciles are serialized: the poll loop and the event hooks never
/// decide at the same time.
///
/// ```
/// use dyno_scaler_core::*;
/// use std::sync::Arc;
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// # rt.block_on(async {
/// let clock = Arc::new(ManualClock::at_secs(1_000));
/// let queue = InMemoryQueue::new(clock.clone());
/// let platform = InMemoryPlatform::new();
/// let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::default() }).unwrap();
/// let scaler = Scaler::builder("worker", Arc::new(queue.clone()), Arc::new(platform.clone()), policy)
///     .clock(clock.clone())
///     .build();
/// queue.push_many("default", 30);
/// let report = scaler.reconcile().await.unwrap();
/// // The adaptive policy, no job duration learned yet: a thread per job, 5 threads a worker, at most 5.
/// assert_eq!(report.decision.to, 5);
/// assert_eq!(platform.quantity("worker"), 5);
/// # });
/// ```
#[derive(Clone)]
pub struct Scaler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler")
            .field("process_type", &self.inner.cfg.process_type)
            .field("source", &self.inner.cfg.source.name())
            .field("platform", &self.inner.cfg.platform.name())
            .field("dry_run", &self.inner.cfg.dry_run)
            .finish()
    }
}

/// Builds a [`Scaler`].
pub struct ScalerBuilder {
    process_type: String,
    source: Source,
    platform: Arc<dyn Platform>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    dry_run: bool,
    interval: Option<Duration>,
    events: bool,
    lease: Option<(Arc<dyn crate::lease::Lease>, crate::lease::LeaseOptions)>,
}

impl ScalerBuilder {
    /// Acts only while holding `lease` (when `options.exclusive`; other instances follow) and never while a pause
    /// kept there holds (see [`lease`](crate::lease)). Default: no lease, always acting.
    pub fn lease(mut self, lease: Arc<dyn crate::lease::Lease>, options: crate::lease::LeaseOptions) -> Self {
        self.lease = Some((lease, options));
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Decide and report, but never change the platform.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// This process type's poll interval under a [`Controller`](crate::Controller) (default: the controller's).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Runs the source's event path ([`crate::Events`]) beside the loop under a
    /// [`Controller`](crate::Controller), so new work wakes the scaler at once (default: off; the program turns it
    /// on).
    pub fn events(mut self, events: bool) -> Self {
        self.events = events;
        self
    }

    /// The scaler.
    pub fn build(self) -> Scaler {
        let wake = Arc::new(Notify::new());
        let (hints, _) = crate::events::Hints::waking(wake.clone());
        Scaler {
            inner: Arc::new(Inner {
                cfg: self,
                looping: AtomicBool::new(false),
                state: tokio::sync::Mutex::new(State::default()),
                wake,
                hints,
                closed: Arc::new(AtomicBool::new(false)),
                hooks_started: AtomicBool::new(false),
                last: Mutex::new(None),
                lead: tokio::sync::Mutex::default(),
                fresh: AtomicBool::new(false),
            }),
        }
    }
}

impl Scaler {
    /// Starts building a scaler for `process_type` over `source` (an adapter's whole [`Source`], or a bare
    /// `Arc` of a [`QueueSource`](crate::QueueSource)).
    pub fn builder(
        process_type: impl Into<String>,
        source: impl Into<Source>,
        platform: Arc<dyn Platform>,
        policy: Policy,
    ) -> ScalerBuilder {
        ScalerBuilder {
            process_type: process_type.into(),
            source: source.into(),
            platform,
            policy,
            clock: Arc::new(SystemClock),
            dry_run: false,
            interval: None,
            events: false,
            lease: None,
        }
    }

    /// The poll interval set for this process type, if any.
    pub fn interval(&self) -> Option<Duration> {
        self.inner.cfg.interval
    }

    /// The process type.
    pub fn process_type(&self) -> &str {
        &self.inner.cfg.process_type
    }

    /// The source and its parts.
    pub fn source(&self) -> &Source {
        &self.inner.cfg.source
    }

    /// The platform.
    pub fn platform(&self) -> &Arc<dyn Platform> {
        &self.inner.cfg.platform
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.cfg.policy
    }

    /// The report of the last completed reconcile.
    pub fn last_report(&self) -> Option<Report> {
        self.inner.last.lock().expect("report lock").clone()
    }

    /// Reads the queue and the current quantity and decides, without acting and without changing the policy's
    /// history; it decides with what the policy learned (recalled from the source's store on first use, so a
    /// one-shot `status` sees what the running daemon learned).
    pub async fn preview(&self) -> Result<Report, ScalerError> {
        let mut state = self.inner.state.lock().await;
        self.recall(&mut state).await;
        let seen = self.observe().await?;
        let (decision, _) = self.decide(&seen, &state);
        let mut report = self.report(seen.snapshot, decision, false);
        report.acting = false;
        self.describe_lease(&mut report).await;
        // A pause holds the daemon, so the preview says what the daemon does: hold, and what it would have done.
        if let Some(p) = report.paused.clone() {
            report.decision.apply_gate(crate::gate::Gate::Paused { pause: p });
        }
        Ok(report)
    }

    fn report(&self, snapshot: Snapshot, decision: Decision, applied: bool) -> Report {
        Report {
            process_type: self.inner.cfg.process_type.clone(),
            source: self.inner.cfg.source.name().to_owned(),
            snapshot,
            decision,
            applied,
            dry_run: self.inner.cfg.dry_run,
            draining: Vec::new(),
            acting: true,
            leader: None,
            paused: None,
            platform_limit: None,
            took: Duration::ZERO,
        }
    }

    /// One cycle: snapshot → decide → platform call only when the quantity must change.
    ///
    /// A source error holds the quantity (no platform call at all). A refused quantity (limit) becomes the
    /// ceiling for later cycles ([`LIMIT_MEMORY`]), so the same refused call is not repeated; a change refused for
    /// another reason (an unknown 422) is not asked again until the current quantity or the decision changes.
    /// Errors are returned, not logged: the caller (the [`Controller`](crate::Controller), the program) logs them
    /// once.
    pub async fn reconcile(&self) -> Result<Report, ScalerError> {
        let inner = &self.inner;
        let started = std::time::Instant::now();
        let mut state = inner.state.lock().await;
        self.recall(&mut state).await;
        // The lease first: a holder cut from its store stops acting even when the snapshot fails too.
        let mut gate = self.gate().await;
        self.reread_if_in_doubt(&mut state).await;
        let seen = match self.observe().await {
            Ok(o) => o,
            Err(e) => {
                if let ScalerError::Platform { source, .. } = &e {
                    self.platform_answered(!source.is_outage()).await;
                }
                return Err(e);
            }
        };
        self.forget_limit(&mut state);
        let (mut decision, next) = self.decide(&seen, &state);
        if decision.direction() != Direction::Hold && gate.is_none() && !inner.cfg.dry_run {
            // About to act: a pause set since the last renewal is read now, so none is ever missed.
            gate = self.pause_now().await;
        }
        let acting = gate.is_none();
        let paused = match &gate {
            Some(Gate::Paused { pause }) => Some(pause.clone()),
            _ => None,
        };
        if let Some(g) = gate {
            decision.apply_gate(g);
        }
        if seen.snapshot.skipped > 0 {
            tracing::debug!(process_type = %inner.cfg.process_type, skipped = seen.snapshot.skipped, "skipped unreadable queue entries");
        }
        let mut applied = false;
        if state.refused.is_some_and(|r| r != (decision.from, decision.to)) {
            state.refused = None;
        }
        if decision.direction() != Direction::Hold && state.refused == Some((decision.from, decision.to)) {
            decision.apply_gate(Gate::Refused { from: decision.from, to: decision.to });
        }
        let draining = if inner.cfg.dry_run || !acting {
            Vec::new()
        } else {
            self.gate_shrink(&mut state, &seen, &mut decision).await
        };
        if decision.direction() != Direction::Hold && !self.still_holds().await {
            decision.apply_gate(Gate::LeaseLost);
        }
        if decision.direction() != Direction::Hold {
            applied = self.apply(&mut state, &mut decision, &seen.hosts).await?;
        } else {
            // Nothing was needed of the platform but its reading, and that answered.
            self.platform_answered(true).await;
            tracing::debug!(process_type = %inner.cfg.process_type, quantity = decision.to, reason = %decision.reason, "hold");
        }
        state.policy = next;
        if acting {
            self.keep(&mut state, inner.cfg.clock.now()).await;
        }
        let mut report = self.report(seen.snapshot, decision, applied);
        report.draining = draining;
        report.platform_limit = state.limit;
        report.acting = acting;
        report.leader = self.leader().await;
        report.took = started.elapsed();
        report.paused = paused;
        *inner.last.lock().expect("report lock") = Some(report.clone());
        Ok(report)
    }
}
