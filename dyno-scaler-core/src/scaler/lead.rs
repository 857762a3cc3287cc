//! Whether this scaler may act: it holds its process type's lease (when the lease is exclusive) and no pause holds.
//! Under a loop a keeper task renews the lease every `ttl / 3`, so a slow cycle (a snapshot timing out, a platform
//! call retrying) never lets it lapse unnoticed; without one, each cycle renews it when due.

use std::sync::Arc;

use super::{Report, Scaler};
use crate::error::SourceError;
use crate::gate::Gate;
use crate::lease::{Lease, LeaseOptions};

impl Scaler {
    pub(super) fn lease(&self) -> Option<&(Arc<dyn Lease>, LeaseOptions)> {
        self.inner.cfg.lease.as_ref()
    }

    /// Asks the lease's store when due ([`Leadership::due`](crate::lease::Leadership::due)); says whether this
    /// scaler just took the lease.
    pub(super) async fn campaign_if_due(&self) -> bool {
        let Some((lease, opts)) = self.lease() else { return false };
        let mut lead = self.inner.lead.lock().await;
        if !lead.due(opts.ttl) {
            return false;
        }
        let started = tokio::time::Instant::now();
        // A dry run never takes the lease: it would keep the real scaler from acting.
        let aside = lead.standing_aside();
        let ask = async {
            if aside {
                // Reads only: the instances that can reach the platform take the lease meanwhile.
                lease.read().await
            } else if opts.exclusive && !self.inner.cfg.dry_run {
                lease.campaign(&opts.identity, opts.ttl).await
            } else {
                lease.read().await.map(|mut s| {
                    s.held = true;
                    s
                })
            }
        };
        // A holder's renewal must answer before its lease would lapse: a store that answers later (a partition)
        // means stopping then, and saying so, not when the answer finally fails.
        let limit = match lead.held_until {
            Some(t) if t > started => t - started,
            _ => opts.ttl / 2,
        };
        let answer = match tokio::time::timeout(limit, ask).await {
            Ok(a) => a,
            Err(_) => Err(SourceError::Timeout { source_name: lease.store().into(), timeout: limit }),
        };
        let (was, failing) = (lead.holds(), lead.error.is_some());
        lead.record(started, opts.ttl, answer);
        let pt = &self.inner.cfg.process_type;
        if failing && lead.error.is_none() {
            tracing::info!(process_type = %pt, "the lease's store answers again");
        }
        match (&lead.error, was, lead.holds()) {
            // Said once per outage (it is asked every second meanwhile).
            (Some(e), _, _) if !failing => {
                tracing::warn!(process_type = %pt, error = %e, "cannot reach the lease's store; not acting")
            }
            (Some(_), _, _) => {}
            (None, false, true) if opts.exclusive && !self.inner.cfg.dry_run => {
                tracing::info!(process_type = %pt, identity = %opts.identity, "took the lease: acting");
                // What was read as a follower may be stale: the last holder may have just changed it, and a request
                // of its may still land (read again for a while: `settle`).
                self.read_fresh();
                lead.took_at = Some(tokio::time::Instant::now());
                return true;
            }
            (None, true, false) => {
                tracing::info!(process_type = %pt, leader = lead.state.holder.as_deref(), "lost the lease: following")
            }
            _ => {}
        }
        false
    }

