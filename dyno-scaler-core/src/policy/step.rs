//! One decision, in its steps: the bounds, the demand (the rules, then the adaptive drain and pre-warm), the quantity
//! desired within the bounds, then the way up (at once) or the way down (a complete reading, the mode, the delay,
//! the quiet dynos and busy-safety). Each step fills its part of the typed reason ([`Why`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::busy::BusyFloor;
use super::why::{Outcome, Verdict, Why};
use super::{DownMode, Learned, MaxMode, Policy, PolicyInput, adaptive, lag, schedule, secs};

/// The lower-demand window: since when the demand is lower than the quantity run, and its peak since.
pub(super) type Window = (Option<SystemTime>, u32);

/// A window that begins again.
const FRESH: Window = (None, 0);

/// The bounds in force: the schedule's or the configured ones, the maximum lowered to a platform's limit.
#[derive(Clone, Copy)]
struct Bounds {
    min: u32,
    max: u32,
}

/// What the way down works with.
struct Down<'i, 'a> {
    input: &'i PolicyInput<'a>,
    window: Window,
    streaks: &'i BTreeMap<String, lag::IdleStreak>,
    ready_gone: Option<SystemTime>,
    /// How long busy dynos have held every scale-down ([`super::spread`]).
    busy_held: std::time::Duration,
    bounds: Bounds,
    desired: u32,
    /// Nothing ready or running anywhere.
    idle: bool,
}

impl Policy {
    /// The decision, and the lower-demand window after it.
    pub(super) fn decide_with(
        &self,
        input: &PolicyInput<'_>,
        window: Window,
        streaks: &BTreeMap<String, lag::IdleStreak>,
        learned: &mut Learned,
        (ready_gone, busy_held): (Option<SystemTime>, std::time::Duration),
    ) -> (Verdict, Window) {
        let (bounds, mut why) = self.bounds(input);
        let current = input.current;
        let (demand, idle) = self.demand(input, learned, bounds.max, &mut why);
        let desired = self.desired(demand, bounds, current, &mut why);
        let verdict = |to: u32, outcome: Outcome, mut why: Why| {
            why.outcome = outcome;
            Verdict { from: current, to, desired, why }
        };
        // A quiet process takes no new job: its dyno is no capacity. Work waiting that needs more than the dynos that
        // still take jobs scales up past the quiet ones, whatever rule set the demand.
        let quiet = self.quiet_dynos(input).min(current);
        if quiet > 0 && why.ready > 0 && desired > current - quiet {
            let to = desired.saturating_add(quiet).min(bounds.max).max(current);
            if to > current {
                return (verdict(to, Outcome::UpPastQuiet { quiet }, why), FRESH);
            }
        }
        if desired > current {
            return (verdict(desired, Outcome::Up, why), FRESH);
        }
        if desired == current {
            return (verdict(current, Outcome::Steady, why), FRESH);
        }
        let down = Down { input, window, streaks, ready_gone, busy_held, bounds, desired, idle };
        let (outcome, to, window) = self.down(&down, learned, &mut why);
        (verdict(to, outcome, why), window)
    }

    /// The bounds in force now, and the reason's reading and schedule parts.
    fn bounds(&self, input: &PolicyInput<'_>) -> (Bounds, Why) {
        let c = &self.config;
        // A schedule window that holds now sets the bounds, and the decision names it.
        let window = schedule::current(&c.schedule, input.now);
        let own = (c.min_workers, c.max_workers);
        let (min, max_workers) = window.map_or(own, |w| w.bounds(own));
        let max = match input.platform_limit {
            Some(l) => max_workers.min(l).max(min),
            None => max_workers,
        };
        let totals = input.snapshot.totals();
        let why = Why {
            ready: totals.ready,
            running: totals.running,
            oldest: totals.oldest_ready_age,
            window: window.map(|w| (w.name.clone(), min, max_workers)),
            rules: Vec::with_capacity(c.rules.len()),
            ..Why::default()
        };
        (Bounds { min, max }, why)
    }

