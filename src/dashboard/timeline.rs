//! One process type's last day, pure: a ring of one-minute samples (each minute's peaks and its billed
//! worker-seconds) and a bounded list of events (scale changes, holds, failures, recoveries), fed with every
//! cycle's result and the wall-clock time it ended.
//!
//! ```
//! use dyno_scaler::dashboard::Timeline;
//! let mut t = Timeline::new(4);
//! t.quantity(0.0, 2);
//! t.quantity(90.0, 1); // 2 workers for 90 s, spread over the minutes they ran in
//! assert_eq!(t.samples().iter().map(|s| s.worker_secs).collect::<Vec<_>>(), vec![120.0, 60.0]);
//! let s = t.savings(90.0);
//! assert_eq!((s.worker_secs, s.always_on_secs), (180.0, 360.0));
//! ```

use std::collections::VecDeque;

use dyno_scaler_core::{Report, ScalerError};
use serde::{Deserialize, Serialize};

/// How many minutes are kept: a day.
pub const MINUTES: usize = 1440;
/// How many events are kept per process type (the oldest go first; none older than a day).
pub const EVENTS: usize = 500;
const DAY: f64 = 86_400.0;
/// The longest reason kept with an event (a reason lists dynos; a list of hundreds is cut).
const REASON_CHARS: usize = 600;

/// One minute of a process type: the peaks the cycles of that minute saw, and the worker-seconds billed in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The minute's start, Unix seconds.
    pub at: u64,
    /// Peak jobs ready (runnable now).
    pub ready: u64,
    /// Peak jobs running.
    pub running: u64,
    /// Peak jobs scheduled for later.
    pub scheduled: u64,
    /// Peak age of the oldest ready job, seconds.
    #[serde(serialize_with = "millis")]
    pub latency_secs: f64,
    /// Peak workers wanted.
    pub desired: u32,
    /// Peak workers running.
    pub current: u32,
    /// Peak workers draining.
    pub draining: u32,
    /// Worker-seconds billed in the minute: the quantity integrated over time.
    #[serde(serialize_with = "millis")]
    pub worker_secs: f64,
    /// Seconds of the minute the daemon watched (what always-on is counted over).
    #[serde(serialize_with = "millis")]
    pub seen_secs: f64,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The platform was asked to change the quantity.
    Scale,
    /// A hold began, or its reason changed (a gate, or the policy's own: the down delay, a busy dyno).
    Hold,
    /// A cycle failed (the queue unread, the platform refusing or away); repeats of one failure are one event.
    Error,
    /// A cycle succeeded after failures.
    Recovered,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When, Unix seconds.
    pub at: f64,
    /// What.
    pub kind: EventKind,
    /// The quantity before.
    pub from: u32,
    /// The quantity after (or wanted, for a hold).
    pub to: u32,
    /// The gate that held (`paused`, `draining`, ...), or `policy`, for holds and scale changes a gate made.
    pub gate: Option<String>,
    /// The reason, as the logs give it.
    pub reason: String,
}

/// The day's billed time against always-on at `max_workers`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Savings {
    /// Seconds of the last day the daemon watched.
    pub covered_secs: f64,
    /// Worker-seconds billed in them.
    pub worker_secs: f64,
    /// What always-on at `max_workers` would have billed: `max_workers × covered`.
    pub always_on_secs: f64,
}

impl Savings {
    /// Dyno-hours saved against always-on.
    pub fn saved_hours(&self) -> f64 {
        (self.always_on_secs - self.worker_secs) / 3600.0
    }
}

/// The kept state of one process type, for the store (restored after a restart).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Kept {
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
    /// The events, oldest first.
    pub events: Vec<Event>,
}

/// One process type's last day.
#[derive(Debug, Clone)]
pub struct Timeline {
    max_workers: u32,
    samples: VecDeque<Sample>,
    events: VecDeque<Event>,
    /// The last time and quantity seen, to integrate worker-seconds.
    last: Option<(f64, u32)>,
    /// The hold in force (its key), so a hold of many cycles is one event.
    hold: Option<String>,
    /// The failure in force (its fingerprint).
    failing: Option<String>,
}

