//! Command-line interface.

mod commands;
mod logging;
mod simulate;
mod simulate_web;

/// The settings, the registry and the builders live in the library ([`dyno_scaler::settings`]), so a library user
/// builds from the same settings as the program.
pub use dyno_scaler::settings as config;
use dyno_scaler::settings::build;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  # Scale `worker` between 0 and 1 from Sidekiq (the seed gem's defaults):
  HEROKU_API_KEY=... HEROKU_APP_NAME=my-app DYNO_SCALER_SOURCE=sidekiq REDIS_URL=redis://... dyno-scaler run

  # Several process types from a file, one cycle without changing anything:
  dyno-scaler --config dyno-scaler.toml run --once --dry-run

  # What would happen now, as JSON:
  dyno-scaler status --json

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage.";

#[derive(Debug, Parser)]
#[command(name = "dyno-scaler", version, about = "Scales background-job workers (Sidekiq, Resque, DelayedJob, Solid Queue, GoodJob) on Heroku or Kubernetes to the work waiting for them.", after_help = EXAMPLES)]
pub struct Cli {
    /// TOML configuration file (several [[process]] tables); also DYNO_SCALER_CONFIG.
    #[arg(long, global = true, env = "DYNO_SCALER_CONFIG", value_name = "PATH")]
    pub config: Option<String>,
    /// Log format: text (default) or json. RUST_LOG filters (default info).
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch the queues and scale every configured process type until SIGTERM/SIGINT.
    #[command(
        after_help = "Examples:\n  dyno-scaler run\n  dyno-scaler run --once --dry-run\n  dyno-scaler --config dyno-scaler.toml run --poll-interval 1s"
    )]
    Run {
        /// One cycle for every process type, then exit (0 on success).
        #[arg(long)]
        once: bool,
        /// Decide and log, but never change the platform.
        #[arg(long)]
        dry_run: bool,
        /// Poll interval, e.g. 5s or 500ms (overrides DYNO_SCALER_POLL_INTERVAL).
        #[arg(long, value_name = "DURATION")]
        poll_interval: Option<String>,
        /// Serve /metrics (Prometheus) and /healthz on this address, e.g. 0.0.0.0:9090 (also DYNO_SCALER_LISTEN).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Read every queue and show the decision each process type would take, without acting.
    #[command(after_help = "Examples:\n  dyno-scaler status\n  dyno-scaler status --json | jq '.processes[].desired'")]
    Status {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop scaling a process type (every one by default) on every instance, until resumed or for a while; kept in
    /// the store of the process type's queue.
    #[command(after_help = "Examples:\n  dyno-scaler pause worker --for 30m\n  dyno-scaler pause")]
    Pause {
        /// Only this process type (default: every one configured).
        process_type: Option<String>,
        /// How long, e.g. 30m or 2h (default: until `dyno-scaler resume`).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// Scale a paused process type (every one by default) again.
    #[command(after_help = "Examples:\n  dyno-scaler resume worker\n  dyno-scaler resume")]
    Resume {
        /// Only this process type (default: every one configured).
        process_type: Option<String>,
    },
    /// Serve KEDA's external scaler interface (gRPC): KEDA asks, dyno-scaler answers with the policy's desired
    /// count, and KEDA and the HPA scale (and choose the pods to remove). No platform settings needed.
    #[command(
        after_help = "Examples:\n  dyno-scaler keda-scaler --listen 0.0.0.0:9090\n\nIn the ScaledObject: a trigger of type external-push with metadata scalerAddress (this address) and\nprocessType (one of the configured process types)."
    )]
    KedaScaler {
        /// Where to serve gRPC, e.g. 0.0.0.0:9090.
        #[arg(long, value_name = "ADDR")]
        listen: String,
    },
    /// Validate the configuration and reach every source and the platform.
    #[command(after_help = "Examples:\n  dyno-scaler check\n  dyno-scaler --config dyno-scaler.example.toml check")]
    Check,
    /// Create the insert trigger that tells the daemon of new DelayedJob jobs at once (a schema change: needs DDL
    /// rights; the daemon itself never makes it and polls without it).
    #[command(
        after_help = "Examples:\n  dyno-scaler install-trigger --print\n  DATABASE_URL=postgres://owner@db/app dyno-scaler install-trigger dj_worker"
    )]
    InstallTrigger(TriggerArgs),
    /// Remove the insert trigger (and its function); the table is left as it was before `install-trigger`.
    #[command(after_help = "Examples:\n  dyno-scaler uninstall-trigger --print\n  dyno-scaler uninstall-trigger")]
    UninstallTrigger(TriggerArgs),
    /// Record what the daemon observes of one process type's queues (the first configured, or --process-type) as
    /// a trace CSV for `simulate --trace-file`: arrivals and run times reckoned from the counts, no job payload.
    #[command(
        after_help = "Examples:\n  dyno-scaler record --out history.csv --for 24h\n  dyno-scaler simulate --trace-file history.csv\n\nUntil --for is over, or SIGINT/SIGTERM; the file is rewritten every minute, so a cut recording keeps\nwhat it had."
    )]
    Record {
        /// The trace file to write (replaced).
        #[arg(long, value_name = "FILE")]
        out: String,
        /// How long to record, e.g. 1h or 24h (default: until SIGINT/SIGTERM).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// The process type whose queues to record (default: the first configured).
        #[arg(long, value_name = "NAME")]
        process_type: Option<String>,
    },
    /// Write the finished jobs GoodJob or Solid Queue keep as a trace CSV (arrived_at,queue,duration_ms), for
    /// `simulate --trace-file`.
    #[command(
        after_help = "Examples:\n  dyno-scaler export-trace --since 7d > history.csv\n  dyno-scaler export-trace --since 24h --out history.csv --process-type worker"
    )]
    ExportTrace {
        /// Jobs that arrived within this long before now, e.g. 7d or 12h.
        #[arg(long, value_name = "DURATION")]
        since: String,
        /// The file to write (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
        /// The process type whose source to read (default: the first configured).
        #[arg(long, value_name = "NAME")]
        process_type: Option<String>,
    },
    /// Compare scaling strategies on a job trace (built-in or CSV), without any server.
    #[command(
        after_help = "Examples:\n  dyno-scaler simulate\n  dyno-scaler simulate --trace nightly-batch --json\n  dyno-scaler simulate --trace-file history.csv --plot out.svg"
    )]
    Simulate(simulate::SimulateArgs),
}

/// The arguments of `install-trigger` and `uninstall-trigger`.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// Only this process type (default: every one whose source needs a trigger).
    pub process_type: Option<String>,
    /// Print the SQL instead of running it (to apply it yourself, e.g. in a migration).
    #[arg(long)]
    pub print: bool,
}

/// Runs the program and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(commands::dispatch(cli));
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(code)
}
