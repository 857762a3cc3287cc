//! Policy settings as a person writes them (a TOML table, environment variables): every field optional, with
//! the defaults of [`PolicyConfig`]. [`Policy::new`] is the one validator.

use std::time::Duration;

use serde::Deserialize;

use super::{DemandRule, DownMode, Policy, PolicyConfig, PolicyError, parse_thresholds};

/// The policy's settings by their names in files.
///
/// ```
/// use dyno_scaler_core::PolicySettings;
/// let s: PolicySettings = serde_json::from_str(r#"{"max_workers": 5, "latency_target": "30s"}"#).unwrap();
/// let policy = s.into_policy().unwrap();
/// assert_eq!(policy.config().max_workers, 5);
/// let bad: PolicySettings = serde_json::from_str(r#"{"min_workers": 3, "max_workers": 2}"#).unwrap();
/// assert_eq!(bad.into_policy().unwrap_err().settings(), ["min_workers", "max_workers"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Never fewer workers (default 0).
    pub min_workers: Option<u32>,
    /// Never more workers (default 1).
    pub max_workers: Option<u32>,
    /// How long demand must stay lower before scaling down (default 30 s), e.g. `"30s"`.
    #[serde(default, with = "humantime_serde")]
    pub down_delay: Option<Duration>,
    /// Pending jobs → workers, `"1:1,25:2,50:3"` (the seed's table when no rule is set).
    pub thresholds: Option<String>,
    /// One worker per this many jobs (ready + running).
    pub jobs_per_worker: Option<u64>,
    /// Keep the oldest ready job younger than this, e.g. `"30s"`.
    #[serde(default, with = "humantime_serde")]
    pub latency_target: Option<Duration>,
    /// `gradual` (default) or `idle` (the seed's rule).
    pub down_mode: Option<DownMode>,
    /// Allow a partial scale-down while jobs run where their dynos cannot be named.
    pub allow_interrupting: Option<bool>,
    /// Quiet a scale-down's victims and wait until they are idle (default true).
    pub quiet_victims: Option<bool>,
    /// The longest wait for quieted victims (default 10 min), e.g. `"10m"`.
    #[serde(default, with = "humantime_serde")]
    pub max_drain: Option<Duration>,
}

impl PolicySettings {
    /// The names of the settings, as in files.
    pub const KEYS: &'static [&'static str] = &[
        "min_workers",
        "max_workers",
        "down_delay",
        "thresholds",
        "jobs_per_worker",
        "latency_target",
        "down_mode",
        "allow_interrupting",
        "quiet_victims",
        "max_drain",
    ];

    /// The policy, with defaults for what is not set, validated by [`Policy::new`].
    pub fn into_policy(self) -> Result<Policy, PolicyError> {
        let d = PolicyConfig::default();
        let mut rules = Vec::new();
        if let Some(t) = &self.thresholds {
            rules.push(DemandRule::Thresholds(parse_thresholds(t)?));
        }
        if let Some(n) = self.jobs_per_worker {
            rules.push(DemandRule::JobsPerWorker(n));
        }
        if let Some(t) = self.latency_target {
            rules.push(DemandRule::LatencyTarget(t));
        }
        if rules.is_empty() {
            rules = d.rules.clone();
        }
        Policy::new(PolicyConfig {
            min_workers: self.min_workers.unwrap_or(d.min_workers),
            max_workers: self.max_workers.unwrap_or(d.max_workers),
            rules,
            down_delay: self.down_delay.unwrap_or(d.down_delay),
            down_mode: self.down_mode.unwrap_or(d.down_mode),
            allow_interrupting: self.allow_interrupting.unwrap_or(d.allow_interrupting),
            max_mode: d.max_mode,
            quiet_victims: self.quiet_victims.unwrap_or(d.quiet_victims),
            max_drain: self.max_drain.unwrap_or(d.max_drain),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_fields() {
        // Every listed key deserializes on its own; an unlisted one is refused.
        let samples = [
            ("min_workers", "0"),
            ("max_workers", "2"),
            ("down_delay", "\"5s\""),
            ("thresholds", "\"1:1\""),
            ("jobs_per_worker", "3"),
            ("latency_target", "\"30s\""),
            ("down_mode", "\"idle\""),
            ("allow_interrupting", "true"),
            ("quiet_victims", "false"),
            ("max_drain", "\"5m\""),
        ];
        assert_eq!(samples.len(), PolicySettings::KEYS.len());
        for (key, value) in samples {
            assert!(PolicySettings::KEYS.contains(&key));
            let json = format!("{{\"{key}\": {value}}}");
            assert!(serde_json::from_str::<PolicySettings>(&json).is_ok(), "{json}");
        }
        assert!(serde_json::from_str::<PolicySettings>(r#"{"max_wrokers": 1}"#).is_err());
    }

    #[test]
    fn policy_new_is_the_one_validator() {
        let cases: [(&str, &[&str]); 6] = [
            (r#"{"min_workers": 3, "max_workers": 1}"#, &["min_workers", "max_workers"]),
            (r#"{"max_workers": 0}"#, &["max_workers"]),
            (r#"{"latency_target": "1ns"}"#, &["latency_target"]),
            (r#"{"latency_target": "3years"}"#, &["latency_target"]),
            (r#"{"down_delay": "400days"}"#, &["down_delay"]),
            (r#"{"thresholds": "25:2,1:1"}"#, &["thresholds"]),
        ];
        for (json, settings) in cases {
            let s: PolicySettings = serde_json::from_str(json).unwrap();
            assert_eq!(s.into_policy().unwrap_err().settings(), settings, "{json}");
        }
        let s: PolicySettings = serde_json::from_str(r#"{"jobs_per_worker": 0}"#).unwrap();
        assert_eq!(s.into_policy().unwrap_err(), PolicyError::ZeroJobsPerWorker);
    }
}
