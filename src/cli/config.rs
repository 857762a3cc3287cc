//! The program's settings: command-line flags > environment > TOML file, validated into one `Settings`.
//! Every error names the setting and the fix; the program exits 2 on any of them.

use std::collections::BTreeMap;
use std::time::Duration;

use dyno_scaler::core::policy::parse_thresholds;
use dyno_scaler::core::secret::redact_url;
use dyno_scaler::core::{DemandRule, DownMode, Policy, PolicyConfig, Secret};
use dyno_scaler::sidekiq::TlsVerify;
use serde::Deserialize;

/// A configuration error: exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Which queue library a process type's jobs live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Sidekiq,
    Resque,
    DelayedJob,
}

impl SourceKind {
    pub fn parse(s: &str, setting: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "sidekiq" => Ok(Self::Sidekiq),
            "resque" => Ok(Self::Resque),
            "delayed_job" | "delayedjob" => Ok(Self::DelayedJob),
            other => err(format!("{setting}: unknown source {other:?}; use sidekiq, resque or delayed_job")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sidekiq => "sidekiq",
            Self::Resque => "resque",
            Self::DelayedJob => "delayed_job",
        }
    }

    fn url_var(self) -> &'static str {
        match self {
            Self::DelayedJob => "DATABASE_URL",
            _ => "REDIS_URL",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One process type to scale.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    pub process_type: String,
    pub source: SourceKind,
    pub url: Secret,
    pub queues: Option<Vec<String>>,
    pub policy: Policy,
    pub namespace: Option<String>,
    pub table: Option<String>,
    pub max_run_time: Option<Duration>,
    pub min_priority: Option<i32>,
    pub max_priority: Option<i32>,
    pub redis_tls_verify: TlsVerify,
}

/// Everything the program needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_key: Secret,
    pub app: String,
    pub api_url: String,
    pub poll_interval: Duration,
    pub log_format: LogFormat,
    pub processes: Vec<ProcessSettings>,
}

/// The TOML file: the same settings plus several `[[process]]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub heroku: Option<FileHeroku>,
    pub poll_interval: Option<String>,
    pub log_format: Option<String>,
    #[serde(default, rename = "process")]
    pub processes: Vec<FileProcess>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeroku {
    pub app: Option<String>,
    pub api_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProcess {
    #[serde(rename = "type")]
    pub process_type: Option<String>,
    pub source: Option<String>,
    pub url: Option<String>,
    pub queues: Option<Vec<String>>,
    pub min_workers: Option<i64>,
    pub max_workers: Option<i64>,
    pub down_delay: Option<String>,
    pub thresholds: Option<String>,
    pub jobs_per_worker: Option<i64>,
    pub latency_target: Option<String>,
    pub down_mode: Option<String>,
    pub allow_interrupting: Option<bool>,
    pub namespace: Option<String>,
    pub table: Option<String>,
    pub max_run_time: Option<String>,
    pub min_priority: Option<i32>,
    pub max_priority: Option<i32>,
    pub redis_tls_verify: Option<String>,
}

/// Flags that override the environment and the file.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<String>,
    pub log_format: Option<String>,
    pub poll_interval: Option<String>,
}

/// Reads the environment (a map, so tests can pass their own).
pub type Env = BTreeMap<String, String>;

pub fn parse_duration(value: &str, setting: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|_| {
        ConfigError(format!("{setting}: invalid duration {value:?}; write a positive duration such as 5s, 500ms or 2m"))
    })
}

fn parse_count(value: &str, setting: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| ConfigError(format!("{setting}: {value:?} is not a whole number of workers (0 or more)")))
}

fn int_count(value: i64, setting: &str) -> Result<u32, ConfigError> {
    u32::try_from(value)
        .map_err(|_| ConfigError(format!("{setting}: {value} is not a whole number of workers (0 or more)")))
}

