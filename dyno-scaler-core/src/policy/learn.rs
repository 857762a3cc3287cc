//! What the adaptive policy learns from the readings it already takes, with no change to the app: the arrival and
//! completion rates (from queue deltas and the completion counter the queue keeps, e.g. Sidekiq's and Resque's
//! `stat:processed`), the job duration (Little's law: running = completions/s × duration), the threads of a
//! dyno, the idle gaps between busy periods, and load that recurs at the same minute every hour or the same time
//! every day. Pure: [`Learned::observe`] folds one reading in. The whole summary serialises to a few KB.

use serde::{Deserialize, Serialize};

use super::recur::Recurrence;
use crate::snapshot::Snapshot;

/// Upper bounds (seconds) of the idle-gap buckets; the last bucket is everything longer.
pub const GAP_BOUNDS: [f64; 11] = [2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0];
/// Each new gap weighs this much more than the one before (a memory of about the last 50 gaps).
const GAP_DECAY: f32 = 0.98;
/// Readings further apart than this give no rate (a restart, a stalled loop): the baselines are set again.
const MAX_STEP: f64 = 600.0;
/// Time constant of the arrival rate's average, seconds.
const FAST: f64 = 60.0;
/// Jobs the duration is measured over.
pub const DURATION_MEMORY: f64 = 1000.0;
/// Completions, and job-seconds seen running, before the measured duration is trusted: short jobs are rarely
/// caught running at a heartbeat, and a duration from a handful of sightings would be noise.
const MIN_COMPLETIONS: f64 = 20.0;
const MIN_BUSY_SECS: f64 = 60.0;

/// The learned summary, carried in the policy's state and kept across restarts where a store allows. A summary
/// written by another version reads with defaults for what it lacks (and ignores what it has more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Learned {
    /// Time of the last reading, seconds since the epoch.
    pub at: Option<f64>,
    /// The completion counter at the last reading.
    pub processed: Option<u64>,
    /// Jobs ready and running at the last reading.
    pub in_system: u64,
    /// Jobs arriving per second (fast average).
    pub arrivals: f64,
    /// Job-seconds seen running and jobs completed, over about the last [`DURATION_MEMORY`] jobs (Little's law:
    /// their ratio is the mean duration). Counted per job, not per second, so a burst of short jobs is not
    /// forgotten in the quiet hours after it, when running work is rarely caught at a heartbeat.
    pub busy_secs: f64,
    /// See `busy_secs`.
    pub done_jobs: f64,
    /// Completions counted so far (capped), so the duration is trusted only on enough of them.
    pub completed: f64,
    /// Threads per dyno, as the workers report them ([`Snapshot::threads_per_worker`]).
    pub threads: Option<f64>,
    /// Since when nothing has been ready or running (as read; see `idle_seen`).
    pub idle_since: Option<f64>,
    /// The idle since `idle_since` was confirmed by every worker's heartbeat (not a job taken between beats).
    pub idle_seen: bool,
    /// The last reading with a job ready or running.
    pub last_load: Option<f64>,
    /// Idle gaps by length ([`GAP_BOUNDS`], one more for longer), decayed.
    pub gaps: Vec<f32>,
    /// Dips by length, the same way: how long the workers wanted stayed below a level before coming back to it.
    pub dips: Vec<f32>,
    /// The dip in progress: (the level left, since when).
    pub dip: Option<(u32, f64)>,
    /// The most workers wanted per minute of the hour.
    pub hourly: Recurrence,
    /// The most workers wanted per five minutes of the day.
    pub daily: Recurrence,
    /// The pre-warm in progress: (started, last decision that held it, workers).
    pub prewarm: Option<(f64, f64, u32)>,
    /// Pre-warms that load followed, and those it did not.
    pub prewarm_hits: u32,
    /// See `prewarm_hits`.
    pub prewarm_misses: u32,
    /// Dyno-seconds of pre-warms that no load followed: the extra cost paid.
    pub prewarm_wasted: f64,
}

impl Default for Learned {
    fn default() -> Self {
        Self {
            at: None,
            processed: None,
            in_system: 0,
            arrivals: 0.0,
            busy_secs: 0.0,
            done_jobs: 0.0,
            completed: 0.0,
            threads: None,
            idle_since: None,
            idle_seen: false,
            last_load: None,
            gaps: vec![0.0; GAP_BOUNDS.len() + 1],
            dips: vec![0.0; GAP_BOUNDS.len() + 1],
            dip: None,
            hourly: Recurrence::new(3600, 60),
            daily: Recurrence::new(86_400, 300),
            prewarm: None,
            prewarm_hits: 0,
            prewarm_misses: 0,
            prewarm_wasted: 0.0,
        }
    }
}

