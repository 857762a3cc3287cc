//! Policy settings as a person writes them (a TOML table, environment variables): every field optional, with
//! the defaults of [`PolicyConfig`]. [`Policy::new`] is the one validator.

use std::time::Duration;

use serde::Deserialize;

use super::config::{ADAPTIVE_ONLY, WEB_ONLY};
use super::{Adaptive, DemandRule, DownMode, Policy, PolicyConfig, PolicyError, parse_thresholds};

/// Which policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Learns job durations, idle gaps and recurring load (the default).
    #[default]
    Adaptive,
    /// The seed gem's threshold table and a fixed down delay (the policy before 0.3).
    Classic,
    /// For web dynos ([`super::web`]): keep request queue time under a target; `min_workers` 1, a 10-minute down
    /// delay, no drain (in-flight requests finish on SIGTERM). The `request_queue` source's default.
    Web,
}

/// The web policy's defaults.
pub mod web_defaults {
    use std::time::Duration;

    /// The queue time to keep the percentile under: HireFire's documented example of its upscale threshold
    /// (`maximum_queue_time` 250 ms; Judoscale publishes no default).
    pub const QUEUE_TIME_TARGET: Duration = Duration::from_millis(250);
    /// Puma's default threads on MRI (`max_threads` 5 since Puma 5.0).
    pub const PUMA_THREADS: u32 = 5;
    /// Puma's default workers: single mode (`WEB_CONCURRENCY` unset) is one process.
    pub const PUMA_WORKERS: u32 = 1;
    /// How long requests must want fewer dynos before a scale-down (Judoscale's default downscale delay).
    pub const DOWN_DELAY: Duration = Duration::from_secs(600);
}

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
    /// `adaptive` (default) or `classic`.
    pub policy: Option<PolicyKind>,
    /// Adaptive: clear a backlog within this long (default 30 s, about one boot), e.g. `"30s"`.
    #[serde(default, with = "humantime_serde")]
    pub drain_target: Option<Duration>,
    /// Adaptive: start workers ahead of load that recurs (default true).
    pub prewarm: Option<bool>,
    /// Adaptive: threads one worker runs where the source does not report them (default 5).
    pub worker_threads: Option<u32>,
    /// Adaptive: keep what was learned in the source's store across restarts (default true).
    pub remember: Option<bool>,
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
    /// Time windows with their own bounds ([`schedule`](super::schedule)).
    pub schedule: Option<super::schedule::ScheduleSetting>,
    /// Web: the percentile of request queue time to stay under (default 250 ms), e.g. `"250ms"`.
    #[serde(default, with = "humantime_serde")]
    pub queue_time_target: Option<Duration>,
    /// Web: Puma threads per worker process (default 5, Puma's `max_threads`).
    pub puma_threads: Option<u32>,
    /// Web: Puma worker processes per dyno (default 1: `WEB_CONCURRENCY` unset).
    pub puma_workers: Option<u32>,
}

