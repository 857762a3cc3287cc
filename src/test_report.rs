//! What the library's unit tests share: a report of a real scaler over the in-memory fakes, whose fields a test
//! then sets by hand (a `Report` is `#[non_exhaustive]`).

use std::sync::{Arc, OnceLock};

use dyno_scaler_core::*;

/// A `worker` report (at most 4 workers, nothing queued), cloned from one made once.
pub fn base() -> Report {
    static BASE: OnceLock<Report> = OnceLock::new();
    BASE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
            let queue = InMemoryQueue::new(clock.clone());
            let policy = Policy::new(PolicyConfig { max_workers: 4, ..PolicyConfig::classic() }).unwrap();
            let platform = Arc::new(InMemoryPlatform::new());
            Scaler::builder("worker", Arc::new(queue), platform, policy).clock(clock).build().reconcile().await.unwrap()
        })
    })
    .clone()
}
