//! The subcommands.

use std::collections::HashMap;
use std::time::Duration;

use dyno_scaler::core::controller::log_cycle;
use dyno_scaler::core::cycle_log::CycleLog;
use dyno_scaler::core::secret::redact_url;
use dyno_scaler::core::{Controller, Direction, Report, ScalerError};
use serde_json::{Value, json};

use super::config::{self, ConfigError, Env, Flags, Settings};
use super::{Cli, Command, build, logging};

fn load(cli: &Cli, poll_interval: Option<String>) -> Result<Settings, ConfigError> {
    let env: Env = std::env::vars().collect();
    let flags = Flags { config: cli.config.clone(), log_format: cli.log_format.clone(), poll_interval };
    let text = match &flags.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("--config {path}: cannot read the file: {e}")))?,
        ),
        None => None,
    };
    config::load(&flags, &env, flags.config.as_deref().zip(text.as_deref()))
}

pub async fn dispatch(cli: Cli) -> u8 {
    let poll = match &cli.command {
        Command::Run { poll_interval, .. } => poll_interval.clone(),
        Command::Simulate(args) => return super::simulate::run(args, cli.config.as_deref()),
        _ => None,
    };
    let settings = match load(&cli, poll) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    logging::init(settings.log_format);
    match &cli.command {
        Command::Run { once, dry_run, .. } => run(&settings, *once, *dry_run).await,
        Command::Status { json } => status(&settings, *json).await,
        Command::Check => check(&settings).await,
        Command::Simulate(_) => unreachable!("handled above"),
    }
}

fn fatal_message(e: &ScalerError) -> String {
    format!(
        "{e}\nhint: check HEROKU_API_KEY (a token from `heroku authorizations:create`), HEROKU_APP_NAME and the process types in the Procfile"
    )
}

/// SIGHUP would kill the daemon by default (a terminal closing, a supervisor's "reload"): it is ignored instead,
/// and said so. The configuration is read at start only; restart the process to change it.
fn ignore_sighup() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::warn!(
                        "SIGHUP received and ignored: the configuration is read at start; restart to change it"
                    );
                }
            });
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested; finishing the cycle in flight");
}

/// Logs cycles: a decision when it changes (or always, with `--once`), a failure once with its repeats summarised.
struct CycleLogger {
    last: HashMap<String, (u32, u32, u64, u64)>,
    errors: CycleLog,
}

impl CycleLogger {
    fn new() -> Self {
        Self { last: HashMap::new(), errors: CycleLog::new(Duration::from_secs(60)) }
    }

    fn log(&mut self, r: &Result<Report, ScalerError>, always: bool) {
        log_cycle(&mut self.errors, r);
        let Ok(rep) = r else { return };
        let d = &rep.decision;
        let t = rep.snapshot.totals();
        let key = (d.from, d.to, t.ready, t.running);
        let changed = self.last.insert(rep.process_type.clone(), key) != Some(key);
        if always || changed || d.direction() != Direction::Hold {
            tracing::info!(process_type = %rep.process_type, from = d.from, to = d.to, applied = rep.applied, dry_run = rep.dry_run, skipped = rep.snapshot.skipped, reason = %d.reason, "decision");
        } else {
            tracing::debug!(process_type = %rep.process_type, from = d.from, to = d.to, reason = %d.reason, "decision");
        }
    }
}

async fn run(s: &Settings, once: bool, dry_run: bool) -> u8 {
    let (_platform, scalers) = match build::scalers(s, dry_run) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    tracing::info!(
        app = %s.app,
        api_url = %redact_url(&s.api_url),
        process_types = %s.processes.iter().map(|p| format!("{} ({})", p.process_type, p.source.name())).collect::<Vec<_>>().join(", "),
        poll_interval_ms = s.poll_interval.as_millis() as u64,
        dry_run,
        "dyno-scaler starting"
    );
    ignore_sighup();
    let controller = Controller::new(scalers, s.poll_interval).with_shutdown_grace(Duration::from_millis(800));
    let mut logger = CycleLogger::new();
    if once {
        let results = controller.run_once().await;
        let mut code = 0;
        for r in &results {
            logger.log(r, true);
            if let Err(e) = r {
                if let ScalerError::Platform { source, .. } = e
                    && source.is_fatal()
                {
                    eprintln!("error: {}", fatal_message(e));
                }
                code = 1;
            }
        }
        return code;
    }
    match controller.run_observed(shutdown_signal(), |r| logger.log(r, false)).await {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "stopping: the platform rejected the configuration");
            eprintln!("error: {}", fatal_message(&e));
            1
        }
    }
}

