//! `Controller`: runs each process type's scaler on a loop of its own until shutdown.
//!
//! Every scaler has its own task, interval and jitter, and its job hook ([`Scaler::job_enqueued`]) wakes that
//! same loop: a slow platform call for one process type never delays another's scale-up.

use std::future::Future;
use std::time::Duration;

use crate::cycle_log::{CycleLog, Verdict};
use crate::error::ScalerError;
use crate::scaler::{Report, Scaler};

/// Runs several [`Scaler`]s, one loop each.
///
/// ```
/// use dyno_scaler_core::*;
/// use std::{sync::Arc, time::Duration};
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// # rt.block_on(async {
/// let queue = InMemoryQueue::new(Arc::new(SystemClock));
/// let platform = InMemoryPlatform::new();
/// let scaler = Scaler::builder("worker", Arc::new(queue.clone()), Arc::new(platform.clone()),
///     Policy::new(PolicyConfig::default()).unwrap()).build();
/// let controller = Controller::new(vec![scaler], Duration::from_millis(10));
/// queue.push("default");
/// // Stop after a short while; the cycle in flight finishes first.
/// controller.run(tokio::time::sleep(Duration::from_millis(50))).await.unwrap();
/// assert_eq!(platform.quantity("worker"), 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Controller {
    scalers: Vec<Scaler>,
    interval: Duration,
    jitter: f64,
    grace: Duration,
}

impl Controller {
    /// A controller polling every `interval` (a scaler's own [`ScalerBuilder::interval`](crate::ScalerBuilder::interval)
    /// wins), with ±10% jitter.
    pub fn new(scalers: Vec<Scaler>, interval: Duration) -> Self {
        Self { scalers, interval, jitter: 0.1, grace: Duration::from_secs(1) }
    }

    /// How long the cycle in flight may still run after shutdown is requested (default 1 s). Past it the
    /// cycle is abandoned: quantities are absolute, so an abandoned call is safe to make again later.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the jitter as a fraction of the interval (0 to 0.5).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 0.5);
        self
    }

    /// The scalers.
    pub fn scalers(&self) -> &[Scaler] {
        &self.scalers
    }

    /// One cycle: reconciles every scaler concurrently, results in the scalers' order.
    pub async fn run_once(&self) -> Vec<Result<Report, ScalerError>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, s) in self.scalers.iter().enumerate() {
            let s = s.clone();
            set.spawn(async move {
                let r = s.reconcile().await;
                // One cycle and out: a lease taken for it is given back, so the next run need not wait out its TTL.
                s.release_lease().await;
                (i, r)
            });
        }
        let mut out: Vec<Option<Result<Report, ScalerError>>> = (0..self.scalers.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, r)) => out[i] = Some(r),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        out.into_iter().map(|r| r.expect("every scaler reported")).collect()
    }

    /// Runs cycles until `shutdown` completes; the cycle in flight when it does is finished first (within the
    /// shutdown grace).
    ///
    /// Returns an error (and stops) when a platform error says the configuration is wrong (bad key, unknown
    /// app or process type); source errors and transient platform errors are logged and the loop goes on.
    /// Each failed cycle is logged once (repeats of the same error at most once a minute, with their count).
    pub async fn run<F: Future<Output = ()>>(&self, shutdown: F) -> Result<(), ScalerError> {
        let mut log = CycleLog::new(Duration::from_secs(60));
        self.run_observed(shutdown, |r| log_cycle(&mut log, r)).await
    }

    /// Like [`Controller::run`], calling `observe` with every scaler's result of every cycle (on the caller's
    /// task, in the order the cycles end).
    pub async fn run_observed<F, O>(&self, shutdown: F, mut observe: O) -> Result<(), ScalerError>
    where
        F: Future<Output = ()>,
        O: FnMut(&Result<Report, ScalerError>),
    {
        tokio::pin!(shutdown);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (tx, mut rx) = tokio::sync::mpsc::channel(self.scalers.len().max(1) * 4);
        let mut loops = tokio::task::JoinSet::new();
        for scaler in &self.scalers {
            let interval = scaler.interval().unwrap_or(self.interval);
            loops.spawn(scaler.clone().run_loop(interval, self.jitter, stop_rx.clone(), tx.clone()));
        }
        drop(tx);
        let outcome = loop {
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                result = rx.recv() => match result {
                    None => break Ok(()),
                    Some(result) => {
                        observe(&result);
                        if let Err(ScalerError::Platform { process_type, source }) = result
                            && source.is_fatal()
                        {
                            break Err(ScalerError::Platform { process_type, source });
                        }
                    }
                },
            }
        };
        // Every loop finishes the cycle in flight (within the grace), then stops.
        let _ = stop_tx.send(true);
        let finish = async {
            loop {
                tokio::select! {
                    joined = loops.join_next() => match joined {
                        None => break,
                        Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Some(_) => {}
                    },
                    Some(result) = rx.recv() => observe(&result),
                }
            }
        };
        if tokio::time::timeout(self.grace, finish).await.is_err() {
            tracing::warn!(grace_ms = self.grace.as_millis() as u64, "shutdown: abandoned the cycle in flight");
            loops.abort_all();
            while loops.join_next().await.is_some() {}
            // An abandoned loop never reached its own release: give every lease back here, so a successor acts
            // within its next campaign, not after the lease's TTL.
            let mut releases = tokio::task::JoinSet::new();
            for s in &self.scalers {
                let s = s.clone();
                releases.spawn(async move { s.release_lease().await });
            }
            let released = async { while releases.join_next().await.is_some() {} };
            if tokio::time::timeout(RELEASE_WAIT, released).await.is_err() {
                tracing::warn!("shutdown: a lease's store did not answer; that lease ends with its TTL");
            }
        }
        outcome
    }
}

/// How long a stop waits for the leases of abandoned cycles to be given back.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Logs a cycle's result through `log`: a failure once, its repeats summarised, the recovery said.
pub fn log_cycle(log: &mut CycleLog, result: &Result<Report, ScalerError>) {
    match result {
        Ok(report) => {
            if let Some(failures) = log.success(&report.process_type) {
                tracing::info!(process_type = %report.process_type, failures, "cycle succeeded again");
            }
        }
        Err(e) => {
            if let Verdict::Log { repeats } = log.error(e.process_type(), &e.fingerprint()) {
                tracing::error!(error = %e, repeats, "cycle failed");
            }
        }
    }
}

/// `interval` ± `jitter` (a fraction), so instances and process types do not poll in step.
pub(crate) fn jittered(interval: Duration, jitter: f64, rng: &mut fastrand::Rng) -> Duration {
    let factor = 1.0 + jitter * (2.0 * rng.f64() - 1.0);
    interval.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let mut rng = fastrand::Rng::with_seed(42);
        for _ in 0..10_000 {
            let d = jittered(Duration::from_secs(10), 0.1, &mut rng);
            assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(11), "{d:?}");
        }
    }
}