fn check_url(url: &str, kind: SourceKind, setting: &str) -> Result<(), ConfigError> {
    let schemes: &[&str] = match kind {
        SourceKind::DelayedJob => &["postgres://", "postgresql://"],
        _ => &["redis://", "rediss://"],
    };
    let host_ok = url.split_once("://").is_some_and(|(_, rest)| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        !host.is_empty() && !host.contains(' ')
    });
    if !schemes.iter().any(|s| url.starts_with(s)) || !host_ok {
        return err(format!(
            "{setting}: malformed URL {}; expected {}host[:port]/...",
            redact_url(url),
            schemes.join(" or ")
        ));
    }
    Ok(())
}

fn list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// What one process is configured with before validation, with the name of where each value came from.
#[derive(Default)]
struct Raw {
    label: String,
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
    namespace: Option<String>,
    table: Option<String>,
    max_run_time: Option<Duration>,
    min_priority: Option<i32>,
    max_priority: Option<i32>,
    redis_tls_verify: Option<(TlsVerify, String)>,
}

fn parse_tls_verify(value: &str, setting: &str) -> Result<(TlsVerify, String), ConfigError> {
    value.parse::<TlsVerify>().map(|v| (v, setting.to_owned())).map_err(|e| ConfigError(format!("{setting}: {e}")))
}

fn from_file(p: &FileProcess, i: usize) -> Result<Raw, ConfigError> {
    let label = format!("[[process]] #{}", i + 1);
    let key = |k: &str| format!("{label} {k}");
    let mut r = Raw { label: label.clone(), ..Raw::default() };
    r.process_type = p.process_type.clone().map(|t| (t, key("type")));
    r.source = p.source.clone().map(|s| (s, key("source")));
    r.url = p.url.clone().map(|u| (u, key("url")));
    r.queues = p.queues.clone();
    if let Some(v) = p.min_workers {
        r.min = Some((int_count(v, &key("min_workers"))?, key("min_workers")));
    }
    if let Some(v) = p.max_workers {
        r.max = Some((int_count(v, &key("max_workers"))?, key("max_workers")));
    }
    if let Some(v) = &p.down_delay {
        r.down_delay = Some(parse_duration(v, &key("down_delay"))?);
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
        r.latency_target = Some(parse_duration(v, &key("latency_target"))?);
    }
    if let Some(v) = &p.down_mode {
        r.down_mode = Some(match v.as_str() {
            "gradual" => DownMode::Gradual,
            "idle" => DownMode::Idle,
            other => return err(format!("{}: unknown mode {other:?}; use gradual or idle", key("down_mode"))),
        });
    }
    r.allow_interrupting = p.allow_interrupting.unwrap_or(false);
    r.namespace = p.namespace.clone();
    r.table = p.table.clone();
    if let Some(v) = &p.max_run_time {
        r.max_run_time = Some(parse_duration(v, &key("max_run_time"))?);
    }
    r.min_priority = p.min_priority;
    r.max_priority = p.max_priority;
    if let Some(v) = &p.redis_tls_verify {
        r.redis_tls_verify = Some(parse_tls_verify(v, &key("redis_tls_verify"))?);
    }
    Ok(r)
}

fn apply_env(r: &mut Raw, env: &Env) -> Result<(), ConfigError> {
    let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
    if let Some(v) = get("DYNO_SCALER_PROCESS_TYPE") {
        r.process_type = Some((v, "DYNO_SCALER_PROCESS_TYPE".into()));
    }
    if let Some(v) = get("DYNO_SCALER_SOURCE") {
        r.source = Some((v, "DYNO_SCALER_SOURCE".into()));
    }
    if let Some(v) = get("DYNO_SCALER_QUEUES") {
        r.queues = Some(list(&v));
    }
    if let Some(v) = get("DYNO_SCALER_MIN_WORKERS") {
        r.min = Some((parse_count(&v, "DYNO_SCALER_MIN_WORKERS")?, "DYNO_SCALER_MIN_WORKERS".into()));
    }
    if let Some(v) = get("DYNO_SCALER_MAX_WORKERS") {
        r.max = Some((parse_count(&v, "DYNO_SCALER_MAX_WORKERS")?, "DYNO_SCALER_MAX_WORKERS".into()));
    }
    if let Some(v) = get("DYNO_SCALER_DOWN_DELAY") {
        r.down_delay = Some(parse_duration(&v, "DYNO_SCALER_DOWN_DELAY")?);
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
        r.latency_target = Some(parse_duration(&v, "DYNO_SCALER_LATENCY_TARGET")?);
    }
    Ok(())
}

