use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::*;

pub struct Rig {
    pub clock: Arc<ManualClock>,
    pub queue: InMemoryQueue,
    pub platform: InMemoryPlatform,
    pub scaler: Scaler,
}

pub fn rig(f: impl FnOnce(&mut PolicyConfig)) -> Rig {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let platform = InMemoryPlatform::new();
    let mut c = PolicyConfig { max_workers: 5, down_delay: Duration::from_secs(30), ..PolicyConfig::classic() };
    f(&mut c);
    let scaler = Scaler::builder("worker", queue.clone(), Arc::new(platform.clone()), Policy::new(c).unwrap())
        .clock(clock.clone())
        .build();
    Rig { clock, queue, platform, scaler }
}

#[tokio::test]
async fn calls_the_platform_only_on_change() {
    let r = rig(|_| {});
    r.queue.push_many("default", 30);
    r.scaler.reconcile().await.unwrap();
    r.scaler.reconcile().await.unwrap();
    r.scaler.reconcile().await.unwrap();
    assert_eq!(r.platform.set_calls(), vec![("worker".to_string(), 2)]);
}

#[tokio::test]
async fn scales_down_after_the_delay_when_drained() {
    let r = rig(|_| {});
    r.queue.push_many("default", 3);
    r.scaler.reconcile().await.unwrap();
    assert_eq!(r.platform.quantity("worker"), 1);
    r.queue.clear();
    let rep = r.scaler.reconcile().await.unwrap();
    assert_eq!(rep.decision.to, 1, "{}", rep.decision.reason);
    r.clock.advance(Duration::from_secs(31));
    r.scaler.reconcile().await.unwrap();
    assert_eq!(r.platform.quantity("worker"), 0);
}

#[tokio::test]
async fn source_error_holds_the_quantity() {
    let r = rig(|c| c.down_delay = Duration::ZERO);
    r.platform.set("worker", 3);
    r.queue.fail_with(Some("connection refused"));
    let err = r.scaler.reconcile().await.unwrap_err();
    assert!(matches!(err, ScalerError::Source { .. }), "{err}");
    assert!(r.platform.set_calls().is_empty());
    assert_eq!(r.platform.quantity("worker"), 3);
    r.queue.fail_with(None);
    r.scaler.reconcile().await.unwrap();
    assert_eq!(r.platform.quantity("worker"), 0, "recovers when the source returns");
}

#[tokio::test]
async fn refused_quantity_becomes_the_ceiling() {
    let r = rig(|c| c.max_workers = 10);
    r.platform.set_limit("worker", 2);
    r.queue.push_many("default", 200);
    let err = r.scaler.reconcile().await.unwrap_err();
    assert!(
        matches!(err, ScalerError::Platform { source: PlatformError::LimitExceeded { limit: Some(2), .. }, .. }),
        "{err}"
    );
    r.scaler.reconcile().await.unwrap();
    r.scaler.reconcile().await.unwrap();
    assert_eq!(r.platform.set_calls(), vec![("worker".to_string(), 5), ("worker".to_string(), 2)]);
    assert_eq!(r.platform.quantity("worker"), 2);
    // The limit is raised at the platform (a plan upgrade): within LIMIT_MEMORY nothing asks above the old one,
    // after it the scaler asks once more and learns the new one, with no restart.
    r.platform.set_limit("worker", 4);
    r.clock.advance(LIMIT_MEMORY - Duration::from_secs(1));
    let rep = r.scaler.reconcile().await.unwrap();
    assert_eq!((rep.decision.to, rep.platform_limit), (2, Some(2)), "{}", rep.decision.reason);
    r.clock.advance(Duration::from_secs(1));
    assert!(r.scaler.reconcile().await.is_err(), "5 is asked again and refused");
    r.scaler.reconcile().await.unwrap();
    let calls: Vec<u32> = r.platform.set_calls().into_iter().map(|(_, q)| q).collect();
    assert_eq!(calls, vec![5, 2, 5, 4]);
    assert_eq!(r.platform.quantity("worker"), 4);
}

#[tokio::test]
async fn platform_failure_keeps_trying_next_cycle() {
    let r = rig(|_| {});
    r.queue.push("default");
    r.platform.fail_next(PlatformError::Unavailable { message: "503".into(), cause: None });
    assert!(r.scaler.reconcile().await.is_err());
    r.scaler.reconcile().await.unwrap();
    assert_eq!(r.platform.quantity("worker"), 1);
}

#[tokio::test]
async fn dry_run_never_changes_the_platform() {
    let clock = Arc::new(ManualClock::at_secs(0));
    let queue = InMemoryQueue::new(clock.clone());
    let platform = InMemoryPlatform::new();
    let scaler = Scaler::builder(
        "worker",
        Arc::new(queue.clone()),
        Arc::new(platform.clone()),
        Policy::new(PolicyConfig::classic()).unwrap(),
    )
    .clock(clock)
    .dry_run(true)
    .build();
    queue.push("default");
    let rep = scaler.reconcile().await.unwrap();
    assert_eq!(rep.decision.to, 1);
    assert!(!rep.applied && rep.dry_run);
    assert!(platform.set_calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn controller_runs_until_shutdown_and_finishes_the_cycle() {
    let r = rig(|_| {});
    r.queue.push("default");
    r.platform.set_delay(Duration::from_millis(50));
    let controller = Controller::new(vec![r.scaler.clone()], Duration::from_millis(5));
    // Shutdown fires while the first cycle's platform calls are in flight.
    controller.run(tokio::time::sleep(Duration::from_millis(10))).await.unwrap();
    assert_eq!(r.platform.quantity("worker"), 1, "the cycle in flight completed");
    assert_eq!(r.platform.completed_sets(), 1);
}

#[tokio::test]
async fn controller_stops_on_a_fatal_platform_error() {
    let r = rig(|_| {});
    r.platform.fail_next(PlatformError::Unauthorized { message: "Invalid credentials provided.".into() });
    let controller = Controller::new(vec![r.scaler.clone()], Duration::from_millis(5));
    let err = controller.run(std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("API key"), "{err}");
}

#[tokio::test]
async fn controller_runs_several_process_types() {
    let clock = Arc::new(ManualClock::at_secs(0));
    let queue = InMemoryQueue::new(clock.clone());
    let platform = InMemoryPlatform::new();
    let mk = |pt: &str, q: &str, max| {
        Scaler::builder(
            pt,
            Arc::new(queue.watching([q])),
            Arc::new(platform.clone()),
            Policy::new(PolicyConfig { max_workers: max, ..PolicyConfig::classic() }).unwrap(),
        )
        .clock(clock.clone())
        .build()
    };
    let controller =
        Controller::new(vec![mk("worker", "default", 5), mk("urgent", "critical", 2)], Duration::from_secs(1));
    queue.push_many("default", 60);
    queue.push_many("critical", 200);
    let results = controller.run_once().await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(platform.quantity("worker"), 3);
    assert_eq!(platform.quantity("urgent"), 2);
}
