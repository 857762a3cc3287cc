//! What a web process type's requests did: per-second aggregates of their queue time (from the router's
//! `X-Request-Start` to a thread of the app taking them) and their time in the app, merged over a window, as the
//! `request_queue` source reads them from what the gem's `DynoScaler::QueueTime` middleware writes.
//!
//! A bucket's histogram has fixed bounds ([`BOUNDS_MS`]); a percentile is read from it by linear interpolation
//! inside its bucket, never above the largest queue time seen.
//!
//! ```
//! use dyno_scaler_core::requests::{Bucket, RequestStats};
//! let mut b = Bucket::default();
//! for ms in [3.0, 4.0, 30.0, 300.0] {
//!     b.add(ms, 20.0);
//! }
//! let r = RequestStats::over(&[b], 2.0, 0.95);
//! assert_eq!((r.requests, r.rate), (4, 2.0));
//! assert!((r.service_secs - 0.020).abs() < 1e-9);
//! assert!(r.queue_pct_secs > 0.25 && r.queue_pct_secs <= 0.300, "{}", r.queue_pct_secs);
//! ```

use serde::Serialize;

/// Histogram bucket upper bounds, milliseconds; a last bucket holds what is slower. The middleware's
/// `DynoScaler::QueueTime::BOUNDS_MS` are the same.
pub const BOUNDS_MS: [f64; 11] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0];

/// One second's (or one window's) aggregates, as the middleware writes them (times in microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    /// Requests finished.
    pub requests: u64,
    /// Of them, those with a queue time measured.
    pub measured: u64,
    /// Their queue times added, µs.
    pub queue_sum_us: u64,
    /// The longest queue time, µs.
    pub queue_max_us: u64,
    /// Time in the app, all requests, µs.
    pub app_sum_us: u64,
    /// `X-Request-Start` values dropped as negative or absurd (a skewed clock, another unit).
    pub dropped: u64,
    /// Queue times per [`BOUNDS_MS`] bucket, the last one the slowest.
    pub histogram: [u64; 12],
}

impl Bucket {
    /// Adds one request that waited `queue_ms` and spent `app_ms` in the app (what the middleware does, for
    /// tests and the simulator).
    pub fn add(&mut self, queue_ms: f64, app_ms: f64) {
        let us = (queue_ms * 1000.0).round().max(0.0) as u64;
        self.requests += 1;
        self.measured += 1;
        self.queue_sum_us += us;
        self.queue_max_us = self.queue_max_us.max(us);
        self.app_sum_us += (app_ms * 1000.0).round().max(0.0) as u64;
        let i = BOUNDS_MS.iter().position(|b| queue_ms <= *b).unwrap_or(BOUNDS_MS.len());
        self.histogram[i] += 1;
    }

    /// Adds another bucket into this one.
    pub fn merge(&mut self, o: &Bucket) {
        self.requests += o.requests;
        self.measured += o.measured;
        self.queue_sum_us += o.queue_sum_us;
        self.queue_max_us = self.queue_max_us.max(o.queue_max_us);
        self.app_sum_us += o.app_sum_us;
        self.dropped += o.dropped;
        for (a, b) in self.histogram.iter_mut().zip(o.histogram) {
            *a += b;
        }
    }

    /// The queue time under which `p` (0 to 1) of the measured requests waited, seconds (0 with none measured).
    pub fn percentile_secs(&self, p: f64) -> f64 {
        if self.measured == 0 {
            return 0.0;
        }
        let max_ms = self.queue_max_us as f64 / 1000.0;
        let want = (p.clamp(0.0, 1.0) * self.measured as f64).max(1.0);
        let mut seen = 0.0;
        for (i, n) in self.histogram.iter().enumerate() {
            let n = *n as f64;
            if n > 0.0 && seen + n >= want {
                let lower = if i == 0 { 0.0 } else { BOUNDS_MS[i - 1] };
                let upper = BOUNDS_MS.get(i).copied().unwrap_or(max_ms).min(max_ms).max(lower);
                return (lower + (upper - lower) * (want - seen) / n) / 1000.0;
            }
            seen += n;
        }
        max_ms / 1000.0
    }
}

/// The requests of a window, as the web rule reads them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RequestStats {
    /// The window, seconds.
    pub window_secs: f64,
    /// Requests finished in it.
    pub requests: u64,
    /// Of them, those with a queue time.
    pub measured: u64,
    /// Requests a second.
    pub rate: f64,
    /// Mean time in the app, seconds.
    pub service_secs: f64,
    /// Mean queue time, seconds.
    pub queue_mean_secs: f64,
    /// The percentile `queue_pct_secs` is (0.95 by default).
    pub percentile: f64,
    /// The configured percentile of queue time (p95 by default), seconds.
    pub queue_pct_secs: f64,
    /// The longest queue time, seconds.
    pub queue_max_secs: f64,
    /// Headers dropped as negative or absurd.
    pub dropped: u64,
}

impl RequestStats {
    /// The stats of `buckets` merged, over a window of `window_secs`, with percentile `p`.
    pub fn over(buckets: &[Bucket], window_secs: f64, p: f64) -> Self {
        let mut all = Bucket::default();
        for b in buckets {
            all.merge(b);
        }
        let per = |sum: u64, n: u64| if n == 0 { 0.0 } else { sum as f64 / n as f64 / 1e6 };
        RequestStats {
            window_secs,
            requests: all.requests,
            measured: all.measured,
            rate: if window_secs > 0.0 { all.requests as f64 / window_secs } else { 0.0 },
            service_secs: per(all.app_sum_us, all.requests),
            queue_mean_secs: per(all.queue_sum_us, all.measured),
            percentile: p,
            queue_pct_secs: all.percentile_secs(p),
            queue_max_secs: all.queue_max_us as f64 / 1e6,
            dropped: all.dropped,
        }
    }

    /// Threads the load keeps busy on average (Little's law: the rate times the time in the app).
    pub fn busy_threads(&self) -> f64 {
        self.rate * self.service_secs
    }

    /// Requests waiting on average (Little's law: the rate times the mean queue time).
    pub fn waiting(&self) -> f64 {
        self.rate * self.queue_mean_secs
    }

    /// The reading a web source gives: these stats for the web rule, and a `requests` pseudo-queue for the logs,
    /// `status` and the dashboard (`ready` = requests waiting, `running` = threads busy, both by Little's law;
    /// latency = the percentile of queue time, when any was measured).
    pub fn snapshot(self) -> crate::Snapshot {
        let mut q = crate::QueueStats::new(self.waiting().round() as u64, self.busy_threads().round() as u64, 0);
        if self.measured > 0 {
            q = q.with_oldest(std::time::Duration::from_secs_f64(self.queue_pct_secs));
        }
        let mut snap = crate::Snapshot::default();
        snap.add("requests", q);
        snap.requests = Some(self);
        snap
    }
}
