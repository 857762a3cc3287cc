//! Simulator speed: a full day with 1,000,000 jobs (target: under 10 s). Prints figures.
//!
//! `cargo bench -p dyno-scaler-simulator --bench simulate` (`SIMULATE_ONLY=defaults`: only the strategies whose
//! name contains it, for a profile)

use std::time::Instant;

use dyno_scaler_simulator::{self as simulator, SimConfig, strategies, trace};

/// One line: the strategy, how long it took, and what it came to.
fn report(r: &simulator::SimResult, took: std::time::Duration, jobs: usize) {
    println!(
        "{:<22} {:>8.2?}  ({:.0} jobs/s)  dyno-h {:.1}  p95 {:.1}s  scales {}",
        r.strategy,
        took,
        jobs as f64 / took.as_secs_f64(),
        r.dyno_hours,
        r.wait_p95,
        r.scale_events
    );
}

fn main() {
    let t0 = Instant::now();
    // 11.6 jobs/s for 24 h ≈ 1,000,000 jobs of 0.3 s on average.
    let trace = trace::steady(42, 1_000_000.0 / 86_400.0, 86_400.0, 0.3);
    let generated = t0.elapsed();
    println!("trace: {} jobs generated in {:.2?}", trace.jobs.len(), generated);
    let cfg = SimConfig::default();
    let only = std::env::var("SIMULATE_ONLY").unwrap_or_default();
    for s in strategies::comparison(20, 5).into_iter().filter(|s| s.name.contains(only.as_str())) {
        let start = Instant::now();
        let r = simulator::simulate(&trace, &s, &cfg).expect("valid strategy");
        report(&r, start.elapsed(), trace.jobs.len());
    }
    if simulator::oracle::NAME.contains(only.as_str()) {
        let start = Instant::now();
        let r = simulator::oracle::oracle(&trace, 20, &cfg);
        report(&r, start.elapsed(), trace.jobs.len());
    }
}
