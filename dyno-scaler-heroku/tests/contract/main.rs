//! The Heroku adapter against the fake Heroku server, and the fake against Heroku's contract.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::{
    InMemoryQueue, ManualClock, Platform, PlatformError, PlatformExt, Policy, PolicyConfig, Scaler,
};
use dyno_scaler_heroku::fake::{FakeConfig, FakeHeroku, Fault, FaultAction};
use dyno_scaler_heroku::{HerokuConfig, HerokuPlatform, RetryPolicy};
use serde_json::{Value, json};

mod fake;
mod outage;
mod platform_conformance;
mod takeover;

const KEY: &str = "01234567-89ab-cdef-0123-456789abcdef";
const ALICE: &str = "alice@example.com";

async fn fake_with(config: FakeConfig) -> FakeHeroku {
    let fake = FakeHeroku::start(config).await;
    fake.add_app("my-app", ALICE);
    fake.add_formation("my-app", "web", "bundle exec puma -C config/puma.rb", "Standard-1X", 1);
    fake.add_formation("my-app", "worker", "bundle exec sidekiq -t 25", "Standard-1X", 0);
    fake.add_formation("my-app", "urgent", "bundle exec sidekiq -q critical -t 25", "Standard-1X", 0);
    fake.add_formation("my-app", "cheap", "bundle exec rake jobs:work", "Eco", 0);
    fake.add_token(KEY, ALICE);
    fake
}

async fn fake() -> FakeHeroku {
    fake_with(FakeConfig::default()).await
}

fn config(fake: &FakeHeroku) -> HerokuConfig {
    let mut c = HerokuConfig::new(KEY, "my-app");
    c.base_url = fake.url();
    c.request_timeout = Duration::from_millis(500);
    c.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        rate_limit_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(500),
        max_total: Duration::from_secs(5),
        outage_initial: Duration::from_millis(1),
        outage_max: Duration::from_millis(1),
        outage_probe: Duration::from_secs(3600),
        max_retry_after: Duration::from_secs(300),
    };
    c
}

fn platform(fake: &FakeHeroku) -> HerokuPlatform {
    HerokuPlatform::new(config(fake)).unwrap()
}

#[tokio::test]
async fn set_quantity_sends_exactly_the_contract() {
    let fake = fake().await;
    let p = platform(&fake);
    p.set_quantity("worker", 3).await.unwrap();
    let patches = fake.requests_with("PATCH");
    assert_eq!(patches.len(), 1);
    let r = &patches[0];
    assert_eq!(r.path, "/apps/my-app/formation/worker");
    assert_eq!(r.header("accept"), Some("application/vnd.heroku+json; version=3"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("dyno-scaler/"), "{:?}", r.header("user-agent"));
    assert_eq!(r.auth_scheme.as_deref(), Some("Bearer"));
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body, json!({"quantity": 3}));
    assert!(body["quantity"].is_u64(), "quantity must be a JSON integer");
    assert_eq!(fake.quantity("my-app", "worker"), Some(3));
    assert_eq!(fake.dyno_names("my-app", "worker"), vec!["worker.1", "worker.2", "worker.3"]);
}

#[tokio::test]
async fn the_cache_saves_calls_and_expires() {
    let fake = fake().await;
    let mut c = config(&fake);
    c.refresh_interval = Duration::from_millis(200);
    let p = HerokuPlatform::new(c).unwrap();
    assert_eq!(p.current_quantity("worker").await.unwrap(), 0);
    assert_eq!(p.current_quantity("worker").await.unwrap(), 0);
    p.set_quantity("worker", 2).await.unwrap();
    assert_eq!(p.current_quantity("worker").await.unwrap(), 2, "the write refreshed the cache");
    assert_eq!(fake.requests_with("GET").len(), 1, "one read in all");
    // Someone scales by hand: seen after the refresh interval.
    fake.set_quantity("my-app", "worker", 5);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(p.current_quantity("worker").await.unwrap(), 5);
    assert_eq!(fake.requests_with("GET").len(), 2);
}

