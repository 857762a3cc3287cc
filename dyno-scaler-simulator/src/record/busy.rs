//! Busy job-seconds from readings whose running counts lag: Sidekiq's processes publish `busy` only at their
//! heartbeats (every 5 s in 6.x, 10 s in 7+).
//!
//! - While jobs wait (ready > 0), every live thread is busy: the job systems here take a job as soon as a thread
//!   frees, so the reading's total threads ([`Snapshot::threads`]) run, whatever the last heartbeats said.
//! - Otherwise, a process's time since its last heartbeat is settled with the count its *next* heartbeat publishes
//!   (a value covers the period before it): the count a heartbeat took while jobs waited would otherwise be held
//!   for up to a whole period after the queue emptied, and over-count every burst's end.
//! - Without heartbeats (counts read as they are, as the Postgres sources give them), the count read holds until
//!   the next reading.

use std::collections::BTreeMap;
use std::time::SystemTime;

use dyno_scaler_core::Snapshot;

/// The busy time so far, and each process's time waiting for its next heartbeat.
#[derive(Debug, Default)]
pub(super) struct BusyTime {
    /// Busy job-seconds settled.
    pub(super) settled: f64,
    /// Per process identity: its last heartbeat, and the seconds since then (jobs not waiting) to settle at its
    /// next one.
    pending: BTreeMap<String, (SystemTime, f64)>,
    /// The last reading: whether jobs waited, its threads and its running count (for sources without beats).
    last: Option<(bool, Option<u64>, u64, bool)>,
}

impl BusyTime {
    /// Folds in `dt` seconds ending with the reading `snap`; returns the busy job-seconds settled by it.
    pub(super) fn advance(&mut self, dt: f64, snap: &Snapshot) -> f64 {
        let before = self.settled;
        let beats = snap.workers.as_ref().is_some_and(|w| !w.is_empty() && w.iter().all(|w| w.beat.is_some()));
        if let Some((waited, threads, running, had_beats)) = self.last {
            match threads {
                Some(t) if waited => self.settled += t.max(running) as f64 * dt,
                _ if had_beats => {
                    for p in self.pending.values_mut() {
                        p.1 += dt;
                    }
                }
                _ => self.settled += running as f64 * dt,
            }
        }
        let mut seen = BTreeMap::new();
        for w in snap.workers.iter().flatten() {
            let Some(beat) = w.beat else { continue };
            let pending = match self.pending.remove(&w.identity) {
                // A new heartbeat settles the time since the one before with what it published.
                Some((last, secs)) if beat > last => {
                    self.settled += f64::from(w.busy) * secs;
                    0.0
                }
                Some((_, secs)) => secs,
                None => 0.0,
            };
            seen.insert(w.identity.clone(), (beat, pending));
        }
        // A process gone (stopped) had nothing more to settle.
        self.pending = seen;
        let totals = snap.totals();
        self.last = Some((totals.ready > 0, snap.threads, totals.running + snap.running_elsewhere, beats));
        self.settled - before
    }
}
