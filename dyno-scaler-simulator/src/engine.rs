//! The discrete-event simulation of one strategy on one trace: the production [`Policy`] decides from the
//! snapshots a real source would give, at the instants the strategy would decide, and the simulated platform
//! runs what it decides.

use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_core::{Policy, PolicyConfig, PolicyError, PolicyState};
use serde::Serialize;

use super::trace::Trace;
use crate::world::{Event, Kind, Waiting, World};

/// How the simulated platform and workers behave.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    /// Jobs one dyno runs at once (Sidekiq's default concurrency is 5).
    pub concurrency: u32,
    /// Time from scale-up to a dyno taking jobs (billed).
    #[serde(serialize_with = "dyno_scaler_core::serde_secs::duration")]
    pub boot_time: Duration,
    /// Price of one dyno-hour (default: a $25/month Standard-1X, $25 / 720 h).
    pub price_per_dyno_hour: f64,
    /// A job still running this long after its dyno is told to stop is interrupted and goes back to its
    /// queue (Sidekiq's 25 s shutdown timeout inside Heroku's 30 s).
    #[serde(serialize_with = "dyno_scaler_core::serde_secs::duration")]
    pub shutdown_grace: Duration,
    /// Seed for which free worker takes a job.
    pub seed: u64,
    /// The workers' heartbeat period: `busy` (and the running count) are published only at beats, as Sidekiq does
    /// (5 s in 6.x, 10 s in 7+). `None`: the source sees work the instant it starts.
    #[serde(serialize_with = "dyno_scaler_core::serde_secs::option")]
    pub heartbeat: Option<Duration>,
    /// Sampling period of queue depth and workers, for plots.
    #[serde(serialize_with = "dyno_scaler_core::serde_secs::duration")]
    pub sample_every: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            concurrency: 5,
            boot_time: Duration::from_secs(30),
            price_per_dyno_hour: 25.0 / 720.0,
            shutdown_grace: Duration::from_secs(25),
            seed: 7,
            heartbeat: Some(Duration::from_secs(5)),
            sample_every: Duration::from_secs(60),
        }
    }
}

/// One scaling strategy: a policy plus when it decides and what it can see.
#[derive(Debug, Clone, Serialize)]
pub struct Strategy {
    /// Shown in reports.
    pub name: String,
    /// The policy (run through the production `Policy`).
    pub policy: PolicyConfig,
    /// Decide every this often (`None`: only on events).
    #[serde(serialize_with = "dyno_scaler_core::serde_secs::option")]
    pub check_interval: Option<Duration>,
    /// Also decide right after every enqueue and every job end (the seed gem's hooks: the enqueue hook calls
    /// `scale_up`, the job-end hook `scale_down`, so a decision of the job-end hook only ever scales down).
    pub event_driven: bool,
    /// Also decide right after every enqueue, from outside the app: the daemon's event path (Redis client
    /// tracking hears each push; it is not told of job ends, which write no queue key).
    pub wakes_on_enqueue: bool,
    /// The queue reading names the dyno of each busy worker (Sidekiq on Cedar).
    pub sees_dynos: bool,
    /// Where heartbeats lag (Sidekiq), the job-end hook decides this long after the job ends, only to scale down,
    /// and not at all when a job was enqueued within that time: the seed gem's Sidekiq server middleware sleeps
    /// 5 s "to account for sidekiq's heartbeat", then calls `scale_down` unless the 5 s key its client middleware
    /// sets on each push still exists (`dtmtec/dyno_scaler` `lib/dyno_scaler/workers/sidekiq.rb`). With exact
    /// counts (no heartbeat: Resque's `after_perform` hook, which takes its own job off `working`) it decides at
    /// the job's end. `None`: at the job's end in both cases.
    #[serde(serialize_with = "dyno_scaler_core::serde_secs::option")]
    pub end_hook_delay: Option<Duration>,
    /// Quantity at the start (default: `min_workers`).
    pub initial: Option<u32>,
    /// Trust each heartbeat as it comes: no two-beat rule and no quiet-then-drain (to show what the guard
    /// prevents).
    #[serde(skip)]
    pub unguarded: bool,
}