fn ewma(old: f64, sample: f64, dt: f64, tau: f64) -> f64 {
    old + (1.0 - (-dt / tau).exp()) * (sample - old)
}

impl Learned {
    /// Folds the reading `snap` taken at `now` (seconds since the epoch) with `current` workers in.
    pub fn observe(&mut self, snap: &Snapshot, now: f64, current: u32) {
        let totals = snap.totals();
        let running = totals.running + snap.running_elsewhere;
        let in_system = totals.ready + running;
        if let Some(threads) = snap.threads_per_worker() {
            self.threads = Some(threads);
        }
        let step = self.at.map(|at| now - at).filter(|dt| *dt > 0.0 && *dt <= MAX_STEP);
        let done = match (self.processed, snap.processed) {
            (Some(before), Some(after)) if after >= before => Some((after - before) as f64),
            _ => None,
        };
        if let Some(dt) = step {
            // Arrivals: what is in the system now, less what was, plus what completed in between.
            let came = (in_system as f64 - self.in_system as f64 + done.unwrap_or(0.0)).max(0.0);
            self.arrivals = ewma(self.arrivals, came / dt, dt, FAST);
            if let Some(done) = done {
                let keep = (1.0 - 1.0 / DURATION_MEMORY).powf(done);
                self.busy_secs = self.busy_secs * keep + running as f64 * dt;
                self.done_jobs = self.done_jobs * keep + done;
                self.completed = (self.completed + done).min(1e9);
            }
        }
        if snap.unreadable.is_empty() {
            // Whether the heartbeats confirm the idle matters only for a reading with nothing in the system.
            let confirmed = in_system == 0 && idle_confirmed(snap, self.last_load, current);
            self.note_idle(in_system, confirmed, now);
        }
        if in_system > 0 {
            self.last_load = Some(now);
        }
        if self.at.is_none_or(|at| now >= at) {
            self.at = Some(now);
        }
        self.processed = snap.processed;
        self.in_system = in_system;
    }

    /// An idle gap runs from the first reading with nothing ready or running to the next with work, and counts
    /// only if a reading in it was confirmed by the heartbeats: a job taken between two beats looks like idle.
    fn note_idle(&mut self, in_system: u64, confirmed: bool, now: f64) {
        match (in_system == 0, self.idle_since) {
            (true, None) => {
                self.idle_since = Some(now);
                self.idle_seen = confirmed;
            }
            (true, Some(_)) => self.idle_seen |= confirmed,
            (false, Some(since)) => {
                if self.idle_seen {
                    add_gap(&mut self.gaps, (now - since).max(0.0));
                }
                self.idle_since = None;
                self.idle_seen = false;
            }
            (false, None) => {}
        }
    }

    /// This summary as a restarted scaler takes it: what was learned (rates, duration, gaps, recurring load)
    /// stays; what describes the moment it was written (the last reading, an idle gap or a pre-warm in
    /// progress) goes, so a restart's downtime is not taken for an idle gap.
    pub fn restarted(self) -> Self {
        Self { at: None, processed: None, in_system: 0, idle_since: None, idle_seen: false, prewarm: None, ..self }
    }

    /// Notes that `wanted` workers are wanted at `now` while `current` run: a dip begins when fewer are wanted,
    /// and ends (its length recorded) when the level it left is wanted again, or after an hour.
    pub fn note_dip(&mut self, wanted: u32, current: u32, now: f64) {
        if self.dips.len() != GAP_BOUNDS.len() + 1 {
            self.dips = vec![0.0; GAP_BOUNDS.len() + 1];
        }
        match self.dip {
            Some((level, since)) if wanted >= level || now - since > 3600.0 => {
                add_gap(&mut self.dips, (now - since).max(0.0));
                self.dip = None;
            }
            None if wanted < current => self.dip = Some((current, now)),
            _ => {}
        }
    }

    /// Dips seen (decayed count).
    pub fn dip_count(&self) -> f64 {
        self.dips.iter().map(|g| f64::from(*g)).sum()
    }

