//! The platform call of a decision that changes the quantity, and what its failures teach the next cycles.

use super::{Scaler, State};
use crate::error::{PlatformError, ScalerError};
use crate::platform::{Hosts, ScaleRequest};
use crate::policy::Decision;

impl Scaler {
    /// Sets the decision's quantity: `Ok(true)` when applied, `Ok(false)` when not (a dry run; or abandoned because
    /// the lease ran out mid-call, which the decision then says), an error when the platform failed or refused
    /// (a limit becomes the ceiling, an unexplained refusal is not asked again until something changes).
    pub(super) async fn apply(
        &self,
        state: &mut State,
        decision: &mut Decision,
        hosts: &Hosts,
    ) -> Result<bool, ScalerError> {
        let cfg = &self.inner.cfg;
        let pt = &cfg.process_type;
        if cfg.dry_run {
            tracing::info!(process_type = %pt, from = decision.from, to = decision.to, reason = %decision.reason, "dry run: would scale");
            return Ok(false);
        }
        let request = ScaleRequest::new(pt, decision.to, hosts);
        let call = cfg.platform.scale(&request);
        let outcome = tokio::select! { r = call => Some(r), () = self.lease_lost() => None };
        let Some(set) = outcome else {
            // Abandoned: no retry of it goes out, but a request already sent may still land.
            Self::doubt(state);
            tracing::warn!(process_type = %pt, to = decision.to, "the lease ran out during the platform call: abandoned it");
            decision.apply_gate(crate::gate::Gate::Abandoned);
            return Ok(false);
        };
        self.platform_answered(!set.as_ref().is_err_and(PlatformError::is_outage)).await;
        match set {
            Ok(()) => {
                tracing::info!(process_type = %pt, from = decision.from, to = decision.to, reason = %decision.reason, "scaled");
                Ok(true)
            }
            Err(source) => {
                // The request may still land (a timeout): the formation is read again for a while.
                Self::doubt(state);
                match &source {
                    PlatformError::LimitExceeded { requested, limit, .. } => {
                        let below = requested.saturating_sub(1);
                        state.limit = Some(limit.map_or(below, |l| l.min(below)));
                        state.limit_at = Some(cfg.clock.now());
                    }
                    PlatformError::Rejected { .. } => state.refused = Some((decision.from, decision.to)),
                    _ => {}
                }
                Err(ScalerError::Platform { process_type: pt.clone(), source })
            }
        }
    }
}

/// How long a limit the platform named in a refusal caps the quantity: after it the scaler asks above it again
/// (once; a platform that still refuses names it again), so a limit raised at the platform (a plan upgrade, a
/// support ticket) is used without a restart.
pub const LIMIT_MEMORY: std::time::Duration = std::time::Duration::from_secs(600);

impl Scaler {
    /// Forgets a learned limit older than [`LIMIT_MEMORY`].
    pub(super) fn forget_limit(&self, state: &mut State) {
        let Some(at) = state.limit_at else { return };
        let age = self.inner.cfg.clock.now().duration_since(at).unwrap_or_default();
        if age < LIMIT_MEMORY {
            return;
        }
        tracing::info!(
            process_type = %self.inner.cfg.process_type,
            limit = state.limit,
            learned_secs = age.as_secs(),
            "the platform's limit was learned a while ago: asking above it again when needed"
        );
        state.limit = None;
        state.limit_at = None;
    }
}
