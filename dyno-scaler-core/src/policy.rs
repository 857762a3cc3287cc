//! The scaling policy: pure, deterministic, free of I/O.
//!
//! [`Policy::decide`] takes a snapshot, the current quantity, the time and the policy's own short history
//! ([`PolicyState`]) and returns a [`Decision`] with a human-readable reason, plus the next history.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::snapshot::{Snapshot, dyno_number};

/// The seed gem's default table: pending jobs → workers.
pub const SEED_THRESHOLDS: [(u64, u32); 5] = [(1, 1), (25, 2), (50, 3), (75, 4), (100, 5)];

/// A rule that turns the queue's state into a number of workers wanted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DemandRule {
    /// Pending (ready) jobs → workers: the largest `jobs` not above the ready count gives the workers.
    Thresholds(Vec<(u64, u32)>),
    /// `ceil((ready + running) / n)`: one worker per `n` jobs in the system.
    JobsPerWorker(u64),
    /// `ceil(ready / n)`: KEDA's queue-length rule; it ignores running jobs (so it wants fewer workers while
    /// long jobs run). Kept for comparison and for users who want it.
    QueueLengthPerWorker(u64),
    /// Keep the oldest ready job younger than the target: `ceil(max(current, 1) × age / target)`.
    LatencyTarget(Duration),
}

impl DemandRule {
    /// The seed gem's threshold table.
    pub fn seed_thresholds() -> Self {
        DemandRule::Thresholds(SEED_THRESHOLDS.to_vec())
    }

    fn demand(&self, ready: u64, running: u64, age: Option<Duration>, current: u32) -> u32 {
        match self {
            DemandRule::Thresholds(table) => {
                table.iter().rev().find(|(jobs, _)| ready >= *jobs).map(|(_, w)| *w).unwrap_or(0)
            }
            DemandRule::JobsPerWorker(n) => sat_u32((ready + running).div_ceil((*n).max(1))),
            DemandRule::QueueLengthPerWorker(n) => sat_u32(ready.div_ceil((*n).max(1))),
            DemandRule::LatencyTarget(target) => {
                if ready == 0 {
                    return 0;
                }
                match age {
                    None => 1,
                    Some(age) => {
                        let t = target.as_secs_f64().max(1e-3);
                        let want = (f64::from(current.max(1)) * age.as_secs_f64() / t).ceil();
                        (want.min(f64::from(u32::MAX)) as u32).max(1)
                    }
                }
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            DemandRule::Thresholds(_) => "thresholds",
            DemandRule::JobsPerWorker(_) => "jobs-per-worker",
            DemandRule::QueueLengthPerWorker(_) => "queue-length-per-worker",
            DemandRule::LatencyTarget(_) => "latency-target",
        }
    }
}

fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// How the policy goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownMode {
    /// Down to the demand (the largest seen during the down delay), step by step, busy-safe.
    #[default]
    Gradual,
    /// The seed's rule: straight to `min_workers` once nothing is ready and nothing is running; never partially.
    Idle,
}

/// How the policy treats `max_workers` when demand is above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxMode {
    /// A backlog bigger than `max` scales to `max` (the right behaviour).
    #[default]
    Clamp,
    /// The seed gem's defect: demand above `max` blocks scale-up entirely. Kept only so the simulator can
    /// compare against the seed; never use it in production.
    LegacyVeto,
}

/// The settings of a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyConfig {
    /// Never fewer workers.
    pub min_workers: u32,
    /// Never more workers.
    pub max_workers: u32,
    /// Demand rules; the largest demand wins.
    pub rules: Vec<DemandRule>,
    /// How long demand must stay lower before scaling down.
    pub down_delay: Duration,
    /// Gradual (default) or the seed's idle rule.
    pub down_mode: DownMode,
    /// Allow a partial scale-down while jobs run when the source cannot name the dynos running them.
    /// Off by default: such a scale-down may interrupt jobs.
    pub allow_interrupting: bool,
    /// Clamp (default) or the seed's veto.
    pub max_mode: MaxMode,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            min_workers: 0,
            max_workers: 1,
            rules: vec![DemandRule::seed_thresholds()],
            down_delay: Duration::from_secs(30),
            down_mode: DownMode::Gradual,
            allow_interrupting: false,
            max_mode: MaxMode::Clamp,
        }
    }
}

/// A policy setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `min_workers` is above `max_workers`.
    #[error("min_workers ({min}) is greater than max_workers ({max}): lower min_workers or raise max_workers")]
    MinAboveMax {
        /// The minimum.
        min: u32,
        /// The maximum.
        max: u32,
    },
    /// No demand rule.
    #[error("no demand rule: set thresholds, jobs_per_worker or latency_target")]
    NoRules,
    /// The threshold table is empty or not strictly ascending.
    #[error(
        "thresholds must be strictly ascending in jobs and not descending in workers, e.g. 1:1,25:2,50:3 (got {0})"
    )]
    ThresholdsOutOfOrder(String),
    /// `jobs_per_worker` is zero.
    #[error("jobs_per_worker must be at least 1")]
    ZeroJobsPerWorker,
    /// `latency_target` is zero.
    #[error("latency_target must be greater than zero")]
    ZeroLatencyTarget,
}

