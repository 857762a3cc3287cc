//! The built-in dashboard of `run --listen`: per process type, the last day at one-minute resolution (queues,
//! workers wanted, running and draining), each scale event and hold with its reason, the leader and the pause, and
//! what the day cost against always-on at `max_workers`. Served as one HTML page with no outside assets (`/`,
//! [`page`]) and as JSON (`/api/history`, [`Dashboard::history`]); kept in memory in a bounded ring
//! ([`Timeline`]) and in the process type's store every minute, restored from it after a restart.
//!
//! ```
//! use dyno_scaler::dashboard::Dashboard;
//! let d = Dashboard::new(0.035, None);
//! d.track("worker", 4, "sidekiq", None);
//! let h: serde_json::Value = serde_json::from_str(&d.history(1_000.0)).unwrap();
//! assert_eq!(h["process_types"][0]["process_type"], "worker");
//! assert!(dyno_scaler::dashboard::page::render(&d, 1_000.0).contains("worker"));
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_core::lease::{self, Pause};
use dyno_scaler_core::{Report, ScalerError, Secret, Store};
use serde::Serialize;

pub mod chart;
pub mod page;
mod timeline;

pub use timeline::{Event, EventKind, Kept, MINUTES as MINUTES_KEPT, Sample, Savings, Timeline};

/// The process type's key in its store, beside its learned summary (a process type name never holds `/`).
fn store_key(process_type: &str) -> String {
    format!("{process_type}/dashboard")
}

/// What the last successful cycle said, for the page's header and queue table.
#[derive(Debug, Clone, Default)]
pub struct Now {
    /// Per queue: ready, running, scheduled, latency in seconds.
    pub queues: Vec<(String, u64, u64, u64, Option<f64>)>,
    /// The quantities: wanted, running, draining.
    pub desired: u32,
    /// See `desired`.
    pub current: u32,
    /// The victims draining.
    pub draining: Vec<String>,
    /// Who holds the lease.
    pub leader: Option<String>,
    /// Whether this instance acts.
    pub acting: bool,
    /// The pause in force, in words.
    pub paused: Option<String>,
}

/// One process type on the dashboard.
#[derive(Debug)]
pub struct Tracked {
    /// Its day.
    pub timeline: Timeline,
    /// `max_workers`.
    pub max_workers: u32,
    /// The source's name.
    pub source: String,
    /// The last successful cycle.
    pub now: Option<Now>,
    /// The last failure, while it lasts.
    pub error: Option<String>,
    store: Option<Arc<dyn Store>>,
}

/// The dashboard's state, shared by the loop that feeds it and the server that shows it.
pub struct Dashboard {
    tracked: Mutex<BTreeMap<String, Tracked>>,
    price: f64,
    token: Option<Secret>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("price", &self.price).field("token", &self.token).finish_non_exhaustive()
    }
}