    /// Renews the lease every `ttl / 3` (every second while its store cannot be reached) until `stop`, waking the
    /// loop when this scaler takes it.
    pub(super) async fn keep_lease(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some((_, opts)) = self.lease() else { return };
        while !*stop.borrow() {
            if self.campaign_if_due().await {
                self.inner.wake.notify_one();
            }
            let period = self.inner.lead.lock().await.every(opts.ttl);
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    /// Renews the lease if due and says what keeps this cycle from acting (`None`: it may act).
    pub(super) async fn gate(&self) -> Option<Gate> {
        let (lease, _) = self.lease()?;
        self.campaign_if_due().await;
        let lead = self.inner.lead.lock().await;
        let now = self.inner.cfg.clock.now();
        if let Some(p) = lead.state.pause.as_ref().filter(|p| p.holds_at(now)) {
            return Some(Gate::Paused { pause: p.clone() });
        }
        if let Some(e) = &lead.error {
            return Some(Gate::StoreUnreachable { store: lease.store().to_owned(), error: e.to_string() });
        }
        if !lead.holds() {
            return Some(Gate::Following { leader: lead.state.holder.clone() });
        }
        None
    }

    /// [`Gate::Paused`] when the lease's store says a pause holds now (read just before acting, so a pause set
    /// since the last renewal is never missed), else `None`; a store that cannot be read holds too.
    pub(super) async fn pause_now(&self) -> Option<Gate> {
        let (lease, _) = self.lease()?;
        match lease.read().await {
            Ok(s) => s.pause.filter(|p| p.holds_at(self.inner.cfg.clock.now())).map(|pause| Gate::Paused { pause }),
            Err(e) => Some(Gate::StoreUnreachable { store: lease.store().to_owned(), error: e.to_string() }),
        }
    }

    /// Whether the lease still holds right before a platform call (a slow cycle may outlive it).
    pub(super) async fn still_holds(&self) -> bool {
        match self.lease() {
            Some((_, o)) if o.exclusive => self.inner.lead.lock().await.holds(),
            _ => true,
        }
    }

    /// The holder last seen, where the lease is exclusive.
    pub(super) async fn leader(&self) -> Option<String> {
        match self.lease() {
            Some((_, o)) if o.exclusive => self.inner.lead.lock().await.state.holder.clone(),
            _ => None,
        }
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

    /// Notes whether the platform answered what this cycle asked of it (`false`: it could not be reached or would
    /// not answer, [`PlatformError::is_outage`](crate::PlatformError::is_outage); a refusal is an answer). A holder whose platform has failed for longer than the lease's TTL (a stalled API, a frozen
    /// connection) gives the lease up and stands aside for two TTLs, so an instance that reaches the platform acts;
    /// it campaigns again after that, or as soon as its platform answers (a lone instance after an outage).
    pub(super) async fn platform_answered(&self, ok: bool) {
        let Some((_, opts)) = self.lease().filter(|(_, o)| o.exclusive) else { return };
        let now = tokio::time::Instant::now();
        let since = {
            let mut lead = self.inner.lead.lock().await;
            if ok {
                lead.platform_failing_since = None;
                if lead.stand_aside_until.take().is_some() {
                    // It reaches the platform again: no reason to stand aside; campaign at the next cycle.
                    lead.asked = None;
                    tracing::info!(process_type = %self.inner.cfg.process_type, "the platform answers again: campaigning for the lease again");
                }
                return;
            }
            *lead.platform_failing_since.get_or_insert(now)
        };
        if now.duration_since(since) <= opts.ttl || !self.inner.lead.lock().await.holds() {
            return;
        }
        tracing::warn!(
            process_type = %self.inner.cfg.process_type,
            failing_for_ms = now.duration_since(since).as_millis() as u64,
            "the platform has not answered for longer than the lease's TTL: giving the lease up so an instance that reaches it acts"
        );
        self.release_lease().await;
        let mut lead = self.inner.lead.lock().await;
        lead.stand_aside_until = Some(now + opts.ttl * 2);
        lead.platform_failing_since = None;
    }

    /// Gives the lease up if held (the loop does it when it stops), so a follower takes over at its next
    /// campaign.
    pub async fn release_lease(&self) {
        let Some((lease, opts)) = self.lease() else { return };
        let mut lead = self.inner.lead.lock().await;
        if opts.exclusive && lead.holds() {
            lead.held_until = None;
            match lease.release(&opts.identity).await {
                Ok(()) => tracing::info!(process_type = %self.inner.cfg.process_type, "released the lease"),
                Err(e) => {
                    tracing::warn!(process_type = %self.inner.cfg.process_type, error = %e, "cannot release the lease; it ends with its TTL")
                }
            }
        }
    }
}
