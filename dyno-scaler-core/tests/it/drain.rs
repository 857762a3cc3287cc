//! Quiet-then-drain with the in-memory queue and platform: the victims of a scale-down are quieted, and the
//! shrink waits until each is quiet and idle on a heartbeat after the signal.

use std::time::Duration;

use dyno_scaler_core::*;

use super::scaler::Rig;

/// Three Cedar dynos, one Sidekiq-like process each (heartbeats on), idle; `worker.N:4:abc` identities.
fn rig(f: impl FnOnce(&mut PolicyConfig)) -> Rig {
    let r = super::scaler::rig(|c| {
        c.down_delay = Duration::ZERO;
        f(c);
    });
    let now = r.clock.now();
    r.queue.set_workers(Some(
        (1..=3)
            .map(|n| WorkerInfo::new(format!("worker.{n}:4:abc"), Some(format!("worker.{n}")), 0).with_beat(Some(now)))
            .collect(),
    ));
    r.platform.set("worker", 3);
    r
}

impl Rig {
    /// Five seconds pass and every process beats.
    fn beat(&self) {
        self.clock.advance(Duration::from_secs(5));
        self.queue.heartbeat();
    }
}

#[tokio::test]
async fn a_job_fetched_after_the_last_beat_is_not_interrupted() {
    let r = rig(|_| {});
    // An idle beat after the queue was seen empty: the policy wants 0, and the victims are quieted (the drain
    // then proves them idle).
    r.scaler.reconcile().await.unwrap();
    r.beat();
    let rep = r.scaler.reconcile().await.unwrap();
    assert_eq!(rep.decision.to, 3, "quieting first, not scaling: {}", rep.decision.reason);
    assert_eq!(rep.draining, vec!["worker.3", "worker.2", "worker.1"], "{}", rep.decision.reason);
    assert_eq!(r.queue.quiet_requests().len(), 3, "every victim's process was quieted");
    assert!(r.platform.set_calls().is_empty());
    // worker.3 had fetched a 20 s job just after its last beat: the next beat shows it busy (and quiet).
    r.queue.set_busy("worker.3:4:abc", 1);
    r.beat();
    let rep = r.scaler.reconcile().await.unwrap();
    assert_eq!(rep.decision.to, 3, "{}", rep.decision.reason);
    assert!(
        matches!(&rep.decision.gate, Some(Gate::Draining { waiting, .. }) if waiting == &["worker.3:4:abc"]),
        "{:?}",
        rep.decision
    );
    assert_eq!(rep.draining.len(), 3, "still draining");
    assert!(r.platform.set_calls().is_empty(), "no PATCH while the job runs");
    // The job ends; the next beat shows every victim quiet and idle: being quiet, they take no job after it, so
    // the shrink goes ahead at once.
    r.queue.set_busy("worker.3:4:abc", 0);
    r.beat();
    let rep = r.scaler.reconcile().await.unwrap();
    assert_eq!((rep.decision.to, r.platform.quantity("worker")), (0, 0), "{}", rep.decision.reason);
    assert!(rep.draining.is_empty());
}

#[tokio::test]
async fn demand_returning_during_the_drain_finishes_the_shrink_then_scales_up_fresh() {
    let r = rig(|_| {});
    r.scaler.reconcile().await.unwrap();
    r.beat();
    r.scaler.reconcile().await.unwrap(); // quieting
    // Work comes back while the victims are quiet. A quieted process never takes a job again, so the shrink is
    // finished as soon as they are drained, and fresh dynos take the work.
    r.queue.push_many("default", 10);
    let rep = r.scaler.reconcile().await.unwrap();
    assert_eq!(rep.decision.to, 3, "the victims are not drained yet: {}", rep.decision.reason);
    r.beat();
    let rep = r.scaler.reconcile().await.unwrap();
    assert_eq!(rep.decision.to, 0, "{}", rep.decision.reason);
    assert!(matches!(&rep.decision.gate, Some(Gate::Finishing { dynos }) if dynos.len() == 3), "{:?}", rep.decision);
    r.queue.set_workers(Some(Vec::new())); // the stopped dynos' processes are gone
    let rep = r.scaler.reconcile().await.unwrap();
    assert_eq!(rep.decision.to, 1, "fresh capacity for the work: {}", rep.decision.reason);
    assert_eq!(r.platform.set_calls(), vec![("worker".to_string(), 0), ("worker".to_string(), 1)]);
}

#[tokio::test]
async fn a_victim_busy_past_max_drain_is_not_stopped() {
    let r = rig(|c| c.max_drain = Duration::from_secs(12));
    r.scaler.reconcile().await.unwrap();
    r.beat();
    r.scaler.reconcile().await.unwrap(); // quieting
    r.queue.set_busy("worker.3:4:abc", 1);
    let mut gates = Vec::new();
    for _ in 0..4 {
        r.beat();
        let rep = r.scaler.reconcile().await.unwrap();
        assert_eq!(rep.decision.to, 3, "{}", rep.decision.reason);
        gates.extend(rep.decision.gate.map(|g| g.kind()));
    }
    assert_eq!(gates.first(), Some(&"draining"), "{gates:?}");
    assert!(gates.contains(&"gave_up_draining"), "{gates:?}");
    assert!(r.platform.set_calls().is_empty(), "given up, not forced");
}

#[tokio::test]
async fn without_named_victims_or_with_the_setting_off_nothing_is_quieted() {
    for (unknown, quiet_victims) in [(true, true), (false, false)] {
        let r = rig(|c| c.quiet_victims = quiet_victims);
        r.platform.set_victims_unknown(unknown);
        r.scaler.reconcile().await.unwrap();
        r.beat();
        let rep = r.scaler.reconcile().await.unwrap();
        assert!(r.queue.quiet_requests().is_empty(), "{unknown} {quiet_victims}");
        assert_eq!(
            rep.decision.to, 0,
            "the policy's own rule: every process idle on two beats ({})",
            rep.decision.reason
        );
    }
}
