//! The oracle: its figures on hand-computed traces, and that it is a lower bound.

use std::time::Duration;

use dyno_scaler_simulator::{self as simulator, SimConfig, oracle, strategies, trace};

fn job(at: f64, run: f64) -> trace::Job {
    trace::Job { arrived_at: at, queue: "default".into(), duration: run }
}

fn of(jobs: Vec<trace::Job>) -> trace::Trace {
    trace::Trace { name: "hand".into(), span: jobs.last().map_or(0.0, |j| j.arrived_at), jobs }
}

fn cfg(concurrency: u32) -> SimConfig {
    SimConfig { concurrency, boot_time: Duration::from_secs(30), ..SimConfig::default() }
}

fn seconds(r: &simulator::SimResult) -> f64 {
    (r.dyno_hours * 3600.0 * 1000.0).round() / 1000.0
}

/// Asserts that no row of `results` (the oracle's last) whose waits are no longer than the oracle's costs less, and
/// says how many such rows it compared. `context` names the run in a failure.
fn check_bound(results: &[simulator::SimResult], context: &str) -> usize {
    let (o, rows) = results.split_last().expect("the oracle's row");
    assert_eq!((o.strategy.as_str(), o.interrupted, o.unfinished), (oracle::NAME, 0, 0));
    let mut compared = 0;
    for r in rows {
        let no_longer =
            [(r.wait_p50, o.wait_p50), (r.wait_p95, o.wait_p95), (r.wait_p99, o.wait_p99), (r.wait_max, o.wait_max)]
                .iter()
                .all(|(a, b)| *a <= b + 1e-6);
        if no_longer {
            compared += 1;
            assert!(
                r.dyno_hours >= o.dyno_hours - 1e-9,
                "{context}: {} waits no longer and costs {} < the oracle's {}",
                r.strategy,
                r.dyno_hours,
                o.dyno_hours
            );
        }
    }
    compared
}

#[test]
fn it_boots_a_boot_ahead_and_keeps_a_dyno_through_a_gap_shorter_than_a_boot() {
    // One job: a boot and its run.
    let one = oracle::oracle(&of(vec![job(100.0, 10.0)]), 5, &cfg(5));
    assert_eq!((seconds(&one), one.scale_events, one.wait_max), (40.0, 2, 0.0));
    // A gap of 10 s: kept (10 s) rather than stopped and booted again (30 s).
    let kept = oracle::oracle(&of(vec![job(100.0, 10.0), job(120.0, 10.0)]), 5, &cfg(5));
    assert_eq!((seconds(&kept), kept.scale_events), (30.0 + 10.0 + 10.0 + 10.0, 2));
    // A gap of 50 s: stopped and booted again.
    let again = oracle::oracle(&of(vec![job(100.0, 10.0), job(160.0, 10.0)]), 5, &cfg(5));
    assert_eq!((seconds(&again), again.scale_events), (80.0, 4));
    // Needed within a boot of the start: up from the start, billed from 0.
    let early = oracle::oracle(&of(vec![job(12.0, 10.0)]), 5, &cfg(5));
    assert_eq!((seconds(&early), early.scale_events), (22.0, 1));
}

#[test]
fn it_runs_as_many_dynos_as_the_threads_need_and_waits_only_at_the_limit() {
    // Seven jobs at once on dynos of 5 threads: two dynos for their run.
    let seven = oracle::oracle(&of((0..7).map(|_| job(100.0, 20.0)).collect()), 5, &cfg(5));
    assert_eq!((seconds(&seven), seven.wait_max), (2.0 * 50.0, 0.0));
    // At most one dyno of 2 threads: the third job waits for the first to end, first in first out.
    let capped = oracle::oracle(&of(vec![job(100.0, 20.0), job(101.0, 20.0), job(102.0, 5.0)]), 1, &cfg(2));
    assert_eq!(capped.wait_max, 18.0);
    assert_eq!(seconds(&capped), 30.0 + 125.0 - 100.0);
}

#[test]
fn no_strategy_that_waits_no_longer_costs_less_on_any_built_in_trace() {
    let mut compared = 0;
    for name in trace::BUILT_IN {
        let t = trace::built_in(name, 1).unwrap();
        for (max, concurrency) in [(10, 5), (10, 10), (20, 5)] {
            let cfg = cfg(concurrency);
            let mut strats = strategies::comparison(max, concurrency);
            for d in simulator::frontier::CLASSIC_DELAYS {
                strats.push(strategies::dyno_scaler_classic(max, Duration::from_secs(d)));
            }
            let results = simulator::with_oracle(&t, max, &cfg, simulator::compare(&t, &strats, &cfg).unwrap());
            compared += check_bound(&results, &format!("{name} ({max} x {concurrency})"));
            let o = results.last().unwrap();
            for r in &results {
                assert!(r.cost_vs_oracle.is_some_and(|x| (x - r.dyno_hours / o.dyno_hours).abs() < 1e-9));
            }
        }
    }
    // Not vacuous: strategies meeting the oracle's waits were found (always on, at least, on every trace).
    assert!(compared >= trace::BUILT_IN.len() * 3, "{compared}");
}

#[test]
fn its_row_is_in_the_table_with_the_ratio_of_each_strategy() {
    let t = trace::steady(3, 0.05, 3600.0, 2.0);
    let cfg = cfg(5);
    let results =
        simulator::with_oracle(&t, 5, &cfg, simulator::compare(&t, &strategies::comparison(5, 5), &cfg).unwrap());
    let table = simulator::report::table(&t, &cfg, &results);
    let row = table.lines().find(|l| l.starts_with("oracle")).expect(&table);
    assert!(row.contains(" 1.00 "), "{row}");
    let always = table.lines().find(|l| l.starts_with("always on")).expect(&table);
    let ratio = results[0].dyno_hours / results.last().unwrap().dyno_hours;
    assert!(ratio > 1.5 && always.contains(&format!(" {ratio:.2} ")), "{always}");
    // No job, no yardstick: the ratio is left out rather than infinite.
    let empty = trace::Trace { name: "empty".into(), jobs: vec![], span: 3600.0 };
    let r = simulator::with_oracle(&empty, 5, &cfg, vec![]);
    assert_eq!((r[0].dyno_hours, r[0].cost_vs_oracle), (0.0, None));
}

#[test]
fn the_bound_holds_on_random_small_traces() {
    // Bursts and gaps of every size around a boot, run times from a tenth of a second to ten minutes.
    let mut compared = 0;
    for seed in 0..40u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut at = 0.0;
        let mut jobs = Vec::new();
        for _ in 0..rng.usize(5..120) {
            at += if rng.bool() { rng.f64() * 5.0 } else { rng.f64() * 400.0 };
            let run = if rng.u8(..10) == 0 { rng.f64() * 600.0 } else { 0.1 + rng.f64() * 20.0 };
            for _ in 0..rng.usize(1..4) {
                jobs.push(job(at, run));
            }
        }
        let t = of(jobs);
        let (max, concurrency) = (1 + rng.u32(..6), 1 + rng.u32(..5));
        let cfg = cfg(concurrency);
        let strats = strategies::comparison(max, concurrency);
        let results = simulator::with_oracle(&t, max, &cfg, simulator::compare(&t, &strats, &cfg).unwrap());
        compared += check_bound(&results, &format!("seed {seed} ({max} x {concurrency})"));
    }
    assert!(compared >= 40, "{compared}");
}