fn finish(r: Raw, env: &Env) -> Result<ProcessSettings, ConfigError> {
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
    let redis_tls_verify = match (r.redis_tls_verify, env.get("DYNO_SCALER_REDIS_TLS_VERIFY")) {
        (Some((v, _)), _) => v,
        (None, Some(v)) if !v.trim().is_empty() => parse_tls_verify(v, "DYNO_SCALER_REDIS_TLS_VERIFY")?.0,
        _ => TlsVerify::Full,
    };
    let (process_type, pt_setting) = r.process_type.unwrap_or(("worker".into(), "DYNO_SCALER_PROCESS_TYPE".into()));
    if process_type.is_empty()
        || process_type.len() > 128
        || !process_type.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return err(format!("{pt_setting}: {process_type:?} is not a process type name (letters, digits, - and _)"));
    }
    let (min, min_setting) = r.min.unwrap_or((0, "DYNO_SCALER_MIN_WORKERS".into()));
    let (max, max_setting) = r.max.unwrap_or((1, "DYNO_SCALER_MAX_WORKERS".into()));
    if min > max {
        return err(format!(
            "{min_setting} ({min}) is greater than {max_setting} ({max}): lower the minimum or raise the maximum"
        ));
    }
    let mut rules = Vec::new();
    if let Some(t) = r.thresholds {
        rules.push(DemandRule::Thresholds(t));
    }
    if let Some(n) = r.jobs_per_worker {
        rules.push(DemandRule::JobsPerWorker(n));
    }
    if let Some(d) = r.latency_target {
        if d.is_zero() {
            return err("latency_target: must be greater than zero");
        }
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
        queues: r.queues.filter(|q| !q.is_empty()),
        policy,
        namespace: r.namespace,
        table: r.table,
        max_run_time: r.max_run_time,
        min_priority: r.min_priority,
        max_priority: r.max_priority,
        redis_tls_verify,
    })
}