#[tokio::test]
async fn a_low_rate_budget_slows_reads_but_not_writes() {
    let fake = fake().await;
    let mut c = config(&fake);
    c.refresh_interval = Duration::from_millis(100);
    c.rate_limit_floor = 100;
    let p = HerokuPlatform::new(c).unwrap();
    fake.set_tokens(ALICE, 50.0);
    p.current_quantity("worker").await.unwrap();
    assert_eq!(p.rate_limit_remaining(), Some(49));
    tokio::time::sleep(Duration::from_millis(150)).await;
    p.current_quantity("worker").await.unwrap();
    assert_eq!(fake.requests_with("GET").len(), 1, "below the floor the cached quantity is trusted longer");
    p.set_quantity("worker", 1).await.unwrap();
    assert_eq!(fake.requests_with("PATCH").len(), 1, "writes still go through");
}

#[tokio::test]
async fn batch_update_and_formation_list() {
    let fake = fake().await;
    let p = platform(&fake);
    let updated = p.set_quantities(&[("worker", 3), ("urgent", 1)]).await.unwrap();
    assert_eq!(updated.len(), 2);
    let r = &fake.requests_with("PATCH")[0];
    assert_eq!(r.path, "/apps/my-app/formation");
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        json!({"updates": [{"type": "worker", "quantity": 3}, {"type": "urgent", "quantity": 1}]})
    );
    assert_eq!((fake.quantity("my-app", "worker"), fake.quantity("my-app", "urgent")), (Some(3), Some(1)));
    let all = p.formations().await.unwrap();
    assert_eq!(all.len(), 4, "every process type, including those at 0");
    // All or nothing: one item above its limit rejects the whole batch.
    let err = p.set_quantities(&[("worker", 4), ("cheap", 2)]).await.unwrap_err();
    assert!(matches!(err, PlatformError::LimitExceeded { limit: Some(1), .. }), "{err:?}");
    assert_eq!(fake.quantity("my-app", "worker"), Some(3));
}

#[tokio::test]
async fn dynos_follow_pagination_and_count_only_the_type() {
    let fake = fake_with(FakeConfig { app_limit: 1000, ..FakeConfig::default() }).await;
    fake.add_one_off("my-app", "run", "bash");
    fake.set_quantity("my-app", "worker", 250);
    let p = platform(&fake);
    let procs = p.list_processes("worker").await.unwrap().unwrap();
    assert_eq!(procs.len(), 250);
    assert!(procs.iter().all(|d| d.name.starts_with("worker.")));
    let gets = fake.requests_with("GET");
    assert_eq!(gets.len(), 2, "a 206 page, then the rest");
    assert!(gets[1].header("range").unwrap().starts_with("id ]"), "{:?}", gets[1].header("range"));
}

#[tokio::test]
async fn scale_down_stops_the_highest_numbered_dynos() {
    let fake = fake().await;
    let p = platform(&fake);
    p.set_quantity("worker", 5).await.unwrap();
    p.set_quantity("worker", 2).await.unwrap();
    assert_eq!(fake.dyno_names("my-app", "worker"), vec!["worker.1", "worker.2"]);
    p.set_quantity("worker", 3).await.unwrap();
    assert_eq!(fake.dyno_names("my-app", "worker"), vec!["worker.1", "worker.2", "worker.3"]);
}

#[tokio::test]
async fn auth_errors_are_clear_and_never_retried() {
    let fake = fake().await;
    let mut c = config(&fake);
    c.api_key = dyno_scaler_core::Secret::new("wrong-token");
    let p = HerokuPlatform::new(c).unwrap();
    let err = p.set_quantity("worker", 1).await.unwrap_err();
    assert!(matches!(err, PlatformError::Unauthorized { .. }) && err.is_fatal(), "{err:?}");
    assert!(err.to_string().contains("Invalid credentials provided."), "{err}");
    assert_eq!(fake.requests().len(), 1, "401 is not retried");

    fake.add_token("bob-token", "bob@example.com");
    let mut c = config(&fake);
    c.api_key = dyno_scaler_core::Secret::new("bob-token");
    let err = HerokuPlatform::new(c).unwrap().current_quantity("worker").await.unwrap_err();
    assert!(matches!(err, PlatformError::Forbidden { .. }), "{err:?}");
}

