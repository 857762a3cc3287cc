//! Demand rules: how the queue's state turns into a number of workers wanted.

use std::time::Duration;

use serde::Serialize;

use super::PolicyError;

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
    LatencyTarget(#[serde(serialize_with = "crate::serde_secs::duration")] Duration),
    /// The web rule ([`super::web`]): keep the percentile of request queue time under `target`, on dynos of
    /// `threads` (Puma threads × workers).
    QueueTime {
        /// The queue time to stay under.
        #[serde(serialize_with = "crate::serde_secs::duration")]
        target: Duration,
        /// Threads a dyno serves requests on.
        threads: u32,
    },
}

impl DemandRule {
    /// The seed gem's threshold table.
    pub fn seed_thresholds() -> Self {
        DemandRule::Thresholds(SEED_THRESHOLDS.to_vec())
    }

    pub(super) fn demand(
        &self,
        (ready, running, age): (u64, u64, Option<Duration>),
        requests: Option<&crate::requests::RequestStats>,
        current: u32,
    ) -> u32 {
        match self {
            DemandRule::QueueTime { target, threads } => super::web::demand(requests, *target, *threads, current),
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

    pub(super) fn label(&self) -> &'static str {
        match self {
            DemandRule::Thresholds(_) => "thresholds",
            DemandRule::JobsPerWorker(_) => "jobs-per-worker",
            DemandRule::QueueLengthPerWorker(_) => "queue-length-per-worker",
            DemandRule::LatencyTarget(_) => "latency-target",
            DemandRule::QueueTime { .. } => "queue-time",
        }
    }
}

fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(super) fn validate_thresholds(t: &[(u64, u32)]) -> Result<(), PolicyError> {
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
