//! The scaling policy: pure, deterministic, free of I/O.
//!
//! [`Policy::decide`] takes a snapshot, the current quantity, the time and the policy's own short history
//! ([`PolicyState`]) and returns a [`Decision`] with a human-readable reason, plus the next history.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::platform::Placement;
use crate::snapshot::Snapshot;

mod adaptive;
mod busy;
mod config;
pub mod lag;
pub mod learn;
pub mod recur;
mod rules;
pub mod schedule;
mod settings;
pub mod spread;
mod step;
pub mod threads;
pub mod web;
pub mod why;

pub use adaptive::Adaptive;
pub use config::{DownMode, MaxMode, PolicyConfig, PolicyError};
pub use learn::Learned;
use rules::validate_thresholds;
pub use rules::{DemandRule, SEED_THRESHOLDS, parse_thresholds};
pub use settings::{PolicyKind, PolicySettings};
pub use why::{Verdict, Why};

/// The policy's short history, carried from one decision to the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyState {
    /// Since when the wanted quantity has stayed below the current one.
    #[serde(serialize_with = "crate::serde_secs::option_time")]
    pub lower_since: Option<SystemTime>,
    /// The largest wanted quantity seen since `lower_since`.
    pub window_peak: u32,
    /// Per worker identity, the heartbeats in a row that showed it idle ([`lag`]).
    #[serde(skip)]
    pub idle_beats: std::collections::BTreeMap<String, lag::IdleStreak>,
    /// What the adaptive policy learned ([`Learned`]); kept across restarts where a store allows.
    #[serde(skip)]
    pub learned: Learned,
    /// The first reading of the current stretch with nothing ready (`None` while jobs wait): a heartbeat after it
    /// cannot hide a job fetched from the queue before it.
    #[serde(skip)]
    pub ready_gone: Option<SystemTime>,
    /// Since when busy dynos have held every scale-down the demand wanted (through its delays), if they do
    /// ([`spread`]).
    #[serde(skip)]
    pub busy_held_since: Option<SystemTime>,
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
    /// Where each worker host is for a scale-down, as the platform says ([`crate::platform::Formation::placements`]);
    /// `None`: nowhere known, so nothing scales down while anything runs.
    pub placements: Option<&'a std::collections::BTreeMap<String, Placement>>,
    /// How many jobs one worker runs at once by the job system's default, as the source states it
    /// ([`crate::Capabilities::worker_threads`]): the adaptive policy's figure when no reading or setting says.
    pub source_threads: Option<u32>,
}

impl<'a> PolicyInput<'a> {
    /// An input for `process_type` now at `current`, with no platform limit and no placements (so nothing
    /// scales down while anything runs); set the fields for more.
    pub fn new(process_type: &'a str, snapshot: &'a Snapshot, current: u32) -> Self {
        Self {
            process_type,
            snapshot,
            current,
            now: SystemTime::now(),
            platform_limit: None,
            placements: None,
            source_threads: None,
        }
    }
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
#[non_exhaustive]
pub struct Decision {
    /// The current quantity.
    pub from: u32,
    /// The quantity to run.
    pub to: u32,
    /// What the demand rules want, clamped to the bounds (before delays and busy-safety).
    pub desired: u32,
    /// Why, in words: the policy's reason, then each gate's ([`crate::gate`]).
    pub reason: String,
    /// The last gate that held (or finished) the decision in the scaler, if any ([`Decision::apply_gate`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::Gate>,
    /// The quantity the policy decided, where a gate changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would: Option<u32>,
}

impl Decision {
    /// A decision from `from` to `to` workers, `desired` by the rules, for `reason`.
    pub fn new(from: u32, to: u32, desired: u32, reason: impl Into<String>) -> Self {
        Self { from, to, desired, reason: reason.into(), gate: None, would: None }
    }

    /// Up, down or hold.
    pub fn direction(&self) -> Direction {
        match self.to.cmp(&self.from) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        }
    }

    /// What holds this decision, figures aside: the reason from its first hold clause on, without digits, so
    /// "demand lower for 3.0s of the 30.0s keep-alive" is the same hold at every cycle and a log can say each new
    /// one once. `None` when it changes the quantity or simply holds at what is wanted.
    ///
    /// ```
    /// use dyno_scaler_core::Decision;
    /// let d = |reason: &str| Decision::new(2, 2, 0, reason);
    /// assert_eq!(d("0 ready, 1 running; want 0; hold at 2").held_by(), None);
    /// let a = d("0 ready, 1 running; want 0; hold at 2: demand lower for 1.0s of the 30.0s down delay");
    /// let b = d("0 ready, 1 running; want 0; hold at 2: demand lower for 2.0s of the 30.0s down delay");
    /// assert!(a.held_by().is_some() && a.held_by() == b.held_by());
    /// ```
    pub fn held_by(&self) -> Option<String> {
        if self.direction() != Direction::Hold {
            return None;
        }
        let r = &self.reason;
        let at = ["; hold at ", "; not acting", "; not asking again", "; paused", "; following", "; the lease's store"]
            .iter()
            .filter_map(|m| r.find(m))
            .min()?;
        let tail = &r[at..];
        let plain = tail.strip_prefix("; hold at ").is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()));
        (!plain).then(|| tail.chars().filter(|c| !c.is_ascii_digit()).collect())
    }
}

