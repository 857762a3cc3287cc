//! The program's settings: command-line flags > environment > TOML file, validated into one `Settings`.
//! Every error names the setting and the fix; the program exits 2 on any of them.

use std::collections::BTreeMap;
use std::time::Duration;

use dyno_scaler::core::{Policy, Secret};
use dyno_scaler::sidekiq::TlsVerify;

mod file;
mod process;
mod values;

pub use values::parse_duration;
use values::{POLL_INTERVAL, check_api_url, check_token, duration_in};

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

/// Flags that override the environment and the file.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<String>,
    pub log_format: Option<String>,
    pub poll_interval: Option<String>,
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
    let heroku = file_cfg.heroku.unwrap_or_default();
    let (api_key, key_setting) = match (get("HEROKU_API_KEY"), get("HEROKU_OAUTH_TOKEN")) {
        (Some(k), _) => (k, "HEROKU_API_KEY"),
        (None, Some(k)) => (k, "HEROKU_OAUTH_TOKEN"),
        (None, None) => {
            return err(
                "HEROKU_API_KEY is not set: create a token with `heroku authorizations:create` and set it with `heroku config:set HEROKU_API_KEY=<token>`",
            );
        }
    };
    check_token(&api_key, key_setting)?;
    let app = get("HEROKU_APP_NAME").or_else(|| get("HEROKU_APP")).or(heroku.app).ok_or_else(|| {
        ConfigError(
            "HEROKU_APP_NAME is not set: run `heroku labs:enable runtime-dyno-metadata` or set it to the app's name"
                .into(),
        )
    })?;
    let api_url = get("HEROKU_API_URL").or(heroku.api_url).unwrap_or_else(|| "https://api.heroku.com".into());
    check_api_url(&api_url, "HEROKU_API_URL")?;
    let (interval_str, interval_setting) =
        match (&flags.poll_interval, get("DYNO_SCALER_POLL_INTERVAL"), &file_cfg.poll_interval) {
            (Some(f), _, _) => (f.clone(), "--poll-interval"),
            (None, Some(e), _) => (e, "DYNO_SCALER_POLL_INTERVAL"),
            (None, None, Some(f)) => (f.clone(), "poll_interval"),
            _ => ("5s".into(), "DYNO_SCALER_POLL_INTERVAL"),
        };
    let poll_interval = duration_in(&interval_str, interval_setting, POLL_INTERVAL)?;
    let log_format = match flags.log_format.clone().or(file_cfg.log_format) {
        None => LogFormat::Text,
        Some(f) if f == "text" => LogFormat::Text,
        Some(f) if f == "json" => LogFormat::Json,
        Some(f) => return err(format!("--log-format: unknown format {f:?}; use text or json")),
    };

    let mut raws = Vec::new();
    if file_cfg.processes.is_empty() {
        let mut r = process::Raw::named("the environment");
        process::apply_env(&mut r, env)?;
        raws.push(r);
    } else {
        let single = file_cfg.processes.len() == 1;
        for (i, p) in file_cfg.processes.iter().enumerate() {
            let mut r = process::from_file(p, i)?;
            if single {
                process::apply_env(&mut r, env)?;
            }
            raws.push(r);
        }
    }
    let processes = raws.into_iter().map(|r| process::finish(r, env)).collect::<Result<Vec<_>, _>>()?;
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
mod tests;
