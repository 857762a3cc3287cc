//! The contract every [`QueueSource`] keeps, as a suite that adapters run against their real backend.
//!
//! An adapter implements [`ConformanceBackend`] (a way to put jobs into the real backend exactly as the job
//! library does, and to build a source over it) and calls [`run_conformance`] from its own tests. The
//! in-memory queue runs the same suite.

use std::time::Duration;

mod lease;
mod platform;
mod store;
pub use lease::run_lease_conformance;
pub use platform::{PlatformBackend, run_platform_conformance};
pub use store::run_store_conformance;

use async_trait::async_trait;

use crate::snapshot::{QueueStats, Snapshot};
use crate::source::Source;

/// A real backend the conformance suite can write jobs into.
///
/// Each method writes exactly what the job library writes. Queue names used by the suite are `alpha`
/// and `beta`.
#[async_trait]
pub trait ConformanceBackend: Send + Sync {
    /// Removes every job and worker record of this backend (its own isolated namespace).
    async fn reset(&self);
    /// Enqueues a job ready to run, enqueued `age` ago.
    async fn push_ready(&self, queue: &str, age: Duration);
    /// Schedules a job due `delay` from now.
    async fn push_scheduled(&self, queue: &str, delay: Duration);
    /// Schedules a job that was due `overdue` ago and has not been moved yet (it must count as ready).
    async fn push_due(&self, queue: &str, overdue: Duration);
    /// Makes a live worker on `host` (a dyno name such as `worker.7`, where the backend records hosts) run one
    /// job taken from `queue`.
    async fn push_running(&self, queue: &str, host: &str);
    /// Leaves the record of a worker on `host` that died while running a job from `queue` (its heartbeat
    /// expired, its lock went stale): that job is not running.
    async fn push_dead_running(&self, queue: &str, host: &str);
    /// Puts an unreadable entry into `queue` as its oldest entry (or the closest thing the backend has), and says
    /// whether the job library would still take it off the queue (a worker pops it and fails on it, so it is ready
    /// work: Sidekiq's and Resque's lists, a GoodJob row due at `-infinity`) or never would (DelayedJob's `NULL`
    /// `run_at`, which its `run_at <= now` never matches).
    async fn push_malformed(&self, queue: &str) -> bool;
    /// A source over the backend, with every part it offers, watching `queues` only when given.
    async fn source(&self, queues: Option<Vec<String>>) -> Source;
}

/// A source's event path running in a task of its own, as the scaler runs it ([`watch_events`]): its hints, its
/// status, and the sender that stops it (dropping it stops it too). For tests of an event path.
///
/// [`watch_events`]: crate::events::watch_events
pub fn watching(
    source: Source,
) -> (crate::events::Hints, tokio::sync::watch::Receiver<crate::events::EventStatus>, tokio::sync::watch::Sender<bool>)
{
    let (hints, status) = crate::events::Hints::new();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(crate::events::watch_events(source, hints.clone(), stop));
    (hints, status, stop_tx)
}

/// The event path's status once `want` holds, waiting up to 15 s; panics naming the last status otherwise.
pub async fn settled(
    status: &mut tokio::sync::watch::Receiver<crate::events::EventStatus>,
    want: impl Fn(&crate::events::EventStatus) -> bool,
) -> crate::events::EventStatus {
    crate::events::wait_status(status, Duration::from_secs(15), want)
        .await
        .unwrap_or_else(|last| panic!("the event path never reached the expected status; last: {last}"))
}

/// Waits up to 3 s until `hints` has seen `n` events; panics with how many it saw otherwise.
pub async fn events_reach(hints: &crate::events::Hints, n: u64) {
    assert!(hints.seen(n, Duration::from_secs(3)).await, "expected {n} events, saw {}", hints.events());
}

fn q(s: &Snapshot, name: &str) -> QueueStats {
    s.queues.get(name).copied().unwrap_or_default()
}

fn assert_close(label: &str, got: Option<Duration>, want: Duration) {
    let got = got.unwrap_or_else(|| panic!("{label}: latency missing, expected about {want:?}"));
    let diff = got.as_secs_f64() - want.as_secs_f64();
    assert!(diff.abs() < 5.0, "{label}: latency {got:?}, expected about {want:?}");
}

/// Runs every case of the contract; panics with a message naming the broken rule.
pub async fn run_conformance(b: &dyn ConformanceBackend) {
    empty_is_zero(b).await;
    counts_apart(b).await;
    lists_queues(b).await;
    due_scheduled_is_ready(b).await;
    filters(b).await;
    latency_of_oldest(b).await;
    malformed_skipped(b).await;
    worker_records(b).await;
    remembers(b).await;
    next_due(b).await;
    events(b).await;
}