/// Unix seconds of `t`.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Dashboard {
    /// An empty dashboard pricing a dyno-hour at `price` dollars; pausing from the page needs `token`.
    pub fn new(price: f64, token: Option<Secret>) -> Self {
        Self { tracked: Mutex::default(), price, token }
    }

    /// Shows `process_type` (at most `max_workers`, read from `source`), kept in `store` where there is one.
    pub fn track(&self, process_type: &str, max_workers: u32, source: &str, store: Option<Arc<dyn Store>>) {
        let t = Tracked {
            timeline: Timeline::new(max_workers),
            max_workers,
            source: source.to_owned(),
            now: None,
            error: None,
            store: store.filter(|s| s.remembers()),
        };
        self.lock().insert(process_type.to_owned(), t);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Tracked>> {
        self.tracked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Dollars per dyno-hour.
    pub fn price(&self) -> f64 {
        self.price
    }

    /// Whether the page may pause and resume (a token is set).
    pub fn can_pause(&self) -> bool {
        self.token.is_some()
    }

    /// Runs `f` on every process type shown, in name order.
    pub fn each<R>(&self, mut f: impl FnMut(&str, &Tracked) -> R) -> Vec<R> {
        self.lock().iter().map(|(pt, t)| f(pt, t)).collect()
    }

    /// Takes in one cycle's result, ended now.
    pub fn observe(&self, result: &Result<Report, ScalerError>) {
        self.observe_at(unix(SystemTime::now()), result);
    }

    /// Takes in one cycle's result, ended at `now` (Unix seconds).
    pub fn observe_at(&self, now: f64, result: &Result<Report, ScalerError>) {
        let pt = match result {
            Ok(r) => r.process_type.as_str(),
            Err(e) => e.process_type(),
        };
        let mut all = self.lock();
        let Some(t) = all.get_mut(pt) else { return };
        t.timeline.observe(now, result);
        match result {
            Ok(rep) => {
                t.error = None;
                let queues = rep.snapshot.queues.iter();
                let queues = queues
                    .map(|(n, q)| {
                        (n.clone(), q.ready, q.running, q.scheduled, q.oldest_ready_age.map(|a| a.as_secs_f64()))
                    })
                    .collect();
                t.now = Some(Now {
                    queues,
                    desired: rep.decision.to,
                    current: rep.quantity_after(),
                    draining: rep.draining.clone(),
                    leader: rep.leader.clone(),
                    acting: rep.acting,
                    paused: rep.paused.as_ref().map(|p| format!("{} by {}", p.describe(), p.by)),
                });
            }
            Err(e) => t.error = Some(e.to_string()),
        }
    }

    /// `/api/history`: per process type, its state, the day's savings, the samples and the events, as JSON text
    /// (written straight from the day, with no document built in memory beside it).
    pub fn history(&self, now: f64) -> String {
        let all = self.lock();
        let pts: Vec<ProcessHistory<'_>> = all
            .iter()
            .map(|(pt, t)| {
                let s = t.timeline.savings(now);
                let n = t.now.as_ref();
                ProcessHistory {
                    process_type: pt,
                    source: &t.source,
                    max_workers: t.max_workers,
                    leader: n.and_then(|n| n.leader.as_deref()),
                    acting: n.map(|n| n.acting),
                    paused: n.and_then(|n| n.paused.as_deref()),
                    desired: n.map(|n| n.desired),
                    current: n.map(|n| n.current),
                    error: t.error.as_deref(),
                    savings: SavingsJson {
                        covered_secs: s.covered_secs,
                        worker_secs: s.worker_secs,
                        always_on_secs: s.always_on_secs,
                        saved_dyno_hours: s.saved_hours(),
                        saved_dollars: s.saved_hours() * self.price,
                    },
                    samples: t.timeline.samples(),
                    events: t.timeline.events(),
                }
            })
            .collect();
        // Sized ahead (a sample is under 200 bytes of JSON, an event its reason and 150 more), so the buffer is not
        // regrown by doubling: each regrowth would leave its old block in malloc's heap.
        let size: usize = pts
            .iter()
            .map(|p| 512 + p.samples.len() * 200 + p.events.iter().map(|e| 150 + e.reason.len()).sum::<usize>())
            .sum();
        let doc = HistoryJson { generated_at: now, price_per_dyno_hour: self.price, process_types: pts };
        let mut out = Vec::with_capacity(size);
        serde_json::to_writer(&mut out, &doc).expect("the history serializes");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Takes back each process type's day from its store (before the first cycle). A store that cannot be read
    /// or holds something unreadable leaves that day empty, with a warning.
    pub async fn restore(&self) {
        let now = unix(SystemTime::now());
        for (pt, store) in self.stores() {
            match store.recall(&store_key(&pt)).await {
                Ok(Some(text)) => match serde_json::from_str::<Kept>(&text) {
                    Ok(kept) => {
                        if let Some(t) = self.lock().get_mut(&pt) {
                            t.timeline.restore(kept, now);
                            tracing::info!(process_type = %pt, samples = t.timeline.samples().len(), events = t.timeline.events().len(), "dashboard history restored");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(process_type = %pt, error = %e, "dashboard history in the store unreadable; starting empty")
                    }
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(process_type = %pt, error = %e, "dashboard history not restored"),
            }
        }
    }

    /// Keeps each process type's day in its store, where this instance acts for it (the leader writes).
    pub async fn persist(&self) {
        for (pt, store) in self.stores() {
            let kept = {
                let all = self.lock();
                let Some(t) = all.get(&pt).filter(|t| t.now.as_ref().is_some_and(|n| n.acting)) else { continue };
                serde_json::to_string(&t.timeline.kept()).expect("samples and events serialize")
            };
            if let Err(e) = store.remember(&store_key(&pt), &kept).await {
                tracing::warn!(process_type = %pt, error = %e, "dashboard history not kept in the store");
            }
        }
    }

    fn stores(&self) -> Vec<(String, Arc<dyn Store>)> {
        self.lock().iter().filter_map(|(pt, t)| t.store.clone().map(|s| (pt.clone(), s))).collect()
    }

    /// Pauses `process_type` (for `duration`, or until resumed) or resumes it (`pause == false`), when `token` is
    /// the dashboard's. The error says what is wrong, never the token.
    pub async fn set_pause(
        &self,
        token: &str,
        process_type: &str,
        pause: bool,
        duration: Option<Duration>,
    ) -> Result<String, (u16, String)> {
        let Some(want) = &self.token else {
            return Err((403, "the dashboard is read-only: set DYNO_SCALER_DASHBOARD_TOKEN to pause from it".into()));
        };
        if !same(want.expose().as_bytes(), token.as_bytes()) {
            return Err((403, "wrong token".into()));
        }
        let store = self.lock().get(process_type).map(|t| t.store.clone());
        let Some(store) = store else { return Err((404, format!("no process type {process_type:?}"))) };
        let Some(store) = store else {
            return Err((409, format!("{process_type}: its source has no store to keep a pause in")));
        };
        let p =
            pause.then(|| Pause::new(format!("the dashboard of {}", lease::identity()), SystemTime::now(), duration));
        match store.lease(process_type).set_pause(p.as_ref()).await {
            Ok(()) => Ok(match &p {
                Some(p) => {
                    format!("{process_type}: paused {} (every instance within a third of the lease TTL)", p.describe())
                }
                None => format!("{process_type}: resumed"),
            }),
            Err(e) => Err((502, format!("{process_type}: the store refused: {e}"))),
        }
    }
}

#[derive(Serialize)]
struct HistoryJson<'a> {
    generated_at: f64,
    price_per_dyno_hour: f64,
    process_types: Vec<ProcessHistory<'a>>,
}

#[derive(Serialize)]
struct ProcessHistory<'a> {
    process_type: &'a str,
    source: &'a str,
    max_workers: u32,
    leader: Option<&'a str>,
    acting: Option<bool>,
    paused: Option<&'a str>,
    desired: Option<u32>,
    current: Option<u32>,
    error: Option<&'a str>,
    savings: SavingsJson,
    samples: &'a std::collections::VecDeque<Sample>,
    events: &'a std::collections::VecDeque<Event>,
}

#[derive(Serialize)]
struct SavingsJson {
    covered_secs: f64,
    worker_secs: f64,
    always_on_secs: f64,
    saved_dyno_hours: f64,
    saved_dollars: f64,
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
