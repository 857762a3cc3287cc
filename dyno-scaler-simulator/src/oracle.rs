//! The limit: a clairvoyant strategy that knows every arrival and run time in advance.
//!
//! It runs under the same dyno shape (`concurrency` threads, at most `max` dynos), boot time and per-second
//! billing as every other strategy, and stops no busy dyno. It computes, rather than simulates:
//!
//! 1. **When each job starts.** Every job starts as early as first-in-first-out on `max × concurrency` threads
//!    that are always up allows: at its arrival unless all threads are taken. Where `max` dynos suffice, no job
//!    waits.
//! 2. **How many dynos must be ready.** At each instant, `need(t) = ceil(running(t) / concurrency)`.
//! 3. **What each dyno costs.** The `k`-th dyno is needed while `need(t) ≥ k`: a union of intervals. It is started
//!    one boot ahead of each interval (billed), and kept through a gap between two intervals only when the gap is
//!    shorter than a boot (keeping it costs the gap, stopping and booting again costs the boot). A first interval
//!    that begins within a boot of the start is served by a dyno already up at the start, billed from 0, as the
//!    always-on strategy's dynos are.
//!
//! The sum is a **lower bound** on the dyno-seconds of any strategy whose jobs wait no longer: the set of
//! instants where at least `k` dynos are up contains, for each interval where at least `k` are ready, the boot
//! before it (every dyno ready at the interval's start was booting or ready through the whole boot before it), so
//! it measures at least one boot, or the gap, or the time from the start, before each interval. It may be below
//! what any real placement reaches: it counts jobs as if they could be packed onto the fewest dynos at every
//! instant, where a real dyno that took a long job must run until it ends.
//!
//! ```
//! use dyno_scaler_simulator::{SimConfig, oracle, trace};
//! let t = trace::steady(1, 0.05, 3600.0, 2.0);
//! let r = oracle::oracle(&t, 5, &SimConfig::default());
//! assert_eq!((r.strategy.as_str(), r.wait_max, r.interrupted), (oracle::NAME, 0.0, 0));
//! assert!(r.dyno_hours > 0.0 && r.dyno_hours < 5.0);
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::engine::{SimConfig, SimResult, percentile};
use crate::trace::Trace;

/// The oracle's row name.
pub const NAME: &str = "oracle";

/// The oracle's result on `trace` with at most `max` dynos.
pub fn oracle(trace: &Trace, max: u32, cfg: &SimConfig) -> SimResult {
    let concurrency = u64::from(cfg.concurrency.max(1));
    let starts = starts(trace, u64::from(max.max(1)) * concurrency);
    let mut waits: Vec<f32> = trace.jobs.iter().zip(&starts).map(|(j, s)| (s - j.arrived_at) as f32).collect();
    waits.sort_by(f32::total_cmp);
    let plan = Plan::of(trace, &starts, concurrency, cfg.boot_time.as_secs_f64());
    let dyno_hours = plan.dyno_seconds / 3600.0;
    let scale_events = plan.changes.len() as u64;
    SimResult {
        strategy: NAME.to_owned(),
        dyno_hours,
        cost: dyno_hours * cfg.price_per_dyno_hour,
        jobs: trace.jobs.len() as u64,
        wait_p50: percentile(&waits, 0.50),
        wait_p95: percentile(&waits, 0.95),
        wait_p99: percentile(&waits, 0.99),
        wait_max: waits.last().map_or(0.0, |v| f64::from(*v)),
        interrupted: 0,
        api_calls: scale_events,
        scale_events,
        unfinished: 0,
        cost_vs_oracle: None,
        samples: plan.samples(trace, &starts, cfg.sample_every.as_secs_f64().max(1.0)),
    }
}

/// Each job's start: first in, first out on `threads` threads that are always up.
fn starts(trace: &Trace, threads: u64) -> Vec<f64> {
    // Times are non-negative, where the order of their bits is the order of the numbers.
    let mut free: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
    let mut out = Vec::with_capacity(trace.jobs.len());
    for j in &trace.jobs {
        let start = if (free.len() as u64) < threads {
            j.arrived_at
        } else {
            let Reverse(at) = free.pop().expect("a full pool is not empty");
            j.arrived_at.max(f64::from_bits(at))
        };
        free.push(Reverse((start + j.duration).max(0.0).to_bits()));
        out.push(start);
    }
    out
}

/// The dynos the oracle runs: their billed seconds and each change of the quantity.
struct Plan {
    dyno_seconds: f64,
    /// (time, dynos started less dynos stopped): while planning, one entry per start (+1) or stop (−1); once
    /// planned, sorted, one per instant the quantity changes.
    changes: Vec<(f64, i64)>,
}