    /// The keep-alive for a partial decrease: [`Learned::keep_alive`]'s rule on the dips, with no prior (`None`
    /// until `min_dips` are seen).
    pub fn dip_keep_alive(&self, cold: f64, cap: f64, min_dips: f64) -> Option<f64> {
        (self.dip_count() >= min_dips).then(|| best_keep_alive(&self.dips, 0.0, 1.0, cold, cap))
    }

    /// The mean job duration in seconds by Little's law, once enough completions were seen.
    pub fn job_secs(&self) -> Option<f64> {
        (self.completed >= MIN_COMPLETIONS && self.done_jobs > 0.0 && self.busy_secs >= MIN_BUSY_SECS)
            .then(|| (self.busy_secs / self.done_jobs).clamp(0.001, 86_400.0))
    }

    /// Idle gaps seen (decayed count).
    pub fn gap_count(&self) -> f64 {
        self.gaps.iter().map(|g| f64::from(*g)).sum()
    }

    /// The keep-alive that minimises the expected cost per idle gap, in seconds, given a cold start that costs
    /// `cold` dyno-seconds (the billed boot plus the wait it causes, counted alike). Keeping a worker `w` seconds
    /// costs `min(gap, w)`; a gap longer than `w` then costs a cold start too. Candidates are the bucket bounds up
    /// to `cap`. Until `min_gaps` gaps are seen, the missing ones are drawn from the gaps Poisson arrivals at the
    /// measured rate would leave (exponential); before any load at all, `None`.
    pub fn keep_alive(&self, cold: f64, cap: f64, min_gaps: f64) -> Option<f64> {
        let seen = self.gap_count();
        let prior = (min_gaps - seen).max(0.0);
        // Nothing seen at all yet: no basis. Load seen, but no arrival for minutes: the next one is far off.
        if prior > 0.0 && self.last_load.is_none() {
            return None;
        }
        Some(best_keep_alive(&self.gaps, prior, self.arrivals.max(1e-9), cold, cap))
    }
}

/// Adds a gap of `secs` to a decayed histogram over [`GAP_BOUNDS`].
fn add_gap(hist: &mut [f32], secs: f64) {
    let bucket = GAP_BOUNDS.iter().position(|b| secs <= *b).unwrap_or(GAP_BOUNDS.len());
    for g in hist.iter_mut() {
        *g *= GAP_DECAY;
    }
    hist[bucket] += 1.0;
}

/// The keep-alive among the bucket bounds up to `cap` that minimises the expected cost per gap: the histogram's
/// gaps plus `prior` gaps drawn from an exponential of rate `rate`.
fn best_keep_alive(hist: &[f32], prior: f64, rate: f64, cold: f64, cap: f64) -> f64 {
    let seen: f64 = hist.iter().map(|g| f64::from(*g)).sum();
    // The middle of each bucket (the last, open one: twice its lower bound).
    let mid = |i: usize| {
        let lo = if i == 0 { 0.0 } else { GAP_BOUNDS[i - 1] };
        let hi = GAP_BOUNDS.get(i).copied().unwrap_or(lo * 2.0);
        (lo + hi) / 2.0
    };
    let cost = |w: f64| -> f64 {
        let observed: f64 = hist
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let hi = GAP_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
                f64::from(*n) * if hi <= w { mid(i) } else { w + cold }
            })
            .sum();
        // Exponential gaps of mean 1/rate: E[min(g, w)] + P(g > w) × cold.
        let drawn = if prior > 0.0 {
            let survive = (-rate * w).exp();
            prior * ((1.0 - survive) / rate + survive * cold)
        } else {
            0.0
        };
        (observed + drawn) / (seen + prior)
    };
    let mut best = (0.0, cost(0.0));
    for w in GAP_BOUNDS.iter().copied().filter(|w| *w <= cap) {
        let c = cost(w);
        if c < best.1 - 1e-9 {
            best = (w, c);
        }
    }
    best.0
}

