//! What the adaptive policy learned survives a restart (Heroku restarts every dyno daily): the scaler recalls the
//! summary from the source's store ([`crate::Store`]) on its first cycle and keeps it there every [`KEEP_EVERY`]. A store error
//! never stops scaling: the policy then starts from safe defaults and learns again.

use std::time::{Duration, SystemTime};

use crate::policy::Learned;

use super::{Scaler, State};

/// How often the summary is written.
pub const KEEP_EVERY: Duration = Duration::from_secs(60);

impl Scaler {
    /// The store that keeps the summary, where the policy remembers and the source has one.
    fn memory(&self) -> Option<&dyn crate::Store> {
        let cfg = &self.inner.cfg;
        let store = cfg.source.store.as_deref().filter(|s| s.remembers())?;
        cfg.policy.config().adaptive.as_ref().is_some_and(|a| a.remember).then_some(store)
    }

    /// Once per scaler, before its first decision: the summary kept by an earlier run, if any.
    pub(super) async fn recall(&self, state: &mut State) {
        let Some(store) = self.memory().filter(|_| !state.recalled) else { return };
        state.recalled = true;
        let pt = &self.inner.cfg.process_type;
        match store.recall(pt).await {
            Ok(Some(json)) => match serde_json::from_str::<Learned>(&json) {
                Ok(learned) => {
                    let learned = learned.restarted();
                    tracing::info!(
                        process_type = %pt,
                        idle_gaps = learned.gap_count(),
                        job_secs = ?learned.job_secs(),
                        "recalled what the policy learned before the restart"
                    );
                    state.policy.learned = learned;
                }
                Err(e) => {
                    tracing::warn!(process_type = %pt, error = %e, "the learned summary is unreadable; learning again")
                }
            },
            Ok(None) => tracing::debug!(process_type = %pt, "nothing learned before; starting from the defaults"),
            Err(e) => tracing::warn!(process_type = %pt, error = %e, "cannot recall what was learned; learning again"),
        }
    }

    /// Writes the summary when [`KEEP_EVERY`] has passed since the last write.
    /// A dry run writes nothing.
    pub(super) async fn keep(&self, state: &mut State, now: SystemTime) {
        let Some(store) = self.memory() else { return };
        if self.inner.cfg.dry_run
            || state.kept_at.is_some_and(|t| now.duration_since(t).unwrap_or_default() < KEEP_EVERY)
        {
            return;
        }
        state.kept_at = Some(now);
        let pt = &self.inner.cfg.process_type;
        let json = match serde_json::to_string(&state.policy.learned) {
            Ok(json) => json,
            Err(e) => return tracing::warn!(process_type = %pt, error = %e, "cannot encode what was learned"),
        };
        if let Err(e) = store.remember(pt, &json).await {
            tracing::warn!(process_type = %pt, error = %e, "cannot keep what was learned (will try again)");
        }
    }
}
