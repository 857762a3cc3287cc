//! Job traces: built-in generators with a fixed seed, and a CSV loader for users' own history.

use std::time::Duration;

use dyno_scaler_core::timefmt::parse_rfc3339;

/// One job: when it arrived (seconds from the start of the trace), its queue and how long it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Seconds from the start of the trace.
    pub arrived_at: f64,
    /// Queue name.
    pub queue: String,
    /// Run time in seconds.
    pub duration: f64,
}

/// A job trace, sorted by arrival.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Name shown in reports.
    pub name: String,
    /// The jobs, sorted by arrival.
    pub jobs: Vec<Job>,
    /// Length of the observed period in seconds (at least the last arrival).
    pub span: f64,
}

/// A trace that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: line {line}: {message}")]
pub struct TraceError {
    /// The file.
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// An exponentially distributed number with the given mean.
fn exp(rng: &mut fastrand::Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.f64()).ln()
}

const DAY: f64 = 86_400.0;

/// Names of the built-in traces.
pub const BUILT_IN: [&str; 4] = ["steady", "nightly-batch", "bursty-web", "long-jobs"];

/// A built-in trace by name (see [`BUILT_IN`]), generated with `seed`.
pub fn built_in(name: &str, seed: u64) -> Option<Trace> {
    Some(match name {
        "steady" => steady(seed, 0.2, DAY, 3.0),
        "nightly-batch" => nightly_batch(seed),
        "bursty-web" => bursty_web(seed),
        "long-jobs" => long_jobs(seed),
        _ => return None,
    })
}

fn finish(name: &str, mut jobs: Vec<Job>, span: f64) -> Trace {
    jobs.sort_by(|a, b| a.arrived_at.total_cmp(&b.arrived_at));
    let span = jobs.last().map_or(span, |j| j.arrived_at.max(span));
    Trace { name: name.to_owned(), jobs, span }
}

/// Steady Poisson load: `rate` jobs per second for `span` seconds, exponential run times of mean `mean_run`.
pub fn steady(seed: u64, rate: f64, span: f64, mean_run: f64) -> Trace {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut t = 0.0;
    let mut jobs = Vec::with_capacity((rate * span * 1.05) as usize + 16);
    loop {
        t += exp(&mut rng, 1.0 / rate);
        if t >= span {
            break;
        }
        jobs.push(Job { arrived_at: t, queue: "default".into(), duration: exp(&mut rng, mean_run).max(0.05) });
    }
    finish("steady", jobs, span)
}

/// A quiet day (a job every few minutes) with a nightly batch: 5,000 jobs enqueued within a minute at 02:00.
pub fn nightly_batch(seed: u64) -> Trace {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut jobs = steady(seed ^ 0xBA7C, 1.0 / 300.0, DAY, 2.0).jobs;
    for _ in 0..5_000 {
        jobs.push(Job {
            arrived_at: 2.0 * 3600.0 + rng.f64() * 60.0,
            queue: "batch".into(),
            duration: 1.0 + rng.f64() * 4.0,
        });
    }
    finish("nightly-batch", jobs, DAY)
}

/// Web-driven load: quiet nights, busy days, and a two-minute burst every 30 minutes during the day.
pub fn bursty_web(seed: u64) -> Trace {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut jobs = Vec::new();
    let mut t = 0.0;
    while t < DAY {
        let hour = t / 3600.0;
        let base = if (8.0..20.0).contains(&hour) { 0.5 } else { 0.02 };
        let burst = (8.0..20.0).contains(&hour) && (t % 1800.0) < 120.0;
        let rate = if burst { base + 4.0 } else { base };
        t += exp(&mut rng, 1.0 / rate);
        if t < DAY {
            jobs.push(Job { arrived_at: t, queue: "default".into(), duration: exp(&mut rng, 1.5).max(0.05) });
        }
    }
    finish("bursty-web", jobs, DAY)
}

/// A day of short jobs mixed with 10-minute jobs (about one an hour), the case that punishes scale-down
/// that kills busy workers.
pub fn long_jobs(seed: u64) -> Trace {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut jobs = steady(seed ^ 0x10E6, 0.05, DAY, 3.0).jobs;
    let mut t = 0.0;
    loop {
        t += exp(&mut rng, 3600.0);
        if t >= DAY {
            break;
        }
        jobs.push(Job { arrived_at: t, queue: "reports".into(), duration: 600.0 });
    }
    finish("long-jobs", jobs, DAY)
}

/// Loads `arrived_at,queue,duration_ms` lines (a header line is allowed). `arrived_at` is seconds (relative or
/// epoch) or an RFC 3339 time; the trace starts at the earliest arrival.
pub fn load_csv(path: &str, text: &str) -> Result<Trace, TraceError> {
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| TraceError { path: path.to_owned(), line: i + 1, message };
        if jobs.is_empty() && line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            header(line).map_err(bad)?;
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [at, queue, dur] = cols.as_slice() else {
            return Err(bad(format!("expected 3 columns arrived_at,queue,duration_ms, found {}", cols.len())));
        };
        let at = at
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .or_else(|| parse_rfc3339(at))
            .ok_or_else(|| bad(format!("arrived_at {at:?} is neither seconds nor an RFC 3339 time")))?;
        let dur = dur
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| bad(format!("duration_ms {dur:?} is not a non-negative number")))?;
        if queue.is_empty() {
            return Err(bad("empty queue name".into()));
        }
        jobs.push(Job { arrived_at: at, queue: (*queue).to_owned(), duration: dur / 1000.0 });
    }
    let start = jobs.iter().map(|j| j.arrived_at).fold(f64::INFINITY, f64::min);
    for j in &mut jobs {
        j.arrived_at -= start;
    }
    let name = std::path::Path::new(path).file_stem().map_or(path.to_owned(), |s| s.to_string_lossy().into_owned());
    Ok(finish(&name, jobs, 0.0))
}

/// The header a trace may start with.
pub const HEADER: &str = "arrived_at,queue,duration_ms";

/// Checks a header line: exactly [`HEADER`] (spaces around the names allowed), so that a duration in another unit
/// is never read as milliseconds.
fn header(line: &str) -> Result<(), String> {
    let names: Vec<String> = line.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    if names.join(",") == HEADER {
        return Ok(());
    }
    let unit = match names.get(2).map(String::as_str) {
        Some("duration") => "; the duration's unit is not said: name the column duration_ms, in milliseconds",
        Some(d) if d.starts_with("duration_") => "; durations are read in milliseconds only: duration_ms",
        _ => "",
    };
    Err(format!("the header {line:?} is not {HEADER:?}{unit}"))
}

impl Trace {
    /// Total run time of all jobs.
    pub fn work(&self) -> Duration {
        Duration::from_secs_f64(self.jobs.iter().map(|j| j.duration).sum())
    }
}
