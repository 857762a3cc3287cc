//! One process type's settings: gathered from the file and the environment with the name of each value's
//! origin, then checked together (what applies to which source, bounds, the policy through `Policy::new`).

use std::time::Duration;

use dyno_scaler::core::policy::parse_thresholds;
use dyno_scaler::core::{DemandRule, DownMode, Policy, PolicyConfig, Secret};
use dyno_scaler::sidekiq::TlsVerify;

use super::file::FileProcess;
use super::values::{
    DOWN_DELAY, LATENCY_TARGET, MAX_RUN_TIME, check_process_type, check_url, duration_in, int_count, names,
    parse_count, queue_names,
};
use super::{ConfigError, Env, ProcessSettings, SourceKind, err};

/// What one process is configured with before validation, with the name of where each value came from.
#[derive(Default)]
pub(super) struct Raw {
    pub(super) label: String,
    process_type: Option<(String, String)>,
    source: Option<(String, String)>,
    url: Option<(String, String)>,
    queues: Option<Vec<String>>,
    min: Option<(u32, String)>,
    max: Option<(u32, String)>,
    down_delay: Option<Duration>,
    thresholds: Option<Vec<(u64, u32)>>,
    jobs_per_worker: Option<u64>,
    latency_target: Option<Duration>,
    down_mode: Option<DownMode>,
    allow_interrupting: bool,
    namespace: Option<(String, String)>,
    table: Option<(String, String)>,
    max_run_time: Option<(Duration, String)>,
    min_priority: Option<(i32, String)>,
    max_priority: Option<(i32, String)>,
    redis_tls_verify: Option<(TlsVerify, String)>,
}

fn parse_tls_verify(value: &str, setting: &str) -> Result<(TlsVerify, String), ConfigError> {
    value.parse::<TlsVerify>().map(|v| (v, setting.to_owned())).map_err(|e| ConfigError(format!("{setting}: {e}")))
}

impl Raw {
    /// An empty set of settings named `label` in errors.
    pub(super) fn named(label: &str) -> Self {
        Self { label: label.to_owned(), ..Self::default() }
    }
}

pub(super) fn from_file(p: &FileProcess, i: usize) -> Result<Raw, ConfigError> {
    let label = format!("[[process]] #{}", i + 1);
    let key = |k: &str| format!("{label} {k}");
    let mut r = Raw { label: label.clone(), ..Raw::default() };
    r.process_type = p.process_type.clone().map(|t| (t, key("type")));
    r.source = p.source.clone().map(|s| (s, key("source")));
    r.url = p.url.clone().map(|u| (u, key("url")));
    if let Some(q) = &p.queues {
        r.queues = Some(queue_names(q, &key("queues"))?);
    }
    if let Some(v) = p.min_workers {
        r.min = Some((int_count(v, &key("min_workers"))?, key("min_workers")));
    }
    if let Some(v) = p.max_workers {
        r.max = Some((int_count(v, &key("max_workers"))?, key("max_workers")));
    }
    if let Some(v) = &p.down_delay {
        r.down_delay = Some(duration_in(v, &key("down_delay"), DOWN_DELAY)?);
    }
    if let Some(v) = &p.thresholds {
        r.thresholds = Some(parse_thresholds(v).map_err(|e| ConfigError(format!("{}: {e}", key("thresholds"))))?);
    }
    if let Some(v) = p.jobs_per_worker {
        if v < 1 {
            return err(format!("{}: must be at least 1 (got {v})", key("jobs_per_worker")));
        }
        r.jobs_per_worker = Some(v as u64);
    }
    if let Some(v) = &p.latency_target {
        r.latency_target = Some(duration_in(v, &key("latency_target"), LATENCY_TARGET)?);
    }
    if let Some(v) = &p.down_mode {
        r.down_mode = Some(match v.as_str() {
            "gradual" => DownMode::Gradual,
            "idle" => DownMode::Idle,
            other => return err(format!("{}: unknown mode {other:?}; use gradual or idle", key("down_mode"))),
        });
    }
    r.allow_interrupting = p.allow_interrupting.unwrap_or(false);
    r.namespace = p.namespace.clone().map(|v| (v, key("namespace")));
    r.table = p.table.clone().map(|v| (v, key("table")));
    if let Some(v) = &p.max_run_time {
        r.max_run_time = Some((duration_in(v, &key("max_run_time"), MAX_RUN_TIME)?, key("max_run_time")));
    }
    r.min_priority = p.min_priority.map(|v| (v, key("min_priority")));
    r.max_priority = p.max_priority.map(|v| (v, key("max_priority")));
    if let Some(v) = &p.redis_tls_verify {
        r.redis_tls_verify = Some(parse_tls_verify(v, &key("redis_tls_verify"))?);
    }
    Ok(r)
}