/// Builds the settings. `file` is the TOML text when a file was given.
pub fn load(flags: &Flags, env: &Env, file: Option<(&str, &str)>) -> Result<Settings, ConfigError> {
    let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
    let file_cfg: FileConfig = match file {
        Some((path, text)) => toml::from_str(text).map_err(|e| {
            let msg = e.message().to_owned();
            ConfigError(format!("{path}: {msg}; see dyno-scaler.example.toml for the accepted settings"))
        })?,
        None => FileConfig::default(),
    };
    let heroku = file_cfg.heroku.unwrap_or_default();
    let api_key = get("HEROKU_API_KEY").or_else(|| get("HEROKU_OAUTH_TOKEN")).ok_or_else(|| {
        ConfigError("HEROKU_API_KEY is not set: create a token with `heroku authorizations:create` and set it with `heroku config:set HEROKU_API_KEY=<token>`".into())
    })?;
    let app = get("HEROKU_APP_NAME").or_else(|| get("HEROKU_APP")).or(heroku.app).ok_or_else(|| {
        ConfigError(
            "HEROKU_APP_NAME is not set: run `heroku labs:enable runtime-dyno-metadata` or set it to the app's name"
                .into(),
        )
    })?;
    let api_url = get("HEROKU_API_URL").or(heroku.api_url).unwrap_or_else(|| "https://api.heroku.com".into());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return err(format!("HEROKU_API_URL: malformed URL {}; expected https://host", redact_url(&api_url)));
    }
    let (interval_str, interval_setting) =
        match (&flags.poll_interval, get("DYNO_SCALER_POLL_INTERVAL"), &file_cfg.poll_interval) {
            (Some(f), _, _) => (f.clone(), "--poll-interval"),
            (None, Some(e), _) => (e, "DYNO_SCALER_POLL_INTERVAL"),
            (None, None, Some(f)) => (f.clone(), "poll_interval"),
            _ => ("5s".into(), "DYNO_SCALER_POLL_INTERVAL"),
        };
    let poll_interval = parse_duration(&interval_str, interval_setting)?;
    if poll_interval < Duration::from_millis(100) {
        return err(format!("{interval_setting}: {interval_str:?} is too short; use 100ms or more (default 5s)"));
    }
    let log_format = match flags.log_format.clone().or(file_cfg.log_format) {
        None => LogFormat::Text,
        Some(f) if f == "text" => LogFormat::Text,
        Some(f) if f == "json" => LogFormat::Json,
        Some(f) => return err(format!("--log-format: unknown format {f:?}; use text or json")),
    };

    let mut raws = Vec::new();
    if file_cfg.processes.is_empty() {
        let mut r = Raw { label: "the environment".into(), ..Raw::default() };
        apply_env(&mut r, env)?;
        raws.push(r);
    } else {
        let single = file_cfg.processes.len() == 1;
        for (i, p) in file_cfg.processes.iter().enumerate() {
            let mut r = from_file(p, i)?;
            if single {
                apply_env(&mut r, env)?;
            }
            raws.push(r);
        }
    }
    let processes = raws.into_iter().map(|r| finish(r, env)).collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    for p in &processes {
        if !seen.insert(p.process_type.clone()) {
            return err(format!(
                "[[process]] type {:?} appears twice: each process type can be scaled by one table only",
                p.process_type
            ));
        }
    }
    Ok(Settings { api_key: Secret::new(api_key), app, api_url, poll_interval, log_format, processes })
}

