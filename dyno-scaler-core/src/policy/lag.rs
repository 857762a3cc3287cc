//! Heartbeat lag. Sidekiq publishes a process's `busy` count and running work only at its heartbeat (every 5 s in
//! 6.x, 10 s in 7+): a job fetched after the last beat is invisible. So a worker that reports a heartbeat time
//! counts as idle for a scale-down only once it was idle on two consecutive heartbeats; one without heartbeat
//! times (its `busy` is written as the job starts) is idle when it says so.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::snapshot::{Snapshot, WorkerInfo};

/// Heartbeats in a row that must show a worker idle before a scale-down may stop it.
pub const IDLE_BEATS: u8 = 2;

/// The last heartbeat seen of a worker and how many heartbeats in a row showed it idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleStreak {
    /// The worker's last heartbeat.
    pub beat: SystemTime,
    /// Heartbeats in a row that showed it idle (capped at [`IDLE_BEATS`]).
    pub idle_beats: u8,
}

/// The streaks after `snapshot`: a new heartbeat extends an idle streak or breaks it; the same heartbeat again
/// changes nothing; workers gone are forgotten.
pub fn next(prev: &BTreeMap<String, IdleStreak>, snapshot: &Snapshot) -> BTreeMap<String, IdleStreak> {
    let mut streaks = prev.clone();
    advance(&mut streaks, snapshot);
    streaks
}

/// [`next`] in place, keeping the identities already known (a reading costs no copy of them).
pub fn advance(streaks: &mut BTreeMap<String, IdleStreak>, snapshot: &Snapshot) {
    let mut prev = std::mem::take(streaks);
    let Some(workers) = &snapshot.workers else { return };
    for w in workers {
        let Some(beat) = w.beat else { continue };
        let (identity, p) = match prev.remove_entry(w.identity.as_str()) {
            Some((identity, p)) => (identity, Some(p)),
            None => (w.identity.clone(), None),
        };
        let idle_beats = match p {
            Some(p) if p.beat == beat => p.idle_beats,
            Some(p) if w.busy == 0 => p.idle_beats.saturating_add(1).min(IDLE_BEATS),
            _ => u8::from(w.busy == 0),
        };
        streaks.insert(identity, IdleStreak { beat, idle_beats });
    }
}

/// Whether a scale-down may stop `w`: idle, and (where it has heartbeats) idle on [`IDLE_BEATS`] in a row.
pub fn confirmed_idle(w: &WorkerInfo, streaks: &BTreeMap<String, IdleStreak>) -> bool {
    w.busy == 0 && (w.beat.is_none() || streaks.get(&w.identity).is_some_and(|s| s.idle_beats >= IDLE_BEATS))
}
