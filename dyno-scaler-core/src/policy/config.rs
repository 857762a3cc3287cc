//! The settings of a policy, and what makes them invalid.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::adaptive::Adaptive;
use super::rules::DemandRule;

/// How the policy goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    /// Demand rules; the largest demand wins (with the adaptive policy's, when it is on).
    pub rules: Vec<DemandRule>,
    /// The adaptive policy (the default): it learns durations, idle gaps and recurring load, and its drain,
    /// keep-alive and pre-warm rules join `rules`. `None`: the classic policy ([`PolicyConfig::classic`]).
    pub adaptive: Option<Adaptive>,
    /// How long demand must stay lower before scaling down (adaptive: until enough idle gaps are learned).
    #[serde(serialize_with = "crate::serde_secs::duration")]
    pub down_delay: Duration,
    /// Gradual (default) or the seed's idle rule.
    pub down_mode: DownMode,
    /// Allow a partial scale-down while jobs run when the source cannot name the dynos running them.
    /// Off by default: such a scale-down may interrupt jobs.
    pub allow_interrupting: bool,
    /// Clamp (default) or the seed's veto.
    pub max_mode: MaxMode,
    /// Before a scale-down whose victims the platform names, quiet their processes (where the source can) and
    /// wait until each is quiet and idle on a heartbeat taken after the signal (default on).
    pub quiet_victims: bool,
    /// The longest a scale-down waits for its quieted victims; past it the shrink is given up (and logged).
    #[serde(serialize_with = "crate::serde_secs::duration")]
    pub max_drain: Duration,
    /// Time windows with their own bounds; the first that holds sets them ([`schedule`](super::schedule)).
    pub schedule: Vec<super::schedule::Window>,
}

impl Default for PolicyConfig {
    /// The adaptive policy, `max_workers` 1.
    fn default() -> Self {
        Self { rules: Vec::new(), adaptive: Some(Adaptive::default()), ..Self::classic() }
    }
}

impl PolicyConfig {
    /// The classic policy: the seed gem's threshold table, a fixed 30 s down delay, busy-safe, `max_workers` 1.
    pub fn classic() -> Self {
        Self {
            min_workers: 0,
            max_workers: 1,
            rules: vec![DemandRule::seed_thresholds()],
            adaptive: None,
            down_delay: Duration::from_secs(30),
            down_mode: DownMode::Gradual,
            allow_interrupting: false,
            max_mode: MaxMode::Clamp,
            quiet_victims: true,
            max_drain: Duration::from_secs(600),
            schedule: Vec::new(),
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
    /// A setting of the adaptive policy given with `policy = "classic"`.
    #[error("{0} applies only to policy = \"adaptive\"; remove it or drop policy = \"classic\"")]
    AdaptiveOnly(&'static str),
    /// `worker_threads` is zero.
    #[error("worker_threads must be at least 1")]
    ZeroWorkerThreads,
    /// A setting of the web policy given with another policy.
    #[error(
        "{0} applies only to policy = \"web\" (the request_queue source's default); remove it or set policy = \"web\""
    )]
    WebOnly(&'static str),
    /// `puma_threads` or `puma_workers` is zero.
    #[error("puma_threads and puma_workers must be at least 1")]
    ZeroPuma,
    /// A schedule window is invalid, or its bounds are (`min_workers` above `max_workers`, `max_workers` 0).
    #[error("{0}")]
    Schedule(String),
    /// `max_workers` is zero: the process type could never run.
    #[error("max_workers is 0: the process type could never run a worker; set 1 or more")]
    ZeroMax,
    /// A duration outside what can be meant.
    #[error("{setting} of {value:?} is out of range; use {min:?} to {max:?}")]
    OutOfRange {
        /// The setting (`latency_target`, `down_delay`).
        setting: &'static str,
        /// The value given.
        value: Duration,
        /// The least value accepted.
        min: Duration,
        /// The greatest value accepted.
        max: Duration,
    },
}

impl PolicyError {
    /// The settings the error is about, by their names in files (`min_workers`, ...), so a program can say
    /// where each came from.
    pub fn settings(&self) -> &'static [&'static str] {
        match self {
            PolicyError::MinAboveMax { .. } => &["min_workers", "max_workers"],
            PolicyError::NoRules => &[],
            PolicyError::ThresholdsOutOfOrder(_) => &["thresholds"],
            PolicyError::ZeroJobsPerWorker => &["jobs_per_worker"],
            PolicyError::ZeroLatencyTarget => &["latency_target"],
            PolicyError::ZeroMax => &["max_workers"],
            PolicyError::Schedule(_) => &["schedule"],
            PolicyError::ZeroWorkerThreads => &["worker_threads"],
            PolicyError::AdaptiveOnly(name) => {
                ADAPTIVE_ONLY.iter().position(|k| k == name).map_or(&[], |i| &ADAPTIVE_ONLY[i..=i])
            }
            PolicyError::WebOnly(name) => WEB_ONLY.iter().position(|k| k == name).map_or(&[], |i| &WEB_ONLY[i..=i]),
            PolicyError::ZeroPuma => &["puma_threads", "puma_workers"],
            PolicyError::OutOfRange { setting: "queue_time_target", .. } => &["queue_time_target"],
            PolicyError::OutOfRange { setting: "drain_target", .. } => &["drain_target"],
            PolicyError::OutOfRange { setting: "latency_target", .. } => &["latency_target"],
            PolicyError::OutOfRange { .. } => &["down_delay"],
        }
    }
}

/// The accepted range of `latency_target`.
pub const LATENCY_TARGET_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(24 * 3600));
/// The settings only the adaptive policy has, by their names in files.
pub(super) const ADAPTIVE_ONLY: [&str; 4] = ["drain_target", "prewarm", "worker_threads", "remember"];

/// The settings only the web policy has, by their names in files.
pub(super) const WEB_ONLY: [&str; 3] = ["queue_time_target", "puma_threads", "puma_workers"];
/// The accepted range of `queue_time_target`.
pub const QUEUE_TIME_TARGET_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(60));

/// The accepted range of `drain_target`.
pub const DRAIN_TARGET_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// The accepted range of `down_delay`.
pub const DOWN_DELAY_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(24 * 3600));
