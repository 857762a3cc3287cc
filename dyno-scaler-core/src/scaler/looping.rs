//! The scaler's loop and its wake-ups: the job hooks, the event path and the due time of scheduled work.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Inner, Report, Scaler};
use crate::controller::jittered;
use crate::error::ScalerError;
use crate::events::{EventStatus, watch_events};

/// The least time between the starts of two reconciles woken by events or job hooks: the first wake-up after a
/// quiet spell reconciles at once, and a stream of them (a burst of enqueues, every push and pop of a busy queue)
/// costs at most one reconcile per gap (40 a second), not one per event.
pub const WAKE_GAP: Duration = Duration::from_millis(25);

/// Slack after a scheduled job's due time, so the snapshot taken then counts it as ready.
const DUE_SLACK: Duration = Duration::from_millis(20);

impl Scaler {
    /// Call right after enqueueing a job: a background task reconciles soon. Never blocks; a burst of calls
    /// coalesces into one reconcile (and at most one platform call). Must be called inside a Tokio runtime.
    pub fn job_enqueued(&self) {
        self.wake();
    }

    /// Call when a job ends (successfully or not): a background task reconciles soon. Never blocks.
    pub fn job_finished(&self) {
        self.wake();
    }

    fn wake(&self) {
        // Under a controller its loop wakes; a library user without one gets a background task instead.
        if !self.inner.looping.load(Ordering::Acquire) {
            self.ensure_hook_task();
        }
        self.inner.wake.notify_one();
    }

    /// Reconciles every `interval` (± `jitter`), at once when a job hook or the event path wakes it, and when the
    /// earliest scheduled job falls due, sending each result to `results`, until `stop` turns true (the cycle in
    /// flight finishes first) or the receiver is gone. With [`ScalerBuilder::events`](super::ScalerBuilder::events)
    /// on, the source's event path runs beside the loop.
    pub async fn run_loop(
        self,
        interval: Duration,
        jitter: f64,
        mut stop: tokio::sync::watch::Receiver<bool>,
        results: tokio::sync::mpsc::Sender<Result<Report, ScalerError>>,
    ) {
        self.inner.looping.store(true, Ordering::Release);
        let watcher = self.inner.cfg.events.then(|| {
            let hints = self.inner.hints.clone();
            tokio::spawn(watch_events(self.inner.cfg.source.clone(), hints, stop.clone()))
        });
        // The lease is renewed (and a free one taken) every ttl / 3 on a task of its own, whatever the interval
        // and however slow a cycle is.
        let keeper = self.lease().is_some().then(|| tokio::spawn(self.clone().keep_lease(stop.clone())));
        let mut rng = fastrand::Rng::new();
        while !*stop.borrow() {
            let started = tokio::time::Instant::now();
            let result = self.reconcile().await;
            let due = result.as_ref().ok().and_then(|r| r.snapshot.next_due).map(|d| d + DUE_SLACK);
            // A platform that refuses the configuration (key, app, process type) is not asked again: the
            // controller stops on it, and an event arriving meanwhile must not cost another refused call.
            let fatal = matches!(&result, Err(ScalerError::Platform { source, .. }) if source.is_fatal());
            if results.send(result).await.is_err() || fatal {
                break;
            }
            let wait = jittered(interval, jitter, &mut rng);
            let woken = tokio::select! {
                _ = stop.changed() => false,
                _ = tokio::time::sleep(due.map_or(wait, |d| d.min(wait))) => false,
                _ = self.inner.wake.notified() => true,
            };
            // A wake-up right after a reconcile waits out the gap: events during it fold into the next one.
            let since = started.elapsed();
            if woken && since < WAKE_GAP {
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(WAKE_GAP - since) => {}
                }
            }
        }
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some(k) = keeper {
            k.abort();
        }
        self.release_lease().await;
        self.inner.looping.store(false, Ordering::Release);
    }

    /// The event path's mode and why (`starting` until the loop has set it up; `polling` when events are off).
    pub fn event_status(&self) -> EventStatus {
        if !self.inner.cfg.events {
            return EventStatus { mode: crate::events::EventMode::Polling, detail: "events are off".into() };
        }
        self.inner.hints.status()
    }

    /// The events the event path has delivered so far.
    pub fn events_seen(&self) -> u64 {
        self.inner.hints.events()
    }

    fn ensure_hook_task(&self) {
        if self.inner.hooks_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.inner.hooks_started.store(false, Ordering::Release);
            tracing::warn!("job hook called outside a Tokio runtime; no reconcile scheduled");
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let wake = self.inner.wake.clone();
        let closed = self.inner.closed.clone();
        handle.spawn(async move {
            loop {
                wake.notified().await;
                if closed.load(Ordering::SeqCst) {
                    break;
                }
                let Some(inner) = weak.upgrade() else { break };
                let scaler = Scaler { inner };
                if let Err(e) = scaler.reconcile().await {
                    tracing::warn!(error = %e, "reconcile after job hook failed");
                }
            }
        });
    }
}
