//! Web traffic: requests (not jobs) in front of dynos of Puma threads, and the strategies that scale them on request
//! queue time: dyno-scaler's web policy (the production [`Policy`], reading what the `request_queue` source reads)
//! and the peers' web rules as documented ([`peers`]).
//!
//! The model, per request in arrival order: Heroku's router picks a dyno at random among those serving (it does
//! not balance load); the dyno's Puma takes it first-in-first-out on its first free thread; its queue time is from
//! the arrival to that thread. A new dyno is billed from the request and serves after the boot; a dyno scaled away
//! (Cedar stops the highest-numbered first) takes no new request and is billed until its last request ends. Each
//! strategy sees a request only when its real source would: the middleware's flush (1 s after the request ends) for
//! dyno-scaler and HireFire, Judoscale's 10-second reports.
//!
//! ```
//! use dyno_scaler_simulator::web::{self, WebConfig};
//! let trace = web::traffic::diurnal(1, 6.0, 0.1);
//! let cfg = WebConfig::default();
//! let rows: Vec<_> = web::strategies().iter().map(|s| web::simulate(&trace, s, &cfg)).collect();
//! assert_eq!(rows.len(), 4);
//! assert!(rows.iter().all(|r| r.requests == trace.jobs.len() as u64));
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use dyno_scaler_core::requests::Bucket;

use crate::trace::Trace;

pub mod peers;
pub mod traffic;

pub use peers::{WebStrategy, strategies};

/// The simulated app and platform.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Threads a dyno serves requests on (Puma threads × workers; Puma's default 5 × 1).
    pub threads: u32,
    /// Seconds from a dyno's start to its first request (billed).
    pub boot: f64,
    /// Dynos at least (a web process type at 0 serves nothing).
    pub min: u32,
    /// Dynos at most.
    pub max: u32,
    /// Dollars a dyno-hour.
    pub price_per_dyno_hour: f64,
    /// The queue time to keep the percentile under (dyno-scaler's target; the peers' upscale threshold).
    pub target: Duration,
    /// The router's random choices.
    pub seed: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            threads: 5,
            boot: 30.0,
            min: 1,
            max: 10,
            price_per_dyno_hour: 25.0 / 720.0,
            target: Duration::from_millis(250),
            seed: 1,
        }
    }
}

/// What one strategy cost and how long requests waited.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WebResult {
    /// The strategy.
    pub strategy: String,
    /// The trace.
    pub trace: String,
    /// Dyno-hours billed.
    pub dyno_hours: f64,
    /// Their price.
    pub cost: f64,
    /// Requests served.
    pub requests: u64,
    /// Queue time percentiles and the longest, seconds.
    pub p50: f64,
    /// See `p50`.
    pub p95: f64,
    /// See `p50`.
    pub p99: f64,
    /// See `p50`.
    pub max: f64,
    /// Quantity changes.
    pub scale_events: u64,
}

#[derive(Debug, Clone)]
struct Dyno {
    billed_from: f64,
    /// When it takes its first request (the dynos of the start are up from 0).
    up_at: f64,
    /// When each thread is free next.
    free: Vec<f64>,
    stopped: Option<f64>,
}

/// What a strategy has seen, per second of a request's start (the middleware's bucket), the last two minutes.
#[derive(Debug, Default)]
pub struct Seen {
    first: u64,
    seconds: VecDeque<(Bucket, Vec<f32>)>,
}

impl Seen {
    fn add(&mut self, start: f64, queue: f64, service: f64) {
        let s = start.max(0.0) as u64;
        if self.seconds.is_empty() {
            self.first = s;
        }
        if s < self.first {
            return;
        }
        while self.first + (self.seconds.len() as u64) <= s {
            self.seconds.push_back((Bucket::default(), Vec::new()));
        }
        let (b, raw) = &mut self.seconds[(s - self.first) as usize];
        b.add(queue * 1000.0, service * 1000.0);
        raw.push(queue as f32);
        while self.seconds.len() > 130 {
            self.seconds.pop_front();
            self.first += 1;
        }
    }

    /// The buckets of the seconds `from..to` (seconds of request starts).
    pub fn buckets(&self, from: u64, to: u64) -> Vec<Bucket> {
        (from..to).filter_map(|s| self.get(s).map(|x| x.0)).collect()
    }

    /// The queue times of the requests started in `from..to`, seconds.
    pub fn raw(&self, from: u64, to: u64) -> Vec<f32> {
        (from..to).filter_map(|s| self.get(s)).flat_map(|x| x.1.iter().copied()).collect()
    }