    /// The workers every rule wants together (the adaptive policy learning as it goes), and whether nothing is
    /// ready or running anywhere.
    fn demand(&self, input: &PolicyInput<'_>, learned: &mut Learned, max: u32, why: &mut Why) -> (u32, bool) {
        let c = &self.config;
        let (ready, running, current) = (why.ready, why.running, input.current);
        let mut demand = 0u32;
        for rule in &c.rules {
            let d = rule.demand((ready, running, why.oldest), input.snapshot.requests.as_ref(), current);
            why.rules.push((rule.label(), d));
            demand = demand.max(d);
        }
        let idle = ready == 0 && running == 0 && input.snapshot.running_elsewhere == 0;
        if let Some(a) = &c.adaptive {
            let now = secs(input.now);
            let drain = a.demand(learned, input.source_threads, ready, running);
            demand = demand.max(drain.workers);
            why.drain = Some(drain);
            for memory in [&mut learned.hourly, &mut learned.daily] {
                memory.record(now as u64, demand.min(max));
                memory.serve(now as u64, demand.min(max));
            }
            let warming = a.prewarm(learned, now, demand);
            adaptive::account(learned, now, warming.as_ref().map(|w| w.level), demand);
            if let Some(w) = warming {
                demand = demand.max(w.level);
                why.prewarm = Some(w);
            }
            learned.note_dip(demand.min(max), current, now);
        }
        why.want = demand;
        (demand, idle)
    }

    /// The demand within the bounds (or held by the seed gem's veto).
    fn desired(&self, demand: u32, bounds: Bounds, current: u32, why: &mut Why) -> u32 {
        let mut desired = demand.clamp(bounds.min, bounds.max);
        if desired != demand {
            why.clamped = Some((bounds.min, bounds.max, desired));
        }
        if self.config.max_mode == MaxMode::LegacyVeto && demand > bounds.max && desired > current {
            why.vetoed = true;
            desired = current.max(bounds.min);
        }
        desired
    }

    /// The way down (fewer desired than run): subject to a complete reading, the mode, the delay, the quiet dynos
    /// and busy-safety. The outcome, the quantity, and the window after.
    fn down(&self, d: &Down<'_, '_>, learned: &Learned, why: &mut Why) -> (Outcome, u32, Window) {
        let (c, input, current) = (&self.config, d.input, d.input.current);
        if !input.snapshot.unreadable.is_empty() {
            return (Outcome::Unreadable(input.snapshot.unreadable.clone()), current, d.window);
        }
        let lowest = match c.down_mode {
            DownMode::Idle if !d.idle => return (Outcome::NotIdle, current, FRESH),
            DownMode::Idle => d.bounds.min,
            DownMode::Gradual => d.desired,
        };
        // The delay a lower demand must last: the adaptive keep-alive, reckoned only for a scale-down.
        let down_delay = match &c.adaptive {
            Some(a) => {
                let (delay, keep) = a.keep_alive(learned, c.down_delay, d.idle);
                why.keep_alive = Some(keep);
                delay
            }
            None => c.down_delay,
        };
        let (since, peak) = match d.window {
            // A window whose peak is not below the quantity began at a larger one (a shrink finished since): it
            // says nothing about this one.
            (Some(since), window_peak) if window_peak < current => (since, window_peak.max(lowest)),
            _ => (input.now, lowest),
        };
        let next = (Some(since), peak);
        let waited = input.now.duration_since(since).unwrap_or_default();
        if waited < down_delay {
            return (Outcome::Delay { waited, delay: down_delay }, current, next);
        }
        // Quiet dynos take no job: keep the demand's worth of dynos that do (a drain in progress finishes on its
        // own, [`crate::drain`]).
        let target = self.keeping_capacity(input, peak);
        if target > peak {
            why.quiet_keep = Some(target);
        }
        // Any job of this process type protects its dyno, whatever queue it came from.
        let running = why.running + input.snapshot.running_elsewhere;
        let busy_anywhere = running > 0
            || input.snapshot.workers.as_ref().is_some_and(|w| w.iter().any(|w| !lag::confirmed_idle(w, d.streaks)));
        let to = match self.busy_floor(input, running, d.streaks, d.ready_gone) {
            BusyFloor::Known(floor, host) if floor > target => {
                why.busy_host = Some(host);
                match self.through_busy(input, learned, (why.ready, peak, d.busy_held)) {
                    Some((to, through)) if to < floor => {
                        return (Outcome::DownThroughBusy(through), to.max(target), FRESH);
                    }
                    _ => floor,
                }
            }
            BusyFloor::Known(..) => target,
            BusyFloor::Unknown if busy_anywhere && !c.allow_interrupting => {
                return (Outcome::Unplaced { running: running.max(1) }, current, next);
            }
            BusyFloor::Unknown => target,
        };
        if to >= current {
            // A window that is over while its peak (with the quiet dynos) keeps every dyno begins again, so a demand
            // that stays lower is heard.
            let next = if peak > lowest { (Some(input.now), lowest) } else { next };
            return (Outcome::Kept, current, next);
        }
        (Outcome::Down, to, FRESH)
    }
}
