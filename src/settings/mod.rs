//! The program's settings: command-line flags > environment > TOML file, validated into one [`Settings`]
//! ([`load`]). Every error names the setting and the fix; the program exits 2 on any of them. [`build`] turns them
//! into what the program runs (each process type's [`Source`](crate::core::Source) with its store, the platforms,
//! the [`Scaler`](crate::core::Scaler)s), from the sources' [`registry`]: a library user builds from the same
//! settings as `dyno-scaler run`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use dyno_scaler::settings::{self, Flags};
//! let env = std::env::vars().collect();
//! let settings = settings::load(&Flags::default(), &env, None)?;
//! let scalers = settings::build::scalers(&settings, false).await?;
//! let controller = dyno_scaler::Controller::new(scalers, settings.poll_interval);
//! # let _ = controller; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use crate::core::{Policy, PolicyError, PolicySettings};
#[cfg(feature = "heroku")]
use crate::heroku::HerokuConfig;

use registry::SourceSpec;

pub mod build;
mod file;
mod layers;
mod platform;
pub mod registry;
pub mod store;
mod values;
pub mod watch;

pub use layers::Layers;
pub use platform::{PlatformChoice, PlatformEntry, platforms};
pub use values::parse_duration;
use values::{POLL_INTERVAL, check_process_type, duration_in};

/// A configuration error: exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::error::Error for ConfigError {}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON record a line, with JSON types.
    Json,
}

/// One process type to scale.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// The process type (`type`, `DYNO_SCALER_PROCESS_TYPE`; default `worker`).
    pub process_type: String,
    /// The source's name (`sidekiq`, ...).
    pub source: &'static str,
    /// The source's own settings, checked.
    pub spec: Arc<dyn SourceSpec>,
    /// The policy, validated.
    pub policy: Policy,
    /// Where its workers run (`platform`, `DYNO_SCALER_PLATFORM`; default Heroku).
    pub platform: PlatformChoice,
}

/// Everything the program needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Heroku platform's settings; `None` when no process type runs on Heroku, or for the commands that need
    /// no platform (`keda-scaler`, `pause`, `resume`) when they are missing.
    #[cfg(feature = "heroku")]
    pub heroku: Option<HerokuConfig>,
    /// The Kubernetes namespace (`DYNO_SCALER_NAMESPACE`, `[kubernetes] namespace`); `None`: the in-cluster one or
    /// the kubeconfig context's.
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    pub kubernetes_namespace: Option<String>,
    /// How often each process type's loop reads its queue (`--poll-interval`, `DYNO_SCALER_POLL_INTERVAL`,
    /// `poll_interval`; default 1s).
    pub poll_interval: Duration,
    /// Whether each source's event path runs beside the poll (`DYNO_SCALER_EVENTS`, `events`; default on).
    pub events: bool,
    /// Whether only one instance acts per process type, holding its lease (`DYNO_SCALER_LEASE`, `lease`; default
    /// on), and how long a lease lasts unrenewed (`DYNO_SCALER_LEASE_TTL`, `lease_ttl`; default 15s).
    pub lease: bool,
    /// See `lease`.
    pub lease_ttl: Duration,
    /// Where `run` serves `/metrics` and `/healthz` (`--listen`, `DYNO_SCALER_LISTEN`, `listen`).
    pub listen: Option<std::net::SocketAddr>,
    /// How often `run` logs its figures as l2met lines (`DYNO_SCALER_LOG_METRICS`, `log_metrics`: a duration or
    /// off; default every 60s on Heroku, where `DYNO` is set, else off).
    pub log_metrics: Option<Duration>,
    /// The log format (`--log-format`, `log_format`; default text).
    pub log_format: LogFormat,
    /// A store for every process type's lease, pause and learned summary apart from the sources'
    /// (`DYNO_SCALER_STORE_URL`, `store_url`; `DYNO_SCALER_STORE_TABLE`, `store_table`); `None`: each source's own.
    pub store: Option<crate::settings::store::StoreSettings>,
    /// The dashboard's price and pause token, and the notification webhook.
    pub watch: watch::WatchSettings,
    /// The process types to scale.
    pub processes: Vec<ProcessSettings>,
}

