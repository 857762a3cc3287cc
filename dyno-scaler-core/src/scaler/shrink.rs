//! The scaler's side of quiet-then-drain ([`crate::drain`]): signals the victims of a scale-down and holds the
//! shrink until they are drained, the demand returns, or the maximum drain time passes.

use crate::drain::{self, Drain, RESIGNAL_AFTER};
use crate::policy::{Decision, Direction};
use crate::snapshot::Snapshot;

use super::{Scaler, State};

impl Scaler {
    /// Before a scale-down whose victims the platform names and whose source can quiet workers: quiet the
    /// processes on the victims, and turn the decision into a hold until each is quiet and idle on a heartbeat
    /// taken after the signal. Returns the victims still draining.
    pub(super) async fn gate_shrink(
        &self,
        state: &mut State,
        snapshot: &Snapshot,
        decision: &mut Decision,
    ) -> Vec<String> {
        let cfg = &self.inner.cfg;
        let pt = &cfg.process_type;
        if decision.direction() != Direction::Down {
            return match state.drain.take() {
                // A victim seen busy holds the policy itself: keep waiting for it.
                Some(d) if decision.direction() == Direction::Hold && decision.desired < d.from => {
                    let draining = d.dynos.clone();
                    state.drain = Some(d);
                    draining
                }
                Some(d) => {
                    tracing::info!(process_type = %pt, victims = ?d.dynos, "drain abandoned: demand returned (the quieted processes take no jobs until their dynos restart)");
                    Vec::new()
                }
                None => Vec::new(),
            };
        }
        let policy = cfg.policy.config();
        if !policy.quiet_victims || !cfg.source.capabilities().quiet {
            return Vec::new();
        }
        let Some(dynos) = cfg.platform.victims(pt, decision.from, decision.to) else { return Vec::new() };
        let now = cfg.clock.now();
        let mut d = match state.drain.take() {
            Some(d) if (d.from, d.to) == (decision.from, decision.to) => d,
            _ => {
                let identities: Vec<String> =
                    drain::victims(snapshot, &dynos).iter().map(|w| w.identity.clone()).collect();
                if identities.is_empty() {
                    return Vec::new(); // no process runs on the victims
                }
                if let Err(e) = cfg.source.quiet(&identities).await {
                    tracing::warn!(process_type = %pt, error = %e, "cannot quiet the victims; holding");
                    hold(decision, &format!("the victims could not be quieted ({e})"));
                    return Vec::new();
                }
                tracing::info!(process_type = %pt, victims = ?dynos, processes = identities.len(), "quieting the victims of a scale-down");
                Drain { from: decision.from, to: decision.to, dynos, identities, started: now, signalled: now }
            }
        };
        let pending: Vec<String> = drain::pending(snapshot, &d).iter().map(|w| w.identity.clone()).collect();
        if pending.is_empty() {
            tracing::info!(process_type = %pt, victims = ?d.dynos, "victims drained");
            return Vec::new();
        }
        let waited = now.duration_since(d.started).unwrap_or_default();
        if waited > policy.max_drain {
            tracing::warn!(process_type = %pt, victims = ?d.dynos, waited_s = waited.as_secs(), "gave up draining: the victims stayed busy past max_drain; not scaling down");
            hold(decision, &format!("gave up draining {} after {}s (max_drain)", d.dynos.join(", "), waited.as_secs()));
            return Vec::new();
        }
        if now.duration_since(d.signalled).unwrap_or_default() > RESIGNAL_AFTER {
            let unquiet: Vec<String> =
                drain::pending(snapshot, &d).iter().filter(|w| !w.quiet).map(|w| w.identity.clone()).collect();
            if !unquiet.is_empty() && cfg.source.quiet(&unquiet).await.is_ok() {
                d.signalled = now;
            }
        }
        hold(
            decision,
            &format!(
                "draining {}: waiting until {} are quiet and idle on a heartbeat after the signal",
                d.dynos.join(", "),
                pending.join(", ")
            ),
        );
        let draining = d.dynos.clone();
        state.drain = Some(d);
        draining
    }
}

fn hold(decision: &mut Decision, why: &str) {
    decision.reason = format!("{}; hold at {}: {why}", decision.reason, decision.from);
    decision.to = decision.from;
}
