//! The subcommands.

use std::collections::HashMap;
use std::time::Duration;

use dyno_scaler::core::controller::log_cycle;
use dyno_scaler::core::cycle_log::CycleLog;
use dyno_scaler::core::events::{self, EventMode, EventStatus};
use dyno_scaler::core::{Controller, Direction, Gate, Report, ScalerError, Source};
use std::sync::Arc;

use super::config::{self, ConfigError, Env, Flags, Settings};
use super::{Cli, Command, build, logging};

mod check;
mod history;
#[cfg(feature = "keda")]
mod keda;
mod pause;
mod status;
mod trigger;
mod watch;

fn load(cli: &Cli, poll_interval: Option<String>, listen: Option<String>) -> Result<Settings, ConfigError> {
    let env: Env = std::env::vars().collect();
    // These commands never call the platform: Heroku's settings are not required for them.
    let no_platform = matches!(
        cli.command,
        Command::Pause { .. }
            | Command::Resume { .. }
            | Command::KedaScaler { .. }
            | Command::Record { .. }
            | Command::ExportTrace { .. }
    );
    let flags =
        Flags { config: cli.config.clone(), log_format: cli.log_format.clone(), poll_interval, listen, no_platform };
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
    let (poll, listen) = match &cli.command {
        Command::Run { poll_interval, listen, .. } => (poll_interval.clone(), listen.clone()),
        Command::KedaScaler { listen } => (None, Some(listen.clone())),
        Command::Simulate(args) => return super::simulate::run(args, cli.config.as_deref()),
        _ => (None, None),
    };
    let settings = match load(&cli, poll, listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    logging::init(settings.log_format);
    match &cli.command {
        Command::Run { once, dry_run, .. } => run(&settings, *once, *dry_run).await,
        Command::Status { json } => status::status(&settings, *json).await,
        Command::Check => check::check(&settings).await,
        Command::Pause { process_type, duration } => {
            pause::pause(&settings, process_type.as_deref(), duration.as_deref()).await
        }
        Command::Resume { process_type } => pause::resume(&settings, process_type.as_deref()).await,
        #[cfg(feature = "keda")]
        Command::KedaScaler { .. } => keda::serve(&settings).await,
        #[cfg(not(feature = "keda"))]
        Command::KedaScaler { .. } => {
            crate::cli::logging::error(
                "this binary was built without KEDA's external scaler: build it with the `keda` feature",
            );
            2
        }
        Command::InstallTrigger(args) => trigger::trigger(&settings, args, true).await,
        Command::UninstallTrigger(args) => trigger::trigger(&settings, args, false).await,
        Command::Record { out, duration, process_type } => {
            history::record(&settings, out, duration.as_deref(), process_type.as_deref()).await
        }
        Command::ExportTrace { since, out, process_type } => {
            history::export_trace(&settings, since, out.as_deref(), process_type.as_deref()).await
        }
        Command::Simulate(_) => unreachable!("handled above"),
    }
}

/// The process type named `name`, or exit 2 naming the configured ones (`verb`: the command, for the message).
fn named<'s>(s: &'s Settings, name: &str, verb: &str) -> Result<&'s config::ProcessSettings, u8> {
    s.processes.iter().find(|p| p.process_type == name).ok_or_else(|| {
        let known: Vec<&str> = s.processes.iter().map(|p| p.process_type.as_str()).collect();
        logging::error(format_args!("{verb}: unknown process type {name:?}; configured: {}", known.join(", ")));
        2
    })
}

/// A duration flag (`--for`, `--since`), or exit 2 naming it.
fn duration_flag(text: &str, flag: &str) -> Result<Duration, u8> {
    config::parse_duration(text, flag).map_err(|e| {
        logging::error(e);
        2
    })
}

/// The event path `source` would run in, set up once and torn down (for `check` and `status`).
async fn event_status(s: &Settings, source: &Source) -> EventStatus {
    if !s.events {
        return EventStatus { mode: EventMode::Polling, detail: "events are off (DYNO_SCALER_EVENTS / events)".into() };
    }
    events::probe(source.clone(), Duration::from_secs(3)).await
}

/// Watched queues the store does not know (a typo scales nothing, silently), and the warning naming them and
/// the queues it knows; nothing when every watched queue is known, nothing is filtered, or the store keeps no list
/// (or could not be asked: the snapshot says why).
async fn unknown_queues(p: &config::ProcessSettings, source: &Source) -> Option<(Vec<String>, String)> {
    let watched = p.spec.queues()?;
    let seen = source.queues_seen().await.ok().flatten()?;
    dyno_scaler::core::check::unseen_queues(&watched, &seen)
}

/// Logs, once, a warning for each process type whose filter names queues its store does not know; in the
/// background, so that a slow listing never delays the first cycle.
fn warn_unknown_queues(s: &Settings, scalers: &[dyno_scaler::core::Scaler]) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (p, sc) in s.processes.iter().zip(scalers) {
        let (p, source) = (p.clone(), sc.source().clone());
        tasks.push(tokio::spawn(async move {
            if let Some((_, warning)) = unknown_queues(&p, &source).await {
                tracing::warn!(process_type = %p.process_type, "{warning}");
            }
        }));
    }
    tasks
}

