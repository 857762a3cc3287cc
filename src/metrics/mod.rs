//! What the scalers did, as Prometheus metrics (`/metrics`, [`serve`]) and as l2met log lines for Heroku
//! ([`Metrics::l2met`]).
//!
//! Names follow Prometheus' conventions: the `dyno_scaler_` prefix, base units (seconds), `_total` counters, and
//! labels of low cardinality only (process type, source, queue, state, direction, platform, status). Every figure
//! comes from the reports the scalers already produce, so `/metrics` says what `status --json` says.
//!
//! ```
//! use dyno_scaler::metrics::Metrics;
//! let m = Metrics::new();
//! let text = m.render();
//! assert!(text.contains("dyno_scaler_build_info") && text.ends_with("# EOF\n"));
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use dyno_scaler_core::{Direction, Gate, PlatformTelemetry, Report, ScalerError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

mod l2met;
mod serve;

pub use serve::{Served, serve};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessLabels {
    process_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    process_type: String,
    source: String,
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    process_type: String,
    source: String,
    queue: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScaleLabels {
    process_type: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    process_type: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    process_type: String,
    gate: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    platform: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

fn cycle_histogram() -> Histogram {
    // 1 ms to 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Per process type, what the last report left behind (to integrate worker-seconds, to drop vanished queues, for
/// the l2met lines and the health check).
#[derive(Debug, Default)]
struct Last {
    /// When the last successful cycle was observed.
    at: Option<Instant>,
    error: Option<String>,
    /// The last successful cycle's report.
    report: Option<Report>,
    /// Since the last l2met line: scale events, worker-seconds, failed readings.
    since: (u64, f64, u64),
}

/// The registry of dyno-scaler's metrics, fed with every cycle's result ([`Metrics::observe`]).
pub struct Metrics {
    registry: Registry,
    queue_jobs: Family<JobLabels, Gauge>,
    queue_latency: Family<QueueLabels, FloatGauge>,
    desired: Family<ProcessLabels, Gauge>,
    current: Family<ProcessLabels, Gauge>,
    draining: Family<ProcessLabels, Gauge>,
    acting: Family<ProcessLabels, Gauge>,
    paused: Family<ProcessLabels, Gauge>,
    held: Family<GateLabels, Gauge>,
    scale_events: Family<ScaleLabels, Counter>,
    source_errors: Family<SourceLabels, Counter>,
    platform_requests: Family<RequestLabels, Counter>,
    ratelimit: Gauge,
    cycle: Family<ProcessLabels, Histogram, fn() -> Histogram>,
    worker_seconds: Family<ProcessLabels, FloatCounter>,
    last: Mutex<BTreeMap<String, Last>>,
    started: Instant,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered and empty (build info set).
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("dyno_scaler");
        let m = Self {
            registry: Registry::default(),
            queue_jobs: Family::default(),
            queue_latency: Family::default(),
            desired: Family::default(),
            current: Family::default(),
            draining: Family::default(),
            acting: Family::default(),
            paused: Family::default(),
            held: Family::default(),
            scale_events: Family::default(),
            source_errors: Family::default(),
            platform_requests: Family::default(),
            ratelimit: Gauge::default(),
            cycle: Family::new_with_constructor(cycle_histogram as fn() -> Histogram),
            worker_seconds: Family::default(),
            last: Mutex::default(),
            started: Instant::now(),
        };
        r.register(
            "queue_jobs",
            "Jobs per queue by state: ready (runnable now, due scheduled included), running, scheduled (due later)",
            m.queue_jobs.clone(),
        );
        r.register_with_unit(
            "queue_latency",
            "Age of the oldest ready job per queue (0 when none)",
            Unit::Seconds,
            m.queue_latency.clone(),
        );
        r.register(
            "desired_workers",
            "Workers the policy wants (after the clamp, the lease and any pause)",
            m.desired.clone(),
        );
        r.register("current_workers", "Workers the platform runs now", m.current.clone());
        r.register(
            "draining_workers",
            "Victims of a scale-down waiting for their quieted processes to go idle",
            m.draining.clone(),
        );
        r.register(
            "acting",
            "1 when this instance acts for the process type (holds its lease), 0 when it follows",
            m.acting.clone(),
        );
        r.register("paused", "1 while the process type is paused", m.paused.clone());
        r.register(
            "held",
            "1 for the gate that held (or finished) the last decision: paused, following, refused, draining, ...",
            m.held.clone(),
        );
        r.register("scale_events", "Quantity changes applied, by direction", m.scale_events.clone());
        r.register("source_errors", "Cycles whose queue reading failed", m.source_errors.clone());
        r.register(
            "platform_requests",
            "Requests to the platform's API by HTTP status (error: no answer)",
            m.platform_requests.clone(),
        );
        r.register("heroku_ratelimit_remaining", "The Heroku API's RateLimit-Remaining last seen", m.ratelimit.clone());
        r.register_with_unit(
            "cycle_duration",
            "Time of one cycle: lease, reading, decision and platform call",
            Unit::Seconds,
            m.cycle.clone(),
        );
        r.register_with_unit(
            "worker",
            "Worker-seconds run (billed time: the current quantity integrated over time)",
            Unit::Seconds,
            m.worker_seconds.clone(),
        );
        let info = prometheus_client::metrics::info::Info::new(BuildLabels { version: env!("CARGO_PKG_VERSION") });
        r.register("build", "Build information", info);
        Self { registry: r, ..m }
    }

    /// Takes in one cycle's result.
    pub fn observe(&self, result: &Result<Report, ScalerError>) {
        match result {
            Ok(rep) => self.observe_report(rep),
            Err(ScalerError::Source { process_type, source }) => {
                let labels =
                    SourceLabels { process_type: process_type.clone(), source: source.source_name().to_owned() };
                self.source_errors.get_or_create(&labels).inc();
                self.note_error(process_type, result);
            }
            Err(e) => self.note_error(e.process_type(), result),
        }
    }

    fn note_error(&self, pt: &str, result: &Result<Report, ScalerError>) {
        let mut all = self.last.lock().expect("metrics lock");
        let last = all.entry(pt.to_owned()).or_default();
        last.error = result.as_ref().err().map(|e| e.to_string());
        last.since.2 += u64::from(matches!(result, Err(ScalerError::Source { .. })));
    }

    fn observe_report(&self, rep: &Report) {
        let pt = &rep.process_type;
        let p = ProcessLabels { process_type: pt.clone() };
        let d = &rep.decision;
        let mut all = self.last.lock().expect("metrics lock");
        let last = all.entry(pt.clone()).or_default();
        let now = Instant::now();
        if let (Some(at), Some(before)) = (last.at, &last.report) {
            let ws = f64::from(before.quantity_after()) * (now - at).as_secs_f64();
            self.worker_seconds.get_or_create(&p).inc_by(ws);
            last.since.1 += ws;
        }
        last.at = Some(now);
        last.error = None;
        for (name, q) in &rep.snapshot.queues {
            let ql = QueueLabels { process_type: pt.clone(), source: rep.source.clone(), queue: name.clone() };
            for (state, n) in [("ready", q.ready), ("running", q.running), ("scheduled", q.scheduled)] {
                let jl = JobLabels { process_type: pt.clone(), source: rep.source.clone(), queue: name.clone(), state };
                self.queue_jobs.get_or_create(&jl).set(n as i64);
            }
            self.queue_latency.get_or_create(&ql).set(q.oldest_ready_age.map_or(0.0, |a| a.as_secs_f64()));
        }
        // A queue the previous reading had and this one lacks leaves no stale series.
        let before = last.report.iter().flat_map(|r| r.snapshot.queues.keys());
        for gone in before.filter(|q| !rep.snapshot.queues.contains_key(*q)) {
            let ql = QueueLabels { process_type: pt.clone(), source: rep.source.clone(), queue: gone.clone() };
            self.queue_latency.remove(&ql);
            for state in ["ready", "running", "scheduled"] {
                let jl = JobLabels { process_type: pt.clone(), source: rep.source.clone(), queue: gone.clone(), state };
                self.queue_jobs.remove(&jl);
            }
        }
        self.desired.get_or_create(&p).set(i64::from(d.to));
        self.current.get_or_create(&p).set(i64::from(rep.quantity_after()));
        self.draining.get_or_create(&p).set(rep.draining.len() as i64);
        self.acting.get_or_create(&p).set(i64::from(rep.acting));
        self.paused.get_or_create(&p).set(i64::from(rep.paused.is_some()));
        // The gate that held the last decision is 1, the one before it 0 (a series per gate seen, none stale).
        let gate = |g: &Gate| GateLabels { process_type: pt.clone(), gate: g.kind() };
        if let Some(g) = last.report.as_ref().and_then(|r| r.decision.gate.as_ref()) {
            self.held.get_or_create(&gate(g)).set(0);
        }
        if let Some(g) = &d.gate {
            self.held.get_or_create(&gate(g)).set(1);
        }
        if rep.applied {
            let direction = match d.direction() {
                Direction::Up => "up",
                Direction::Down => "down",
                Direction::Hold => "hold",
            };
            self.scale_events.get_or_create(&ScaleLabels { process_type: pt.clone(), direction }).inc();
            last.since.0 += 1;
        }
        last.report = Some(rep.clone());
        self.cycle.get_or_create(&p).observe(rep.took.as_secs_f64());
    }

    /// Takes in what a platform's client has seen of its API (its counts are totals since it started).
    pub fn observe_platform(&self, platform: &str, t: &PlatformTelemetry) {
        for (status, n) in &t.requests {
            let c = self
                .platform_requests
                .get_or_create(&RequestLabels { platform: platform.to_owned(), status: status.clone() });
            let seen = c.get();
            if *n > seen {
                c.inc_by(n - seen);
            }
        }
        if let Some(r) = t.rate_limit_remaining {
            self.ratelimit.set(r as i64);
        }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus scrapes).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    /// `Ok` when every process type seen had a successful cycle within `stale` (or none was expected yet);
    /// otherwise what is wrong, per process type.
    pub fn health(&self, process_types: &[String], stale: std::time::Duration) -> Result<String, String> {
        let all = self.last.lock().expect("metrics lock");
        let mut problems = Vec::new();
        for pt in process_types {
            let last = all.get(pt);
            let since = last.and_then(|l| l.at).map_or(self.started.elapsed(), |t| t.elapsed());
            if since > stale {
                let why = last.and_then(|l| l.error.clone()).unwrap_or_else(|| "no cycle finished".into());
                problems.push(format!("{pt}: no successful cycle for {:.0}s: {why}", since.as_secs_f64()));
            }
        }
        if problems.is_empty() { Ok("ok\n".into()) } else { Err(problems.join("\n") + "\n") }
    }
}

#[cfg(test)]
mod tests;
