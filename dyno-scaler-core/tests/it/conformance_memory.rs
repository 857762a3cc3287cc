use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::conformance::{ConformanceBackend, run_conformance};
use dyno_scaler_core::*;

struct Memory {
    clock: Arc<ManualClock>,
    queue: InMemoryQueue,
}

#[async_trait]
impl ConformanceBackend for Memory {
    async fn reset(&self) {
        self.queue.clear();
    }
    async fn push_ready(&self, queue: &str, age: Duration) {
        self.queue.push_at(queue, self.clock.now() - age);
    }
    async fn push_scheduled(&self, queue: &str, delay: Duration) {
        self.queue.schedule(queue, self.clock.now() + delay);
    }
    async fn push_due(&self, queue: &str, overdue: Duration) {
        self.queue.schedule(queue, self.clock.now() - overdue);
    }
    async fn push_running(&self, queue: &str, host: &str) {
        self.queue.add_running(queue, 1);
        let mut workers = self.queue.workers().unwrap_or_default();
        workers.push(WorkerInfo::new(format!("{host}:1:abc"), Some(host.into()), 1));
        self.queue.set_workers(Some(workers));
    }
    async fn push_dead_running(&self, _queue: &str, _host: &str) {
        // The in-memory queue has no heartbeats: a dead worker is simply not recorded.
    }
    async fn push_malformed(&self, queue: &str) -> bool {
        self.queue.push_malformed(queue);
        false // the in-memory queue's unreadable entry is no job at all
    }
    async fn source(&self, queues: Option<Vec<String>>) -> Source {
        match queues {
            Some(q) => self.queue.watching(q).into(),
            None => self.queue.clone().into(),
        }
    }
}

#[tokio::test]
async fn in_memory_queue_keeps_the_contract() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    run_conformance(&Memory { clock, queue }).await;
}

#[tokio::test]
async fn the_in_memory_store_keeps_the_store_contract() {
    dyno_scaler_core::conformance::run_store_conformance(Arc::new(InMemoryStore::new()), Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn the_in_memory_lease_keeps_the_lease_contract() {
    let store = InMemoryLease::new(Arc::new(SystemClock), "alpha");
    let make = |pt: &str| Arc::new(store.other(pt)) as Arc<dyn Lease>;
    dyno_scaler_core::conformance::run_lease_conformance(&make, Duration::from_millis(300), true).await;
}

/// The in-memory platform as its own backend.
struct MemoryPlatform(InMemoryPlatform);

#[async_trait]
impl dyno_scaler_core::conformance::PlatformBackend for MemoryPlatform {
    async fn add(&self, process_type: &str, quantity: u32) {
        self.0.set(process_type, quantity);
    }
    async fn quantity(&self, process_type: &str) -> Option<u32> {
        Some(self.0.quantity(process_type))
    }
    async fn limit(&self, process_type: &str, limit: u32) -> bool {
        self.0.set_limit(process_type, limit);
        true
    }
    fn knows_types(&self) -> bool {
        false
    }
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(self.0.clone())
    }
}

#[tokio::test]
async fn the_in_memory_platform_keeps_the_platform_contract() {
    dyno_scaler_core::conformance::run_platform_conformance(&MemoryPlatform(InMemoryPlatform::new())).await;
}
