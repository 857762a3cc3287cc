//! A cycle's reading and decision: the queue's snapshot, the platform's formation read with what the queue knows
//! of its hosts, and the policy's decision over both.

use std::sync::atomic::Ordering;

use super::{Scaler, State};
use crate::error::ScalerError;
use crate::platform::{Formation, Hosts};
use crate::policy::{Decision, PolicyInput, PolicyState};
use crate::snapshot::Snapshot;

/// What one cycle read.
pub(super) struct Seen {
    pub(super) snapshot: Snapshot,
    /// What the snapshot says of the hosts, given to every platform request of the cycle.
    pub(super) hosts: Hosts,
    pub(super) formation: Formation,
}

impl Scaler {
    /// Asks for the next formation from the platform itself, not a cache (a takeover, a write in doubt).
    pub(super) fn read_fresh(&self) {
        self.inner.fresh.store(true, Ordering::SeqCst);
    }

    /// The snapshot, then the formation read with the snapshot's hosts.
    pub(super) async fn observe(&self) -> Result<Seen, ScalerError> {
        let cfg = &self.inner.cfg;
        let pt = &cfg.process_type;
        let snapshot = cfg
            .source
            .queue
            .snapshot()
            .await
            .map_err(|source| ScalerError::Source { process_type: pt.clone(), source })?;
        let hosts = Hosts::of(&snapshot);
        let fresh = self.inner.fresh.swap(false, Ordering::SeqCst);
        let formation = match cfg.platform.formation(pt, &hosts, fresh).await {
            Ok(f) => f,
            Err(source) => {
                if fresh {
                    self.read_fresh(); // not read: the next cycle asks again
                }
                return Err(ScalerError::Platform { process_type: pt.clone(), source });
            }
        };
        Ok(Seen { snapshot, hosts, formation })
    }

    /// The policy's decision over what was seen.
    pub(super) fn decide(&self, seen: &Seen, state: &State) -> (Decision, PolicyState) {
        let cfg = &self.inner.cfg;
        let input = PolicyInput {
            process_type: &cfg.process_type,
            snapshot: &seen.snapshot,
            current: seen.formation.quantity,
            now: cfg.clock.now(),
            platform_limit: state.limit,
            placements: Some(&seen.formation.placements),
            source_threads: cfg.source.queue.capabilities().worker_threads,
        };
        if cfg.policy.config().quiet_victims && !self.drains_victims() {
            // The policy trusts one idle heartbeat of a victim only because the drain proves it after the quiet.
            return cfg.policy.clone().without_quiet_victims().decide(&input, &state.policy);
        }
        cfg.policy.decide(&input, &state.policy)
    }
}
