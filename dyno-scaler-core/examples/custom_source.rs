//! A queue source of your own: a job system that reports its jobs and workers as one JSON document (here held in
//! memory; a real one would `GET` it over HTTP), with no store of its own. It implements `QueueSource` (three
//! methods) and `Inspect`, keeps the conformance suite every adapter keeps, and is leased and paused through a
//! store given beside it.
//!
//! `cargo run -p dyno-scaler-core --example custom_source`; `cargo test -p dyno-scaler-core --example custom_source`
//! runs the conformance suite against it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dyno_scaler_core::{
    Capabilities, InMemoryPlatform, InMemoryStore, Inspect, LeaseOptions, Policy, PolicyConfig, QueueSource,
    QueueStats, Scaler, Snapshot, Source, SourceError, Store, WorkerInfo,
};
use serde_json::{Value, json};

/// How long a worker's heartbeat vouches for it.
const ALIVE: f64 = 60.0;

/// The job system's document: `{"jobs": [{"queue", "enqueued_at", "run_at"?}], "workers": [{"id", "host",
/// "queue", "beat"}]}`, times in Unix seconds.
#[derive(Debug, Clone, Default)]
pub struct Document(Arc<Mutex<Value>>);

impl Document {
    fn read(&self) -> Value {
        self.0.lock().expect("document lock").clone()
    }

    fn push(&self, list: &str, item: Value) {
        let mut doc = self.0.lock().expect("document lock");
        if !doc[list].is_array() {
            doc[list] = json!([]);
        }
        doc[list].as_array_mut().expect("an array").push(item);
    }
}

/// The source: the document, and the queues it watches (`None`: all).
#[derive(Debug, Clone)]
pub struct DocumentSource {
    doc: Document,
    queues: Option<Vec<String>>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl DocumentSource {
    fn watched(&self, queue: &str) -> bool {
        self.queues.as_ref().is_none_or(|qs| qs.iter().any(|q| q == queue))
    }

    /// One job into the snapshot; a malformed one is skipped and counted.
    fn add_job(&self, snap: &mut Snapshot, job: &Value, now: f64) {
        let (Some(queue), Some(enqueued)) = (job["queue"].as_str(), job["enqueued_at"].as_f64()) else {
            snap.skipped += 1;
            return;
        };
        if !self.watched(queue) {
            return;
        }
        let mut stats = QueueStats::default();
        match job["run_at"].as_f64() {
            Some(at) if at > now => {
                stats.scheduled = 1;
                let wait = Duration::from_secs_f64(at - now);
                snap.next_due = Some(snap.next_due.map_or(wait, |d| d.min(wait)));
            }
            due => {
                stats.ready = 1;
                stats.oldest_ready_age = Some(Duration::from_secs_f64((now - due.unwrap_or(enqueued)).max(0.0)));
            }
        }
        snap.add(queue, stats);
    }

    /// One worker: alive on a fresh heartbeat, running a job of its queue (of another queue: running elsewhere).
    fn add_worker(&self, snap: &mut Snapshot, w: &Value, now: f64) {
        let (Some(id), Some(beat)) = (w["id"].as_str(), w["beat"].as_f64()) else {
            snap.skipped += 1;
            return;
        };
        if now - beat > ALIVE {
            return; // a dead worker's job is not running
        }
        let queue = w["queue"].as_str();
        match queue {
            Some(q) if self.watched(q) => snap.add(q, QueueStats::running(1)),
            Some(_) => snap.running_elsewhere += 1,
            None => {}
        }
        let host = w["host"].as_str().map(str::to_owned);
        let info = WorkerInfo::new(id.to_owned(), host, u32::from(queue.is_some()))
            .with_beat(Some(UNIX_EPOCH + Duration::from_secs_f64(beat)));
        snap.workers.get_or_insert_with(Vec::new).push(info);
    }
}

#[async_trait]
impl QueueSource for DocumentSource {
    fn name(&self) -> &str {
        "document"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(true, true, true).with_threads(1)
    }

    /// One read of the document (one `GET` for a real one).
    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        let doc = self.doc.read();
        let now = unix(SystemTime::now());
        let mut snap = Snapshot::default().with_workers(Vec::new());
        for job in doc["jobs"].as_array().into_iter().flatten() {
            self.add_job(&mut snap, job, now);
        }
        for w in doc["workers"].as_array().into_iter().flatten() {
            self.add_worker(&mut snap, w, now);
        }
        Ok(snap)
    }
}