/// What one strategy cost and how long jobs waited.
#[derive(Debug, Clone, Serialize)]
pub struct SimResult {
    /// The strategy.
    pub strategy: String,
    /// Dyno-hours billed (boot included).
    pub dyno_hours: f64,
    /// `dyno_hours × price`.
    pub cost: f64,
    /// Jobs in the trace.
    pub jobs: u64,
    /// Wait from arrival to start, seconds: median.
    pub wait_p50: f64,
    /// 95th percentile.
    pub wait_p95: f64,
    /// 99th percentile.
    pub wait_p99: f64,
    /// Longest.
    pub wait_max: f64,
    /// Jobs stopped mid-run by a scale-down (they went back to the queue).
    pub interrupted: u64,
    /// Platform calls that change the quantity (reads are cached by the Heroku adapter).
    pub api_calls: u64,
    /// Quantity changes.
    pub scale_events: u64,
    /// Jobs that never started before the simulation ended.
    pub unfinished: u64,
    /// (time s, queue depth, dynos) every `sample_every`.
    #[serde(skip)]
    pub samples: Vec<(f64, u64, u32)>,
}

fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i])
}

const EPOCH_OFFSET: u64 = 1_700_000_000;

/// Runs `strategy` on `trace`.
pub fn simulate(trace: &Trace, strategy: &Strategy, cfg: &SimConfig) -> Result<SimResult, PolicyError> {
    let policy = Policy::new(strategy.policy.clone())?;
    let mut state = PolicyState::default();
    let mut w = World {
        now: 0.0,
        cfg: cfg.clone(),
        sees_dynos: strategy.sees_dynos,
        waiting: VecDeque::new(),
        dynos: Vec::new(),
        draining: HashSet::new(),
        quantity: 0,
        next_id: 0,
        new_events: Vec::new(),
        waits: vec![f32::NAN; trace.jobs.len()],
        interrupted: 0,
        dyno_seconds: 0.0,
        api_calls: 0,
        scale_events: 0,
        rng: fastrand::Rng::with_seed(cfg.seed),
        drain: None,
        cedar: dyno_scaler_core::InMemoryPlatform::new(),
        unguarded: strategy.unguarded,
        processed: 0,
        last_enqueue: None,
        reading: dyno_scaler_core::Snapshot::default(),
    };

    let mut heap = BinaryHeap::with_capacity(trace.jobs.len() + 64);
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Event>, at: f64, kind: Kind| {
        seq += 1;
        heap.push(Event { at, seq, kind });
    };
    {
        let initial = strategy.initial.unwrap_or(strategy.policy.min_workers);
        if initial > 0 {
            w.set_quantity(initial);
            // Already running when the day starts.
            for d in &mut w.dynos {
                d.ready_at = 0.0;
            }
            w.new_events.clear();
            w.api_calls = 0;
            w.scale_events = 0;
        }
    }
    // Arrivals are read from the trace in order rather than all pushed at once.
    let mut next_arrival = 0usize;
    if let Some(interval) = strategy.check_interval {
        push(&mut heap, interval.as_secs_f64().min(1.0), Kind::Check);
    }
    push(&mut heap, 0.0, Kind::Sample);
    let end_of_day = trace.span;
    let hard_stop = trace.span + 6.0 * 3600.0;
    let mut samples = Vec::new();
    // A decision due at this instant (a check or a hook), taken after every event of the instant.
    let mut due = false;
    // Only a delayed end hook is due: its decision may only scale down.
    let mut down_only_due = false;
    // The delay of the job-end hook, where heartbeats lag (else the hook decides at the job's end).
    let delayed_end_hook = strategy.end_hook_delay.filter(|_| cfg.heartbeat.is_some()).map(|d| d.as_secs_f64());
    let sample_every = cfg.sample_every.as_secs_f64().max(1.0);

    loop {
        let arrival_at = trace.jobs.get(next_arrival).map(|j| j.arrived_at);
        let heap_at = heap.peek().map(|e| e.at);
        let (at, kind) = match (arrival_at, heap_at) {
            (Some(a), Some(h)) if a <= h => {
                next_arrival += 1;
                (a, Kind::Arrival(next_arrival - 1))
            }
            (Some(a), None) => {
                next_arrival += 1;
                (a, Kind::Arrival(next_arrival - 1))
            }
            (_, Some(_)) => {
                let e = heap.pop().expect("peeked");
                (e.at, e.kind)
            }
            (None, None) => break,
        };
        if at > hard_stop {
            break;
        }
        let mut hook = false;
        let mut check = false;
        let mut end_hook = false;
        {
            w.now = at;
            match kind {
                Kind::Arrival(i) => {
                    let j = &trace.jobs[i];
                    w.waiting.push_back(Waiting { job: i, arrived: j.arrived_at, duration: j.duration });
                    w.last_enqueue = Some(at);
                    hook = strategy.event_driven || strategy.wakes_on_enqueue;
                }
                Kind::Complete { dyno, token } => {
                    w.complete(dyno, token);
                    match delayed_end_hook {
                        Some(delay) if strategy.event_driven => push(&mut heap, at + delay, Kind::EndHook),
                        _ => end_hook = strategy.event_driven,
                    }
                }
                Kind::EndHook => {
                    // The hook's sleep is over: it scales down unless an enqueue came within the sleep.
                    let delay = delayed_end_hook.unwrap_or(0.0);
                    end_hook |= !w.last_enqueue.is_some_and(|e| at - e < delay);
                }
                Kind::DynoReady => {}
                Kind::Check => check = true,
                Kind::Beat(id) => w.beat(id),
                Kind::Sample => {
                    let live = w.dynos.len() as u32;
                    samples.push((at, w.waiting.len() as u64, live));
                }
            }
            w.dispatch();
        }
        let idle_after_day =
            at >= end_of_day && next_arrival >= trace.jobs.len() && w.waiting.is_empty() && w.running() == 0;
        if let Kind::Sample = kind
            && !idle_after_day
        {
            push(&mut heap, at + sample_every, Kind::Sample);
        }
        if check
            && let Some(interval) = strategy.check_interval
            && !(idle_after_day && w.quantity <= strategy.policy.min_workers)
        {
            push(&mut heap, at + interval.as_secs_f64(), Kind::Check);
        }
        // Coalesce: decide once per instant, after every event at that instant.
        let next_same_instant =
            trace.jobs.get(next_arrival).is_some_and(|j| j.arrived_at <= at) || heap.peek().is_some_and(|e| e.at <= at);
        due |= check || hook;
        down_only_due |= end_hook;
        if (due || down_only_due) && !next_same_instant {
            // A decision due for any other reason applies whichever way it goes; the end hook's only downwards.
            w.decide(&policy, &mut state, !due);
            (due, down_only_due) = (false, false);
            w.dispatch();
        }
        for (t, k) in std::mem::take(&mut w.new_events) {
            push(&mut heap, t, k);
        }
        if idle_after_day && (strategy.check_interval.is_none() || w.quantity <= strategy.policy.min_workers) {
            // Nothing left to do except dynos kept at min: bill them to the end of the day.
            if heap.iter().all(|e| matches!(e.kind, Kind::Check | Kind::Sample | Kind::DynoReady | Kind::Beat(_))) {
                break;
            }
        }
    }

    let end = w.now.max(end_of_day);
    let live: f64 = w.dynos.iter().map(|d| end - d.created).sum();
    w.dyno_seconds += live;
    let unfinished = w.waiting.len() as u64;
    let mut waits = std::mem::take(&mut w.waits);
    // Jobs that never started wait until the end.
    for j in &w.waiting {
        waits[j.job] = (end - j.arrived) as f32;
    }
    waits.retain(|v| !v.is_nan());
    waits.sort_by(f32::total_cmp);
    let dyno_hours = w.dyno_seconds / 3600.0;
    Ok(SimResult {
        strategy: strategy.name.clone(),
        dyno_hours,
        cost: dyno_hours * cfg.price_per_dyno_hour,
        jobs: trace.jobs.len() as u64,
        wait_p50: percentile(&waits, 0.50),
        wait_p95: percentile(&waits, 0.95),
        wait_p99: percentile(&waits, 0.99),
        wait_max: waits.last().map_or(0.0, |v| f64::from(*v)),
        interrupted: w.interrupted,
        api_calls: w.api_calls,
        scale_events: w.scale_events,
        unfinished,
        samples,
    })
}

/// The simulated wall-clock start, for plots.
pub fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EPOCH_OFFSET)
}