pub(super) fn apply_env(r: &mut Raw, env: &Env) -> Result<(), ConfigError> {
    let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
    if let Some(v) = get("DYNO_SCALER_PROCESS_TYPE") {
        r.process_type = Some((v, "DYNO_SCALER_PROCESS_TYPE".into()));
    }
    if let Some(v) = get("DYNO_SCALER_SOURCE") {
        r.source = Some((v, "DYNO_SCALER_SOURCE".into()));
    }
    if let Some(v) = get("DYNO_SCALER_QUEUES") {
        r.queues = Some(names(&v, "DYNO_SCALER_QUEUES")?);
    }
    if let Some(v) = get("DYNO_SCALER_MIN_WORKERS") {
        r.min = Some((parse_count(&v, "DYNO_SCALER_MIN_WORKERS")?, "DYNO_SCALER_MIN_WORKERS".into()));
    }
    if let Some(v) = get("DYNO_SCALER_MAX_WORKERS") {
        r.max = Some((parse_count(&v, "DYNO_SCALER_MAX_WORKERS")?, "DYNO_SCALER_MAX_WORKERS".into()));
    }
    if let Some(v) = get("DYNO_SCALER_DOWN_DELAY") {
        r.down_delay = Some(duration_in(&v, "DYNO_SCALER_DOWN_DELAY", DOWN_DELAY)?);
    }
    if let Some(v) = get("DYNO_SCALER_THRESHOLDS") {
        r.thresholds = Some(parse_thresholds(&v).map_err(|e| ConfigError(format!("DYNO_SCALER_THRESHOLDS: {e}")))?);
    }
    if let Some(v) = get("DYNO_SCALER_JOBS_PER_WORKER") {
        let n = v.trim().parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ConfigError(format!("DYNO_SCALER_JOBS_PER_WORKER: {v:?} must be a whole number of at least 1"))
        })?;
        r.jobs_per_worker = Some(n);
    }
    if let Some(v) = get("DYNO_SCALER_LATENCY_TARGET") {
        r.latency_target = Some(duration_in(&v, "DYNO_SCALER_LATENCY_TARGET", LATENCY_TARGET)?);
    }
    Ok(())
}