impl Timeline {
    /// An empty day for a process type of at most `max_workers`.
    pub fn new(max_workers: u32) -> Self {
        Self {
            max_workers,
            samples: VecDeque::with_capacity(MINUTES),
            events: VecDeque::new(),
            last: None,
            hold: None,
            failing: None,
        }
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> &VecDeque<Sample> {
        &self.samples
    }

    /// The events, oldest first.
    pub fn events(&self) -> &VecDeque<Event> {
        &self.events
    }

    /// Takes in one cycle's result, ended at `now` (Unix seconds).
    pub fn observe(&mut self, now: f64, result: &Result<Report, ScalerError>) {
        match result {
            Ok(rep) => self.report(now, rep),
            Err(e) => {
                // Billing goes on at the quantity last seen.
                if let Some((_, q)) = self.last {
                    self.quantity(now, q);
                }
                let print = e.fingerprint();
                if self.failing.as_ref() != Some(&print) {
                    let q = self.last.map_or(0, |(_, q)| q);
                    self.push(Event { at: now, kind: EventKind::Error, from: q, to: q, gate: None, reason: cut(e) });
                    self.failing = Some(print);
                }
            }
        }
    }

    fn report(&mut self, now: f64, rep: &Report) {
        let d = &rep.decision;
        if self.failing.take().is_some() {
            let reason = "the cycle succeeded again".to_owned();
            self.push(Event { at: now, kind: EventKind::Recovered, from: d.from, to: d.from, gate: None, reason });
        }
        // What ran since the last cycle is billed; an applied change holds from now.
        self.quantity(now, rep.quantity_after());
        let t = rep.snapshot.totals();
        let latency = rep.snapshot.queues.values().filter_map(|q| q.oldest_ready_age).max();
        let s = self.minute(now);
        s.ready = s.ready.max(t.ready);
        s.running = s.running.max(t.running);
        s.scheduled = s.scheduled.max(t.scheduled);
        s.latency_secs = s.latency_secs.max(latency.map_or(0.0, |l| l.as_secs_f64()));
        s.desired = s.desired.max(d.to);
        s.current = s.current.max(rep.quantity_after()).max(d.from);
        s.draining = s.draining.max(rep.draining.len() as u32);
        let gate = d.gate.as_ref().map_or("policy", |g| g.kind()).to_owned();
        if rep.applied {
            self.hold = None;
            let e = Event {
                at: now,
                kind: EventKind::Scale,
                from: d.from,
                to: d.to,
                gate: Some(gate),
                reason: cut(&d.reason),
            };
            self.push(e);
        } else {
            let key = if d.held() { Some(gate.clone()) } else { d.held_by() };
            if key.is_some() && key != self.hold {
                let to = d.would.unwrap_or(d.to);
                let e = Event {
                    at: now,
                    kind: EventKind::Hold,
                    from: d.from,
                    to,
                    gate: Some(gate),
                    reason: cut(&d.reason),
                };
                self.push(e);
            }
            self.hold = key;
        }
    }

    /// Bills `q` workers from the last time seen to `now`, minute by minute, and remembers `q` from `now` on.
    pub fn quantity(&mut self, now: f64, q: u32) {
        if let Some((since, before)) = self.last
            && now > since
        {
            let mut t = since;
            while t < now {
                let end = ((t / 60.0).floor() * 60.0 + 60.0).min(now);
                let s = self.minute(t);
                s.worker_secs += f64::from(before) * (end - t);
                s.seen_secs += end - t;
                t = end;
            }
        }
        self.minute(now);
        self.last = Some((now.max(self.last.map_or(now, |(t, _)| t)), q));
    }

    /// The sample of the minute holding `t`, made when missing (never before the newest: a late time joins it).
    fn minute(&mut self, t: f64) -> &mut Sample {
        let at = (t.max(0.0) as u64) / 60 * 60;
        let newest = self.samples.back().map(|s| s.at);
        if newest.is_none_or(|n| at > n) {
            self.samples.push_back(Sample { at, ..Sample::default() });
            let oldest_kept = at.saturating_sub(DAY as u64 - 60);
            while self.samples.len() > MINUTES || self.samples.front().is_some_and(|s| s.at < oldest_kept) {
                self.samples.pop_front();
            }
            while self.events.front().is_some_and(|e| e.at < oldest_kept as f64) {
                self.events.pop_front();
            }
        }
        let i = self.samples.iter().rposition(|s| s.at <= at).unwrap_or(0);
        &mut self.samples[i]
    }

    fn push(&mut self, e: Event) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// The billed time of the day the samples cover, up to `now`, against always-on at `max_workers`.
    pub fn savings(&self, now: f64) -> Savings {
        let day = self.samples.iter().filter(|s| s.at as f64 > now - DAY);
        let (covered_secs, worker_secs) = day.fold((0.0, 0.0), |(c, w), s| (c + s.seen_secs, w + s.worker_secs));
        Savings { covered_secs, worker_secs, always_on_secs: f64::from(self.max_workers) * covered_secs }
    }

    /// What to keep in the store.
    pub fn kept(&self) -> Kept {
        Kept { samples: self.samples.iter().cloned().collect(), events: self.events.iter().cloned().collect() }
    }

    /// Takes back what was kept (before any cycle of this run), keeping what lies within a day of `now`.
    pub fn restore(&mut self, kept: Kept, now: f64) {
        let oldest = now - DAY + 60.0;
        let samples = kept.samples.into_iter().filter(|s| s.at as f64 >= oldest && (s.at as f64) <= now);
        let mut samples: Vec<Sample> = samples.collect();
        samples.sort_by_key(|s| s.at);
        samples.dedup_by_key(|s| s.at);
        let keep = samples.len().saturating_sub(MINUTES);
        self.samples = samples.into_iter().skip(keep).collect();
        let events: Vec<Event> = kept.events.into_iter().filter(|e| e.at >= oldest && e.at <= now).collect();
        let keep = events.len().saturating_sub(EVENTS);
        self.events = events.into_iter().skip(keep).collect();
    }
}

/// Seconds written to the millisecond (a minute's sum of cycles is not worth 17 digits).
fn millis<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((v * 1000.0).round() / 1000.0)
}

/// A reason of bounded length.
fn cut(reason: &impl std::fmt::Display) -> String {
    let r = reason.to_string();
    match r.char_indices().nth(REASON_CHARS) {
        Some((i, _)) => format!("{}…", &r[..i]),
        None => r,
    }
}
