//! The simulated world: waiting jobs, dynos with their worker slots, what the platform bills, and the snapshot
//! a real source would give of it.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use dyno_scaler_core::cedar;
use dyno_scaler_core::drain;
use dyno_scaler_core::{Policy, PolicyInput, PolicyState, QueueStats, Snapshot, WorkerInfo};

use crate::engine::{SimConfig, epoch};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Running {
    pub(crate) token: u64,
    pub(crate) job: usize,
    pub(crate) arrived: f64,
    pub(crate) duration: f64,
    pub(crate) end: f64,
}

#[derive(Debug)]
pub(crate) struct Dyno {
    pub(crate) id: u64,
    pub(crate) number: u32,
    pub(crate) created: f64,
    pub(crate) ready_at: f64,
    pub(crate) slots: Vec<Option<Running>>,
    /// How many of `slots` run a job.
    pub(crate) busy_slots: u32,
    /// Told to quiet: it takes no job after its next heartbeat.
    pub(crate) quiet_requested: bool,
    /// Takes no new job.
    pub(crate) quiet: bool,
    /// What its last heartbeat published: (time, busy, quiet); `None` before the first.
    pub(crate) published: Option<(f64, u32, bool)>,
    /// Jobs finished since its last heartbeat: Sidekiq adds them to `stat:processed` at the beat.
    pub(crate) unflushed: u64,
    /// Its process's identity in the worker records, and its dyno's name (`worker.N`), made once.
    identity: String,
    name: String,
}

impl Dyno {
    fn busy(&self) -> u32 {
        self.busy_slots
    }

