//! A write that may still land. Heroku's API has no fencing token: a request abandoned by its caller (a timeout, a
//! lease lost mid-call) may reach the platform later and overwrite what another holder set. So a scaler stops
//! retrying the moment its lease is lost, and after a takeover, or a platform call that failed or was abandoned, it
//! reads the formation again every [`REREAD_EVERY`] for [`REREAD_WINDOW`] instead of trusting its cache (a minute on
//! Heroku): a late write is seen, and corrected, within seconds.

use std::time::Duration;

use tokio::time::Instant;

use super::{Scaler, State};

/// How long after a takeover or a doubtful call the formation is read afresh: as long as a request of the last
/// holder can still be on its way (Heroku's adapter gives a call 30 s, its requests included).
pub const REREAD_WINDOW: Duration = Duration::from_secs(30);
/// How often it is read in that window.
pub const REREAD_EVERY: Duration = Duration::from_secs(5);

impl Scaler {
    /// Notes that a platform call may still land (it failed, timed out, or was abandoned).
    pub(super) fn doubt(state: &mut State) {
        state.doubt_until = Some(Instant::now() + REREAD_WINDOW);
    }

    /// Within a window of doubt (a takeover, a doubtful call), makes the platform read its quantity afresh, at
    /// most every [`REREAD_EVERY`].
    pub(super) async fn reread_if_in_doubt(&self, state: &mut State) {
        let now = Instant::now();
        let took = self.inner.lead.lock().await.took_at.map(|t| t + REREAD_WINDOW);
        let until = state.doubt_until.max(took);
        if until.is_some_and(|u| now < u) && state.reread_at.is_none_or(|t| now.duration_since(t) >= REREAD_EVERY) {
            state.reread_at = Some(now);
            self.read_fresh();
        }
    }

    /// Resolves once this scaler no longer holds its exclusive lease (never, without one): a platform call in
    /// flight is then abandoned, so no retry of it is sent by a scaler that may no longer act.
    pub(super) async fn lease_lost(&self) {
        if !matches!(self.lease(), Some((_, o)) if o.exclusive && !self.inner.cfg.dry_run) {
            return std::future::pending().await;
        }
        loop {
            if !self.inner.lead.lock().await.holds() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