/// Loads a file's (or the environment's) policies for the simulator: the platform key, the app and the queue
/// URLs are not needed there, so placeholders stand in for them when absent.
pub fn load_for_simulation(flags: &Flags, env: &Env, file: Option<(&str, &str)>) -> Result<Settings, ConfigError> {
    let mut env = env.clone();
    for (k, v) in [
        ("HEROKU_API_KEY", "simulation"),
        ("HEROKU_APP_NAME", "simulation"),
        ("DYNO_SCALER_SOURCE", "sidekiq"),
        ("REDIS_URL", "redis://simulation"),
        ("DATABASE_URL", "postgres://simulation/db"),
    ] {
        env.entry(k.to_owned()).or_insert_with(|| v.to_owned());
    }
    load(flags, &env, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("HEROKU_API_KEY", "k"),
            ("HEROKU_APP_NAME", "my-app"),
            ("DYNO_SCALER_SOURCE", "sidekiq"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ]
    }

    #[test]
    fn seed_promise_four_variables() {
        let s = load(&Flags::default(), &env(&base()), None).unwrap();
        assert_eq!(s.processes.len(), 1);
        let p = &s.processes[0];
        assert_eq!((p.process_type.as_str(), p.source), ("worker", SourceKind::Sidekiq));
        assert_eq!((p.policy.config().min_workers, p.policy.config().max_workers), (0, 1));
        assert_eq!(p.policy.config().rules, vec![DemandRule::seed_thresholds()]);
        assert_eq!(s.poll_interval, Duration::from_secs(5));
    }

    #[test]
    fn seed_variable_names_are_accepted() {
        let e = env(&[
            ("HEROKU_OAUTH_TOKEN", "k"),
            ("HEROKU_APP", "a"),
            ("DYNO_SCALER_SOURCE", "resque"),
            ("REDIS_URL", "redis://h"),
        ]);
        let s = load(&Flags::default(), &e, None).unwrap();
        assert_eq!(s.app, "a");
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = "poll_interval = \"10s\"\n";
        let mut e = env(&base());
        let s = load(&Flags::default(), &e, Some(("f.toml", file))).unwrap();
        assert_eq!(s.poll_interval, Duration::from_secs(10));
        e.insert("DYNO_SCALER_POLL_INTERVAL".into(), "2s".into());
        assert_eq!(load(&Flags::default(), &e, Some(("f.toml", file))).unwrap().poll_interval, Duration::from_secs(2));
        let flags = Flags { poll_interval: Some("500ms".into()), ..Flags::default() };
        assert_eq!(load(&flags, &e, Some(("f.toml", file))).unwrap().poll_interval, Duration::from_millis(500));
    }

    #[test]
    fn errors_name_the_setting() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("DYNO_SCALER_SOURCE", "kafka")], "DYNO_SCALER_SOURCE"),
            (
                vec![("DYNO_SCALER_MIN_WORKERS", "3")],
                "DYNO_SCALER_MIN_WORKERS (3) is greater than DYNO_SCALER_MAX_WORKERS (1)",
            ),
            (vec![("DYNO_SCALER_POLL_INTERVAL", "0s")], "DYNO_SCALER_POLL_INTERVAL"),
            (vec![("DYNO_SCALER_POLL_INTERVAL", "-5s")], "DYNO_SCALER_POLL_INTERVAL"),
            (vec![("REDIS_URL", "localhost:6379")], "REDIS_URL"),
            (vec![("DYNO_SCALER_THRESHOLDS", "25:2,1:1")], "DYNO_SCALER_THRESHOLDS"),
            (vec![("DYNO_SCALER_MAX_WORKERS", "-1")], "DYNO_SCALER_MAX_WORKERS"),
        ];
        for (overrides, want) in cases {
            let mut e = env(&base());
            for (k, v) in overrides {
                e.insert(k.into(), v.into());
            }
            let msg = load(&Flags::default(), &e, None).unwrap_err().0;
            assert!(msg.contains(want), "{msg:?} should name {want}");
        }
        let mut e = env(&base());
        e.remove("HEROKU_API_KEY");
        assert!(load(&Flags::default(), &e, None).unwrap_err().0.starts_with("HEROKU_API_KEY is not set"));
        let msg =
            load(&Flags::default(), &env(&base()), Some(("x.toml", "[[process]]\ntype = \"worker\"\nbogus = 1\n")))
                .unwrap_err()
                .0;
        assert!(msg.contains("x.toml") && msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn url_passwords_are_redacted_in_errors() {
        let mut e = env(&base());
        e.insert("REDIS_URL".into(), "http://:hunter2@host".into());
        let msg = load(&Flags::default(), &e, None).unwrap_err().0;
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn several_process_types_from_a_file() {
        let file = r#"
[[process]]
type = "worker"
source = "sidekiq"
queues = ["default", "mailers"]
max_workers = 5
jobs_per_worker = 10

[[process]]
type = "dj_worker"
source = "delayed_job"
url = "postgres://app@db/app"
max_workers = 2
down_mode = "idle"
"#;
        let s = load(&Flags::default(), &env(&base()), Some(("f.toml", file))).unwrap();
        assert_eq!(s.processes.len(), 2);
        assert_eq!(s.processes[0].queues, Some(vec!["default".to_string(), "mailers".to_string()]));
        assert_eq!(s.processes[0].url.expose(), "redis://127.0.0.1:6379", "REDIS_URL is the default URL");
        assert_eq!(s.processes[1].source, SourceKind::DelayedJob);
        assert_eq!(s.processes[1].policy.config().down_mode, DownMode::Idle);
    }
}
