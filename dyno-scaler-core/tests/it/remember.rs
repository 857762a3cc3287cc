//! What the adaptive policy learned survives a restart: kept in the source's store, recalled by the next scaler.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::*;

fn scaler(clock: &Arc<ManualClock>, queue: &InMemoryQueue, platform: &InMemoryPlatform, remember: bool) -> Scaler {
    let adaptive = Adaptive { remember, prewarm: false, ..Adaptive::default() };
    let policy = Policy::new(PolicyConfig { max_workers: 3, adaptive: Some(adaptive), ..PolicyConfig::default() });
    Scaler::builder("worker", queue.clone(), Arc::new(platform.clone()), policy.unwrap()).clock(clock.clone()).build()
}

/// Ten busy periods, each followed by ten idle minutes: the policy learns that the next job is far off.
async fn learn_long_gaps(clock: &ManualClock, queue: &InMemoryQueue, s: &Scaler) {
    for _ in 0..10 {
        queue.push("default");
        s.reconcile().await.unwrap();
        assert!(queue.start("default"));
        clock.advance(Duration::from_secs(5));
        assert!(queue.finish("default"));
        s.reconcile().await.unwrap();
        clock.advance(Duration::from_secs(600));
        s.reconcile().await.unwrap();
    }
}

#[tokio::test]
async fn a_restarted_scaler_recalls_the_idle_gaps_and_drops_at_once() {
    for remember in [true, false] {
        let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
        let queue = InMemoryQueue::new(clock.clone());
        let platform = InMemoryPlatform::new();
        let first = scaler(&clock, &queue, &platform, remember);
        learn_long_gaps(&clock, &queue, &first).await;
        let kept = queue.store().recall("worker").await.unwrap();
        assert_eq!(kept.is_some(), remember, "kept only when remembering is on");
        if let Some(json) = &kept {
            assert!(json.len() < 8_192, "a few KB: {} bytes", json.len());
        }
        drop(first);

        // The restart: one dyno up, nothing to do.
        platform.set("worker", 1);
        let second = scaler(&clock, &queue, &platform, remember);
        let report = second.reconcile().await.unwrap();
        if remember {
            assert_eq!(report.decision.to, 0, "{}", report.decision.reason);
            assert!(report.decision.reason.contains("learned from"), "{}", report.decision.reason);
        } else {
            assert_eq!(report.decision.to, 1, "defaults again: {}", report.decision.reason);
            assert!(report.decision.reason.contains("the configured one"), "{}", report.decision.reason);
        }
    }
}

#[tokio::test]
async fn an_unreadable_summary_is_ignored_and_replaced() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let platform = InMemoryPlatform::new();
    queue.store().remember("worker", "{not json").await.unwrap();
    let s = scaler(&clock, &queue, &platform, true);
    s.reconcile().await.unwrap();
    let kept = queue.store().recall("worker").await.unwrap().unwrap();
    assert!(serde_json::from_str::<Learned>(&kept).is_ok(), "rewritten: {kept}");
}

#[tokio::test]
async fn a_preview_decides_with_what_was_learned_and_keeps_nothing() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let platform = InMemoryPlatform::new();
    let first = scaler(&clock, &queue, &platform, true);
    learn_long_gaps(&clock, &queue, &first).await;
    drop(first);
    platform.set("worker", 1);
    // A one-shot status: the learned gaps say drop at once; nothing is written back.
    let kept = queue.store().recall("worker").await.unwrap();
    let status = scaler(&clock, &queue, &platform, true);
    let report = status.preview().await.unwrap();
    assert_eq!(report.decision.to, 0, "{}", report.decision.reason);
    assert!(report.decision.reason.contains("learned from"), "{}", report.decision.reason);
    assert_eq!(queue.store().recall("worker").await.unwrap(), kept);
    assert_eq!(platform.quantity("worker"), 1, "a preview never acts");
}

#[tokio::test]
async fn a_dry_run_keeps_nothing_in_the_store_and_takes_no_lease() {
    for dry_run in [false, true] {
        let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
        let queue = InMemoryQueue::new(clock.clone());
        let platform = InMemoryPlatform::new();
        let lease = InMemoryLease::new(clock.clone(), "worker");
        let adaptive = Adaptive { remember: true, prewarm: false, ..Adaptive::default() };
        let policy = Policy::new(PolicyConfig { max_workers: 3, adaptive: Some(adaptive), ..PolicyConfig::default() });
        let opts = LeaseOptions { exclusive: true, ttl: Duration::from_secs(12), identity: "dry".into() };
        let s = Scaler::builder("worker", queue.clone(), Arc::new(platform.clone()), policy.unwrap())
            .clock(clock.clone())
            .lease(Arc::new(lease.clone()), opts)
            .dry_run(dry_run)
            .build();
        queue.push("default");
        let report = s.reconcile().await.unwrap();
        assert_eq!(report.decision.to, 1, "{report:?}");
        let holder = lease.read().await.unwrap().holder;
        let kept = queue.store().recall("worker").await.unwrap();
        if dry_run {
            assert_eq!((holder, kept), (None, None), "a dry run writes nothing");
            assert!(platform.set_calls().is_empty());
        } else {
            assert_eq!(holder.as_deref(), Some("dry"), "the real run took the lease");
            assert!(kept.is_some(), "and kept what it learned");
        }
    }
}
