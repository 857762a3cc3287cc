//! Heroku has no fencing token: a request of the last lease holder may land after a new holder acted. The new
//! holder reads the formation afresh for a while after a takeover, so a late write is corrected within seconds,
//! not when its cached read expires (a minute).

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::scaler::settle::{REREAD_EVERY, REREAD_WINDOW};
use dyno_scaler_core::{
    DemandRule, InMemoryLease, InMemoryQueue, LeaseOptions, Policy, PolicyConfig, Scaler, SystemClock,
};
use dyno_scaler_heroku::HerokuPlatform;

use super::{config, fake};

#[tokio::test]
async fn a_late_write_of_the_last_holder_is_corrected_soon_after_a_takeover() {
    let fake = fake().await;
    let platform = HerokuPlatform::new(config(&fake)).unwrap();
    let clock = Arc::new(SystemClock);
    let queue = InMemoryQueue::new(clock.clone());
    queue.push_many("default", 25);
    let policy = Policy::new(PolicyConfig {
        max_workers: 10,
        rules: vec![DemandRule::JobsPerWorker(5)],
        ..PolicyConfig::classic()
    })
    .unwrap();
    let lease = InMemoryLease::new(clock.clone(), "worker");
    let opts = LeaseOptions { exclusive: true, ttl: Duration::from_secs(60), identity: "new-holder".into() };
    let scaler =
        Scaler::builder("worker", Arc::new(queue), Arc::new(platform), policy).lease(Arc::new(lease), opts).build();
    // It takes the lease (a takeover) and scales to 5.
    let r = scaler.reconcile().await.unwrap();
    assert!(r.applied && r.decision.to == 5, "{r:?}");
    // The old holder's request, held in flight, lands now and sets 4.
    fake.set_quantity("my-app", "worker", 4);
    tokio::time::sleep(REREAD_EVERY + Duration::from_millis(100)).await;
    assert!(REREAD_EVERY * 2 < REREAD_WINDOW);
    let r = scaler.reconcile().await.unwrap();
    assert_eq!((r.decision.from, r.decision.to), (4, 5), "read afresh, not the cached 5: {r:?}");
    assert_eq!(fake.quantity("my-app", "worker"), Some(5), "corrected within {REREAD_EVERY:?} of the late write");
}
