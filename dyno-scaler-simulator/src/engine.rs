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

impl Strategy {
    /// `policy` named `name`, deciding every `every` (`None`: only on events), with no hook, no event path and no
    /// dyno names: what a peer that polls from outside sees.
    pub fn polled(name: impl Into<String>, policy: PolicyConfig, every: Option<Duration>) -> Self {
        Self {
            name: name.into(),
            policy,
            check_interval: every,
            event_driven: false,
            wakes_on_enqueue: false,
            sees_dynos: false,
            end_hook_delay: None,
            initial: None,
            unguarded: false,
        }
    }
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
    /// `cost` over the [oracle](crate::oracle)'s on the same trace and shape, once compared with it
    /// ([`crate::with_oracle`]); `None` when the oracle costs nothing (no job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_vs_oracle: Option<f64>,
    /// (time s, the most jobs waiting, the most dynos up) over each `sample_every` ending at that time, for plots.
    #[serde(skip)]
    pub samples: Vec<(f64, u64, u32)>,
}

pub(crate) fn percentile(sorted: &[f32], p: f64) -> f64 {
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
    let mut run = Run {
        w: world(trace, strategy, cfg),
        trace,
        strategy,
        policy,
        state: PolicyState::default(),
        heap: BinaryHeap::with_capacity(trace.jobs.len() + 64),
        seq: 0,
        next_arrival: 0,
        samples: Vec::new(),
        peak: (0, 0),
        due: false,
        down_only_due: false,
        // The delay of the job-end hook, where heartbeats lag (else the hook decides at the job's end).
        delayed_end_hook: strategy.end_hook_delay.filter(|_| cfg.heartbeat.is_some()).map(|d| d.as_secs_f64()),
    };
    run.start();
    while let Some((at, kind)) = run.next_event() {
        if at > trace.span + 6.0 * 3600.0 {
            break;
        }
        if run.step(at, kind) {
            break;
        }
    }
    Ok(run.result(cfg))
}

/// The world at the start of the day: nothing waiting, no dyno.
fn world(trace: &Trace, strategy: &Strategy, cfg: &SimConfig) -> World {
    World {
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
        unguarded: strategy.unguarded,
        processed: 0,
        last_enqueue: None,
        reading: dyno_scaler_core::Snapshot::default(),
    }
}

/// One simulation in progress: the world, the strategy's policy and history, and the events to come.
struct Run<'t> {
    w: World,
    trace: &'t Trace,
    strategy: &'t Strategy,
    policy: Policy,
    state: PolicyState,
    heap: BinaryHeap<Event>,
    seq: u64,
    /// Arrivals are read from the trace in order rather than all pushed at once.
    next_arrival: usize,
    samples: Vec<(f64, u64, u32)>,
    /// The most jobs waiting and dynos up since the last sample.
    peak: (u64, u32),
    /// A decision due at this instant (a check or a hook), taken after every event of the instant.
    due: bool,
    /// Only a delayed end hook is due: its decision may only scale down.
    down_only_due: bool,
    delayed_end_hook: Option<f64>,
}