pub(super) fn finish(r: Raw, env: &Env) -> Result<ProcessSettings, ConfigError> {
    let (source_str, source_setting) = r.source.ok_or_else(|| {
        ConfigError(format!("DYNO_SCALER_SOURCE is not set for {}: set it to sidekiq, resque or delayed_job", r.label))
    })?;
    let source = SourceKind::parse(&source_str, &source_setting)?;
    let (url, url_setting) = match r.url {
        Some(u) => u,
        None => {
            let var = source.url_var();
            let v = env.get(var).filter(|v| !v.trim().is_empty()).cloned().ok_or_else(|| {
                ConfigError(format!(
                    "{var} is not set: the {} source needs the URL of its {}",
                    source.name(),
                    if var == "DATABASE_URL" { "Postgres database" } else { "Redis" }
                ))
            })?;
            (v, var.to_owned())
        }
    };
    check_url(&url, source, &url_setting)?;
    let redis_tls_verify = match (&r.redis_tls_verify, env.get("DYNO_SCALER_REDIS_TLS_VERIFY")) {
        (Some((v, _)), _) => *v,
        (None, Some(v)) if !v.trim().is_empty() => parse_tls_verify(v, "DYNO_SCALER_REDIS_TLS_VERIFY")?.0,
        _ => TlsVerify::Full,
    };
    let (process_type, pt_setting) = r.process_type.unwrap_or(("worker".into(), "DYNO_SCALER_PROCESS_TYPE".into()));
    check_process_type(&process_type, &pt_setting)?;
    let (min, min_setting) = r.min.unwrap_or((0, "DYNO_SCALER_MIN_WORKERS".into()));
    let (max, max_setting) = r.max.unwrap_or((1, "DYNO_SCALER_MAX_WORKERS".into()));
    if max == 0 {
        return err(format!(
            "{max_setting} is 0: {process_type} could never run a worker; set 1 or more (to stop scaling it, \
             remove it from the configuration)"
        ));
    }
    if min > max {
        return err(format!(
            "{min_setting} ({min}) is greater than {max_setting} ({max}): lower the minimum or raise the maximum"
        ));
    }
    check_applies(
        source,
        &r.namespace,
        &r.table,
        &r.max_run_time,
        &r.min_priority,
        &r.max_priority,
        &r.redis_tls_verify,
    )?;
    for (value, setting) in r.namespace.iter().chain(&r.table) {
        if value.trim().is_empty() {
            return err(format!("{setting}: empty; omit it for the default"));
        }
    }
    if let (Some((lo, lo_setting)), Some((hi, hi_setting))) = (&r.min_priority, &r.max_priority)
        && lo > hi
    {
        return err(format!("{lo_setting} ({lo}) is greater than {hi_setting} ({hi}): no job could match"));
    }
    let mut rules = Vec::new();
    if let Some(t) = r.thresholds {
        rules.push(DemandRule::Thresholds(t));
    }
    if let Some(n) = r.jobs_per_worker {
        rules.push(DemandRule::JobsPerWorker(n));
    }
    if let Some(d) = r.latency_target {
        rules.push(DemandRule::LatencyTarget(d));
    }
    if rules.is_empty() {
        rules.push(DemandRule::seed_thresholds());
    }
    let policy = Policy::new(PolicyConfig {
        min_workers: min,
        max_workers: max,
        rules,
        down_delay: r.down_delay.unwrap_or(Duration::from_secs(30)),
        down_mode: r.down_mode.unwrap_or_default(),
        allow_interrupting: r.allow_interrupting,
        ..PolicyConfig::default()
    })
    .map_err(|e| ConfigError(format!("{}: {e}", r.label)))?;
    Ok(ProcessSettings {
        process_type,
        source,
        url: Secret::new(url),
        queues: r.queues,
        policy,
        namespace: r.namespace.map(|v| v.0),
        table: r.table.map(|v| v.0),
        max_run_time: r.max_run_time.map(|v| v.0),
        min_priority: r.min_priority.map(|v| v.0),
        max_priority: r.max_priority.map(|v| v.0),
        redis_tls_verify,
    })
}

/// Settings of one source given to another are a mistake, not something to ignore.
fn check_applies(
    source: SourceKind,
    namespace: &Option<(String, String)>,
    table: &Option<(String, String)>,
    max_run_time: &Option<(Duration, String)>,
    min_priority: &Option<(i32, String)>,
    max_priority: &Option<(i32, String)>,
    tls: &Option<(TlsVerify, String)>,
) -> Result<(), ConfigError> {
    let redis_only = [namespace.as_ref().map(|v| &v.1), tls.as_ref().map(|v| &v.1)];
    let postgres_only = [
        table.as_ref().map(|v| &v.1),
        max_run_time.as_ref().map(|v| &v.1),
        min_priority.as_ref().map(|v| &v.1),
        max_priority.as_ref().map(|v| &v.1),
    ];
    let misplaced = match source {
        SourceKind::DelayedJob => redis_only.into_iter().flatten().next(),
        SourceKind::Sidekiq | SourceKind::Resque => postgres_only.into_iter().flatten().next(),
    };
    match misplaced {
        Some(setting) => err(format!("{setting}: does not apply to the {} source; remove it", source.name())),
        None => Ok(()),
    }
}