    fn free(&self) -> usize {
        self.slots.len() - self.busy_slots as usize
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting {
    pub(crate) job: usize,
    pub(crate) arrived: f64,
    pub(crate) duration: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Complete {
        dyno: u64,
        token: u64,
    },
    DynoReady,
    Arrival(usize),
    Check,
    Sample,
    /// A process's heartbeat: it publishes `busy` and `quiet`, and reads a quiet signal.
    Beat(u64),
    /// A delayed job-end hook wakes ([`crate::Strategy::end_hook_delay`]).
    EndHook,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) at: f64,
    pub(crate) seq: u64,
    pub(crate) kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.seq == o.seq
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        // Earliest first in a max-heap.
        o.at.total_cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

#[derive(Debug)]
pub(crate) struct World {
    pub(crate) now: f64,
    pub(crate) cfg: SimConfig,
    pub(crate) sees_dynos: bool,
    pub(crate) waiting: VecDeque<Waiting>,
    pub(crate) dynos: Vec<Dyno>,
    pub(crate) draining: HashSet<u64>,
    pub(crate) quantity: u32,
    pub(crate) next_id: u64,
    pub(crate) new_events: Vec<(f64, Kind)>,
    pub(crate) waits: Vec<f32>,
    pub(crate) interrupted: u64,
    pub(crate) dyno_seconds: f64,
    pub(crate) api_calls: u64,
    pub(crate) scale_events: u64,
    pub(crate) rng: fastrand::Rng,
    /// The quiet-then-drain in progress.
    pub(crate) drain: Option<dyno_scaler_core::drain::Drain>,
    /// The strategy trusts heartbeats as they come (no two-beat rule, no quiet-then-drain): the "without the
    /// guard" case.
    pub(crate) unguarded: bool,
    /// The completion counter as the source reads it (`stat:processed`, flushed at heartbeats).
    pub(crate) processed: u64,
    /// When the last job was enqueued.
    pub(crate) last_enqueue: Option<f64>,
    /// The last reading, kept for its allocations ([`World::read_into`]).
    pub(crate) reading: Snapshot,
}

impl World {
    pub(crate) fn running(&self) -> u64 {
        let on_dynos: u64 = self.dynos.iter().map(|d| u64::from(d.busy_slots)).sum();
        on_dynos + self.draining.len() as u64
    }

    pub(crate) fn set_quantity(&mut self, q: u32) {
        self.api_calls += 1;
        if q == self.quantity {
            return;
        }
        self.scale_events += 1;
        let now = self.now;
        let live = self.dynos.len() as u32;
        if q > live {
            for _ in live..q {
                let number = (1..).find(|n| !self.dynos.iter().any(|d| d.number == *n)).expect("free number");
                self.next_id += 1;
                let ready_at = now + self.cfg.boot_time.as_secs_f64();
                self.dynos.push(Dyno {
                    id: self.next_id,
                    number,
                    created: now,
                    ready_at,
                    slots: vec![None; self.cfg.concurrency as usize],
                    busy_slots: 0,
                    quiet_requested: false,
                    quiet: false,
                    published: None,
                    unflushed: 0,
                    identity: format!("worker.{number}:4:000000000000"),
                    name: format!("worker.{number}"),
                });
                if self.cfg.heartbeat.is_some() {
                    // The first beat comes as the process starts, before it fetches a job (Sidekiq 6.4's capture:
                    // `started_at` 1795730983.3376, first `beat` 1795730983.3406), then every period.
                    self.new_events.push((ready_at, Kind::Beat(self.next_id)));
                }
                self.new_events.push((ready_at, Kind::DynoReady));
            }
        } else {
            // Heroku stops the highest-numbered dynos first.
            self.dynos.sort_by_key(|d| d.number);
            let grace = self.cfg.shutdown_grace.as_secs_f64();
            let stopped: Vec<Dyno> = self.dynos.drain(q as usize..).collect();
            for d in stopped {
                // A stopping process flushes its counters.
                self.processed += d.unflushed;
                let mut bill_end = now;
                for job in d.slots.iter().flatten() {
                    if job.end <= now + grace {
                        self.draining.insert(job.token);
                        bill_end = bill_end.max(job.end);
                    } else {
                        self.interrupted += 1;
                        bill_end = bill_end.max(now + grace);
                        self.waiting.push_front(Waiting { job: job.job, arrived: job.arrived, duration: job.duration });
                    }
                }
                self.dyno_seconds += bill_end - d.created;
            }
        }
        self.quantity = q;
    }

    pub(crate) fn dispatch(&mut self) {
        let now = self.now;
        while !self.waiting.is_empty() {
            // A free slot picked at random among those of ready dynos that take jobs (in dyno order, then slot
            // order), from the counts each dyno keeps, so a job costs a pass over the dynos and nothing allocated.
            let takes = |d: &Dyno| d.ready_at <= now && !d.quiet;
            let free: usize = self.dynos.iter().filter(|d| takes(d)).map(Dyno::free).sum();
            if free == 0 {
                return;
            }
            let mut nth = self.rng.usize(..free);
            let mut at = None;
            for (i, d) in self.dynos.iter().enumerate().filter(|(_, d)| takes(d)) {
                if nth < d.free() {
                    let j = d.slots.iter().enumerate().filter(|(_, s)| s.is_none()).nth(nth).map(|(j, _)| j);
                    at = j.map(|j| (i, j));
                    break;
                }
                nth -= d.free();
            }
            let (i, j) = at.expect("a free slot was counted");
            let job = self.waiting.pop_front().expect("non-empty");
            // The wait of a job is from its arrival to the start of the run that completes it (a job
            // interrupted by a scale-down waits again, from its original arrival).
            self.waits[job.job] = (now - job.arrived) as f32;
            self.next_id += 1;
            let end = now + job.duration;
            let run = Running { token: self.next_id, job: job.job, arrived: job.arrived, duration: job.duration, end };
            self.dynos[i].slots[j] = Some(run);
            self.dynos[i].busy_slots += 1;
            self.new_events.push((end, Kind::Complete { dyno: self.dynos[i].id, token: run.token }));
        }
    }

    /// A heartbeat of the dyno `id`: it reads a quiet signal and publishes what it runs.
    pub(crate) fn beat(&mut self, id: u64) {
        let now = self.now;
        let Some(period) = self.cfg.heartbeat else { return };
        if let Some(d) = self.dynos.iter_mut().find(|d| d.id == id) {
            d.quiet |= d.quiet_requested;
            d.published = Some((now, d.busy(), d.quiet));
            self.processed += std::mem::take(&mut d.unflushed);
            self.new_events.push((now + period.as_secs_f64(), Kind::Beat(id)));
        }
    }

    /// Running jobs as the source reports them: with heartbeats, as the dynos' last beats published them.
    fn reported_running(&self) -> u64 {
        if self.cfg.heartbeat.is_none() {
            return self.running();
        }
        let published: u64 = self.dynos.iter().filter_map(|d| d.published).map(|p| u64::from(p.1)).sum();
        published + self.draining.len() as u64
    }

    /// What a real source would report now: the queue, and the dynos' workers when the strategy sees them. Read
    /// into `snap`, the last reading, whose strings and lists are reused (a decision allocates nothing for it).
    fn read_into(&self, snap: &mut Snapshot) {
        let oldest = self.waiting.iter().map(|j| j.arrived).fold(f64::INFINITY, f64::min);
        let stats = {
            let mut q = QueueStats::new(self.waiting.len() as u64, self.reported_running(), 0);
            q.oldest_ready_age = oldest.is_finite().then(|| Duration::from_secs_f64((self.now - oldest).max(0.0)));
            q
        };
        match snap.queues.get_mut("jobs") {
            Some(q) => *q = stats,
            None => snap.add("jobs", stats),
        }
        snap.processed = Some(self.processed);
        if !self.sees_dynos {
            return;
        }
        let epoch = epoch();
        let workers = snap.workers.get_or_insert_with(Vec::new);
        let mut n = 0;
        for d in &self.dynos {
            let (busy, quiet, beat) = match (self.cfg.heartbeat, d.published) {
                (None, _) => (d.busy(), d.quiet, None),
                // A booting process has no record yet.
                (Some(_), None) => continue,
                (Some(_), Some((t, busy, quiet))) => {
                    let beat = (!self.unguarded).then(|| epoch + Duration::from_secs_f64(t));
                    (busy, quiet, beat)
                }
            };
            match workers.get_mut(n) {
                Some(w) => {
                    w.identity.clone_from(&d.identity);
                    w.dyno.get_or_insert_with(String::new).clone_from(&d.name);
                    (w.busy, w.quiet, w.beat) = (busy, quiet, beat);
                }
                None => workers.push(
                    WorkerInfo::new(d.identity.clone(), Some(d.name.clone()), busy).with_quiet(quiet).with_beat(beat),
                ),
            }
            n += 1;
        }
        workers.truncate(n);
        // Every process reports its concurrency (Sidekiq's `concurrency` in its record).
        snap.threads = Some(n as u64 * u64::from(self.cfg.concurrency));
    }

    /// One decision of `policy`, carrying its history in `state`; the platform is called only on a change.
    /// `down_only`: a decision to scale up is not applied (a hook that can only call `scale_down`).
    pub(crate) fn decide(&mut self, policy: &Policy, state: &mut PolicyState, down_only: bool) {
        let mut snapshot = std::mem::take(&mut self.reading);
        self.read_into(&mut snapshot);
        // The platform's rule, Heroku Cedar's: the highest number stops first.
        let placements = cedar::placements("worker", self.quantity, &snapshot);
        let input = PolicyInput {
            process_type: "worker",
            snapshot: &snapshot,
            current: self.quantity,
            now: epoch() + Duration::from_secs_f64(self.now),
            platform_limit: None,
            placements: Some(&placements),
            // What the Sidekiq source states (its 7.0+ default), not the simulated concurrency: before the first
            // worker's record is read, the real source knows no more.
            source_threads: Some(5),
        };
        // The reason stays in typed parts: nothing here shows it.
        let verdict = policy.advance(&input, state);
        let (from, mut to) = (verdict.from, verdict.to);
        // Quiet-then-drain, as the scaler does it, with Heroku Cedar's victims.
        if self.sees_dynos && policy.config().quiet_victims && !self.unguarded {
            let victims = Some(cedar::victims("worker", from, to));
            let out =
                drain::step(&mut self.drain, &snapshot, (from, to), victims, input.now, policy.config().max_drain);
            for d in self.dynos.iter_mut().filter(|d| out.quiet.contains(&d.identity)) {
                d.quiet_requested = true;
            }
            if let Some((set, _)) = out.set {
                to = set;
            }
        }
        self.reading = snapshot;
        if to < from || (to > from && !down_only) {
            self.set_quantity(to);
        }
    }

    pub(crate) fn complete(&mut self, dyno: u64, token: u64) {
        let counted_at_beat = self.cfg.heartbeat.is_some();
        if let Some(d) = self.dynos.iter_mut().find(|d| d.id == dyno) {
            for s in &mut d.slots {
                if s.is_some_and(|r| r.token == token) {
                    *s = None;
                    d.busy_slots -= 1;
                    if counted_at_beat {
                        d.unflushed += 1;
                    } else {
                        self.processed += 1;
                    }
                }
            }
        } else if self.draining.remove(&token) {
            self.processed += 1;
        }
    }
}