async fn status(s: &Settings, as_json: bool) -> u8 {
    let (_platform, scalers) = match build::scalers(s, true) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut rows = Vec::new();
    let mut code = 0;
    for sc in &scalers {
        match sc.preview().await {
            Ok(rep) => {
                let t = rep.snapshot.totals();
                rows.push(json!({
                    "process_type": rep.process_type,
                    "source": rep.source,
                    "ready": t.ready,
                    "running": t.running,
                    "scheduled": t.scheduled,
                    "latency_seconds": t.oldest_ready_age.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
                    "skipped": rep.snapshot.skipped,
                    "current": rep.decision.from,
                    "desired": rep.decision.to,
                    "reason": rep.decision.reason,
                }));
            }
            Err(e) => {
                code = 1;
                rows.push(json!({
                    "process_type": sc.process_type(),
                    "source": sc.source().name(),
                    "ready": null, "running": null, "scheduled": null, "latency_seconds": null, "skipped": null,
                    "current": null, "desired": null,
                    "reason": "quantity held: the scaler could not read",
                    "error": e.to_string(),
                }));
            }
        }
    }
    if as_json {
        println!("{}", json!({ "processes": rows }));
    } else {
        println!(
            "{:<16} {:<12} {:>8} {:>8} {:>10} {:>10} {:>8} {:>8}  reason",
            "process_type", "source", "ready", "running", "scheduled", "latency_s", "current", "desired"
        );
        let cell = |v: &Value| match v {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for r in &rows {
            println!(
                "{:<16} {:<12} {:>8} {:>8} {:>10} {:>10} {:>8} {:>8}  {}",
                cell(&r["process_type"]),
                cell(&r["source"]),
                cell(&r["ready"]),
                cell(&r["running"]),
                cell(&r["scheduled"]),
                cell(&r["latency_seconds"]),
                cell(&r["current"]),
                cell(&r["desired"]),
                r.get("error").map(cell).unwrap_or_else(|| cell(&r["reason"]))
            );
        }
    }
    code
}

async fn check(s: &Settings) -> u8 {
    println!(
        "configuration: ok ({} process type(s), poll every {:?}, Heroku app {} at {})",
        s.processes.len(),
        s.poll_interval,
        s.app,
        redact_url(&s.api_url)
    );
    let (platform, _) = match build::scalers(s, true) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut problems = 0;
    match platform.formations().await {
        Ok(list) => {
            let types: Vec<String> = list.iter().map(|f| format!("{}={}", f.process_type, f.quantity)).collect();
            println!("platform: ok, formation {}", types.join(", "));
            for p in &s.processes {
                if !list.iter().any(|f| f.process_type == p.process_type) {
                    problems += 1;
                    println!(
                        "platform: PROBLEM process type {:?} is not in the app's formation (add it to the Procfile)",
                        p.process_type
                    );
                }
            }
        }
        Err(e) => {
            problems += 1;
            println!("platform: PROBLEM {e}");
        }
    }
    for p in &s.processes {
        let label = format!("{} ({} at {})", p.process_type, p.source.name(), redact_url(p.url.expose()));
        let src = match build::source(p) {
            Ok(src) => src,
            Err(e) => {
                problems += 1;
                println!("{label}: PROBLEM {e}");
                continue;
            }
        };
        match src.snapshot().await {
            Ok(snap) => {
                let queues: Vec<String> = snap
                    .queues
                    .iter()
                    .map(|(q, st)| {
                        format!("{q} (ready {}, running {}, scheduled {})", st.ready, st.running, st.scheduled)
                    })
                    .collect();
                let queues = if queues.is_empty() { "no queues yet".to_string() } else { queues.join(", ") };
                let workers = snap
                    .workers
                    .as_ref()
                    .map_or("no worker registry".to_string(), |w| format!("{} live worker(s)", w.len()));
                println!("{label}: ok, {queues}; {workers}; {} unreadable entries", snap.skipped);
                if let Some(want) = &p.queues {
                    for q in want.iter().filter(|q| !snap.queues.contains_key(*q)) {
                        println!("{label}: note: queue {q:?} has never been seen (a typo?)");
                    }
                }
            }
            Err(e) => {
                problems += 1;
                println!("{label}: PROBLEM {e}");
                if let Some(hint) = source_hint(p, &e.to_string()) {
                    println!("{label}: hint: {hint}");
                }
            }
        }
    }
    if problems == 0 {
        println!("check passed");
        0
    } else {
        println!("check found {problems} problem(s)");
        1
    }
}

/// A hint for a source error whose cure is a setting.
fn source_hint(p: &config::ProcessSettings, error: &str) -> Option<&'static str> {
    let tls = p.url.expose().starts_with("rediss://");
    (tls && error.contains("certificate")).then_some(
        "the Redis server's TLS certificate was not accepted. Heroku's Redis uses self-signed certificates: set \
         DYNO_SCALER_REDIS_TLS_VERIFY=none (TOML redis_tls_verify = \"none\"). For a private CA, name its file in \
         SSL_CERT_FILE instead.",
    )
}
