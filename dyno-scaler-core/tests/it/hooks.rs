use std::collections::BTreeSet;
use std::time::Duration;

use super::scaler::rig;

// Tokio's paused clock: the waits below cost no real time.

#[tokio::test(start_paused = true)]
async fn a_burst_of_hooks_coalesces_and_never_waits_on_the_platform() {
    let r = rig(|c| c.max_workers = 5);
    // A slow platform: every call takes 300 ms.
    r.platform.set_delay(Duration::from_millis(300));
    for i in 0..10_000 {
        r.queue.push("default");
        r.scaler.job_enqueued();
        if i == 0 {
            // Let the background task start its first reconcile.
            tokio::task::yield_now().await;
        }
    }
    // The 10,000 calls returned while the first platform call was still sleeping: the caller never waited.
    assert_eq!(r.platform.completed_sets(), 0, "hooks must not wait for the platform");
    // Wait for the background task to settle.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if r.platform.quantity("worker") == 5 {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(r.platform.quantity("worker"), 5);
    let sets = r.platform.set_calls();
    let distinct: BTreeSet<u32> = sets.iter().map(|(_, q)| *q).collect();
    assert!(sets.len() <= distinct.len(), "platform calls {sets:?} exceed distinct quantities {distinct:?}");
    assert!(sets.len() <= 5);
}

#[tokio::test(start_paused = true)]
async fn job_finished_triggers_scale_down() {
    let r = rig(|c| c.down_delay = Duration::ZERO);
    r.queue.push("default");
    r.scaler.job_enqueued();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if r.platform.quantity("worker") == 1 {
            break;
        }
    }
    assert_eq!(r.platform.quantity("worker"), 1);
    assert!(r.queue.start("default"));
    assert!(r.queue.finish("default"));
    r.scaler.job_finished();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if r.platform.quantity("worker") == 0 {
            break;
        }
    }
    assert_eq!(r.platform.quantity("worker"), 0);
}