impl PolicySettings {
    /// The names of the settings, as in files.
    pub const KEYS: &'static [&'static str] = &[
        "policy",
        "drain_target",
        "prewarm",
        "worker_threads",
        "remember",
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
        "schedule",
        "queue_time_target",
        "puma_threads",
        "puma_workers",
    ];

    /// The policy, with defaults for what is not set, validated by [`Policy::new`].
    pub fn into_policy(self) -> Result<Policy, PolicyError> {
        let kind = self.policy.unwrap_or_default();
        let d = PolicyConfig::classic();
        let web_set = [self.queue_time_target.is_some(), self.puma_threads.is_some(), self.puma_workers.is_some()];
        if kind != PolicyKind::Web
            && let Some((name, _)) = WEB_ONLY.iter().zip(web_set).find(|(_, is)| *is)
        {
            return Err(PolicyError::WebOnly(name));
        }
        let adaptive = match kind {
            PolicyKind::Classic | PolicyKind::Web => {
                let set = [
                    self.drain_target.is_some(),
                    self.prewarm.is_some(),
                    self.worker_threads.is_some(),
                    self.remember.is_some(),
                ];
                if let Some((name, _)) = ADAPTIVE_ONLY.iter().zip(set).find(|(_, is)| *is) {
                    return Err(PolicyError::AdaptiveOnly(name));
                }
                None
            }
            PolicyKind::Adaptive => {
                let a = Adaptive::default();
                Some(Adaptive {
                    drain_target: self.drain_target.unwrap_or(a.drain_target),
                    prewarm: self.prewarm.unwrap_or(a.prewarm),
                    worker_threads: self.worker_threads.or(a.worker_threads),
                    remember: self.remember.unwrap_or(a.remember),
                })
            }
        };
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
        let web = kind == PolicyKind::Web;
        if web {
            let threads = self.puma_threads.unwrap_or(web_defaults::PUMA_THREADS);
            let workers = self.puma_workers.unwrap_or(web_defaults::PUMA_WORKERS);
            let target = self.queue_time_target.unwrap_or(web_defaults::QUEUE_TIME_TARGET);
            rules.push(DemandRule::QueueTime { target, threads: threads.saturating_mul(workers) });
        }
        if rules.is_empty() && adaptive.is_none() {
            rules = d.rules.clone();
        }
        // Web: a web process type at 0 serves nothing; requests finish on SIGTERM, so no drain and no busy hold.
        let (min, down, interrupting, quiet) = if web {
            (1, web_defaults::DOWN_DELAY, true, false)
        } else {
            (d.min_workers, d.down_delay, d.allow_interrupting, d.quiet_victims)
        };
        Policy::new(PolicyConfig {
            min_workers: self.min_workers.unwrap_or(min),
            max_workers: self.max_workers.unwrap_or(d.max_workers),
            rules,
            adaptive,
            down_delay: self.down_delay.unwrap_or(down),
            down_mode: self.down_mode.unwrap_or(d.down_mode),
            allow_interrupting: self.allow_interrupting.unwrap_or(interrupting),
            max_mode: d.max_mode,
            quiet_victims: self.quiet_victims.unwrap_or(quiet),
            max_drain: self.max_drain.unwrap_or(d.max_drain),
            schedule: match &self.schedule {
                Some(s) => s.windows().map_err(PolicyError::Schedule)?,
                None => Vec::new(),
            },
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
            ("policy", "\"classic\""),
            ("drain_target", "\"20s\""),
            ("prewarm", "false"),
            ("worker_threads", "10"),
            ("remember", "false"),
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
            ("schedule", "\"mon-fri 08:00-18:00 UTC min=1\""),
            ("queue_time_target", "\"250ms\""),
            ("puma_threads", "5"),
            ("puma_workers", "2"),
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
        let cases: [(&str, &[&str]); 15] = [
            (r#"{"puma_threads": 3}"#, &["puma_threads"]),
            (r#"{"policy": "classic", "queue_time_target": "1s"}"#, &["queue_time_target"]),
            (r#"{"policy": "web", "puma_workers": 0}"#, &["puma_threads", "puma_workers"]),
            (r#"{"policy": "web", "queue_time_target": "5m"}"#, &["queue_time_target"]),
            (r#"{"schedule": "mon-fri 08:00-18:00 Mars/Olympus min=1"}"#, &["schedule"]),
            (
                r#"{"max_workers": 2, "schedule": [{"days": "sat", "hours": "00:00-24:00", "time_zone": "UTC", "min_workers": 3}]}"#,
                &["schedule"],
            ),
            (r#"{"policy": "classic", "prewarm": true}"#, &["prewarm"]),
            (r#"{"drain_target": "0s"}"#, &["drain_target"]),
            (r#"{"worker_threads": 0}"#, &["worker_threads"]),
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

    #[test]
    fn the_web_policy_has_the_web_defaults_and_threads_are_puma_threads_times_workers() {
        let s: PolicySettings =
            serde_json::from_str(r#"{"policy": "web", "puma_workers": 2, "max_workers": 8}"#).unwrap();
        let c = s.into_policy().unwrap().config().clone();
        assert_eq!(
            (c.min_workers, c.down_delay, c.allow_interrupting, c.quiet_victims),
            (1, web_defaults::DOWN_DELAY, true, false)
        );
        assert!(c.adaptive.is_none());
        let want = DemandRule::QueueTime { target: web_defaults::QUEUE_TIME_TARGET, threads: 10 };
        assert_eq!(c.rules, vec![want]);
        // What a user sets wins over the web defaults.
        let s: PolicySettings =
            serde_json::from_str(r#"{"policy": "web", "min_workers": 2, "max_workers": 4, "down_delay": "1m"}"#)
                .unwrap();
        let c = s.into_policy().unwrap().config().clone();
        assert_eq!((c.min_workers, c.down_delay), (2, Duration::from_secs(60)));
    }
}