/// Flags that override the environment and the file.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--config PATH`.
    pub config: Option<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
    /// `--poll-interval`.
    pub poll_interval: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// The command needs no platform: Heroku's settings are optional.
    #[cfg_attr(not(feature = "heroku"), allow(dead_code))]
    pub no_platform: bool,
}

/// Reads the environment (a map, so tests can pass their own).
pub type Env = BTreeMap<String, String>;

/// Builds the settings. `file` is the TOML text when a file was given.
pub fn load(flags: &Flags, env: &Env, file: Option<(&str, &str)>) -> Result<Settings, ConfigError> {
    let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
    let file_cfg: file::FileConfig = match file {
        Some((path, text)) => file::parse(path, text)?,
        None => file::FileConfig::default(),
    };
    let (interval_str, interval_setting) =
        match (&flags.poll_interval, get("DYNO_SCALER_POLL_INTERVAL"), &file_cfg.poll_interval) {
            (Some(f), _, _) => (f.clone(), "--poll-interval"),
            (None, Some(e), _) => (e, "DYNO_SCALER_POLL_INTERVAL"),
            (None, None, Some(f)) => (f.clone(), "poll_interval"),
            _ => ("1s".into(), "DYNO_SCALER_POLL_INTERVAL"),
        };
    let poll_interval = duration_in(&interval_str, interval_setting, POLL_INTERVAL)?;
    let events = on_off(get("DYNO_SCALER_EVENTS"), "DYNO_SCALER_EVENTS", file_cfg.events)?.unwrap_or(true);
    let lease = on_off(get("DYNO_SCALER_LEASE"), "DYNO_SCALER_LEASE", file_cfg.lease)?.unwrap_or(true);
    let lease_ttl = match (get("DYNO_SCALER_LEASE_TTL"), &file_cfg.lease_ttl) {
        (Some(v), _) => duration_in(&v, "DYNO_SCALER_LEASE_TTL", LEASE_TTL)?,
        (None, Some(v)) => duration_in(v, "lease_ttl", LEASE_TTL)?,
        (None, None) => crate::core::lease::DEFAULT_TTL,
    };
    let listen = match (&flags.listen, get("DYNO_SCALER_LISTEN"), &file_cfg.listen) {
        (Some(v), _, _) => Some(socket_addr(v, "--listen")?),
        (None, Some(v), _) => Some(socket_addr(&v, "DYNO_SCALER_LISTEN")?),
        (None, None, Some(v)) => Some(socket_addr(v, "listen")?),
        _ => None,
    };
    let log_metrics = match (get("DYNO_SCALER_LOG_METRICS"), &file_cfg.log_metrics) {
        (Some(v), _) => every_or_off(&v, "DYNO_SCALER_LOG_METRICS")?,
        (None, Some(v)) => every_or_off(v, "log_metrics")?,
        (None, None) => get("DYNO").map(|_| Duration::from_secs(60)),
    };
    let store = crate::settings::store::StoreSettings::parse(
        get("DYNO_SCALER_STORE_URL")
            .map(|v| (v, "DYNO_SCALER_STORE_URL"))
            .or(file_cfg.store_url.map(|v| (v, "store_url"))),
        get("DYNO_SCALER_STORE_TABLE")
            .map(|v| (v, "DYNO_SCALER_STORE_TABLE"))
            .or(file_cfg.store_table.map(|v| (v, "store_table"))),
    )?;
    let from = |var: &'static str, file: Option<String>, key: &'static str| {
        get(var).map(|v| (v, var)).or(file.map(|v| (v, key)))
    };
    let watch = watch::WatchSettings::parse(watch::Raw {
        price: from("DYNO_SCALER_PRICE", file_cfg.price.map(|p| p.to_string()), "price"),
        token: from("DYNO_SCALER_DASHBOARD_TOKEN", file_cfg.dashboard_token.clone(), "dashboard_token"),
        url: from("DYNO_SCALER_NOTIFY_URL", file_cfg.notify_url.clone(), "notify_url"),
        after: from("DYNO_SCALER_NOTIFY_AFTER", file_cfg.notify_after.clone(), "notify_after"),
        format: from("DYNO_SCALER_NOTIFY_FORMAT", file_cfg.notify_format.clone(), "notify_format"),
    })?;
    let log_format = match flags.log_format.clone().or(file_cfg.log_format) {
        None => LogFormat::Text,
        Some(f) if f == "text" => LogFormat::Text,
        Some(f) if f == "json" => LogFormat::Json,
        Some(f) => return err(format!("--log-format: unknown format {f:?}; use text or json")),
    };

    // The environment's per-process variables apply to the one process type configured from the environment,
    // or to the file's `[[process]]` when it has exactly one.
    let default_platform = platform::default_platform(get("DYNO_SCALER_PLATFORM"), file_cfg.platform.clone());
    let kubernetes_namespace = platform::namespace(
        get("DYNO_SCALER_NAMESPACE"),
        file_cfg.kubernetes.as_ref().and_then(|k| k.namespace.clone()),
    )?;
    let tables = file_cfg.processes;
    let single = tables.len() <= 1;
    let mut layers: Vec<Layers> = if tables.is_empty() {
        vec![Layers::new(None)]
    } else {
        let path = file.map_or("", |(p, _)| p);
        tables.into_iter().enumerate().map(|(i, t)| Layers::new(Some((path, i, t)))).collect()
    };
    let mut processes = Vec::new();
    for l in &mut layers {
        if single {
            l.apply_env(env);
        }
        processes.push(process(l, env, &default_platform)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &processes {
        if !seen.insert(p.process_type.clone()) {
            return err(format!(
                "[[process]] type {:?} appears twice: each process type can be scaled by one table only",
                p.process_type
            ));
        }
    }
    // Heroku's settings are required where a process type runs on Heroku.
    #[cfg(feature = "heroku")]
    let heroku = match heroku(env, file_cfg.heroku.clone().unwrap_or_default()) {
        Ok(h) => Some(h),
        Err(_) if flags.no_platform || !processes.iter().any(|p| p.platform.is("heroku")) => None,
        Err(e) => return Err(e),
    };
    Ok(Settings {
        #[cfg(feature = "heroku")]
        heroku,
        kubernetes_namespace,
        poll_interval,
        events,
        lease,
        lease_ttl,
        listen,
        log_metrics,
        log_format,
        store,
        watch,
        processes,
    })
}

/// An on/off setting from the environment (`name`) over the file's.
fn on_off(env: Option<String>, name: &str, file: Option<bool>) -> Result<Option<bool>, ConfigError> {
    match env {
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "on" | "yes" => Ok(Some(true)),
            "0" | "false" | "off" | "no" => Ok(Some(false)),
            _ => err(format!("{name}: {v:?} is not on or off; use true or false")),
        },
        None => Ok(file),
    }
}

/// An address to listen on: `HOST:PORT`, or a bare `PORT` for every interface (`$PORT` on Heroku).
fn socket_addr(v: &str, setting: &str) -> Result<std::net::SocketAddr, ConfigError> {
    let v = v.trim();
    let full = if v.bytes().all(|b| b.is_ascii_digit()) { format!("0.0.0.0:{v}") } else { v.to_owned() };
    full.parse().map_err(|_| {
        ConfigError(format!(
            "{setting}: {v:?} is not an address to listen on; write HOST:PORT such as 0.0.0.0:9090, or a port"
        ))
    })
}

/// A period such as `60s`, or `off`.
fn every_or_off(v: &str, setting: &str) -> Result<Option<Duration>, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "off" | "false" | "0" | "no" => Ok(None),
        _ => duration_in(v, setting, (Duration::from_secs(1), Duration::from_secs(3600))).map(Some),
    }
}

