//! The strategies compared side by side: always on, HireFire-style, the seed gem, KEDA-style and dyno-scaler.

use std::time::Duration;

use super::engine::Strategy;
use dyno_scaler_core::{DemandRule, DownMode, MaxMode, PolicyConfig};

/// Always `max` dynos, all day.
pub fn always_on(max: u32) -> Strategy {
    let policy = PolicyConfig { min_workers: max, max_workers: max, ..PolicyConfig::classic() };
    Strategy { initial: Some(max), ..Strategy::polled("always on", policy, None) }
}

/// HireFire-style: a checkup every 60 s, one worker per `ratio` jobs (waiting or running), down to `min` only
/// once the queue is empty.
pub fn hirefire(max: u32, ratio: u64) -> Strategy {
    let policy = PolicyConfig {
        max_workers: max,
        rules: vec![DemandRule::JobsPerWorker(ratio)],
        down_delay: Duration::ZERO,
        down_mode: DownMode::Idle,
        ..PolicyConfig::classic()
    };
    Strategy::polled("HireFire-style", policy, Some(Duration::from_secs(60)))
}

/// The seed gem's Sidekiq server middleware: `sleep 5` after each job before `scale_down`, skipped when an enqueue
/// came within those 5 s (`dtmtec/dyno_scaler` `lib/dyno_scaler/workers/sidekiq.rb`).
pub const SEED_END_HOOK_DELAY: Duration = Duration::from_secs(5);

/// The seed gem exactly: event hooks only (no polling), its threshold table, `max_workers` as a veto, and
/// scale-down straight to `min` only when nothing is pending or running; under Sidekiq, read 5 s after each job
/// ([`SEED_END_HOOK_DELAY`]), under Resque at its end with its own job taken off.
pub fn seed_gem(max: u32) -> Strategy {
    let policy = PolicyConfig {
        max_workers: max,
        rules: vec![DemandRule::seed_thresholds()],
        down_delay: Duration::ZERO,
        down_mode: DownMode::Idle,
        max_mode: MaxMode::LegacyVeto,
        ..PolicyConfig::classic()
    };
    Strategy {
        event_driven: true,
        end_hook_delay: Some(SEED_END_HOOK_DELAY),
        ..Strategy::polled("seed gem", policy, None)
    }
}

/// KEDA-style: `ceil(ready / 5)` (the Redis list scaler's `listLength` 5), decided every 15 s, a 300 s wait before
/// scaling down, and no knowledge of which pod (dyno) is busy. KEDA itself takes 0 -> 1 at its `pollingInterval`
/// (30 s) and hands 1 -> N to the HPA, whose loop runs every 15 s (`--horizontal-pod-autoscaler-sync-period`) with
/// a 300 s downscale stabilisation; KEDA's `cooldownPeriod` (300 s) guards N -> 0. Every decision is modelled at the
/// HPA's 15 s, so the activation from zero is up to 15 s faster than KEDA's: the peer is never made weaker.
pub fn keda(max: u32) -> Strategy {
    let policy = PolicyConfig {
        max_workers: max,
        rules: vec![DemandRule::QueueLengthPerWorker(5)],
        down_delay: Duration::from_secs(300),
        allow_interrupting: true,
        ..PolicyConfig::classic()
    };
    Strategy::polled("KEDA-style", policy, Some(Duration::from_secs(15)))
}

/// dyno-scaler's defaults (`dyno-scaler run` with only `max_workers` raised): the adaptive policy, the
/// daemon's default poll and its event path (Sidekiq's pushes heard through Redis client tracking, no setting
/// needed), busy-safe scale-down with Sidekiq's dyno names.
pub fn dyno_scaler_defaults(max: u32) -> Strategy {
    let policy = PolicyConfig { max_workers: max, ..PolicyConfig::default() };
    Strategy {
        wakes_on_enqueue: true,
        sees_dynos: true,
        ..Strategy::polled("dyno-scaler defaults", policy, Some(DAEMON_POLL))
    }
}

/// The daemon's default poll interval (`DYNO_SCALER_POLL_INTERVAL`).
pub const DAEMON_POLL: Duration = Duration::from_secs(1);

/// dyno-scaler's classic policy (`policy = "classic"`): the seed's threshold table, the fixed `down_delay`, the
/// daemon's default poll and event path, busy-safe.
pub fn dyno_scaler_classic(max: u32, down_delay: Duration) -> Strategy {
    let policy = PolicyConfig { max_workers: max, down_delay, ..PolicyConfig::classic() };
    Strategy {
        wakes_on_enqueue: true,
        sees_dynos: true,
        ..Strategy::polled("dyno-scaler classic", policy, Some(DAEMON_POLL))
    }
}

/// The six strategies, sharing `max` dynos of `concurrency` threads.
pub fn comparison(max: u32, concurrency: u32) -> Vec<Strategy> {
    vec![
        always_on(max),
        hirefire(max, u64::from(concurrency)),
        seed_gem(max),
        keda(max),
        dyno_scaler_classic(max, Duration::from_secs(30)),
        dyno_scaler_defaults(max),
    ]
}
