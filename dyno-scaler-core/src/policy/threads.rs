//! How many jobs one worker runs at once, the figure the adaptive policy divides its threads by, and where it
//! comes from: a reading of the job system's own records first, then the operator's setting, then the job
//! system's default as its source states it, then [`FALLBACK`].

/// Threads per worker when nothing says: Sidekiq 7's default `concurrency`.
pub const FALLBACK: u32 = 5;

/// Where the threads-per-worker figure came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThreadsOrigin {
    /// Read from the live workers' own records (Sidekiq's `concurrency`, Solid Queue's `thread_pool_size`, ...).
    Reading,
    /// The operator's setting (`worker_threads`).
    Setting,
    /// The job system's own default, as its source states it ([`crate::Capabilities::worker_threads`]).
    JobSystem,
    /// Nothing said: [`FALLBACK`].
    Fallback,
}

/// Threads per worker and where the figure came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerThreads {
    /// Jobs one worker (dyno) runs at once.
    pub per_worker: f64,
    /// Where that came from.
    pub origin: ThreadsOrigin,
}

impl WorkerThreads {
    /// The first that says, in order: the reading (`read`, threads per worker host), the setting, the job
    /// system's default.
    ///
    /// ```
    /// use dyno_scaler_core::policy::threads::{ThreadsOrigin, WorkerThreads};
    /// let dj = WorkerThreads::resolve(None, None, Some(1));
    /// assert_eq!((dj.per_worker, dj.origin), (1.0, ThreadsOrigin::JobSystem));
    /// assert_eq!(WorkerThreads::resolve(None, Some(4), Some(1)).origin, ThreadsOrigin::Setting);
    /// assert_eq!(WorkerThreads::resolve(Some(10.0), Some(4), Some(1)).per_worker, 10.0);
    /// assert_eq!(WorkerThreads::resolve(None, None, None).per_worker, 5.0);
    /// ```
    pub fn resolve(read: Option<f64>, setting: Option<u32>, job_system: Option<u32>) -> Self {
        let (per_worker, origin) = match (read.filter(|t| *t > 0.0), setting, job_system) {
            (Some(t), _, _) => (t, ThreadsOrigin::Reading),
            (None, Some(s), _) => (f64::from(s), ThreadsOrigin::Setting),
            (None, None, Some(j)) => (f64::from(j), ThreadsOrigin::JobSystem),
            (None, None, None) => (f64::from(FALLBACK), ThreadsOrigin::Fallback),
        };
        Self { per_worker: per_worker.max(1.0), origin }
    }
}

impl WorkerThreads {
    /// The figure and where it came from, in words, for the source named `source`.
    ///
    /// ```
    /// use dyno_scaler_core::policy::threads::WorkerThreads;
    /// let dj = WorkerThreads::resolve(None, None, Some(1));
    /// assert_eq!(dj.describe("delayed_job"), "1 per worker: delayed_job's own default (no live worker records it)");
    /// ```
    pub fn describe(&self, source: &str) -> String {
        let per = self.per_worker;
        match self.origin {
            ThreadsOrigin::Reading => format!("{per:.1} per worker, read from the live workers' own records"),
            ThreadsOrigin::Setting => format!("{per:.0} per worker, from the worker_threads setting"),
            ThreadsOrigin::JobSystem => {
                format!("{per:.0} per worker: {source}'s own default (no live worker records it)")
            }
            ThreadsOrigin::Fallback => format!("{per:.0} per worker: dyno-scaler's default ({source} cannot say)"),
        }
    }
}
