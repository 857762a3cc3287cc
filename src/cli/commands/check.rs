//! `dyno-scaler check`.

use dyno_scaler::core::policy::threads::WorkerThreads;
use dyno_scaler::core::secret::redact_url;

use super::super::build;
use super::super::config::{ProcessSettings, Settings};

/// `check`: the configuration, then every source and the platform, each reached once.
pub async fn check(s: &Settings) -> u8 {
    println!("configuration: ok ({} process type(s), poll every {:?})", s.processes.len(), s.poll_interval);
    let mut problems = platform(s).await;
    problems += store(s).await;
    for p in &s.processes {
        problems += source(s, p).await;
    }
    if problems == 0 {
        println!("check passed");
        0
    } else {
        println!("check found {problems} problem(s)");
        1
    }
}

/// The store configured apart from the sources, reached once (a read of the first process type's lease).
async fn store(s: &Settings) -> u32 {
    let Some(settings) = &s.store else { return 0 };
    let label = format!("store: {} at {}", settings.kind(), settings.redacted_url());
    let read = async {
        let store = settings.build()?;
        let pt = s.processes.first().map_or("worker", |p| p.process_type.as_str());
        store.lease(pt).read().await.map_err(|e| super::super::config::ConfigError(e.to_string()))?;
        Ok::<_, super::super::config::ConfigError>(store.remembers())
    };
    match read.await {
        Ok(remembers) => {
            let keeps =
                if remembers { "leases, pauses and learned summaries" } else { "leases only (no learned table)" };
            println!("{label}: ok, keeps {keeps} for every process type");
            0
        }
        Err(e) => {
            println!("{label}: PROBLEM {e}");
            1
        }
    }
}

/// Every platform a process type uses, reached once: Heroku's formation and Kubernetes' targets and rights in
/// detail, any other platform of the registry by reading each of its process types' quantity.
async fn platform(s: &Settings) -> u32 {
    let mut problems = 0;
    for entry in dyno_scaler::settings::platforms() {
        if !s.processes.iter().any(|p| p.platform.is(entry.name)) {
            continue;
        }
        problems += match entry.name {
            #[cfg(feature = "heroku")]
            "heroku" => match build::heroku(s) {
                Ok(h) => heroku(s, &h).await,
                Err(e) => problem(format_args!("platform: PROBLEM {e}")),
            },
            #[cfg(feature = "kubernetes")]
            "kubernetes" => match build::kubernetes(s).await {
                Ok(k) => kubernetes(s, &k).await,
                Err(e) => problem(format_args!("platform: PROBLEM {e}")),
            },
            _ => any_platform(s, &entry).await,
        };
    }
    problems
}

/// Prints a problem; one more.
fn problem(line: std::fmt::Arguments<'_>) -> u32 {
    println!("{line}");
    1
}

/// A platform with no check of its own: built, and each of its process types' quantity read.
async fn any_platform(s: &Settings, entry: &dyno_scaler::settings::PlatformEntry) -> u32 {
    use dyno_scaler::core::PlatformExt;
    let platform = match (entry.build)(s).await {
        Ok(p) => p,
        Err(e) => return problem(format_args!("platform: PROBLEM {e}")),
    };
    let mut problems = 0;
    for p in s.processes.iter().filter(|p| p.platform.is(entry.name)) {
        match platform.current_quantity(&p.process_type).await {
            Ok(n) => println!("platform: {} on {}: ok, {n} running", p.process_type, entry.name),
            Err(e) => problems += problem(format_args!("platform: {} on {}: PROBLEM {e}", p.process_type, entry.name)),
        }
    }
    problems
}