/// The accepted lease TTLs.
const LEASE_TTL: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));

/// One process type: the common settings, the policy's (checked by `Policy::new`), then the source's own.
fn process(l: &mut Layers, env: &Env, default_platform: &platform::Named) -> Result<ProcessSettings, ConfigError> {
    let (process_type, pt_origin) = l.take_string("type")?.unwrap_or(("worker".into(), l.origin("type")));
    check_process_type(&process_type, &pt_origin)?;
    let platform = platform::choose(l, default_platform, &process_type)?;
    let entries = registry::sources();
    let names = entries.iter().map(|e| e.name).collect::<Vec<_>>().join(", ");
    let (source_name, source_origin) = l.take_string("source")?.ok_or_else(|| {
        ConfigError(format!("DYNO_SCALER_SOURCE is not set for {}: set it to one of {names}", l.label()))
    })?;
    let entry = entries
        .iter()
        .find(|e| e.is(&source_name))
        .ok_or_else(|| ConfigError(format!("{source_origin}: unknown source {source_name:?}; use one of {names}")))?;
    for (key, var) in entry.env_defaults {
        l.default_from_env(key, var, env);
    }
    if entry.env_defaults.iter().any(|(k, _)| *k == "url") && l.origin("url").contains("(for ") {
        let var = entry.env_defaults.iter().find(|(k, _)| *k == "url").map_or("url", |(_, v)| v);
        return err(format!("{var} is not set: the {} source needs the URL of its queue", entry.name));
    }
    let mut policy_layers = l.split_off(PolicySettings::KEYS);
    let mut policy_settings: PolicySettings = policy_layers.deserialize("the policy")?;
    policy_settings.policy = policy_settings.policy.or(entry.default_policy);
    let policy = policy_settings.into_policy().map_err(|e| policy_error(&policy_layers, &e))?;
    let spec = (entry.parse)(l, entry.name)?;
    Ok(ProcessSettings { process_type, source: entry.name, spec, policy, platform })
}

