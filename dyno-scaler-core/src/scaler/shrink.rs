//! The scaler's side of quiet-then-drain ([`crate::drain`]): signals the victims of a scale-down and holds the
//! shrink until they are drained, the demand returns, or the maximum drain time passes.

use crate::drain;
use crate::gate::Gate;
use crate::policy::{Decision, Direction};

use super::{Scaler, State};

impl Scaler {
    /// Whether a scale-down quiets and drains its victims: the policy asks for it, and the source reports quiet
    /// workers and can quiet them.
    pub(super) fn drains_victims(&self) -> bool {
        let source = &self.inner.cfg.source;
        self.inner.cfg.policy.config().quiet_victims && source.quiet.is_some() && source.queue.capabilities().quiet
    }

    /// Before a scale-down whose victims the platform names and whose source can quiet workers: quiet the
    /// processes on the victims, and turn the decision into a hold until each is quiet and idle on a heartbeat
    /// taken after the signal ([`drain::step`]). Returns the victims still draining.
    pub(super) async fn gate_shrink(
        &self,
        state: &mut State,
        seen: &super::observe::Seen,
        decision: &mut Decision,
    ) -> Vec<String> {
        let cfg = &self.inner.cfg;
        let pt = &cfg.process_type;
        let policy = cfg.policy.config();
        let enabled = self.drains_victims();
        if !enabled && state.drain.is_none() {
            return Vec::new();
        }
        let victims =
            if enabled && decision.direction() == Direction::Down { seen.formation.victims(decision.to) } else { None };
        let out = drain::step(
            &mut state.drain,
            &seen.snapshot,
            (decision.from, decision.to),
            victims,
            cfg.clock.now(),
            policy.max_drain,
        );
        if let Some(note) = out.note {
            tracing::info!(process_type = %pt, victims = ?out.draining, "{note}");
        }
        if !out.quiet.is_empty()
            && let Some(quiet) = &cfg.source.quiet
            && let Err(e) = quiet.quiet(&out.quiet).await
        {
            tracing::warn!(process_type = %pt, error = %e, "cannot quiet the victims; holding");
            state.drain = None;
            decision.apply_gate(Gate::QuietFailed { error: e.to_string() });
            return Vec::new();
        }
        if let Some((to, gate)) = out.set {
            decision.apply_gate_to(to, gate);
        }
        out.draining
    }
}
