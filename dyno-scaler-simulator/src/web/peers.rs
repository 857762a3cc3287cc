//! The web strategies: dyno-scaler's web policy, and the peers' web rules as their documentation describes them
//! (`../shared/reference/web-autoscaling.md`, cited per rule; where a default is not published, the documented
//! example or recommendation is used and said so).

use std::time::Duration;

use dyno_scaler_core::requests::RequestStats;
use dyno_scaler_core::{Policy, PolicyInput, PolicyKind, PolicySettings, PolicyState};

use super::{Seen, WebConfig, quantile};

/// A web scaling strategy.
#[derive(Debug, Clone)]
pub enum WebStrategy {
    /// dyno-scaler's web policy (the production [`Policy`]), deciding every second on the `request_queue` source's
    /// reading: the last 10 complete seconds, p95 from the middleware's histogram.
    DynoScaler,
    /// Judoscale (§2.2): 10-second aggregates of p95 queue time, decided on complete buckets (the one before the
    /// last); above the upscale threshold +1 dyno, at most once per upscale frequency (45 s: "keep it at least the
    /// boot time, on Heroku usually 30-45 s"; the first upscale immediate); down one dyno only when every aggregate
    /// of the downscale delay (10 min, the default) was below the downscale threshold, spaced by that delay.
    /// Its default thresholds are not published: the upscale threshold is the common target, the downscale one
    /// 100 ms (HireFire's documented example minimum).
    Judoscale,
    /// HireFire (§3.2): a checkup every 60 s (the default) on the p95 of the last minute's samples (sent every
    /// second); above `maximum_queue_time` (the target) on 2 consecutive checkups +1, below `minimum_queue_time`
    /// (100 ms, the documented example) on 10 consecutive checkups -1 (the low ends of the recommended upscale 2-5
    /// and downscale 10-30 sensitivities; no default is published).
    HireFire,
    /// Always `max` dynos.
    AlwaysOn,
}

/// The four strategies compared.
pub fn strategies() -> Vec<WebStrategy> {
    vec![WebStrategy::DynoScaler, WebStrategy::Judoscale, WebStrategy::HireFire, WebStrategy::AlwaysOn]
}

/// The downscale threshold of the peers' queue-time ranges: HireFire's documented example `minimum_queue_time`.
const DOWN_THRESHOLD: f64 = 0.100;

impl WebStrategy {
    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            WebStrategy::DynoScaler => "dyno-scaler web",
            WebStrategy::Judoscale => "Judoscale-style",
            WebStrategy::HireFire => "HireFire-style",
            WebStrategy::AlwaysOn => "always-on",
        }
        .to_owned()
    }

    pub(super) fn start(&self, cfg: &WebConfig) -> Brain {
        let policy = matches!(self, WebStrategy::DynoScaler).then(|| {
            let s = PolicySettings {
                policy: Some(PolicyKind::Web),
                max_workers: Some(cfg.max),
                min_workers: Some(cfg.min.max(1)),
                queue_time_target: Some(cfg.target),
                puma_threads: Some(cfg.threads),
                ..PolicySettings::default()
            };
            s.into_policy().expect("the web policy's settings are valid")
        });
        Brain {
            kind: self.clone(),
            policy,
            state: PolicyState::default(),
            last_up: None,
            last_down: None,
            below_since: None,
            up: 0,
            down: 0,
        }
    }
}

/// A strategy deciding: its state between decisions.
pub(super) struct Brain {
    kind: WebStrategy,
    policy: Option<Policy>,
    state: PolicyState,
    last_up: Option<f64>,
    last_down: Option<f64>,
    below_since: Option<f64>,
    up: u32,
    down: u32,
}

impl Brain {
    /// Dynos at the start.
    pub(super) fn initial(&self, cfg: &WebConfig) -> u32 {
        if matches!(self.kind, WebStrategy::AlwaysOn) { cfg.max } else { cfg.min }
    }

    /// Seconds between decisions.
    pub(super) fn tick(&self) -> f64 {
        match self.kind {
            WebStrategy::DynoScaler | WebStrategy::AlwaysOn => 1.0,
            WebStrategy::Judoscale => 10.0,
            WebStrategy::HireFire => 60.0,
        }
    }

    /// When a request that ends at `end` is seen: the middlewares flush every second (dyno-scaler's, HireFire's);
    /// Judoscale's agent reports every 10 s.
    pub(super) fn seen_at(&self, end: f64) -> f64 {
        if matches!(self.kind, WebStrategy::Judoscale) { ((end / 10.0).floor() + 1.0) * 10.0 } else { end + 1.0 }
    }

    /// The dynos wanted at `now`, `live` running.
    pub(super) fn decide(&mut self, now: f64, live: u32, seen: &Seen, cfg: &WebConfig) -> u32 {
        let target = cfg.target.as_secs_f64();
        let t = now.floor() as u64;
        match self.kind {
            WebStrategy::AlwaysOn => cfg.max,
            WebStrategy::DynoScaler => {
                // The source's reading: the last 10 complete seconds, the current and the one being flushed left out.
                let (from, to) = (t.saturating_sub(12), t.saturating_sub(2));
                let snap = RequestStats::over(&seen.buckets(from, to), 10.0, 0.95).snapshot();
                let policy = self.policy.as_ref().expect("a policy");
                let input = PolicyInput {
                    now: crate::epoch() + Duration::from_secs_f64(now),
                    ..PolicyInput::new("web", &snap, live)
                };
                let (d, next) = policy.decide(&input, &self.state);
                self.state = next;
                d.to
            }
            WebStrategy::Judoscale => {
                // The complete 10-second bucket before the last.
                let mut raw = seen.raw(t.saturating_sub(20), t.saturating_sub(10));
                let p95 = quantile(&mut raw, 0.95);
                if p95 > target && self.last_up.is_none_or(|u| now - u >= 45.0) {
                    self.last_up = Some(now);
                    self.below_since = None;
                    return live + 1;
                }
                if p95 >= DOWN_THRESHOLD {
                    self.below_since = None;
                    return live;
                }
                let since = *self.below_since.get_or_insert(now);
                let spaced = self.last_down.is_none_or(|d| now - d >= 600.0);
                if now - since >= 600.0 && spaced && live > cfg.min {
                    self.last_down = Some(now);
                    self.below_since = Some(now);
                    return live - 1;
                }
                live
            }
            WebStrategy::HireFire => {
                let mut raw = seen.raw(t.saturating_sub(61), t.saturating_sub(1));
                let p95 = quantile(&mut raw, 0.95);
                if p95 > target {
                    (self.up, self.down) = (self.up + 1, 0);
                } else if p95 < DOWN_THRESHOLD {
                    (self.up, self.down) = (0, self.down + 1);
                } else {
                    (self.up, self.down) = (0, 0);
                }
                if self.up >= 2 {
                    self.up = 0;
                    return live + 1;
                }
                if self.down >= 10 {
                    self.down = 0;
                    return live.saturating_sub(1);
                }
                live
            }
        }
    }
}