/// The policy's short history, carried from one decision to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PolicyState {
    /// Since when the wanted quantity has stayed below the current one.
    pub lower_since: Option<SystemTime>,
    /// The largest wanted quantity seen since `lower_since`.
    pub window_peak: u32,
}

/// What the policy is told.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// The process type being scaled (to recognise its dynos in worker records).
    pub process_type: &'a str,
    /// The queue reading.
    pub snapshot: &'a Snapshot,
    /// The quantity the platform runs now.
    pub current: u32,
    /// The time of the decision.
    pub now: SystemTime,
    /// A lower ceiling learned from the platform (a refused quantity), if any.
    pub platform_limit: Option<u32>,
}

/// Which way a decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More workers.
    Up,
    /// Fewer workers.
    Down,
    /// No change.
    Hold,
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The current quantity.
    pub from: u32,
    /// The quantity to run.
    pub to: u32,
    /// What the demand rules want, clamped to the bounds (before delays and busy-safety).
    pub desired: u32,
    /// Why, in words.
    pub reason: String,
}

impl Decision {
    /// Up, down or hold.
    pub fn direction(&self) -> Direction {
        match self.to.cmp(&self.from) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        }
    }
}

/// A validated policy.
///
/// ```
/// use dyno_scaler_core::{Policy, PolicyConfig, PolicyInput, PolicyState, Snapshot, QueueStats};
/// use std::time::{Duration, UNIX_EPOCH};
/// let policy = Policy::new(PolicyConfig { max_workers: 3, ..PolicyConfig::default() }).unwrap();
/// let mut snap = Snapshot::default();
/// snap.add("default", QueueStats { ready: 60, ..QueueStats::default() });
/// let input = PolicyInput { process_type: "worker", snapshot: &snap, current: 0,
///                           now: UNIX_EPOCH + Duration::from_secs(100), platform_limit: None };
/// let (decision, _next) = policy.decide(&input, &PolicyState::default());
/// assert_eq!(decision.to, 3); // the seed table wants 3 for 60 jobs
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    config: PolicyConfig,
}