    fn get(&self, s: u64) -> Option<&(Bucket, Vec<f32>)> {
        s.checked_sub(self.first).and_then(|i| self.seconds.get(i as usize))
    }
}

/// The `p` quantile (0 to 1) of `v` (0 when empty), sorting it.
pub fn quantile(v: &mut [f32], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let k = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    f64::from(*x)
}

/// Replays `trace`'s requests (arrival, time in the app) against `strategy`.
pub fn simulate(trace: &Trace, strategy: &WebStrategy, cfg: &WebConfig) -> WebResult {
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let mut brain = strategy.start(cfg);
    let threads = cfg.threads.max(1) as usize;
    let first = brain.initial(cfg).clamp(cfg.min.max(1), cfg.max);
    let mut dynos: Vec<Dyno> =
        (0..first).map(|_| Dyno { billed_from: 0.0, up_at: 0.0, free: vec![0.0; threads], stopped: None }).collect();
    let mut pending: BinaryHeap<Reverse<(u64, u64, u64, u64)>> = BinaryHeap::new();
    let mut seen = Seen::default();
    let mut waits: Vec<f32> = Vec::with_capacity(trace.jobs.len());
    let (mut next_tick, tick) = (brain.tick(), brain.tick());
    let mut events = 0u64;
    let mut serving: Vec<usize> = Vec::new();
    for job in &trace.jobs {
        // Every decision due before this arrival, each on what its source shows by then.
        while next_tick <= job.arrived_at {
            while let Some(Reverse((seen_at, start, q, svc))) = pending.peek().copied() {
                if f64::from_bits(seen_at) > next_tick {
                    break;
                }
                pending.pop();
                seen.add(f64::from_bits(start), f64::from_bits(q), f64::from_bits(svc));
            }
            let live = dynos.iter().filter(|d| d.stopped.is_none()).count() as u32;
            let to = brain.decide(next_tick, live, &seen, cfg).clamp(cfg.min.max(1), cfg.max);
            if to != live {
                events += 1;
                apply(&mut dynos, live, to, next_tick, cfg, threads);
            }
            next_tick += tick;
        }
        let t = job.arrived_at;
        // The router: any dyno that is up, at random; while none is, the first to come up.
        serving.clear();
        serving.extend((0..dynos.len()).filter(|&i| dynos[i].stopped.is_none() && dynos[i].up_at <= t));
        let i = if serving.is_empty() {
            (0..dynos.len())
                .filter(|&i| dynos[i].stopped.is_none())
                .min_by(|&a, &b| dynos[a].up_at.total_cmp(&dynos[b].up_at))
                .expect("at least one dyno")
        } else {
            serving[rng.usize(..serving.len())]
        };
        let d = &mut dynos[i];
        let (k, free) =
            d.free.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(k, f)| (k, *f)).unwrap_or((0, t));
        let start = t.max(free);
        let end = start + job.duration;
        d.free[k] = end;
        let queue = start - t;
        waits.push(queue as f32);
        let seen_at = brain.seen_at(end);
        pending.push(Reverse((seen_at.to_bits(), start.to_bits(), queue.to_bits(), job.duration.to_bits())));
    }
    let last_end = dynos.iter().flat_map(|d| d.free.iter().copied()).fold(trace.span, f64::max);
    let billed: f64 = dynos
        .iter()
        .map(|d| {
            let until = d.stopped.map_or(last_end, |s| d.free.iter().copied().fold(s, f64::max));
            (until - d.billed_from).max(0.0)
        })
        .sum();
    let dyno_hours = billed / 3600.0;
    let max = waits.iter().copied().fold(0.0f32, f32::max);
    WebResult {
        strategy: strategy.name(),
        trace: trace.name.clone(),
        dyno_hours,
        cost: dyno_hours * cfg.price_per_dyno_hour,
        requests: waits.len() as u64,
        p50: quantile(&mut waits, 0.50),
        p95: quantile(&mut waits, 0.95),
        p99: quantile(&mut waits, 0.99),
        max: f64::from(max),
        scale_events: events,
    }
}

/// From `live` dynos to `to` at `now`: new ones boot; the highest-numbered live ones stop taking requests.
fn apply(dynos: &mut Vec<Dyno>, live: u32, to: u32, now: f64, cfg: &WebConfig, threads: usize) {
    if to > live {
        for _ in live..to {
            let up_at = now + cfg.boot;
            dynos.push(Dyno { billed_from: now, up_at, free: vec![up_at; threads], stopped: None });
        }
    } else {
        let mut left = live - to;
        for d in dynos.iter_mut().rev().filter(|d| d.stopped.is_none()) {
            if left == 0 {
                break;
            }
            d.stopped = Some(now);
            left -= 1;
        }
    }
}