#[tokio::test]
async fn not_found_names_the_app_or_the_type() {
    let fake = fake().await;
    let p = platform(&fake);
    let err = p.current_quantity("wroker").await.unwrap_err();
    assert!(matches!(err, PlatformError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("Couldn't find that process type (wroker)."), "{err}");
    let mut c = config(&fake);
    c.app = "no-such-app".into();
    let err = HerokuPlatform::new(c).unwrap().current_quantity("worker").await.unwrap_err();
    assert!(err.to_string().contains("Couldn't find that app.") && err.to_string().contains("no-such-app"), "{err}");
    assert_eq!(fake.requests().len(), 2, "404s are not retried");
}

#[tokio::test]
async fn limit_422_reports_the_limit_and_is_not_retried() {
    let fake = fake().await;
    let p = platform(&fake);
    let err = p.set_quantity("cheap", 3).await.unwrap_err();
    match &err {
        PlatformError::LimitExceeded { requested, limit, message } => {
            assert_eq!((*requested, *limit), (3, Some(1)));
            assert!(message.contains("Cannot run more than 1 Eco size dynos."), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests_with("PATCH").len(), 1);
    assert_eq!(fake.quantity("my-app", "cheap"), Some(0), "a rejected request changes nothing");
}

#[tokio::test]
async fn rate_limited_then_recovers_with_backoff() {
    // Two 429s with Heroku's rate_limit body (the fake's own token bucket is tested below with a manual clock).
    let fake = fake().await;
    fake.inject(Fault::on("PATCH", 2, FaultAction::Status(429)));
    let p = platform(&fake);
    let started = std::time::Instant::now();
    p.set_quantity("worker", 2).await.unwrap();
    let statuses: Vec<u16> = fake.requests_with("PATCH").iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
    assert_eq!(fake.quantity("my-app", "worker"), Some(2));
    assert!(started.elapsed() < Duration::from_secs(5), "bounded by the retry policy");
}

#[tokio::test]
async fn rate_limit_retries_give_up_within_the_bound() {
    let fake = fake().await;
    fake.set_tokens(ALICE, 0.0);
    let fake_cfg = config(&fake);
    let p = HerokuPlatform::new(HerokuConfig {
        retry: RetryPolicy { max_attempts: 2, ..fake_cfg.retry.clone() },
        ..fake_cfg
    })
    .unwrap();
    // With the default refill (1.25/s) no token comes back within two quick attempts.
    let err = p.set_quantity("worker", 2).await.unwrap_err();
    assert!(matches!(err, PlatformError::RateLimited { .. }), "{err:?}");
    assert!(fake.requests().iter().all(|r| r.status == 429));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed_once() {
    let fake = fake().await;
    fake.inject(Fault::on("PATCH", 2, FaultAction::Status(503)));
    let p = platform(&fake);
    p.set_quantity("worker", 4).await.unwrap();
    let statuses: Vec<u16> = fake.requests_with("PATCH").iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(fake.quantity("my-app", "worker"), Some(4));
}

#[tokio::test]
async fn retries_are_bounded() {
    let fake = fake().await;
    fake.inject(Fault::any(100, FaultAction::Status(500)));
    let p = platform(&fake);
    let err = p.set_quantity("worker", 4).await.unwrap_err();
    assert!(matches!(err, PlatformError::Unavailable { .. }), "{err:?}");
    assert_eq!(fake.requests().len(), 4, "max_attempts");
    assert_eq!(fake.quantity("my-app", "worker"), Some(0));
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_retried() {
    let fake = fake().await;
    fake.inject(Fault::on("PATCH", 1, FaultAction::Delay(Duration::from_secs(2))));
    fake.inject(Fault::on("GET", 1, FaultAction::DropConnection));
    let p = platform(&fake);
    p.set_quantity("worker", 1).await.unwrap();
    assert_eq!(fake.quantity("my-app", "worker"), Some(1));
    assert!(fake.requests_with("PATCH").len() >= 2);
    let p2 = platform(&fake);
    assert_eq!(p2.current_quantity("worker").await.unwrap(), 1);
    assert_eq!(fake.requests_with("GET").len(), 2, "dropped, then answered");
}

#[tokio::test]
async fn the_key_never_leaks() {
    use std::io::Write;
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || w.clone()).finish();
    // The process-wide subscriber (the only test here that sets one): a scoped one races with other tests'
    // threads over tracing's callsite cache, and every test's logs are worth checking for the key anyway.
    tracing::subscriber::set_global_default(subscriber).expect("no other test sets a global subscriber");

    let fake = fake().await;
    fake.inject(Fault::on("PATCH", 1, FaultAction::Status(503)));
    let p = platform(&fake);
    p.set_quantity("worker", 1).await.unwrap();
    let errors = [p.set_quantity("cheap", 5).await.unwrap_err(), p.current_quantity("nope").await.unwrap_err()];
    let mut shown = format!("{p:?} {:?}", p.config());
    for e in &errors {
        shown.push_str(&format!("{e} {e:?}"));
    }
    shown.push_str(&String::from_utf8_lossy(&buf.0.lock().unwrap()));
    for r in fake.requests() {
        shown.push_str(&format!("{r:?}"));
    }
    assert!(shown.contains("retrying"), "the retry was logged: {shown}");
    assert!(!shown.contains(KEY), "API key leaked: {shown}");
}

#[tokio::test]
async fn the_scaler_drives_the_fake() {
    let fake = fake().await;
    let p: Arc<dyn Platform> = Arc::new(platform(&fake));
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::classic() }).unwrap();
    let scaler = Scaler::builder("cheap", Arc::new(queue.clone()), p.clone(), policy).clock(clock).build();
    queue.push_many("default", 60);
    // Eco allows one dyno: the first PATCH (3) is refused, the next cycle clamps to 1, later cycles are silent.
    assert!(scaler.reconcile().await.is_err());
    scaler.reconcile().await.unwrap();
    scaler.reconcile().await.unwrap();
    let bodies: Vec<String> = fake.requests_with("PATCH").iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, vec![r#"{"quantity":3}"#, r#"{"quantity":1}"#]);
    assert_eq!(fake.quantity("my-app", "cheap"), Some(1));
    // An unchanged decision costs no API call at all.
    fake.clear_requests();
    scaler.reconcile().await.unwrap();
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[tokio::test]
async fn a_new_leader_reads_the_formation_afresh_before_acting() {
    use dyno_scaler_core::{InMemoryLease, LeaseOptions};
    let fake = fake().await;
    fake.set_quantity("my-app", "worker", 3);
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let store = InMemoryLease::new(clock.clone(), "worker");
    // The lease's expiry follows the manual clock; its renewals are asked every ttl / 3 of real time.
    let ttl = Duration::from_millis(300);
    let policy = || {
        Policy::new(PolicyConfig { max_workers: 5, down_delay: Duration::from_secs(3600), ..PolicyConfig::classic() })
            .unwrap()
    };
    let instance = |name: &str| {
        // Each instance has its own client and cache, as separate dynos do; the cache trusts a read for a minute.
        let mut c = config(&fake);
        c.refresh_interval = Duration::from_secs(60);
        let opts = LeaseOptions { exclusive: true, ttl, identity: name.into() };
        let p = Arc::new(HerokuPlatform::new(c).unwrap());
        Scaler::builder("worker", Arc::new(queue.clone()), p, policy())
            .clock(clock.clone())
            .lease(Arc::new(store.other("worker")), opts)
            .build()
    };
    let a = instance("a");
    let b = instance("b");
    // 60 jobs want 3: `a` leads and holds; `b` follows and reads the formation (3) into its cache.
    queue.push_many("default", 60);
    assert!(a.reconcile().await.unwrap().acting);
    assert!(!b.reconcile().await.unwrap().acting);
    // More work: the leader scales 3 -> 4, then dies without releasing.
    queue.push_many("default", 20);
    a.reconcile().await.unwrap();
    assert_eq!(fake.quantity("my-app", "worker"), Some(4));
    drop(a);
    fake.clear_requests();
    clock.advance(ttl);
    tokio::time::sleep(ttl / 2).await;
    // `b` takes over within its cache's minute: it must see 4, not its follower's 3, and so not PATCH at all.
    let r = b.reconcile().await.unwrap();
    assert!(r.acting, "{r:?}");
    assert_eq!((r.decision.from, r.decision.to), (4, 4), "{}", r.decision.reason);
    assert!(fake.requests_with("PATCH").is_empty(), "{:?}", fake.requests_with("PATCH"));
}
