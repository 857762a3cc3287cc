//! The conditions, fed with hand-made cycles: each told once when it begins to count and once when it clears.

use std::time::Duration;

use dyno_scaler_core::*;

use crate::test_report::base;

use super::{Condition, Conditions, Notice};

/// A cycle of `worker` at `quantity` with `ready` jobs, gated by `gate`, acting or not.
fn cycle(quantity: u32, ready: u64, gate: Option<Gate>, acting: bool) -> Result<Report, ScalerError> {
    let mut snapshot = Snapshot::default();
    snapshot.add("default", QueueStats::ready(ready));
    let mut decision = Decision::new(quantity, quantity, quantity, "hold");
    if let Some(g) = gate {
        decision.apply_gate(g);
    }
    let mut r = base();
    (r.snapshot, r.decision, r.acting, r.applied) = (snapshot, decision, acting, false);
    Ok(r)
}

fn source_error() -> Result<Report, ScalerError> {
    Err(ScalerError::Source {
        process_type: "worker".into(),
        source: SourceError::Unavailable { source_name: "redis".into(), message: "refused".into(), cause: None },
    })
}

fn conditions() -> Conditions {
    let mut c = Conditions::new(Duration::from_secs(60));
    c.track("worker", 4);
    c
}

fn told(n: &[Notice]) -> Vec<(Condition, bool)> {
    n.iter().map(|n| (n.condition, n.firing)).collect()
}

#[test]
fn an_unreadable_queue_is_told_after_the_delay_once_then_its_recovery_once() {
    let mut c = conditions();
    assert!(c.observe(0.0, &cycle(1, 0, None, true)).is_empty());
    let mut all = Vec::new();
    for t in 1..=200 {
        all.extend(c.observe(f64::from(t), &source_error()));
    }
    assert_eq!(told(&all), vec![(Condition::SourceUnreadable, true)]);
    assert_eq!((all[0].since, all[0].at), (1.0, 61.0), "told when it had lasted the delay");
    assert!(all[0].message.contains("refused"), "{}", all[0].message);
    let back = c.observe(201.0, &cycle(1, 0, None, true));
    assert_eq!(told(&back), vec![(Condition::SourceUnreadable, false)]);
    assert!(c.observe(202.0, &cycle(1, 0, None, true)).is_empty(), "told once");
}

#[test]
fn a_short_failure_is_never_told() {
    let mut c = conditions();
    let mut all = Vec::new();
    for t in 0..59 {
        all.extend(c.observe(f64::from(t), &source_error()));
    }
    all.extend(c.observe(59.5, &cycle(1, 0, None, true)));
    all.extend(c.observe(100.0, &source_error()));
    all.extend(c.observe(159.0, &source_error()));
    assert!(all.is_empty(), "two outages shorter than the delay: {all:?}");
}

#[test]
fn a_lost_lease_counts_only_while_nobody_leads_and_never_for_a_pause_or_another_leader() {
    let mut c = conditions();
    let following = |leader: Option<&str>| Some(Gate::Following { leader: leader.map(str::to_owned) });
    // Never led: following nobody is not a lost lease of ours.
    assert!(c.observe(0.0, &cycle(1, 0, following(None), false)).is_empty());
    assert!(c.observe(100.0, &cycle(1, 0, following(None), false)).is_empty());
    c.observe(101.0, &cycle(1, 0, None, true));
    // Another instance took over: fine.
    assert!(c.observe(102.0, &cycle(1, 0, following(Some("web.2")), false)).is_empty());
    assert!(c.observe(300.0, &cycle(1, 0, following(Some("web.2")), false)).is_empty());
    // Paused: fine.
    let pause = Some(Gate::Paused { pause: lease::Pause::until_resumed("ops") });
    assert!(c.observe(301.0, &cycle(1, 0, pause.clone(), false)).is_empty());
    assert!(c.observe(500.0, &cycle(1, 0, pause, false)).is_empty());
    // Nobody leads (the store unreachable) for the delay: told, then the recovery when this instance leads again.
    let away = Some(Gate::StoreUnreachable { store: "redis".into(), error: "timed out".into() });
    assert!(c.observe(501.0, &cycle(1, 0, away.clone(), false)).is_empty());
    let lost = c.observe(561.0, &cycle(1, 0, away, false));
    assert_eq!(told(&lost), vec![(Condition::LeaseLost, true)]);
    assert!(c.observe(562.0, &cycle(1, 0, following(None), false)).is_empty(), "told once");
    assert_eq!(told(&c.observe(563.0, &cycle(1, 0, None, true))), vec![(Condition::LeaseLost, false)]);
}

#[test]
fn pinned_at_max_needs_work_waiting_and_a_given_up_drain_is_told_each_time() {
    let mut c = conditions();
    assert!(c.observe(0.0, &cycle(4, 0, None, true)).is_empty());
    assert!(c.observe(100.0, &cycle(4, 0, None, true)).is_empty(), "at the max with nothing waiting");
    assert!(c.observe(101.0, &cycle(3, 9, None, true)).is_empty());
    assert!(c.observe(200.0, &cycle(3, 9, None, true)).is_empty(), "work waiting below the max");
    assert!(c.observe(201.0, &cycle(4, 9, None, true)).is_empty());
    assert_eq!(told(&c.observe(261.0, &cycle(4, 9, None, true))), vec![(Condition::PinnedAtMax, true)]);
    assert_eq!(told(&c.observe(262.0, &cycle(3, 9, None, true))), vec![(Condition::PinnedAtMax, false)]);
    let gave_up = || Some(Gate::GaveUpDraining { dynos: vec!["worker.4".into()], waited_secs: 3600 });
    let n = c.observe(300.0, &cycle(4, 0, gave_up(), true));
    assert_eq!(told(&n), vec![(Condition::DrainGivenUp, true)]);
    assert!(n[0].message.contains("worker.4"), "{}", n[0].message);
    assert_eq!(told(&c.observe(5000.0, &cycle(4, 0, gave_up(), true))), vec![(Condition::DrainGivenUp, true)]);
}

#[test]
fn the_platform_refusing_is_told_at_once_and_lasts_while_its_limit_holds_work_back() {
    let mut c = conditions();
    let refused = Err(ScalerError::Platform {
        process_type: "worker".into(),
        source: PlatformError::LimitExceeded { message: "Cannot run more than 2".into(), requested: 3, limit: Some(2) },
    });
    assert_eq!(told(&c.observe(0.0, &refused)), vec![(Condition::PlatformRefused, true)]);
    let mut capped = cycle(2, 9, None, true);
    if let Ok(r) = &mut capped {
        r.platform_limit = Some(2);
    }
    assert!(c.observe(1.0, &capped).is_empty(), "the limit holds 9 jobs back");
    let mut idle = cycle(2, 0, None, true);
    if let Ok(r) = &mut idle {
        r.platform_limit = Some(2);
    }
    assert_eq!(told(&c.observe(2.0, &idle)), vec![(Condition::PlatformRefused, false)]);
    // An outage is not a refusal.
    let outage = Err(ScalerError::Platform {
        process_type: "worker".into(),
        source: PlatformError::Unavailable { message: "503".into(), cause: None },
    });
    assert!(c.observe(3.0, &outage).is_empty());
}
