//! One process type's settings as layers: the file's `[[process]]` table, then the environment, each value
//! remembering where it came from, so an error names `DYNO_SCALER_MAX_WORKERS` or `[[process]] #2 max_workers`
//! rather than a field. Typed by the owners' own `serde` structs (the policy's, each adapter's).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::{ConfigError, Env};
use crate::settings::file::hide_values;

/// Environment variables that are not per-process settings.
const GLOBAL: &[&str] = &[
    "DYNO_SCALER_CONFIG",
    "DYNO_SCALER_POLL_INTERVAL",
    "DYNO_SCALER_EVENTS",
    "DYNO_SCALER_LEASE",
    "DYNO_SCALER_LEASE_TTL",
    "DYNO_SCALER_LOG_METRICS",
    "DYNO_SCALER_STORE_URL",
    "DYNO_SCALER_STORE_TABLE",
    // Applies to every Redis process type (an env default of those sources).
    "DYNO_SCALER_REDIS_TLS_VERIFY",
    // The Kubernetes namespace (a Redis namespace is set in the file's `namespace`), the platform of the process
    // types that name none, and the metrics listener: not per-process settings.
    "DYNO_SCALER_NAMESPACE",
    "DYNO_SCALER_PLATFORM",
    "DYNO_SCALER_LISTEN",
    // The dashboard's and the notifications' (settings::watch).
    "DYNO_SCALER_PRICE",
    "DYNO_SCALER_DASHBOARD_TOKEN",
    "DYNO_SCALER_NOTIFY_URL",
    "DYNO_SCALER_NOTIFY_AFTER",
    "DYNO_SCALER_NOTIFY_FORMAT",
];

/// Variables of the test harness, never settings.
const IGNORED_PREFIX: &str = "DYNO_SCALER_TEST_";

/// Keys whose environment variable is not `DYNO_SCALER_<KEY>`.
const RENAMED: &[(&str, &str)] = &[("DYNO_SCALER_PROCESS_TYPE", "type")];

/// A process type's settings with their origins.
#[derive(Debug, Clone)]
pub struct Layers {
    values: Table,
    origins: BTreeMap<String, String>,
    /// Names `key` when it came from nowhere (a default).
    label: String,
}

impl Layers {
    /// The `[[process]]` table number `index` (0-based) of the file at `path`, or nothing (the environment).
    pub fn new(file: Option<(&str, usize, Table)>) -> Self {
        match file {
            Some((path, i, values)) => {
                let label = format!("{path} [[process]] #{}", i + 1);
                let origins = values.keys().map(|k| (k.clone(), format!("{label} {k}"))).collect();
                Self { values, origins, label }
            }
            None => Self { values: Table::new(), origins: BTreeMap::new(), label: "the environment".into() },
        }
    }