/// How the event status reads in `check` and `status`: with the poll that backs it up.
fn describe_events(e: &EventStatus, poll: Duration) -> String {
    let poll = humantime::format_duration(poll);
    match e.mode {
        EventMode::Polling => format!("polling every {poll}: {}", e.detail),
        _ => format!("{e}; polling every {poll} as the backstop"),
    }
}

/// A failure the platform will repeat until the configuration changes, with what to check on that platform.
fn fatal_message(s: &Settings, e: &ScalerError) -> String {
    let process = match e {
        ScalerError::Platform { process_type, .. } => s.processes.iter().find(|p| &p.process_type == process_type),
        _ => None,
    };
    match process.map(|p| &p.platform).filter(|c| c.is("kubernetes")).and_then(|c| c.target.as_ref()) {
        Some(target) => format!(
            "{e}\nhint: check that {target} exists in the namespace (DYNO_SCALER_NAMESPACE, DYNO_SCALER_TARGET) and \
             that the service account's Role grants get/patch on its scale and list/patch on pods \
             (deploy/kubernetes/rbac.yaml); `dyno-scaler check` lists what is missing"
        ),
        _ => format!(
            "{e}\nhint: check HEROKU_API_KEY (a token from `heroku authorizations:create`), HEROKU_APP_NAME and the process types in the Procfile"
        ),
    }
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

/// The platforms the process types run on, each once.
fn controller_platforms(c: &Controller) -> Vec<Arc<dyn dyno_scaler::core::Platform>> {
    let mut out: Vec<Arc<dyn dyno_scaler::core::Platform>> = Vec::new();
    for p in c.scalers().iter().map(|s| s.platform()) {
        if !out.iter().any(|o| Arc::ptr_eq(o, p)) {
            out.push(p.clone());
        }
    }
    out
}

/// What a logged decision is compared by: from, to, ready, running, what holds it, its gate.
type LoggedDecision = (u32, u32, u64, u64, Option<String>, Option<&'static str>);

/// Logs cycles: a decision when it changes (or always, with `--once`), a failure once with its repeats summarised.
struct CycleLogger {
    last: HashMap<String, LoggedDecision>,
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
        // A new figure, a new reason to hold (the keep-alive gone and a busy dyno holding now), or a new gate (a
        // shrink that starts a drain) is news.
        let key = (d.from, d.to, t.ready, t.running, d.held_by(), d.gate.as_ref().map(Gate::kind));
        let changed = self.last.get(&rep.process_type) != Some(&key);
        self.last.insert(rep.process_type.clone(), key);
        if always || changed || d.direction() != Direction::Hold {
            tracing::info!(process_type = %rep.process_type, from = d.from, to = d.to, applied = rep.applied, dry_run = rep.dry_run, skipped = rep.snapshot.skipped, draining = ?rep.draining, gate = d.gate.as_ref().map(Gate::kind), reason = %d.reason, "decision");
        } else {
            tracing::debug!(process_type = %rep.process_type, from = d.from, to = d.to, reason = %d.reason, "decision");
        }
    }
}

async fn run(s: &Settings, once: bool, dry_run: bool) -> u8 {
    let scalers = match build::scalers(s, dry_run).await {
        Ok(v) => v,
        Err(e) => {
            crate::cli::logging::error(e);
            return 2;
        }
    };
    tracing::info!(
        process_types = %s.processes.iter().map(|p| format!("{} ({} on {})", p.process_type, p.source, p.platform.name())).collect::<Vec<_>>().join(", "),
        poll_interval_ms = s.poll_interval.as_millis() as u64,
        dry_run,
        "dyno-scaler starting"
    );
    ignore_sighup();
    let warnings = warn_unknown_queues(s, &scalers);
    if once {
        for w in warnings {
            let _ = w.await;
        }
    }
    let controller = Controller::new(scalers, s.poll_interval).with_shutdown_grace(Duration::from_millis(800));
    let mut logger = CycleLogger::new();
    if once {
        let mut results = controller.run_once().await;
        let mut code = 0;
        for r in results.iter_mut().flatten() {
            one_reading(&mut r.decision.reason);
        }
        for r in &results {
            logger.log(r, true);
            if let Err(e) = r {
                if let ScalerError::Platform { source, .. } = e
                    && source.is_fatal()
                {
                    crate::cli::logging::error(fatal_message(s, e));
                }
                code = 1;
            }
        }
        return code;
    }
    let mut watchers = match watch::watch(s, &controller).await {
        Ok(w) => w,
        Err(e) => {
            crate::cli::logging::error(e);
            return 1;
        }
    };
    let platforms = controller_platforms(&controller);
    let observe = |r: &Result<Report, ScalerError>| {
        logger.log(r, false);
        watchers.observe(r);
        for p in &platforms {
            watchers.metrics.observe_platform(p.name(), &p.telemetry());
        }
    };
    let outcome = controller.run_observed(shutdown_signal(), observe).await;
    watchers.finish().await;
    match outcome {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "stopping: the platform rejected the configuration");
            crate::cli::logging::error(fatal_message(s, &e));
            1
        }
    }
}

/// A reason given from a single reading (`run --once`, `status`): where it waits for idle heartbeats, says that one
/// reading can never see them, so only the daemon scales those dynos down.
pub(crate) fn one_reading(reason: &mut String) {
    if reason.contains("not yet seen idle on") {
        reason.push_str(
            "; one reading cannot see the idle heartbeats a scale-down needs: only the daemon (`dyno-scaler run`) \
             scales these dynos down",
        );
    }
}
