//! One loop per process type: a slow platform call for one never delays another, and the job hook wakes the
//! same loop. Tokio's paused clock stands in for real sleeps.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::*;
use tokio::time::Instant;

fn scaler(process_type: &str, queue: &InMemoryQueue, platform: &InMemoryPlatform) -> Scaler {
    let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::classic() }).unwrap();
    Scaler::builder(process_type, Arc::new(queue.clone()), Arc::new(platform.clone()), policy).build()
}

#[tokio::test(start_paused = true)]
async fn a_slow_platform_for_one_process_type_never_delays_another() {
    let (slow_q, fast_q) = (InMemoryQueue::new(Arc::new(SystemClock)), InMemoryQueue::new(Arc::new(SystemClock)));
    let (slow_p, fast_p) = (InMemoryPlatform::new(), InMemoryPlatform::new());
    slow_p.set_delay(Duration::from_secs(30));
    let controller = Controller::new(
        vec![scaler("slow", &slow_q, &slow_p), scaler("fast", &fast_q, &fast_p)],
        Duration::from_secs(1),
    )
    .with_shutdown_grace(Duration::from_secs(60));
    slow_q.push_many("default", 30);
    let started = Instant::now();
    let mut took = Duration::MAX;
    let watch = async {
        // Work appears for the fast type while the slow type's platform call hangs for 30 s.
        tokio::time::sleep(Duration::from_secs(3)).await;
        fast_q.push_many("default", 30);
        while fast_p.quantity("fast") == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        took = started.elapsed();
    };
    controller.run(watch).await.unwrap();
    assert_eq!(fast_p.quantity("fast"), 2);
    assert!(took < Duration::from_secs(5), "the fast type scaled {took:?} after start, not after the slow call");
    assert_eq!(slow_p.quantity("slow"), 2, "the slow call finished within the shutdown grace");
}

#[tokio::test(start_paused = true)]
async fn the_job_hook_wakes_the_loop_without_a_task_of_its_own() {
    let q = InMemoryQueue::new(Arc::new(SystemClock));
    let p = InMemoryPlatform::new();
    let s = scaler("worker", &q, &p);
    let controller = Controller::new(vec![s.clone()], Duration::from_secs(60));
    let watch = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.push_many("default", 30);
        s.job_enqueued();
        let woke = Instant::now();
        while p.quantity("worker") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        woke.elapsed()
    };
    tokio::pin!(watch);
    let mut reacted = None;
    controller
        .run(async {
            reacted = Some((&mut watch).await);
        })
        .await
        .unwrap();
    let reacted = reacted.unwrap();
    assert!(reacted < Duration::from_secs(1), "the hook woke the 60 s loop at once ({reacted:?})");
    assert_eq!(p.set_calls().len(), 1, "one reconcile, one platform call");
}

/// A stop that abandons a hung platform call still gives the lease back, so a successor acts at its next campaign
/// instead of waiting out the TTL.
#[tokio::test(start_paused = true)]
async fn a_stop_during_a_hung_call_releases_the_lease() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let q = InMemoryQueue::new(clock.clone());
    let p = InMemoryPlatform::new();
    p.set_delay(Duration::from_secs(3_600));
    let store = InMemoryLease::new(clock.clone(), "worker");
    let opts = LeaseOptions { exclusive: true, ttl: Duration::from_secs(15), identity: "leader".into() };
    let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::classic() }).unwrap();
    let leader = Scaler::builder("worker", Arc::new(q.clone()), Arc::new(p.clone()), policy)
        .clock(clock.clone())
        .lease(Arc::new(store.other("worker")), opts)
        .build();
    let controller =
        Controller::new(vec![leader], Duration::from_secs(1)).with_shutdown_grace(Duration::from_millis(800));
    q.push_many("default", 30);
    // SIGTERM two seconds in, while the platform call hangs.
    controller.run(tokio::time::sleep(Duration::from_secs(2))).await.unwrap();
    let state = store.read().await.unwrap();
    assert_eq!(state.holder, None, "the abandoned cycle's lease was given back: {state:?}");
    // A successor takes it at once.
    let next = store.other("worker");
    assert!(next.campaign("successor", Duration::from_secs(15)).await.unwrap().held);
}