impl Run<'_> {
    fn push(&mut self, at: f64, kind: Kind) {
        self.seq += 1;
        self.heap.push(Event { at, seq: self.seq, kind });
    }

    /// The initial quantity, already running, and the first check and sample.
    fn start(&mut self) {
        let initial = self.strategy.initial.unwrap_or(self.strategy.policy.min_workers);
        if initial > 0 {
            let w = &mut self.w;
            w.set_quantity(initial);
            // Already running when the day starts.
            for d in &mut w.dynos {
                d.ready_at = 0.0;
            }
            w.new_events.clear();
            w.api_calls = 0;
            w.scale_events = 0;
        }
        if let Some(interval) = self.strategy.check_interval {
            self.push(interval.as_secs_f64().min(1.0), Kind::Check);
        }
        self.push(0.0, Kind::Sample);
    }

    /// The next event: the next arrival of the trace or the earliest scheduled event, whichever comes first.
    fn next_event(&mut self) -> Option<(f64, Kind)> {
        let arrival_at = self.trace.jobs.get(self.next_arrival).map(|j| j.arrived_at);
        let heap_at = self.heap.peek().map(|e| e.at);
        match (arrival_at, heap_at) {
            (Some(a), Some(h)) if a <= h => self.arrival(a),
            (Some(a), None) => self.arrival(a),
            (_, Some(_)) => self.heap.pop().map(|e| (e.at, e.kind)),
            (None, None) => None,
        }
    }

    fn arrival(&mut self, at: f64) -> Option<(f64, Kind)> {
        self.next_arrival += 1;
        Some((at, Kind::Arrival(self.next_arrival - 1)))
    }

    /// Applies the event `kind` at `at`, decides once the instant's events are all in, and schedules what follows.
    /// Returns whether the simulation is over.
    fn step(&mut self, at: f64, kind: Kind) -> bool {
        let (hook, check, end_hook) = self.apply(at, kind);
        let (trace, strategy) = (self.trace, self.strategy);
        let w = &self.w;
        let idle_after_day =
            at >= trace.span && self.next_arrival >= trace.jobs.len() && w.waiting.is_empty() && w.running() == 0;
        if let Kind::Sample = kind
            && !idle_after_day
        {
            let every = w.cfg.sample_every.as_secs_f64().max(1.0);
            self.push(at + every, Kind::Sample);
        }
        if check
            && let Some(interval) = strategy.check_interval
            && !(idle_after_day && self.w.quantity <= strategy.policy.min_workers)
        {
            self.push(at + interval.as_secs_f64(), Kind::Check);
        }
        // Coalesce: decide once per instant, after every event at that instant.
        let next_same_instant = trace.jobs.get(self.next_arrival).is_some_and(|j| j.arrived_at <= at)
            || self.heap.peek().is_some_and(|e| e.at <= at);
        self.due |= check || hook;
        self.down_only_due |= end_hook;
        if (self.due || self.down_only_due) && !next_same_instant {
            // A decision due for any other reason applies whichever way it goes; the end hook's only downwards.
            self.w.decide(&self.policy, &mut self.state, !self.due);
            (self.due, self.down_only_due) = (false, false);
            self.w.dispatch();
        }
        for (t, k) in std::mem::take(&mut self.w.new_events) {
            self.push(t, k);
        }
        self.peak = (self.peak.0.max(self.w.waiting.len() as u64), self.peak.1.max(self.w.dynos.len() as u32));
        // Nothing left to do except dynos kept at min: they are billed to the end of the day.
        idle_after_day
            && (strategy.check_interval.is_none() || self.w.quantity <= strategy.policy.min_workers)
            && self.heap.iter().all(|e| matches!(e.kind, Kind::Check | Kind::Sample | Kind::DynoReady | Kind::Beat(_)))
    }

    /// The event itself; says whether it calls for a decision: (an enqueue hook, a check, a job-end hook).
    fn apply(&mut self, at: f64, kind: Kind) -> (bool, bool, bool) {
        let strategy = self.strategy;
        let (mut hook, mut check, mut end_hook) = (false, false, false);
        self.w.now = at;
        match kind {
            Kind::Arrival(i) => {
                let j = &self.trace.jobs[i];
                self.w.waiting.push_back(Waiting { job: i, arrived: j.arrived_at, duration: j.duration });
                self.w.last_enqueue = Some(at);
                hook = strategy.event_driven || strategy.wakes_on_enqueue;
            }
            Kind::Complete { dyno, token } => {
                self.w.complete(dyno, token);
                match self.delayed_end_hook {
                    Some(delay) if strategy.event_driven => self.push(at + delay, Kind::EndHook),
                    _ => end_hook = strategy.event_driven,
                }
            }
            Kind::EndHook => {
                // The hook's sleep is over: it scales down unless an enqueue came within the sleep.
                let delay = self.delayed_end_hook.unwrap_or(0.0);
                end_hook = !self.w.last_enqueue.is_some_and(|e| at - e < delay);
            }
            Kind::DynoReady => {}
            Kind::Check => check = true,
            Kind::Beat(id) => self.w.beat(id),
            Kind::Sample => {
                let now = (self.w.waiting.len() as u64, self.w.dynos.len() as u32);
                self.samples.push((at, self.peak.0.max(now.0), self.peak.1.max(now.1)));
                self.peak = now;
            }
        }
        self.w.dispatch();
        (hook, check, end_hook)
    }

    /// What it cost and how long jobs waited; dynos still up are billed to the end of the day.
    fn result(mut self, cfg: &SimConfig) -> SimResult {
        let w = &mut self.w;
        let end = w.now.max(self.trace.span);
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
        SimResult {
            strategy: self.strategy.name.clone(),
            dyno_hours,
            cost: dyno_hours * cfg.price_per_dyno_hour,
            jobs: self.trace.jobs.len() as u64,
            wait_p50: percentile(&waits, 0.50),
            wait_p95: percentile(&waits, 0.95),
            wait_p99: percentile(&waits, 0.99),
            wait_max: waits.last().map_or(0.0, |v| f64::from(*v)),
            interrupted: w.interrupted,
            api_calls: w.api_calls,
            scale_events: w.scale_events,
            unfinished,
            cost_vs_oracle: None,
            samples: self.samples,
        }
    }
}

/// The simulated wall-clock start, for plots.
pub fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EPOCH_OFFSET)
}