/// One dyno level's history in the sweep.
#[derive(Clone, Copy, Default)]
struct Level {
    /// Needed since.
    since: Option<f64>,
    /// Last needed until (its stop, unless it is kept through the next gap).
    until: Option<f64>,
}

impl Plan {
    fn of(trace: &Trace, starts: &[f64], concurrency: u64, boot: f64) -> Self {
        // Ends before starts at the same instant: a freed thread takes the next job at once.
        let mut edges: Vec<(f64, i32)> = Vec::with_capacity(starts.len() * 2);
        for (j, s) in trace.jobs.iter().zip(starts) {
            edges.push((*s, 1));
            edges.push((s + j.duration, -1));
        }
        edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut plan = Self { dyno_seconds: 0.0, changes: Vec::new() };
        let mut levels: Vec<Level> = Vec::new();
        let (mut running, mut need) = (0i64, 0usize);
        let mut i = 0;
        while i < edges.len() {
            let t = edges[i].0;
            while i < edges.len() && edges[i].0 == t {
                running += i64::from(edges[i].1);
                i += 1;
            }
            let now = usize::try_from(running).unwrap_or(0).div_ceil(concurrency as usize);
            if levels.len() < now {
                levels.resize(now, Level::default());
            }
            for level in levels.iter_mut().take(now).skip(need) {
                plan.rise(level, t, boot);
            }
            for level in levels.iter_mut().take(need).skip(now) {
                let since = level.since.take().expect("a needed level has a start");
                plan.dyno_seconds += t - since;
                level.until = Some(t);
            }
            need = now;
        }
        for until in levels.iter().filter_map(|l| l.until) {
            plan.changes.push((until, -1));
        }
        plan.changes = net(std::mem::take(&mut plan.changes));
        plan
    }

    /// The level is needed again at `t`: kept through the gap when it is shorter than a boot, else stopped at its
    /// last end and booted again a boot before `t`.
    fn rise(&mut self, level: &mut Level, t: f64, boot: f64) {
        match level.until {
            Some(until) if t - until < boot => self.dyno_seconds += t - until,
            Some(until) => {
                self.dyno_seconds += boot;
                self.changes.push((until, -1));
                self.changes.push((t - boot, 1));
            }
            // Up from the start when it is needed within a boot of it.
            None if t < boot => self.dyno_seconds += t,
            None => {
                self.dyno_seconds += boot;
                self.changes.push((t - boot, 1));
            }
        }
        level.since = Some(t);
        level.until = None;
    }

    /// (time, the most jobs waiting, the most dynos up) over each `every` seconds ending at that time, until the
    /// last dyno stops: the engine's samples.
    fn samples(&self, trace: &Trace, starts: &[f64], every: f64) -> Vec<(f64, u64, u32)> {
        let changes = &self.changes;
        // Dynos up from the start have a stop and no start: the changes sum to minus their number.
        let initial: i64 = (-changes.iter().map(|c| c.1).sum::<i64>()).max(0);
        let end = changes.last().map_or(trace.span, |c| c.0.max(trace.span));
        let (mut dynos, mut c, mut arrived, mut started) = (initial, 0, 0, 0);
        let mut peak = (0u64, initial);
        let mut out = Vec::new();
        let mut t = 0.0;
        while t <= end {
            // Every arrival, start and change up to `t`, in time order, the peaks kept.
            loop {
                let next_arrival = trace.jobs.get(arrived).map(|j| j.arrived_at);
                let next_start = starts.get(started).copied();
                let next_change = changes.get(c).map(|c| c.0);
                let next = [next_arrival, next_start, next_change].into_iter().flatten().fold(f64::INFINITY, f64::min);
                if next > t {
                    break;
                }
                // Everything at this instant before the peaks: a job that starts as it arrives never waited.
                while trace.jobs.get(arrived).is_some_and(|j| j.arrived_at <= next) {
                    arrived += 1;
                }
                while starts.get(started).is_some_and(|s| *s <= next) {
                    started += 1;
                }
                while changes.get(c).is_some_and(|ch| ch.0 <= next) {
                    dynos += changes[c].1;
                    c += 1;
                }
                peak = (peak.0.max(arrived.saturating_sub(started) as u64), peak.1.max(dynos));
            }
            let now = (arrived.saturating_sub(started) as u64, dynos);
            out.push((t, peak.0.max(now.0), u32::try_from(peak.1.max(now.1).max(0)).unwrap_or(u32::MAX)));
            peak = now;
            t += every;
        }
        out
    }
}

/// Starts and stops sorted by time, summed per instant, the instants where they cancel out dropped.
fn net(mut changes: Vec<(f64, i64)>) -> Vec<(f64, i64)> {
    changes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, i64)> = Vec::new();
    for (t, d) in changes {
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += d,
            _ => out.push((t, d)),
        }
    }
    out.retain(|c| c.1 != 0);
    out
}