/// Whether an idle reading is true: every dyno has a worker record (none is booting unseen) and every record's
/// heartbeat came after the last reading with work (so a job taken since would show).
fn idle_confirmed(snap: &Snapshot, last_load: Option<f64>, current: u32) -> bool {
    let Some(workers) = &snap.workers else { return true };
    let fresh = |w: &crate::snapshot::WorkerInfo| match (w.beat, last_load) {
        (Some(beat), Some(load)) => beat.duration_since(std::time::UNIX_EPOCH).is_ok_and(|b| b.as_secs_f64() > load),
        _ => true,
    };
    snap.worker_hosts() >= current as usize && workers.iter().all(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::QueueStats;

    fn snap(ready: u64, running: u64, processed: u64) -> Snapshot {
        let mut s = Snapshot { processed: Some(processed), ..Snapshot::default() };
        s.add("q", QueueStats { ready, running, ..QueueStats::default() });
        s
    }

    #[test]
    fn littles_law_gives_the_duration_from_the_counter() {
        // 2 jobs/s arriving and completing, 6 running: 3 s per job.
        let mut l = Learned::default();
        for i in 0..2000u64 {
            l.observe(&snap(0, 6, i * 2), i as f64, 0);
        }
        assert!((l.job_secs().unwrap() - 3.0).abs() < 0.05, "{:?}", l.job_secs());
        assert!((l.arrivals - 2.0).abs() < 0.05, "{}", l.arrivals);
        // Without a counter nothing is claimed.
        let mut blind = Learned::default();
        for i in 0..100u64 {
            blind.observe(&Snapshot { processed: None, ..snap(0, 6, 0) }, i as f64, 0);
        }
        assert_eq!(blind.job_secs(), None);
    }

    #[test]
    fn a_burst_of_short_jobs_is_remembered_through_the_quiet_hours_after_it() {
        let mut l = Learned::default();
        let mut done = 0;
        let mut t = 0.0;
        // Quiet: a 0.1 s job now and then, never caught running at a reading. Nothing is claimed.
        for _ in 0..600 {
            done += u64::from(fastrand::u8(..) < 8);
            l.observe(&snap(0, 0, done), t, 1);
            t += 1.0;
        }
        assert_eq!(l.job_secs(), None);
        // A burst: 500 jobs/s of 0.1 s, 50 running, for 100 s.
        for _ in 0..100 {
            done += 500;
            l.observe(&snap(1000, 50, done), t, 10);
            t += 1.0;
        }
        assert!((l.job_secs().unwrap() - 0.1).abs() < 0.01, "{:?}", l.job_secs());
        // Two quiet hours again: still about 0.1 s, not the near-zero the quiet readings alone suggest.
        for _ in 0..7200 {
            done += u64::from(fastrand::u8(..) < 8);
            l.observe(&snap(0, 0, done), t, 1);
            t += 1.0;
        }
        assert!((l.job_secs().unwrap() - 0.1).abs() < 0.02, "{:?}", l.job_secs());
    }

    #[test]
    fn keep_alive_follows_the_gaps() {
        let mut short = Learned::default();
        let mut long = Learned::default();
        let mut t = 0.0;
        for _ in 0..40 {
            short.observe(&snap(0, 0, 0), t, 0);
            long.observe(&snap(0, 0, 0), t, 0);
            short.observe(&snap(1, 0, 0), t + 6.0, 0);
            long.observe(&snap(1, 0, 0), t + 900.0, 0);
            t += 1000.0;
        }
        assert_eq!(Learned::default().keep_alive(60.0, 1200.0, 8.0), None);
        // No gap yet, but load seen: gaps of Poisson arrivals at the measured rate. Every 5 s: keep; every 10
        // minutes, or none for long: drop at once.
        let often = Learned { arrivals: 0.2, last_load: Some(1.0), ..Learned::default() };
        let rarely = Learned { arrivals: 1.0 / 600.0, last_load: Some(1.0), ..Learned::default() };
        let none = Learned { arrivals: 0.0, last_load: Some(1.0), ..Learned::default() };
        assert_eq!(none.keep_alive(60.0, 1200.0, 8.0), Some(0.0));
        assert!(often.keep_alive(60.0, 1200.0, 8.0).unwrap() >= 15.0);
        assert_eq!(rarely.keep_alive(60.0, 1200.0, 8.0), Some(0.0));
        // Gaps of 6 s: keep a worker through them. Gaps of 15 minutes: drop at once.
        assert_eq!(short.keep_alive(60.0, 1200.0, 8.0), Some(8.0));
        assert_eq!(long.keep_alive(60.0, 1200.0, 8.0), Some(0.0));
    }

    #[test]
    fn summary_is_a_few_kilobytes() {
        let json = serde_json::to_string(&Learned::default()).unwrap();
        assert!(json.len() < 6_000, "{}", json.len());
        let back: Learned = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Learned::default());
        // Another version's summary: what it lacks takes the default, what it has more is ignored.
        let other: Learned = serde_json::from_str(r#"{"arrivals": 0.5, "completions": 1.0}"#).unwrap();
        assert_eq!(other, Learned { arrivals: 0.5, ..Learned::default() });
    }
}
