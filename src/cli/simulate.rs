//! `dyno-scaler simulate`: the strategy comparison on built-in or recorded traces.

use std::time::Duration;

use clap::Args;
use dyno_scaler_simulator::{self as simulator, SimConfig, Strategy, strategies, trace};

use dyno_scaler::core::PolicyError;
use dyno_scaler_simulator::TraceError;
use dyno_scaler_simulator::report::PlotError;

use super::config::{self, ConfigError, Env, Flags, parse_duration};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Built-in trace: steady, nightly-batch, bursty-web, long-jobs, or all.
    #[arg(long, default_value = "all")]
    pub trace: String,
    /// A CSV of your own history: arrived_at,queue,duration_ms (arrived_at in seconds or RFC 3339).
    #[arg(long, value_name = "CSV")]
    pub trace_file: Option<String>,
    /// Seed of the built-in traces.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The most dynos any strategy may run.
    #[arg(long, default_value_t = 10)]
    pub max_workers: u32,
    /// Jobs per dyno at once (Sidekiq's default is 5).
    #[arg(long, default_value_t = 5)]
    pub concurrency: u32,
    /// Dyno boot time, billed.
    #[arg(long, default_value = "30s")]
    pub boot_time: String,
    /// Price per dyno-hour in dollars (default: $25/month Standard-1X).
    #[arg(long, default_value_t = 25.0 / 720.0)]
    pub price: f64,
    /// One JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Draw queue depth and dynos over time to this SVG file (one file per trace: NAME-<trace>.svg when
    /// several traces run).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<String>,
    /// Draw cost against p95 wait to this SVG file (every peer, the default, the classic policy over down delays
    /// 0-600 s) and say whether a peer dominates the default (NAME-<trace>.svg when several traces run).
    #[arg(long, value_name = "FILE.svg")]
    pub frontier: Option<String>,
    /// The strategy you pick (its name in the table, e.g. "dyno-scaler classic"): print the settings that run it.
    #[arg(long, value_name = "STRATEGY")]
    pub pick: Option<String>,
    /// Web traffic instead of jobs: requests in front of dynos of `--concurrency` Puma threads, dyno-scaler's web
    /// policy against the peers' web rules (built-in traces: web-diurnal, web-spiky).
    #[arg(long)]
    pub web: bool,
    /// With --web: the p95 of queue time to stay under.
    #[arg(long, default_value = "250ms")]
    pub target: String,
}

/// Why `simulate` could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A flag out of range.
    #[error("{0}")]
    Usage(&'static str),
    /// The configuration (`--config`) or a duration flag.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file that cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The flag and the path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A trace file with a bad line.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A strategy whose policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The plot could not be written.
    #[error("--plot {file}: {source}")]
    Plot {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: PlotError,
    },
}