/// The snapshot says when the soonest job scheduled for later falls due (not when the latest does).
async fn next_due(b: &dyn ConformanceBackend) {
    b.reset().await;
    assert_eq!(snap(b, None).await.next_due, None, "nothing scheduled after reset");
    b.push_scheduled("alpha", Duration::from_secs(40)).await;
    b.push_scheduled("beta", Duration::from_secs(20)).await;
    let due = snap(b, None).await.next_due.expect("jobs are scheduled: the snapshot says when the next is due");
    assert!(
        due > Duration::from_secs(17) && due <= Duration::from_secs(20),
        "next due in {due:?}, expected about 20 s"
    );
}

/// A source with an event path hears a push and a job scheduled for later; one without says why it polls.
async fn events(b: &dyn ConformanceBackend) {
    use crate::events::{EventMode, Hints, watch_events};
    b.reset().await;
    let source = b.source(None).await;
    let (hints, mut status) = Hints::new();
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(watch_events(source, hints.clone(), stop));
    let mode = crate::events::wait_status(&mut status, Duration::from_secs(10), |s| s.mode != EventMode::Starting)
        .await
        .unwrap_or_else(|s| panic!("the event path never said its mode: {s}"));
    if mode.mode == EventMode::Polling {
        assert!(!mode.detail.is_empty(), "a source that polls says why");
        task.abort();
        return;
    }
    let heard = |n: u64| {
        let hints = hints.clone();
        async move { hints.seen(n, Duration::from_secs(5)).await }
    };
    b.push_ready("alpha", Duration::ZERO).await;
    assert!(heard(1).await, "{mode}: a push was not heard");
    let seen = hints.events();
    b.push_scheduled("beta", Duration::from_secs(60)).await;
    assert!(heard(seen + 1).await, "{mode}: a job scheduled for later was not heard");
    task.abort();
}

/// A source with a store keeps what the policy learned there, as the store's own suite asks
/// ([`run_store_conformance`]).
async fn remembers(b: &dyn ConformanceBackend) {
    b.reset().await;
    if let Some(store) = b.source(None).await.store {
        store::remembers(store.as_ref()).await;
    }
}

async fn snap(b: &dyn ConformanceBackend, queues: Option<Vec<String>>) -> Snapshot {
    let source = b.source(queues).await;
    source.queue.snapshot().await.unwrap_or_else(|e| panic!("snapshot failed: {e}"))
}

async fn empty_is_zero(b: &dyn ConformanceBackend) {
    b.reset().await;
    let s = snap(b, None).await;
    let t = s.totals();
    assert_eq!((t.ready, t.running, t.scheduled), (0, 0, 0), "empty backend must read zeros: {s:?}");
    assert_eq!(t.oldest_ready_age, None, "empty backend has no latency");
    assert_eq!(s.skipped, 0, "empty backend skips nothing");
}

async fn counts_apart(b: &dyn ConformanceBackend) {
    b.reset().await;
    for _ in 0..3 {
        b.push_ready("alpha", Duration::from_secs(1)).await;
    }
    for host in ["worker.1", "worker.2"] {
        b.push_running("alpha", host).await;
    }
    for _ in 0..4 {
        b.push_scheduled("alpha", Duration::from_secs(3600)).await;
    }
    b.push_ready("beta", Duration::from_secs(1)).await;
    let s = snap(b, None).await;
    let a = q(&s, "alpha");
    assert_eq!(a.ready, 3, "alpha ready: {s:?}");
    assert_eq!(a.running, 2, "alpha running: {s:?}");
    assert_eq!(a.scheduled, 4, "alpha scheduled: {s:?}");
    let beta = q(&s, "beta");
    assert_eq!((beta.ready, beta.running, beta.scheduled), (1, 0, 0), "beta: {s:?}");
    assert_eq!(s.totals().ready, 4, "total ready: {s:?}");
}

/// A source that lists the queues its store knows lists every queue a job was pushed to, watched or not. (Not a
/// queue whose jobs are all scheduled for later: Sidekiq and Resque add a queue to their set when a job lands in
/// it.)
async fn lists_queues(b: &dyn ConformanceBackend) {
    b.reset().await;
    b.push_ready("alpha", Duration::from_secs(1)).await;
    b.push_ready("beta", Duration::from_secs(1)).await;
    let source = b.source(Some(vec!["alpha".into()])).await;
    match source.queues_seen().await {
        Ok(Some(seen)) => {
            for q in ["alpha", "beta"] {
                assert!(seen.iter().any(|s| s == q), "queue {q} was pushed to, the store's list misses it: {seen:?}");
            }
            assert!(seen.is_sorted(), "sorted: {seen:?}");
        }
        Ok(None) => {}
        Err(e) => panic!("listing the queues failed: {e}"),
    }
}

