//! Event paths: how a scaler learns of new work the moment it is written, from outside the app.
//!
//! A source's event path ([`Events::watch`](crate::Events::watch)) listens to its store (Redis client tracking or keyspace notifications,
//! Postgres `LISTEN`) and calls [`Hints::wake`] on every sign of new work. Events are hints: each one only wakes
//! the scaler's loop (the same coalescing wake-up as [`Scaler::job_enqueued`](crate::Scaler::job_enqueued)), and
//! the snapshot decides. Polling stays as the backstop; [`watch_events`] restarts a broken path with backoff and
//! never lets it stop the poll.
//!
//! ```
//! use dyno_scaler_core::events::{EventMode, Hints};
//! let (hints, status) = Hints::new();
//! assert_eq!(status.borrow().mode, EventMode::Starting);
//! hints.active(EventMode::ClientTracking, "CLIENT TRACKING BCAST on queue:");
//! assert_eq!(status.borrow().to_string(), "client tracking (CLIENT TRACKING BCAST on queue:)");
//! hints.wake();
//! assert_eq!(hints.events(), 1);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::backoff::Backoff;
use crate::source::Source;

/// Which way new work reaches the scaler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventMode {
    /// The event path is being set up.
    Starting,
    /// Redis client-side caching in broadcast mode (`CLIENT TRACKING ... BCAST PREFIX`).
    ClientTracking,
    /// Redis keyspace notifications (`notify-keyspace-events`).
    KeyspaceNotifications,
    /// Postgres `LISTEN` on a channel fed by a trigger (or by the job system itself).
    Listen,
    /// No event path: the poll alone finds new work.
    Polling,
}

impl std::fmt::Display for EventMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Starting => "starting",
            Self::ClientTracking => "client tracking",
            Self::KeyspaceNotifications => "keyspace notifications",
            Self::Listen => "listen",
            Self::Polling => "polling",
        })
    }
}

/// The mode of an event path and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventStatus {
    /// The mode.
    pub mode: EventMode,
    /// What it listens to, or why there is no event path.
    pub detail: String,
}

impl std::fmt::Display for EventStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.detail.is_empty() { write!(f, "{}", self.mode) } else { write!(f, "{} ({})", self.mode, self.detail) }
    }
}

/// What an event path reports to: the scaler's wake-up and the path's status. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hints {
    wake: Arc<Notify>,
    status: Arc<watch::Sender<EventStatus>>,
    events: Arc<AtomicU64>,
    /// Log changes of mode (a probe does not).
    log: bool,
}

impl Hints {
    /// Hints that wake nothing but count, with a receiver of the status (for probes and tests).
    pub fn new() -> (Self, watch::Receiver<EventStatus>) {
        Self::waking(Arc::new(Notify::new()))
    }

    /// Hints that wake `wake`.
    pub fn waking(wake: Arc<Notify>) -> (Self, watch::Receiver<EventStatus>) {
        let (tx, rx) = watch::channel(EventStatus { mode: EventMode::Starting, detail: String::new() });
        (Self { wake, status: Arc::new(tx), events: Arc::new(AtomicU64::new(0)), log: true }, rx)
    }

    /// New work may have appeared: the scaler reconciles soon (a burst coalesces into one reconcile).
    pub fn wake(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Events seen so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` events were seen, for up to `within`; whether they were (for tests and probes).
    pub async fn seen(&self, n: u64, within: Duration) -> bool {
        let start = tokio::time::Instant::now();
        while self.events() < n {
            if start.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The path is listening in `mode`. Also wakes the scaler once: whatever was written while the path was down
    /// or starting is read now, not at the next poll.
    pub fn active(&self, mode: EventMode, detail: impl Into<String>) {
        self.set(mode, detail.into());
        self.wake.notify_one();
    }

    /// There is no event path, for the reason given (logged once per change).
    pub fn polling(&self, why: impl Into<String>) {
        self.set(EventMode::Polling, why.into());
    }

    /// The status now.
    pub fn status(&self) -> EventStatus {
        self.status.borrow().clone()
    }

    fn set(&self, mode: EventMode, detail: String) {
        let status = EventStatus { mode, detail };
        let changed = self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status.clone();
            changed
        });
        if changed && self.log {
            match mode {
                EventMode::Polling => tracing::warn!(mode = %mode, detail = %status.detail, "event path"),
                _ => tracing::info!(mode = %mode, detail = %status.detail, "event path"),
            }
        }
    }
}

/// The longest wait between two attempts to set a lost event path up again. One connection attempt every 5 s
/// costs a server nothing, and a longer wait is time the scaler spends on the poll after the server is back: with
/// 30 s, a Postgres crash recovery of 8 s left the path down for up to 16 s more.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Runs `source`'s event path until `stop` turns true: a path that breaks is reported, the scaler woken (the poll
/// covers what was missed) and the path set up again after a backoff (0.5 s doubling to [`RECONNECT_MAX`]); a
/// source with no path (or a store that offers none) leaves the status at [`EventMode::Polling`] and returns.
pub async fn watch_events(source: Source, hints: Hints, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), RECONNECT_MAX);
    while !*stop.borrow() {
        let result = tokio::select! {
            r = source.watch(&hints) => r,
            _ = stop.changed() => return,
        };
        let wait = match result {
            Ok(()) if hints.status().mode == EventMode::Polling => return,
            Ok(()) => {
                backoff.succeed();
                backoff.fail(None)
            }
            Err(e) => {
                if hints.status().mode != EventMode::Polling {
                    backoff.succeed();
                }
                let wait = backoff.fail(None);
                hints.polling(format!("event path lost: {e}; polling, retrying in {}", secs(wait)));
                wait
            }
        };
        hints.wake.notify_one();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Waits for up to `within` until the status satisfies `want`: the status then, or `Err` with the last one.
pub async fn wait_status(
    status: &mut watch::Receiver<EventStatus>,
    within: Duration,
    want: impl Fn(&EventStatus) -> bool,
) -> Result<EventStatus, EventStatus> {
    let found = match tokio::time::timeout(within, status.wait_for(|s| want(s))).await {
        Ok(Ok(s)) => Some(s.clone()),
        _ => None,
    };
    found.ok_or_else(|| status.borrow().clone())
}

/// Sets up `source`'s event path once, to say which mode it would run in (for `check` and `status`), and tears it
/// down; `within` bounds the wait.
pub async fn probe(source: Source, within: Duration) -> EventStatus {
    let (mut hints, mut status) = Hints::new();
    hints.log = false;
    let watching = {
        let hints = hints.clone();
        async move { source.watch(&hints).await }
    };
    let settled = async {
        loop {
            if status.borrow_and_update().mode != EventMode::Starting {
                return;
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        r = watching => if let Err(e) = r { hints.polling(format!("event path failed: {e}; polling")) },
        _ = settled => {}
        _ = tokio::time::sleep(within) => hints.polling(format!("event path not ready within {}; polling", secs(within))),
    }
    hints.status()
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
