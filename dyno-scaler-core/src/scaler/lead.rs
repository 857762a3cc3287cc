//! Whether this scaler may act: it holds its process type's lease (when the lease is exclusive) and no pause holds.

use std::sync::Arc;

use super::{Report, Scaler, State};
use crate::lease::{Lease, LeaseOptions, Pause};
use crate::policy::{Decision, Direction};

/// Why a scaler does not act this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Gate {
    /// It may act.
    Act,
    /// Another instance holds the lease (or the store cannot be reached).
    Follow(String),
    /// A pause holds.
    Paused(Pause),
}

impl Scaler {
    pub(super) fn lease(&self) -> Option<&(Arc<dyn Lease>, LeaseOptions)> {
        self.inner.cfg.lease.as_ref()
    }

    /// Asks the lease's store when due (every `ttl / 3`) and says whether this cycle may act.
    pub(super) async fn gate(&self, state: &mut State) -> Gate {
        let Some((lease, opts)) = self.lease() else { return Gate::Act };
        if state.lead.due(opts.ttl) {
            let started = tokio::time::Instant::now();
            // A dry run never takes the lease: it would keep the real scaler from acting.
            let answer = if opts.exclusive && !self.inner.cfg.dry_run {
                lease.campaign(&opts.identity, opts.ttl).await
            } else {
                lease.read().await.map(|mut s| {
                    s.held = true;
                    s
                })
            };
            let was = state.lead.holds();
            state.lead.record(started, opts.ttl, answer);
            let pt = &self.inner.cfg.process_type;
            match (&state.lead.error, was, state.lead.holds()) {
                (Some(e), _, _) => {
                    tracing::warn!(process_type = %pt, error = %e, "cannot reach the lease's store; not acting")
                }
                (None, false, true) if opts.exclusive => {
                    tracing::info!(process_type = %pt, identity = %opts.identity, "took the lease: acting")
                }
                (None, true, false) => {
                    tracing::info!(process_type = %pt, leader = ?state.lead.state.holder, "lost the lease: following")
                }
                _ => {}
            }
        }
        let now = self.inner.cfg.clock.now();
        if let Some(p) = state.lead.state.pause.as_ref().filter(|p| p.holds_at(now)) {
            return Gate::Paused(p.clone());
        }
        if let Some(e) = &state.lead.error {
            return Gate::Follow(format!("the lease's store ({}) cannot be reached: {e}", lease.store()));
        }
        if !state.lead.holds() {
            let holder = state.lead.state.holder.as_deref().unwrap_or("nobody yet");
            return Gate::Follow(format!("following: the lease is held by {holder}"));
        }
        Gate::Act
    }

    /// Whether the lease still holds right before a platform call (a slow cycle may outlive it).
    pub(super) fn still_holds(&self, state: &State) -> bool {
        self.lease().is_none_or(|(_, o)| !o.exclusive || state.lead.holds())
    }

    /// Turns `decision` into a hold that says why and what it would have done.
    pub(super) fn hold_for(decision: &mut Decision, gate: &Gate) {
        let why = match gate {
            Gate::Act => return,
            Gate::Follow(why) => why.clone(),
            Gate::Paused(p) => format!("paused {} by {}", p.describe(), p.by),
        };
        decision.reason = if decision.direction() == Direction::Hold {
            format!("{}; {why}", decision.reason)
        } else {
            format!("{}; not acting, {why} (would scale {} -> {})", decision.reason, decision.from, decision.to)
        };
        decision.to = decision.from;
    }

    /// Reads the lease's holder and pause into `report` without campaigning (for `preview`).
    pub(super) async fn describe_lease(&self, report: &mut Report) {
        let Some((lease, opts)) = self.lease() else { return };
        match lease.read().await {
            Ok(s) => {
                report.leader = if opts.exclusive { s.holder } else { None };
                report.paused = s.pause.filter(|p| p.holds_at(self.inner.cfg.clock.now()));
            }
            Err(e) => tracing::warn!(process_type = %self.inner.cfg.process_type, error = %e, "cannot read the lease"),
        }
    }

    /// Gives the lease up if held (when the loop stops), so a follower takes over at its next campaign.
    pub(super) async fn release_lease(&self) {
        let Some((lease, opts)) = self.lease() else { return };
        let held = self.inner.state.lock().await.lead.holds();
        if opts.exclusive && held {
            match lease.release(&opts.identity).await {
                Ok(()) => tracing::info!(process_type = %self.inner.cfg.process_type, "released the lease"),
                Err(e) => {
                    tracing::warn!(process_type = %self.inner.cfg.process_type, error = %e, "cannot release the lease; it ends with its TTL")
                }
            }
        }
    }
}