#[async_trait]
impl Inspect for DocumentSource {
    /// Every queue a job names.
    async fn queues_seen(&self) -> Result<Option<Vec<String>>, SourceError> {
        let doc = self.doc.read();
        let mut seen: Vec<String> = doc["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["queue"].as_str().map(String::from))
            .collect();
        seen.sort();
        seen.dedup();
        Ok(Some(seen))
    }
}

/// The whole source: the reading and the queue list; the store comes from elsewhere.
fn source(doc: &Document, queues: Option<Vec<String>>) -> Source {
    let source = Arc::new(DocumentSource { doc: doc.clone(), queues });
    Source::new(source.clone()).with_inspect(source)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let doc = Document::default();
    let now = unix(SystemTime::now());
    for _ in 0..12 {
        doc.push("jobs", json!({"queue": "default", "enqueued_at": now - 3.0}));
    }
    // No store of its own: leases, pauses and what the policy learned go to one given beside it (here in memory; a
    // `RedisStore` or `PostgresStore` in production).
    let store = Arc::new(InMemoryStore::new());
    let platform = InMemoryPlatform::new();
    let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::default() })?;
    let scaler =
        Scaler::builder("worker", source(&doc, None).with_store(store.clone()), Arc::new(platform.clone()), policy)
            .lease(store.lease("worker"), LeaseOptions::default())
            .build();
    let report = scaler.reconcile().await?;
    println!("{} -> {}: {}", report.decision.from, report.decision.to, report.decision.reason);
    println!("kept: {}", store.recall("worker").await?.is_some());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyno_scaler_core::conformance::{ConformanceBackend, run_conformance};
    use dyno_scaler_core::{Gate, Pause};

    struct Backend(Document);

    impl Backend {
        fn job(&self, queue: &str, enqueued_ago: f64, run_in: Option<f64>) {
            let now = unix(SystemTime::now());
            let run_at = run_in.map(|r| now + r);
            self.0.push("jobs", json!({"queue": queue, "enqueued_at": now - enqueued_ago, "run_at": run_at}));
        }

        fn worker(&self, queue: &str, host: &str, beat_ago: f64) {
            let beat = unix(SystemTime::now()) - beat_ago;
            self.0.push("workers", json!({"id": format!("{host}:1"), "host": host, "queue": queue, "beat": beat}));
        }
    }

    #[async_trait]
    impl ConformanceBackend for Backend {
        async fn reset(&self) {
            *self.0.0.lock().unwrap() = json!({"jobs": [], "workers": []});
        }
        async fn push_ready(&self, queue: &str, age: Duration) {
            self.job(queue, age.as_secs_f64(), None);
        }
        async fn push_scheduled(&self, queue: &str, delay: Duration) {
            self.job(queue, 0.0, Some(delay.as_secs_f64()));
        }
        async fn push_due(&self, queue: &str, overdue: Duration) {
            self.job(queue, overdue.as_secs_f64() + 60.0, Some(-overdue.as_secs_f64()));
        }
        async fn push_running(&self, queue: &str, host: &str) {
            self.worker(queue, host, 1.0);
        }
        async fn push_dead_running(&self, queue: &str, host: &str) {
            self.worker(queue, host, ALIVE * 5.0);
        }
        async fn push_malformed(&self, _queue: &str) -> bool {
            self.0.push("jobs", json!("not a job"));
            false // no queue: the job system never runs it
        }
        async fn source(&self, queues: Option<Vec<String>>) -> Source {
            source(&self.0, queues).with_store(Arc::new(InMemoryStore::new()))
        }
    }

    #[tokio::test]
    async fn the_document_source_keeps_the_contract() {
        run_conformance(&Backend(Document::default())).await;
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_store_beside_it_the_source_is_paused_like_any_other() {
        let doc = Document::default();
        Backend(doc.clone()).push_ready("default", Duration::from_secs(3)).await;
        let store = Arc::new(InMemoryStore::new());
        let platform = InMemoryPlatform::new();
        let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::default() }).unwrap();
        let scaler =
            Scaler::builder("worker", source(&doc, None).with_store(store.clone()), Arc::new(platform.clone()), policy)
                .lease(store.lease("worker"), LeaseOptions { ttl: Duration::from_secs(3), ..LeaseOptions::default() })
                .build();
        store.lease("worker").set_pause(Some(&Pause::new("ops", SystemTime::now(), None))).await.unwrap();
        let held = scaler.reconcile().await.unwrap();
        assert!(matches!(held.decision.gate, Some(Gate::Paused { .. })) && held.decision.would == Some(1), "{held:?}");
        store.lease("worker").set_pause(None).await.unwrap();
        // Every instance hears a resume at its next renewal, within a third of the lease's TTL.
        tokio::time::advance(Duration::from_millis(1_100)).await;
        let rep = scaler.reconcile().await.unwrap();
        assert_eq!((rep.decision.to, platform.quantity("worker")), (1, 1), "{rep:?}");
    }
}
