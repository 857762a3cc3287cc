//! Outages, odd answers and refusals: the adapter backs off across calls, honours `Retry-After`, reads limits from
//! the message, and the scaler neither repeats a refused change nor caps anything on a preboot refusal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dyno_scaler_core::{
    Gate, Hosts, InMemoryQueue, Platform, PlatformError, PlatformExt, Policy, PolicyConfig, QueueStats, Scaler,
    ScalerError, Snapshot, SystemClock,
};
use dyno_scaler_heroku::fake::{FakeHeroku, Fault, FaultAction};
use dyno_scaler_heroku::{HerokuConfig, HerokuPlatform, RetryPolicy};

use super::{config, fake};

fn respond(status: u16, body: &str, headers: &[(&str, &str)]) -> FaultAction {
    FaultAction::Respond {
        status,
        body: body.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn outage_config(fake: &FakeHeroku) -> HerokuConfig {
    let mut c = config(fake);
    c.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        rate_limit_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_total: Duration::from_secs(2),
        outage_initial: Duration::from_millis(50),
        outage_max: Duration::from_millis(200),
        outage_probe: Duration::from_secs(3600),
        max_retry_after: Duration::from_secs(300),
    };
    c.refresh_interval = Duration::ZERO;
    c
}

/// Reads the formation every 10 ms for `span` (a 10 ms poll) as a scaler does, with what the queue says of
/// `worker`'s hosts, returning how many reads failed.
async fn poll_with(p: &HerokuPlatform, hosts: &Hosts, span: Duration) -> (u32, u32) {
    let start = Instant::now();
    let (mut failed, mut backing_off) = (0, 0);
    while start.elapsed() < span {
        match p.formation("worker", hosts, false).await {
            Ok(_) => {}
            Err(PlatformError::BackingOff { .. }) => {
                failed += 1;
                backing_off += 1;
            }
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (failed, backing_off)
}

/// [`poll_with`] with no work waiting.
async fn poll(p: &HerokuPlatform, span: Duration) -> (u32, u32) {
    poll_with(p, &Hosts::default(), span).await
}

/// Requests a 2 s outage may cost at most with these settings: the first call's 4 attempts, then one attempt per
/// backoff wait (25, 50, 100 ms, then at least 100 ms each).
const OUTAGE_BOUND: usize = 4 + 3 + 2000 / 100;

#[tokio::test]
async fn an_outage_costs_a_handful_of_requests_then_recovers() {
    for action in [
        FaultAction::Status(500),
        FaultAction::Status(503),
        FaultAction::Status(429),
        FaultAction::DropConnection,
        respond(200, "{\"quantity\": \"lots\"", &[]),
        respond(200, "<html>maintenance</html>", &[]),
    ] {
        let fake = fake().await;
        let p = HerokuPlatform::new(outage_config(&fake)).unwrap();
        fake.inject(Fault::any(100_000, action.clone()));
        let (failed, backing_off) = poll(&p, Duration::from_secs(2)).await;
        let requests = fake.requests().len();
        assert!(failed > 50, "{action:?}: every call failed ({failed})");
        assert!(backing_off > 40, "{action:?}: most calls made no request ({backing_off})");
        assert!(requests <= OUTAGE_BOUND, "{action:?}: {requests} requests in 2 s (bound {OUTAGE_BOUND})");
        assert!(requests >= 5, "{action:?}: the adapter kept probing ({requests})");
        // Heroku comes back: within the longest wait the next call goes through, with full retries again.
        fake.clear_faults();
        tokio::time::sleep(Duration::from_millis(210)).await;
        assert_eq!(p.current_quantity("worker").await.unwrap(), 0, "{action:?}: recovered");
        fake.inject(Fault::any(1, FaultAction::Status(500)));
        assert_eq!(p.current_quantity("worker").await.unwrap(), 0, "{action:?}: one 500 is retried again");
    }
}

/// While work waits, a read goes through as a probe every `outage_probe` however long the backoff has grown, so
/// the API's return is found within about that; with no work waiting the backoff alone paces the requests.
#[tokio::test]
async fn while_work_waits_an_outage_is_probed_so_its_end_is_found_soon() {
    let fake = fake().await;
    let mut c = outage_config(&fake);
    c.retry.outage_max = Duration::from_secs(60);
    c.retry.outage_initial = Duration::from_secs(20);
    c.retry.outage_probe = Duration::from_millis(300);
    let p = HerokuPlatform::new(c).unwrap();
    fake.inject(Fault::any(100_000, FaultAction::Status(503)));
    // No work: after the first call's attempts, the 20 s backoff lets nothing through.
    poll(&p, Duration::from_secs(1)).await;
    let idle = fake.requests().len();
    assert_eq!(idle, 4, "the first call's attempts only");
    // Work waits: a probe every 300 ms.
    let mut waiting = Snapshot::default();
    waiting.add("default", QueueStats::ready(3));
    let waiting = Hosts::of(&waiting);
    // Another process type of the app, idle, does not stop the probes the worker's waiting work needs.
    let _ = p.formation("urgent", &Hosts::default(), false).await;
    let idle = fake.requests().len();
    poll_with(&p, &waiting, Duration::from_secs(1)).await;
    let probes = fake.requests().len() - idle;
    assert!((3..=5).contains(&probes), "about one probe per 300 ms: {probes}");
    // The API comes back: the next probe finds it, well before the 20 s backoff would have.
    fake.clear_faults();
    let back = Instant::now();
    while p.formation("worker", &waiting, false).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(back.elapsed() < Duration::from_millis(400), "found {:?} after its return", back.elapsed());
    p.set_quantity("worker", 2).await.unwrap();
    assert_eq!(fake.quantity("my-app", "worker"), Some(2));
}

#[tokio::test]
async fn retry_after_is_honoured_between_attempts() {
    let fake = fake().await;
    let mut c = outage_config(&fake);
    c.retry.max_backoff = Duration::from_secs(3);
    let p = HerokuPlatform::new(c).unwrap();
    fake.inject(Fault::any(1, respond(503, r#"{"id":"unavailable","message":"busy"}"#, &[("Retry-After", "1")])));
    p.set_quantity("worker", 2).await.unwrap();
    let r = fake.requests();
    assert_eq!(r.len(), 2);
    let gap = r[1].at.duration_since(r[0].at).unwrap();
    assert!(gap >= Duration::from_millis(990), "the retry waited {gap:?}, Retry-After said 1 s");
    assert_eq!(fake.quantity("my-app", "worker"), Some(2));
}

/// A `Retry-After` longer than a call's longest wait ends the call at once, and no request is made until it has
/// passed (not 10 s later, the longest wait within a call), up to `max_retry_after`.
#[tokio::test]
async fn a_long_retry_after_is_honoured_across_calls() {
    for (asked, expect) in [("40", 40), ("120", 120), ("3600", 300)] {
        let fake = fake().await;
        let mut c = outage_config(&fake);
        c.retry.max_backoff = Duration::from_secs(10);
        let p = HerokuPlatform::new(c).unwrap();
        fake.inject(Fault::any(
            1,
            respond(429, r#"{"id":"rate_limit","message":"slow down"}"#, &[("Retry-After", asked)]),
        ));
        let started = Instant::now();
        let err = p.set_quantity("worker", 2).await.unwrap_err();
        assert!(matches!(err, PlatformError::RateLimited { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "no retry within the call: {:?}", started.elapsed());
        match p.current_quantity("worker").await.unwrap_err() {
            PlatformError::BackingOff { wait, .. } => {
                let want = Duration::from_secs(expect);
                assert!(wait > want - Duration::from_secs(2) && wait <= want, "Retry-After {asked}: waiting {wait:?}");
            }
            other => panic!("Retry-After {asked}: {other:?}"),
        }
        assert_eq!(fake.requests().len(), 1, "Retry-After {asked}: one request, none while it lasts");
    }
}

#[tokio::test]
async fn a_limit_named_only_in_the_message_is_read_from_it() {
    let fake = fake().await;
    let p = HerokuPlatform::new(config(&fake)).unwrap();
    let body = r#"{"id":"invalid_params","message":"Cannot update to more than 3 Hobby size dynos per process type."}"#;
    fake.inject(Fault::on("PATCH", 1, respond(422, body, &[])));
    let err = p.set_quantity("worker", 7).await.unwrap_err();
    assert!(matches!(err, PlatformError::LimitExceeded { requested: 7, limit: Some(3), .. }), "{err:?}");
    // The scaler goes to the limit at once, not one worker per cycle.
    let queue = InMemoryQueue::new(Arc::new(SystemClock));
    queue.push_many("default", 200);
    let policy = Policy::new(PolicyConfig { max_workers: 7, ..PolicyConfig::classic() }).unwrap();
    let scaler = Scaler::builder("worker", Arc::new(queue), Arc::new(p), policy).build();
    fake.inject(Fault::on("PATCH", 1, respond(422, body, &[])));
    assert!(scaler.reconcile().await.is_err());
    let report = scaler.reconcile().await.unwrap();
    assert_eq!((report.decision.to, fake.quantity("my-app", "worker")), (3, Some(3)));
}

fn scaler_for(p: HerokuPlatform, jobs: usize) -> (Scaler, InMemoryQueue) {
    let queue = InMemoryQueue::new(Arc::new(SystemClock));
    queue.push_many("default", jobs);
    let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::classic() }).unwrap();
    (Scaler::builder("worker", Arc::new(queue.clone()), Arc::new(p), policy).build(), queue)
}

#[tokio::test]
async fn an_unexplained_422_is_not_repeated_until_something_changes() {
    let fake = fake().await;
    let (scaler, queue) = scaler_for(HerokuPlatform::new(config(&fake)).unwrap(), 30);
    let body = r#"{"id":"verification_needed","message":"Please verify your account to use this dyno size."}"#;
    fake.inject(Fault::on("PATCH", 1_000, respond(422, body, &[])));
    let err = scaler.reconcile().await.unwrap_err();
    assert!(matches!(&err, ScalerError::Platform { source: PlatformError::Rejected { status: 422, .. }, .. }), "{err}");
    for _ in 0..10 {
        let report = scaler.reconcile().await.unwrap();
        assert_eq!(report.decision.to, 0, "held");
        assert_eq!(report.decision.gate, Some(Gate::Refused { from: 0, to: 2 }), "{:?}", report.decision);
    }
    assert_eq!(fake.requests_with("PATCH").len(), 1, "the refused change was asked once");
    // The queue grows: a new decision is asked for.
    queue.push_many("default", 30);
    assert!(scaler.reconcile().await.is_err());
    assert_eq!(fake.requests_with("PATCH").len(), 2);
}

#[tokio::test]
async fn a_preboot_refusal_caps_nothing_and_is_retried_later() {
    let fake = fake().await;
    let mut c = outage_config(&fake);
    c.refresh_interval = Duration::from_secs(60);
    let (scaler, _queue) = scaler_for(HerokuPlatform::new(c).unwrap(), 60);
    fake.inject(Fault::preboot(1));
    let err = scaler.reconcile().await.unwrap_err();
    assert!(matches!(&err, ScalerError::Platform { source: PlatformError::Locked { .. }, .. }), "{err}");
    assert!(err.to_string().contains("preboot"), "{err}");
    // Retried on a later cycle (after the short backoff), to the full demand: nothing was capped.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let report = scaler.reconcile().await.unwrap();
    assert_eq!((report.decision.to, fake.quantity("my-app", "worker")), (3, Some(3)));
}