async fn due_scheduled_is_ready(b: &dyn ConformanceBackend) {
    b.reset().await;
    b.push_due("alpha", Duration::from_secs(120)).await;
    b.push_scheduled("alpha", Duration::from_secs(3600)).await;
    let s = snap(b, None).await;
    let a = q(&s, "alpha");
    assert_eq!(a.ready, 1, "a due scheduled job is ready work: {s:?}");
    assert_eq!(a.scheduled, 1, "a future job is scheduled: {s:?}");
    assert_close("due job", a.oldest_ready_age, Duration::from_secs(120));
}

/// A source watching some queues reports only those, and counts the jobs live workers run from the others as
/// `running_elsewhere`: not demand, but the workers running them are busy and must not be stopped.
async fn filters(b: &dyn ConformanceBackend) {
    b.reset().await;
    b.push_ready("alpha", Duration::from_secs(1)).await;
    b.push_ready("alpha", Duration::from_secs(1)).await;
    b.push_running("alpha", "worker.1").await;
    b.push_dead_running("alpha", "worker.2").await;
    b.push_due("alpha", Duration::from_secs(5)).await;
    b.push_ready("beta", Duration::from_secs(1)).await;
    b.push_due("beta", Duration::from_secs(5)).await;
    let all = snap(b, None).await;
    assert_eq!(q(&all, "alpha").running, 1, "the live worker's job runs (the dead one's does not): {all:?}");
    assert_eq!(all.running_elsewhere, 0, "nothing runs outside a source that watches every queue: {all:?}");
    let s = snap(b, Some(vec!["beta".into()])).await;
    assert_eq!(q(&s, "alpha"), QueueStats::default(), "a filtered-out queue must not be reported: {s:?}");
    let beta = q(&s, "beta");
    assert_eq!((beta.ready, beta.running, beta.scheduled), (2, 0, 0), "only beta's ready and due jobs: {s:?}");
    assert_eq!(s.totals().running, 0, "alpha's running job is filtered out of the demand: {s:?}");
    assert_eq!(s.running_elsewhere, 1, "alpha's live running job is running elsewhere (the dead one is not): {s:?}");
}

async fn latency_of_oldest(b: &dyn ConformanceBackend) {
    b.reset().await;
    b.push_ready("alpha", Duration::from_secs(300)).await;
    b.push_ready("alpha", Duration::from_secs(30)).await;
    b.push_ready("alpha", Duration::from_secs(1)).await;
    let source = b.source(None).await;
    let s = source.queue.snapshot().await.unwrap_or_else(|e| panic!("snapshot failed: {e}"));
    let a = q(&s, "alpha");
    assert_eq!(a.ready, 3);
    if source.queue.capabilities().latency {
        assert_close("oldest ready job", a.oldest_ready_age, Duration::from_secs(300));
    } else if a.oldest_ready_age.is_some() {
        // A source that cannot always tell (Resque) may still know it for some jobs; then it must be right.
        assert_close("oldest ready job", a.oldest_ready_age, Duration::from_secs(300));
    }
}

/// A busy worker on a named host appears busy (on that host, where the source names hosts); one that died does not.
async fn worker_records(b: &dyn ConformanceBackend) {
    b.reset().await;
    b.push_running("alpha", "worker.7").await;
    b.push_dead_running("alpha", "worker.8").await;
    let source = b.source(None).await;
    let caps = source.queue.capabilities();
    let s = source.queue.snapshot().await.unwrap_or_else(|e| panic!("snapshot failed: {e}"));
    assert_eq!(q(&s, "alpha").running, 1, "only the live worker's job runs: {s:?}");
    match (&s.workers, caps.worker_registry) {
        (Some(workers), true) => {
            let busy: Vec<_> = workers.iter().filter(|w| w.busy > 0).collect();
            assert_eq!(busy.len(), 1, "one busy worker, the dead one is not: {workers:?}");
            if caps.names_hosts {
                assert_eq!(busy[0].dyno.as_deref(), Some("worker.7"), "the busy worker's host: {workers:?}");
            }
        }
        (None, false) => {}
        (workers, registry) => panic!("capabilities say worker_registry = {registry}, the snapshot has {workers:?}"),
    }
}

async fn malformed_skipped(b: &dyn ConformanceBackend) {
    b.reset().await;
    let taken = b.push_malformed("alpha").await;
    b.push_ready("alpha", Duration::from_secs(10)).await;
    b.push_ready("alpha", Duration::from_secs(10)).await;
    let s = snap(b, None).await;
    assert_eq!(s.skipped, 1, "a malformed entry must be counted as skipped, once: {s:?}");
    let want = 2 + u64::from(taken);
    let says = if taken { "the job library still takes it" } else { "the job library never takes it" };
    assert_eq!(
        q(&s, "alpha").ready,
        want,
        "the readable jobs are ready, the malformed one as work only if {says}: {s:?}"
    );
}
