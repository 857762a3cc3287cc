//! `dyno-scaler simulate --web`: web traffic (requests in front of Puma threads) against dyno-scaler's web policy and
//! the peers' web rules, on the built-in request traces or a file of your own.

use dyno_scaler_simulator::trace::{self, Trace};
use dyno_scaler_simulator::web::{self, WebConfig, WebResult};

use super::config::{ConfigError, parse_duration};
use super::simulate::{SimulateArgs, SimulateError};

/// The web comparison: a table per trace (or one JSON document), and whether a peer is cheaper at a p95 no worse.
pub fn run(args: &SimulateArgs) -> Result<u8, SimulateError> {
    let cfg = WebConfig {
        threads: args.concurrency,
        boot: parse_duration(&args.boot_time, "--boot-time")?.as_secs_f64(),
        max: args.max_workers,
        price_per_dyno_hour: args.price,
        target: parse_duration(&args.target, "--target")?,
        seed: args.seed,
        ..WebConfig::default()
    };
    let traces: Vec<Trace> = match &args.trace_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| SimulateError::Read { path: format!("--trace-file {path}"), source })?;
            vec![trace::load_csv(path, &text)?]
        }
        None if args.trace == "all" => {
            web::traffic::BUILT_IN.iter().map(|n| web::traffic::built_in(n, args.seed).expect("built-in")).collect()
        }
        None => vec![web::traffic::built_in(&args.trace, args.seed).ok_or_else(|| {
            ConfigError(format!(
                "--trace: unknown request trace {:?}; with --web use one of {} or all",
                args.trace,
                web::traffic::BUILT_IN.join(", ")
            ))
        })?],
    };
    let strategies = web::strategies();
    let mut all = Vec::new();
    for t in &traces {
        let rows: Vec<WebResult> = std::thread::scope(|scope| {
            let hs: Vec<_> = strategies.iter().map(|s| scope.spawn(|| web::simulate(t, s, &cfg))).collect();
            hs.into_iter().map(|h| h.join().expect("simulation thread")).collect()
        });
        if !args.json {
            print_table(t, &cfg, &rows);
        }
        all.push(rows);
    }
    if args.json {
        let doc = serde_json::json!({ "threads": cfg.threads, "boot_secs": cfg.boot, "max": cfg.max,
            "target_secs": cfg.target.as_secs_f64(), "results": all });
        println!("{doc}");
    }
    Ok(0)
}

/// The peers cheaper than dyno-scaler's web policy at a p95 no worse, by name.
pub fn dominating(rows: &[WebResult]) -> Vec<&str> {
    let Some(ours) = rows.iter().find(|r| r.strategy == "dyno-scaler web") else { return Vec::new() };
    rows.iter()
        .filter(|r| r.strategy != ours.strategy && r.dyno_hours < ours.dyno_hours && r.p95 <= ours.p95)
        .map(|r| r.strategy.as_str())
        .collect()
}

fn print_table(t: &Trace, cfg: &WebConfig, rows: &[WebResult]) {
    println!(
        "== {} ({} requests, {:.1} h; dynos of {} threads, {}s boot, at most {}; target p95 {} ms)",
        t.name,
        t.jobs.len(),
        t.span / 3600.0,
        cfg.threads,
        cfg.boot,
        cfg.max,
        cfg.target.as_millis()
    );
    println!(
        "{:<18} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "strategy", "dyno-h", "cost $", "p50 ms", "p95 ms", "p99 ms", "max ms", "events"
    );
    for r in rows {
        println!(
            "{:<18} {:>10.2} {:>8.2} {:>9.1} {:>9.1} {:>9.1} {:>9.0} {:>7}",
            r.strategy,
            r.dyno_hours,
            r.cost,
            r.p50 * 1e3,
            r.p95 * 1e3,
            r.p99 * 1e3,
            r.max * 1e3,
            r.scale_events
        );
    }
    match dominating(rows).as_slice() {
        [] => println!("no peer is cheaper at a p95 no worse than dyno-scaler web's\n"),
        d => println!("cheaper at a p95 no worse than dyno-scaler web's: {}\n", d.join(", ")),
    }
}