/// A policy error with each setting it names replaced by where that setting came from.
fn policy_error(l: &Layers, e: &PolicyError) -> ConfigError {
    let mut message = e.to_string();
    for setting in e.settings() {
        let origin = l.origin(setting);
        let origin = origin.split(" (for ").next().unwrap_or(&origin).to_owned();
        message = message.replacen(setting, &origin, 1);
    }
    if !e.settings().iter().any(|s| message.starts_with(&l.origin(s))) {
        message = format!("{}: {message}", l.label());
    }
    ConfigError(message)
}

/// The Heroku platform's settings: `HEROKU_API_KEY`, `HEROKU_APP_NAME`, `HEROKU_API_URL` (the seed's
/// `HEROKU_OAUTH_TOKEN` and `HEROKU_APP` too), over the file's `[heroku]` table; checked by the adapter.
#[cfg(feature = "heroku")]
fn heroku(env: &Env, file: file::FileHeroku) -> Result<HerokuConfig, ConfigError> {
    let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
    let (api_key, key_origin) = match (get("HEROKU_API_KEY"), get("HEROKU_OAUTH_TOKEN")) {
        (Some(k), _) => (k, "HEROKU_API_KEY"),
        (None, Some(k)) => (k, "HEROKU_OAUTH_TOKEN"),
        (None, None) => {
            return err(
                "HEROKU_API_KEY is not set: create a token with `heroku authorizations:create` and set it with `heroku config:set HEROKU_API_KEY=<token>`",
            );
        }
    };
    let (app, app_origin) = match (get("HEROKU_APP_NAME"), get("HEROKU_APP"), file.app) {
        (Some(a), _, _) => (a, "HEROKU_APP_NAME"),
        (None, Some(a), _) => (a, "HEROKU_APP"),
        (None, None, Some(a)) => (a, "[heroku] app"),
        _ => {
            return err(
                "HEROKU_APP_NAME is not set: run `heroku labs:enable runtime-dyno-metadata` or set it to the app's name",
            );
        }
    };
    let (api_url, url_origin) = match (get("HEROKU_API_URL"), file.api_url) {
        (Some(u), _) => (u, "HEROKU_API_URL"),
        (None, Some(u)) => (u, "[heroku] api_url"),
        _ => ("https://api.heroku.com".to_owned(), "HEROKU_API_URL"),
    };
    let mut config = HerokuConfig::new(api_key, app);
    config.base_url = api_url;
    config.validate().map_err(|e| {
        let origin = match e.setting.as_str() {
            "api_key" => key_origin,
            "app" => app_origin,
            _ => url_origin,
        };
        ConfigError(format!("{origin}: {}", e.message))
    })?;
    Ok(config)
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
mod tests;