pub fn run(args: &SimulateArgs, config_path: Option<&str>) -> u8 {
    match run_inner(args, config_path) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn read(flag: &str, path: &str) -> Result<String, SimulateError> {
    std::fs::read_to_string(path).map_err(|source| SimulateError::Read { path: format!("{flag} {path}"), source })
}

fn run_inner(args: &SimulateArgs, config_path: Option<&str>) -> Result<u8, SimulateError> {
    if args.max_workers == 0 || args.concurrency == 0 {
        return Err(SimulateError::Usage("--max-workers and --concurrency must be at least 1"));
    }
    if !(args.price.is_finite() && args.price >= 0.0) {
        return Err(SimulateError::Usage("--price must be a non-negative number of dollars"));
    }
    if args.web {
        return super::simulate_web::run(args);
    }
    let cfg = SimConfig {
        concurrency: args.concurrency,
        boot_time: parse_duration(&args.boot_time, "--boot-time")?,
        price_per_dyno_hour: args.price,
        ..SimConfig::default()
    };
    let traces = match &args.trace_file {
        Some(path) => {
            let text = read("--trace-file", path)?;
            vec![trace::load_csv(path, &text)?]
        }
        None if args.trace == "all" => {
            trace::BUILT_IN.iter().map(|n| trace::built_in(n, args.seed).expect("built-in")).collect()
        }
        None => vec![trace::built_in(&args.trace, args.seed).ok_or_else(|| {
            ConfigError(format!(
                "--trace: unknown trace {:?}; use one of {} or all",
                args.trace,
                trace::BUILT_IN.join(", ")
            ))
        })?],
    };
    let mut strats = strategies::comparison(args.max_workers, args.concurrency);
    if let Some(path) = config_path {
        let text = read("--config", path)?;
        let env: Env = std::env::vars().collect();
        let s = config::load_for_simulation(&Flags::default(), &env, Some((path, &text)))?;
        for p in &s.processes {
            let source = super::build::source(&s, p)?;
            let every = Some(s.poll_interval.max(Duration::from_millis(100)));
            let polled = Strategy::polled(format!("config: {}", p.process_type), p.policy.config().clone(), every);
            strats.push(Strategy {
                // Sidekiq, Resque and GoodJob hear enqueues with no setting; DelayedJob and Solid Queue only once
                // their trigger is installed, which the simulation cannot know: they are modelled polling.
                wakes_on_enqueue: s.events && !matches!(p.source, "delayed_job" | "solid_queue"),
                sees_dynos: source.queue.capabilities().names_hosts,
                ..polled
            });
        }
    }
    let names: Vec<&str> = strats.iter().map(|s| s.name.as_str()).chain([simulator::oracle::NAME]).collect();
    let picked = match &args.pick {
        Some(pick) => Some(*names.iter().find(|n| n.eq_ignore_ascii_case(pick.trim())).ok_or_else(|| {
            ConfigError(format!("--pick: no strategy {pick:?}; the strategies: {}", names.join(", ")))
        })?),
        None => None,
    };
    let mut docs = Vec::new();
    for t in &traces {
        let results = simulator::with_oracle(t, args.max_workers, &cfg, simulator::compare(t, &strats, &cfg)?);
        if let Some(plot) = &args.plot {
            let file = per_trace(plot, &t.name, traces.len());
            simulator::report::plot_svg(std::path::Path::new(&file), t, &results)
                .map_err(|source| SimulateError::Plot { file: file.clone(), source })?;
            if !args.json {
                println!("plot written to {file}");
            }
        }
        let frontier = match &args.frontier {
            Some(path) => {
                let file = per_trace(path, &t.name, traces.len());
                let f = simulator::frontier::frontier(t, args.max_workers, args.concurrency, &cfg);
                simulator::report::frontier_svg(std::path::Path::new(&file), &f)
                    .map_err(|source| SimulateError::Plot { file: file.clone(), source })?;
                Some((file, f))
            }
            None => None,
        };
        if args.json {
            let f = frontier.as_ref().map(|(_, f)| f);
            let work_secs = t.work().as_secs_f64();
            docs.push(
                serde_json::json!({"trace": t.name, "jobs": t.jobs.len(), "work_secs": work_secs, "results": results, "frontier": f}),
            );
        } else {
            println!("{}", simulator::report::table(t, &cfg, &results));
            if let Some((file, f)) = &frontier {
                println!("{}\nfrontier written to {file}\n", simulator::frontier::summary(f));
            }
        }
    }
    if args.json {
        println!("{}", serde_json::json!({"config": cfg, "traces": docs}));
        return Ok(0);
    }
    match picked {
        Some(name) => println!("{name}: {}", settings_for(name, args)),
        None => {
            println!("The settings that run each of dyno-scaler's strategies (--pick STRATEGY prints one):");
            for name in names.iter().filter(|n| n.starts_with("dyno-scaler") || n.starts_with("config: ")) {
                println!("  {name}: {}", settings_for(name, args));
            }
        }
    }
    Ok(0)
}

/// What to set to run the strategy `name` as simulated with `args`.
fn settings_for(name: &str, args: &SimulateArgs) -> String {
    let (max, threads) = (args.max_workers, args.concurrency);
    match name {
        "dyno-scaler defaults" => format!(
            "DYNO_SCALER_MAX_WORKERS={max} (and, where no worker reports its threads, DYNO_SCALER_WORKER_THREADS={threads})"
        ),
        "dyno-scaler classic" => {
            format!("DYNO_SCALER_POLICY=classic DYNO_SCALER_MAX_WORKERS={max} DYNO_SCALER_DOWN_DELAY=30s")
        }
        n if n.starts_with("config: ") => format!("the [[process]] table {:?} of --config, as it is", &n[8..]),
        n if n == simulator::oracle::NAME => {
            "none: the oracle knows the future; it is the limit no setting reaches".into()
        }
        _ => "none: a peer's rule, run by that product (dyno-scaler's own strategies are the rows named dyno-scaler)"
            .into(),
    }
}

/// `NAME-<trace>.svg` when several traces run, else the path as given.
fn per_trace(path: &str, trace: &str, traces: usize) -> String {
    if traces > 1 {
        let stem = path.strip_suffix(".svg").unwrap_or(path);
        format!("{stem}-{trace}.svg")
    } else {
        path.to_owned()
    }
}