    /// Every `DYNO_SCALER_<KEY>` variable of the environment over the file's values.
    pub fn apply_env(&mut self, env: &Env) {
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("DYNO_SCALER_") else { continue };
            if GLOBAL.contains(&var.as_str()) || var.starts_with(IGNORED_PREFIX) || value.trim().is_empty() {
                continue;
            }
            let key = RENAMED
                .iter()
                .find(|(v, _)| v == var)
                .map_or_else(|| rest.to_ascii_lowercase(), |(_, k)| k.to_string());
            self.set(&key, Value::String(value.clone()), var);
        }
    }

    /// `key` from the variable `var` when no layer set it (`REDIS_URL` for `url`, ...).
    pub fn default_from_env(&mut self, key: &str, var: &str, env: &Env) {
        if !self.values.contains_key(key)
            && let Some(v) = env.get(var).filter(|v| !v.trim().is_empty())
        {
            self.set(key, Value::String(v.clone()), var);
        }
    }

    fn set(&mut self, key: &str, value: Value, origin: &str) {
        self.values.insert(key.to_owned(), value);
        self.origins.insert(key.to_owned(), origin.to_owned());
    }

    /// Where `key` came from, or the variable that would set it.
    pub fn origin(&self, key: &str) -> String {
        self.origins.get(key).cloned().unwrap_or_else(|| {
            let var = RENAMED
                .iter()
                .find(|(_, k)| *k == key)
                .map_or_else(|| format!("DYNO_SCALER_{}", key.to_ascii_uppercase()), |(v, _)| v.to_string());
            format!("{var} (for {})", self.label)
        })
    }

    /// What names this process in errors about it as a whole.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A string setting, removed from the layers.
    pub fn take_string(&mut self, key: &str) -> Result<Option<(String, String)>, ConfigError> {
        let origin = self.origin(key);
        match self.values.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some((s, origin))),
            Some(other) => Err(ConfigError(format!("{origin}: expected a string, found {}", other.type_str()))),
        }
    }

    /// The keys of `keys` that are set, removed from the layers.
    pub fn split_off(&mut self, keys: &[&str]) -> Layers {
        let mut part = Layers { values: Table::new(), origins: BTreeMap::new(), label: self.label.clone() };
        for key in keys {
            if let Some(v) = self.values.remove(*key) {
                part.values.insert((*key).to_owned(), v);
                if let Some(o) = self.origins.get(*key) {
                    part.origins.insert((*key).to_owned(), o.clone());
                }
            }
        }
        part
    }

    /// The layers typed as `T` (its `serde` rules and names). A value from the environment is text: where `T`
    /// wants a number, a boolean or a list, the text is read as one (`"5"`, `"true"`, `"a,b"`).
    pub fn deserialize<T: DeserializeOwned>(&mut self, what: &str) -> Result<T, ConfigError> {
        for _ in 0..=self.values.len() {
            let error = match self.values.clone().try_into::<T>() {
                Ok(v) => return Ok(v),
                Err(e) => e.to_string(),
            };
            let key = key_of(&error);
            if let Some(key) = &key
                && self.is_from_env(key)
                && let Some(Value::String(text)) = self.values.get(key)
                && let Some(v) = reread(text, &error)
            {
                self.values.insert(key.clone(), v);
                continue;
            }
            let first = error.lines().next().unwrap_or_default();
            return Err(match key {
                Some(key) if first.starts_with("unknown field") => match closest(&key, &expected_fields(first)) {
                    Some(near) => {
                        // Named as the user wrote it: the variable, or the file's key.
                        let origin = self.origin(&key);
                        let meant =
                            origin.replace(&key, near).replace(&key.to_ascii_uppercase(), &near.to_ascii_uppercase());
                        ConfigError(format!("unknown setting {origin}; did you mean {meant}?"))
                    }
                    None => ConfigError(format!("{}: does not apply to {what}; remove it", self.origin(&key))),
                },
                Some(key) => ConfigError(format!("{}: {}", self.origin(&key), hide_values(first))),
                None => ConfigError(format!("{}: {}", self.label, hide_values(first))),
            });
        }
        Err(ConfigError(format!("{}: settings could not be read", self.label)))
    }

    fn is_from_env(&self, key: &str) -> bool {
        self.origins.get(key).is_some_and(|o| !o.contains("[[process]]"))
    }
}

/// The fields a `toml` "unknown field `x`, expected one of `a`, `b`" error lists, and every policy setting (read
/// before the source's, so a misspelt one ends up among the source's).
fn expected_fields(error: &str) -> Vec<&str> {
    let listed = error.split_once("expected").map_or("", |(_, rest)| rest);
    let mut fields: Vec<&str> = listed.split('`').skip(1).step_by(2).collect();
    fields.extend(crate::core::PolicySettings::KEYS);
    fields
}

/// The setting `key` was most likely meant to be: one or two letters off (a swap counts as one), and no more than a
/// quarter of the setting's length, so a short setting of another source is not taken for a typo.
fn closest<'a>(key: &str, fields: &[&'a str]) -> Option<&'a str> {
    fields
        .iter()
        .map(|f| (strsim::damerau_levenshtein(key, f), *f))
        .filter(|(d, f)| *d > 0 && *d <= 2 && *d * 4 <= f.len())
        .min()
        .map(|(_, f)| f)
}

/// The key a `toml` error is about: "... in `key`" or "unknown field `key`".
fn key_of(error: &str) -> Option<String> {
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_owned);
    if let Some(rest) = error.strip_prefix("unknown field ") {
        return quoted(rest);
    }
    error.lines().find_map(|l| l.strip_prefix("in ").and_then(quoted))
}

/// Text from the environment read as the type an error says was expected.
fn reread(text: &str, error: &str) -> Option<Value> {
    if !error.starts_with("invalid type: string") {
        return None;
    }
    let t = text.trim();
    if error.contains("expected a sequence") {
        let items = t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_owned()));
        return Some(Value::Array(items.collect()));
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::Integer(i));
    }
    if let Ok(b) = t.parse::<bool>() {
        return Some(Value::Boolean(b));
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::Float)
}