/// A validated policy.
///
/// ```
/// use dyno_scaler_core::{Policy, PolicyConfig, PolicyInput, PolicyState, Snapshot, QueueStats};
/// use std::time::{Duration, UNIX_EPOCH};
/// let policy = Policy::new(PolicyConfig { max_workers: 3, ..PolicyConfig::classic() }).unwrap();
/// let mut snap = Snapshot::default();
/// snap.add("default", QueueStats::ready(60));
/// let input = PolicyInput { now: UNIX_EPOCH + Duration::from_secs(100), ..PolicyInput::new("worker", &snap, 0) };
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
        if config.max_workers == 0 {
            return Err(PolicyError::ZeroMax);
        }
        if config.min_workers > config.max_workers {
            return Err(PolicyError::MinAboveMax { min: config.min_workers, max: config.max_workers });
        }
        if config.rules.is_empty() && config.adaptive.is_none() {
            return Err(PolicyError::NoRules);
        }
        if let Some(a) = &config.adaptive {
            in_range("drain_target", a.drain_target, config::DRAIN_TARGET_RANGE)?;
            if a.worker_threads == Some(0) {
                return Err(PolicyError::ZeroWorkerThreads);
            }
        }
        for rule in &config.rules {
            match rule {
                DemandRule::Thresholds(t) => validate_thresholds(t)?,
                DemandRule::JobsPerWorker(0) | DemandRule::QueueLengthPerWorker(0) => {
                    return Err(PolicyError::ZeroJobsPerWorker);
                }
                DemandRule::LatencyTarget(d) if d.is_zero() => return Err(PolicyError::ZeroLatencyTarget),
                DemandRule::LatencyTarget(d) => in_range("latency_target", *d, config::LATENCY_TARGET_RANGE)?,
                DemandRule::QueueTime { threads: 0, .. } => return Err(PolicyError::ZeroPuma),
                DemandRule::QueueTime { target, .. } => {
                    in_range("queue_time_target", *target, config::QUEUE_TIME_TARGET_RANGE)?
                }
                _ => {}
            }
        }
        in_range("down_delay", config.down_delay, config::DOWN_DELAY_RANGE)?;
        for w in &config.schedule {
            let (min, max) = w.bounds((config.min_workers, config.max_workers));
            if max == 0 || min > max {
                return Err(PolicyError::Schedule(format!(
                    "schedule window {:?}: its bounds [{min}, {max}] are empty (min_workers above max_workers, or max_workers 0)",
                    w.name
                )));
            }
        }
        Ok(Self { config })
    }

    /// The same policy without quiet-then-drain (for a source that cannot quiet its workers).
    pub fn without_quiet_victims(mut self) -> Self {
        self.config.quiet_victims = false;
        self
    }

    /// The settings.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Decides the quantity to run. Pure: the same input and state give the same output.
    pub fn decide(&self, input: &PolicyInput<'_>, state: &PolicyState) -> (Decision, PolicyState) {
        let mut next = state.clone();
        let verdict = self.advance(input, &mut next);
        (verdict.decision(), next)
    }

    /// [`decide`](Self::decide) in place: advances `state` to the next history and returns the decision with its
    /// reason in typed parts, put in words only if shown ([`Verdict::decision`]). The same decisions as `decide`,
    /// without copying what was learned or writing a sentence no one reads (the simulator's way).
    pub fn advance(&self, input: &PolicyInput<'_>, state: &mut PolicyState) -> Verdict {
        lag::advance(&mut state.idle_beats, input.snapshot);
        if self.config.adaptive.is_some() {
            state.learned.observe(input.snapshot, secs(input.now), input.current);
        }
        let ready_gone =
            (input.snapshot.totals().ready == 0).then(|| state.ready_gone.unwrap_or(input.now).min(input.now));
        let window = (state.lower_since, state.window_peak);
        let held = state.busy_held_since.and_then(|t| input.now.duration_since(t).ok()).unwrap_or_default();
        let (verdict, (lower_since, window_peak)) =
            self.decide_with(input, window, &state.idle_beats, &mut state.learned, (ready_gone, held));
        state.lower_since = lower_since;
        state.window_peak = window_peak;
        state.ready_gone = ready_gone;
        state.busy_held_since = spread::held_since(state.busy_held_since, &verdict, input.now);
        verdict
    }
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn in_range(setting: &'static str, value: Duration, (min, max): (Duration, Duration)) -> Result<(), PolicyError> {
    if value < min || value > max {
        return Err(PolicyError::OutOfRange { setting, value, min, max });
    }
    Ok(())
}
