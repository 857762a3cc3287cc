//! The policy simulator: replays a job trace against strategies with a virtual clock, modelling dyno boot time,
//! worker concurrency and Heroku stopping the highest-numbered dynos first, deciding with the production
//! [`Policy`](dyno_scaler_core::Policy).
//!
//! ```
//! use dyno_scaler_simulator::{self as simulator, SimConfig};
//! let trace = simulator::trace::steady(1, 0.05, 3600.0, 2.0);
//! let results: Vec<_> = simulator::strategies::comparison(5, 5)
//!     .iter()
//!     .map(|s| simulator::simulate(&trace, s, &SimConfig::default()).unwrap())
//!     .collect();
//! assert_eq!(results.len(), 6);
//! assert!(results.iter().all(|r| r.unfinished == 0));
//! ```

#![deny(missing_docs)]

mod engine;
pub mod frontier;
pub mod oracle;
pub mod record;
pub mod report;
pub mod strategies;
pub mod trace;
pub mod web;
mod world;

pub use engine::{SimConfig, SimResult, Strategy, epoch, simulate};
pub use trace::{Job, Trace, TraceError};

/// Runs every strategy on `trace`, in parallel on the machine's cores, results in the strategies' order.
pub fn compare(
    trace: &Trace,
    strategies: &[Strategy],
    cfg: &SimConfig,
) -> Result<Vec<SimResult>, dyno_scaler_core::PolicyError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = strategies.iter().map(|s| scope.spawn(move || simulate(trace, s, cfg))).collect();
        handles.into_iter().map(|h| h.join().expect("simulation thread")).collect()
    })
}

/// Adds the [`oracle`] row (at most `max` dynos) after `results` and sets every row's
/// [`SimResult::cost_vs_oracle`].
pub fn with_oracle(trace: &Trace, max: u32, cfg: &SimConfig, mut results: Vec<SimResult>) -> Vec<SimResult> {
    results.push(oracle::oracle(trace, max, cfg));
    let limit = results.last().map_or(0.0, |o| o.dyno_hours);
    for r in &mut results {
        r.cost_vs_oracle = (limit > 0.0).then(|| r.dyno_hours / limit);
    }
    results
}