impl Policy {
    /// Validates `config`.
    pub fn new(config: PolicyConfig) -> Result<Self, PolicyError> {
        if config.min_workers > config.max_workers {
            return Err(PolicyError::MinAboveMax { min: config.min_workers, max: config.max_workers });
        }
        if config.rules.is_empty() {
            return Err(PolicyError::NoRules);
        }
        for rule in &config.rules {
            match rule {
                DemandRule::Thresholds(t) => validate_thresholds(t)?,
                DemandRule::JobsPerWorker(0) | DemandRule::QueueLengthPerWorker(0) => {
                    return Err(PolicyError::ZeroJobsPerWorker);
                }
                DemandRule::LatencyTarget(d) if d.is_zero() => return Err(PolicyError::ZeroLatencyTarget),
                _ => {}
            }
        }
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Decides the quantity to run. Pure: the same input and state give the same output.
    pub fn decide(&self, input: &PolicyInput<'_>, state: &PolicyState) -> (Decision, PolicyState) {
        let c = &self.config;
        let totals = input.snapshot.totals();
        let current = input.current;
        let max = match input.platform_limit {
            Some(l) => c.max_workers.min(l).max(c.min_workers),
            None => c.max_workers,
        };

        let mut reason = format!("{} ready, {} running", totals.ready, totals.running);
        if let Some(age) = totals.oldest_ready_age {
            let _ = write!(reason, ", oldest {:.1}s", age.as_secs_f64());
        }
        let mut demand = 0u32;
        let mut parts = Vec::with_capacity(c.rules.len());
        for rule in &c.rules {
            let d = rule.demand(totals.ready, totals.running, totals.oldest_ready_age, current);
            parts.push(format!("{} {}", rule.label(), d));
            demand = demand.max(d);
        }
        let _ = write!(reason, "; want {demand} ({})", parts.join(", "));

        let mut desired = demand.clamp(c.min_workers, max);
        if desired != demand {
            let _ = write!(reason, ", clamped to [{}, {}] = {desired}", c.min_workers, max);
        }
        if c.max_mode == MaxMode::LegacyVeto && demand > max && desired > current {
            let _ = write!(reason, "; seed veto: demand above max blocks scale-up");
            desired = current.max(c.min_workers);
        }

        let idle = totals.ready == 0 && totals.running == 0;
        let hold = |reason: String, next: PolicyState| (Decision { from: current, to: current, desired, reason }, next);

        if desired > current {
            let _ = write!(reason, "; scale up {current} -> {desired}");
            return (Decision { from: current, to: desired, desired, reason }, PolicyState::default());
        }
        if desired == current {
            let _ = write!(reason, "; hold at {current}");
            return hold(reason, PolicyState::default());
        }

        // desired < current: scaling down, subject to a complete reading, the mode, the delay and busy-safety.
        if !input.snapshot.unreadable.is_empty() {
            let _ = write!(
                reason,
                "; hold at {current}: part of the queue could not be read ({})",
                input.snapshot.unreadable.join("; ")
            );
            return hold(reason, *state);
        }
        let target = match c.down_mode {
            DownMode::Idle if !idle => {
                let _ =
                    write!(reason, "; hold at {current}: idle mode scales down only when nothing is ready or running");
                return hold(reason, PolicyState::default());
            }
            DownMode::Idle => c.min_workers,
            DownMode::Gradual => desired,
        };
        let (since, peak) = match state.lower_since {
            Some(since) => (since, state.window_peak.max(target)),
            None => (input.now, target),
        };
        let next = PolicyState { lower_since: Some(since), window_peak: peak };
        let waited = input.now.duration_since(since).unwrap_or_default();
        if waited < c.down_delay {
            let _ = write!(
                reason,
                "; hold at {current}: demand lower for {:.1}s of the {:.1}s down delay",
                waited.as_secs_f64(),
                c.down_delay.as_secs_f64()
            );
            return hold(reason, next);
        }
        let target = peak.min(current);

        let to = match self.busy_floor(input, totals.running) {
            BusyFloor::Known(floor) if floor > target => {
                let _ = write!(reason, "; dyno {}.{floor} is busy", input.process_type);
                floor
            }
            BusyFloor::Known(_) => target,
            BusyFloor::Unknown if totals.running > 0 && !c.allow_interrupting => {
                let _ = write!(
                    reason,
                    "; hold at {current}: {} jobs running and the source cannot name their dynos",
                    totals.running
                );
                return hold(reason, next);
            }
            BusyFloor::Unknown => target,
        };
        if to >= current {
            let _ = write!(reason, "; hold at {current}");
            return hold(reason, next);
        }
        let _ = write!(reason, "; scale down {current} -> {to}");
        (Decision { from: current, to, desired, reason }, PolicyState::default())
    }

    /// The lowest quantity that stops no busy dyno, when the workers name their dynos.
    fn busy_floor(&self, input: &PolicyInput<'_>, running: u64) -> BusyFloor {
        let Some(workers) = &input.snapshot.workers else {
            return BusyFloor::Unknown;
        };
        let mut floor = 0u32;
        let mut any_busy = false;
        for w in workers.iter().filter(|w| w.busy > 0) {
            any_busy = true;
            let Some(dyno) = &w.dyno else {
                return BusyFloor::Unknown;
            };
            match dyno_number(dyno, input.process_type) {
                Some(n) => floor = floor.max(n),
                // A dyno of our type that is not Cedar-numbered (Fir): the stop order is unknown.
                None if is_same_type(dyno, input.process_type) => return BusyFloor::Unknown,
                // Another process type's Cedar dyno: scaling this one cannot stop it.
                None if is_cedar_dyno(dyno) => {}
                // A host that is not a dyno name at all: where it runs is unknown.
                None => return BusyFloor::Unknown,
            }
        }
        if running > 0 && !any_busy {
            // Work runs but no worker record shows it: do not guess.
            return BusyFloor::Unknown;
        }
        BusyFloor::Known(floor)
    }
}

fn is_same_type(dyno: &str, process_type: &str) -> bool {
    dyno.strip_prefix(process_type).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
}

fn is_cedar_dyno(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(ty, n)| !ty.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

enum BusyFloor {
    Known(u32),
    Unknown,
}

fn validate_thresholds(t: &[(u64, u32)]) -> Result<(), PolicyError> {
    let ok = !t.is_empty() && t.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
    if ok {
        Ok(())
    } else {
        Err(PolicyError::ThresholdsOutOfOrder(t.iter().map(|(j, w)| format!("{j}:{w}")).collect::<Vec<_>>().join(",")))
    }
}

/// Parses a threshold table written `jobs:workers,jobs:workers` (e.g. `1:1,25:2,50:3`).
///
/// ```
/// use dyno_scaler_core::policy::parse_thresholds;
/// assert_eq!(parse_thresholds("1:1,25:2").unwrap(), vec![(1, 1), (25, 2)]);
/// assert!(parse_thresholds("25:2,1:1").is_err());
/// ```
pub fn parse_thresholds(s: &str) -> Result<Vec<(u64, u32)>, PolicyError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (j, w) = part.split_once(':').ok_or_else(|| PolicyError::ThresholdsOutOfOrder(s.to_owned()))?;
        let j = j.trim().parse().map_err(|_| PolicyError::ThresholdsOutOfOrder(s.to_owned()))?;
        let w = w.trim().parse().map_err(|_| PolicyError::ThresholdsOutOfOrder(s.to_owned()))?;
        out.push((j, w));
    }
    validate_thresholds(&out).map_err(|_| PolicyError::ThresholdsOutOfOrder(s.to_owned()))?;
    Ok(out)
}
