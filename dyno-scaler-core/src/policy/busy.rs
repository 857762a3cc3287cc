//! Which dynos a scale-down may stop: busy workers (and those not yet seen idle) protect their dynos, quiet ones
//! are no capacity.

use super::{Policy, PolicyInput, SystemTime, lag};
use crate::platform::Placement;

/// The stop ranks of those of `dynos` that are this process type's (the platform stops the lowest ranks first).
fn stop_ranks<'a>(input: &PolicyInput<'_>, dynos: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    dynos
        .into_iter()
        .filter_map(|d| match input.placements.and_then(|p| p.get(d)) {
            Some(Placement::Stops(rank)) => Some(*rank),
            _ => None,
        })
        .collect()
}

/// The stop ranks of this process type's dynos on which every process is quiet.
fn quiet_ranks(input: &PolicyInput<'_>) -> Vec<u32> {
    stop_ranks(input, input.snapshot.quiet_dynos())
}

impl Policy {
    /// The least quantity whose surviving dynos (the platform stops the lowest ranks first) include `peak` that
    /// are not quiet; quiet dynos that stop first cost nothing to lose.
    pub(super) fn keeping_capacity(&self, input: &PolicyInput<'_>, peak: u32) -> u32 {
        let current = input.current;
        let quiet_ranks = quiet_ranks(input);
        (peak.min(current)..=current)
            .find(|q| {
                let quiet_kept = quiet_ranks.iter().filter(|r| **r >= current - q).count() as u32;
                q.saturating_sub(quiet_kept) >= peak
            })
            .unwrap_or(current)
    }

    /// Dynos of this process type on which a process ran a job at its last heartbeat.
    pub(super) fn busy_dynos(&self, input: &PolicyInput<'_>) -> u32 {
        u32::try_from(stop_ranks(input, input.snapshot.busy_dynos()).len()).unwrap_or(u32::MAX)
    }

    /// Dynos of this process type on which every process is quiet.
    pub(super) fn quiet_dynos(&self, input: &PolicyInput<'_>) -> u32 {
        u32::try_from(quiet_ranks(input).len()).unwrap_or(u32::MAX)
    }

    /// The lowest quantity that stops no busy dyno, when the workers name their dynos.
    /// A worker counts as busy here until it was idle on two heartbeats in a row ([`lag`]).
    pub(super) fn busy_floor(
        &self,
        input: &PolicyInput<'_>,
        running: u64,
        streaks: &std::collections::BTreeMap<String, lag::IdleStreak>,
        ready_gone: Option<SystemTime>,
    ) -> BusyFloor {
        let Some(workers) = &input.snapshot.workers else {
            return BusyFloor::Unknown;
        };
        let mut floor = (0u32, String::new());
        let any_busy = workers.iter().any(|w| w.busy > 0);
        for w in workers {
            let placement = w.dyno.as_ref().and_then(|host| input.placements.and_then(|p| p.get(host)));
            // A victim the platform names is quieted and must show idle on a heartbeat after the quiet before it
            // stops ([`crate::drain`]): one idle beat is enough to start that when it came after the queue last
            // held a job (else the job may be on the worker, unseen, and the drain would hold a quiet dyno for its
            // whole run). Elsewhere two in a row ([`lag`]).
            let drained = self.config.quiet_victims && matches!(placement, Some(Placement::Stops(_)));
            let beat_after_queue = ready_gone.is_some_and(|gone| w.beat.is_some_and(|b| b > gone));
            if (drained && beat_after_queue && w.busy == 0) || lag::confirmed_idle(w, streaks) {
                continue;
            }
            let Some(host) = &w.dyno else {
                return BusyFloor::Unknown;
            };
            match placement {
                // The platform stops it as the `rank`th: at most `rank` dynos may go.
                Some(Placement::Stops(rank)) => {
                    let keep = input.current.saturating_sub(*rank);
                    if keep > floor.0 {
                        floor = (keep, host.clone());
                    }
                }
                // Another process type's: scaling this one cannot stop it.
                Some(Placement::Elsewhere) => {}
                // Where it runs is unknown (Fir, a host that is no process of the platform).
                Some(Placement::Unknown) | None => return BusyFloor::Unknown,
            }
        }
        if running > 0 && !any_busy {
            // Work runs but no worker record shows it: do not guess.
            return BusyFloor::Unknown;
        }
        BusyFloor::Known(floor.0, floor.1)
    }
}

pub(super) enum BusyFloor {
    /// The lowest quantity that stops no busy process, and the busy host that sets it.
    Known(u32, String),
    Unknown,
}