#[cfg(feature = "heroku")]
async fn heroku(s: &Settings, platform: &dyno_scaler::heroku::HerokuPlatform) -> u32 {
    if let Some(h) = &s.heroku {
        println!("platform: Heroku app {} at {}", h.app, redact_url(&h.base_url));
    }
    let mut problems = 0;
    let on_heroku = s.processes.iter().filter(|p| p.platform.is("heroku"));
    match platform.formations().await {
        Ok(list) => {
            let types: Vec<String> = list.iter().map(|f| format!("{}={}", f.process_type, f.quantity)).collect();
            println!("platform: ok, formation {}", types.join(", "));
            for p in on_heroku {
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
    problems
}

/// Each Kubernetes process type's target exists, and the service account holds the rights the platform uses.
#[cfg(feature = "kubernetes")]
async fn kubernetes(s: &Settings, platform: &dyno_scaler::kubernetes::KubernetesPlatform) -> u32 {
    use dyno_scaler::core::PlatformExt;
    println!("platform: Kubernetes namespace {}", platform.namespace());
    let mut problems = 0;
    for p in &s.processes {
        let Some(target) = p.platform.target.as_ref().filter(|_| p.platform.is("kubernetes")) else { continue };
        let label = format!("platform: {} ({target})", p.process_type);
        let replicas = match platform.current_quantity(&p.process_type).await {
            Ok(n) => n,
            Err(e) => {
                problems += 1;
                println!("{label}: PROBLEM {e}");
                if matches!(e, dyno_scaler::core::PlatformError::NotFound { .. }) {
                    println!(
                        "{label}: hint: set DYNO_SCALER_TARGET (TOML target) to the workload's deployment/NAME or \
                         statefulset/NAME, and DYNO_SCALER_NAMESPACE to its namespace"
                    );
                }
                continue;
            }
        };
        match platform.check_access(&p.process_type).await {
            Ok(missing) if missing.is_empty() => {
                println!("{label}: ok, {replicas} replica(s); may get and patch its scale, list and patch its pods")
            }
            Ok(missing) => {
                problems += 1;
                println!(
                    "{label}: PROBLEM the service account may not {}: grant them with the Role in \
                     deploy/kubernetes/rbac.yaml",
                    missing.join(", ")
                );
            }
            Err(e) => {
                problems += 1;
                println!("{label}: PROBLEM {e}");
            }
        }
    }
    problems
}

async fn source(s: &Settings, p: &ProcessSettings) -> u32 {
    let label = format!("{} ({} at {})", p.process_type, p.source, redact_url(p.spec.url().expose()));
    let src = match build::source(s, p) {
        Ok(src) => src,
        Err(e) => {
            println!("{label}: PROBLEM {e}");
            return 1;
        }
    };
    let started = std::time::Instant::now();
    match src.queue.snapshot().await {
        Ok(snap) => {
            let took = started.elapsed();
            let queues: Vec<String> = snap
                .queues
                .iter()
                .map(|(q, st)| format!("{q} (ready {}, running {}, scheduled {})", st.ready, st.running, st.scheduled))
                .collect();
            let queues = if queues.is_empty() { "no queues yet".to_string() } else { queues.join(", ") };
            let workers = snap
                .workers
                .as_ref()
                .map_or("no worker registry".to_string(), |w| format!("{} live worker(s)", w.len()));
            println!("{label}: ok, {queues}; {workers}; {} unreadable entries", snap.skipped);
            if let Some(a) = &p.policy.config().adaptive {
                let threads = WorkerThreads::resolve(
                    snap.threads_per_worker(),
                    a.worker_threads,
                    src.queue.capabilities().worker_threads,
                );
                println!("{label}: threads: {}", threads.describe(src.name()));
            }
            if let Some((_, warning)) = super::unknown_queues(p, &src).await {
                println!("{label}: warning: {warning}");
            }
            if let Some(inspect) = &src.inspect
                && let Some(note) = inspect.advice(took).await
            {
                println!("{label}: note: {note}");
            }
            let events = super::event_status(s, &src).await;
            println!("{label}: events: {}", super::describe_events(&events, s.poll_interval));
            0
        }
        Err(e) => {
            println!("{label}: PROBLEM {e}");
            if let Some(hint) = source_hint(p, &e.to_string()) {
                println!("{label}: hint: {hint}");
            }
            1
        }
    }
}

/// A hint for a source error whose cure is a setting.
fn source_hint(p: &ProcessSettings, error: &str) -> Option<&'static str> {
    let tls = p.spec.url().expose().starts_with("rediss://");
    (tls && error.contains("certificate")).then_some(
        "the Redis server's TLS certificate was not accepted. Heroku's Redis uses self-signed certificates: set \
         DYNO_SCALER_REDIS_TLS_VERIFY=none (TOML redis_tls_verify = \"none\"). For a private CA, name its file in \
         SSL_CERT_FILE instead.",
    )
}
