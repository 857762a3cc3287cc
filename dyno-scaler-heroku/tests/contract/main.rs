//! The Heroku adapter against the fake Heroku server, and the fake against Heroku's contract.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::{
    InMemoryQueue, ManualClock, Platform, PlatformError, Policy, PolicyConfig, Scaler, SystemClock,
};
use dyno_scaler_heroku::fake::{FakeConfig, FakeHeroku, Fault, FaultAction};
use dyno_scaler_heroku::{HerokuConfig, HerokuPlatform, RetryPolicy};
use serde_json::{Value, json};

mod outage;

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
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests of this binary may have evaluated the callsites without a subscriber: ask again.
    tracing::callsite::rebuild_interest_cache();

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
    let policy = Policy::new(PolicyConfig { max_workers: 5, ..PolicyConfig::default() }).unwrap();
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

// ---- The fake itself, over raw HTTP ----

struct Raw {
    client: reqwest::Client,
    base: String,
}

impl Raw {
    fn new(fake: &FakeHeroku) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self { client: reqwest::Client::new(), base: fake.url() }
    }
    async fn send(
        &self,
        method: &str,
        path: &str,
        accept: Option<&str>,
        auth: Option<&str>,
        body: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut r = self.client.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(a) = accept {
            r = r.header("Accept", a);
        }
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        if let Some(b) = body {
            r = r.header("Content-Type", "application/json").body(b.to_owned());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, headers, v)
    }
    async fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
        self.send(method, path, Some("application/vnd.heroku+json; version=3"), Some(&format!("Bearer {KEY}")), body)
            .await
    }
}

#[tokio::test]
async fn fake_checks_headers_in_herokus_order() {
    let fake = fake().await;
    let raw = Raw::new(&fake);
    let (s, h, v) = raw.send("GET", "/apps/my-app/formation", None, Some(&format!("Bearer {KEY}")), None).await;
    assert_eq!((s, v["id"].as_str()), (406, Some("not_acceptable")));
    assert!(h.get("request-id").is_some());
    let (s, _, v) =
        raw.send("GET", "/apps/my-app/formation", Some("application/vnd.heroku+json; version=3"), None, None).await;
    assert_eq!(
        (s, v["id"].as_str(), v["message"].as_str()),
        (401, Some("unauthorized"), Some("Invalid credentials provided."))
    );
    // Basic with the token as password (any user name) is accepted.
    let basic = "Basic OjAxMjM0NTY3LTg5YWItY2RlZi0wMTIzLTQ1Njc4OWFiY2RlZg=="; // base64(":" + KEY)
    let (s, h, _) = raw
        .send("GET", "/apps/my-app/formation", Some("application/vnd.heroku+json; version=3"), Some(basic), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(h.get("content-type").unwrap(), "application/json");
    assert!(h.get("ratelimit-remaining").is_some());
    assert_eq!(h.get("accept-ranges").unwrap(), "id, type");
    let (s, _, _) = raw.api("GET", "/apps/my-app/formation/", None).await;
    assert_eq!(s, 404, "a trailing slash is not found");
    let (s, _, v) = raw.api("GET", "/apps/other-app/formation", None).await;
    assert_eq!((s, v["message"].as_str()), (404, Some("Couldn't find that app.")));
}

#[tokio::test]
async fn fake_validates_bodies_like_heroku() {
    let fake = fake().await;
    let raw = Raw::new(&fake);
    let p = "/apps/my-app/formation/worker";
    assert_eq!(raw.api("PATCH", p, Some("{oops")).await.0, 400);
    let (s, _, v) = raw.api("PATCH", p, Some(r#"{"quantity": -1}"#)).await;
    assert_eq!((s, v["id"].as_str()), (422, Some("invalid_params")));
    assert_eq!(raw.api("PATCH", p, Some(r#"{"quantity": 1.5}"#)).await.0, 422);
    // The CLI's string quantities.
    assert_eq!(raw.api("PATCH", p, Some(r#"{"quantity": "2"}"#)).await.2["quantity"], 2);
    assert_eq!(raw.api("PATCH", p, Some(r#"{"quantity": "+1"}"#)).await.2["quantity"], 3);
    assert_eq!(raw.api("PATCH", p, Some(r#"{"quantity": "-2"}"#)).await.2["quantity"], 1);
    // Sizes: canonical names back; old short names refused.
    let (_, _, v) = raw.api("PATCH", p, Some(r#"{"size": "standard-2x"}"#)).await;
    assert_eq!((v["size"].as_str(), v["dyno_size"]["name"].as_str()), (Some("Standard-2X"), Some("Standard-2X")));
    let (s, _, v) = raw.api("PATCH", p, Some(r#"{"dyno_size": {"name": "1X"}}"#)).await;
    assert_eq!(s, 422);
    assert!(v["message"].as_str().unwrap().starts_with("No such size as 1X."));
    // Limits: Heroku's 422 body, nothing changed.
    let (s, _, v) = raw.api("PATCH", p, Some(r#"{"quantity": 2, "dyno_size": {"name": "Performance-M"}}"#)).await;
    assert_eq!(s, 200, "{v}");
    let (s, _, v) = raw.api("PATCH", p, Some(r#"{"quantity": 11}"#)).await;
    assert_eq!((s, v["id"].as_str(), v["limit"].as_u64()), (422, Some("cannot_run_above_limit"), Some(10)));
    assert_eq!(v["message"].as_str(), Some("Cannot run more than 10 Performance-M size dynos."));
    assert!(v["url"].is_string());
    assert_eq!(fake.quantity("my-app", "worker"), Some(2));
    // Batch.
    assert_eq!(raw.api("PATCH", "/apps/my-app/formation", Some(r#"{}"#)).await.0, 422);
    assert_eq!(
        raw.api("PATCH", "/apps/my-app/formation", Some(r#"{"updates":[{"type":"worker","quantity":1,"bogus":1}]}"#))
            .await
            .0,
        422
    );
    assert_eq!(raw.api("PATCH", "/apps/my-app/formation", Some(r#"{"updates":[{"quantity":1}]}"#)).await.0, 422);
    let (s, _, v) =
        raw.api("PATCH", "/apps/my-app/formation", Some(r#"{"updates":[{"type":"urgent","quantity":1}]}"#)).await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 1), "only the updated types");
    assert_eq!(
        raw.api("GET", "/apps/my-app/formation/nope", None).await.2["message"],
        "Couldn't find that process type (nope)."
    );
}

#[tokio::test]
async fn fake_rate_limit_is_a_token_bucket_per_account() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let fake = fake_with(FakeConfig {
        rate_capacity: 3.0,
        rate_refill_per_sec: 1.0,
        clock: clock.clone(),
        ..FakeConfig::default()
    })
    .await;
    let raw = Raw::new(&fake);
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let (s, h, v) = raw.api("GET", "/apps/my-app/formation/worker", None).await;
        let id = if s == 200 { None } else { v["id"].as_str().map(str::to_owned) };
        remaining.push((s, h["ratelimit-remaining"].to_str().unwrap().to_owned(), id));
    }
    assert_eq!(remaining[0], (200, "2".into(), None));
    assert_eq!(remaining[2], (200, "0".into(), None));
    assert_eq!(remaining[3], (429, "0".into(), Some("rate_limit".into())));
    // The rate-limit endpoint is free.
    let (s, _, v) = raw.api("GET", "/account/rate-limits", None).await;
    assert_eq!((s, v["remaining"].as_u64()), (200, Some(0)));
    clock.advance(Duration::from_millis(1500));
    assert_eq!(raw.api("GET", "/apps/my-app/formation/worker", None).await.0, 200);
    assert!((fake.tokens(ALICE) - 0.5).abs() < 1e-9, "{}", fake.tokens(ALICE));
}

#[tokio::test]
async fn fake_models_boot_and_drain() {
    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let fake = fake_with(FakeConfig {
        clock: clock.clone(),
        boot_delay: Duration::from_secs(20),
        drain_delay: Duration::from_secs(30),
        ..FakeConfig::default()
    })
    .await;
    let raw = Raw::new(&fake);
    fake.set_quantity("my-app", "worker", 3);
    let (_, _, v) = raw.api("GET", "/apps/my-app/dynos/worker.3", None).await;
    assert_eq!(v["state"], "starting");
    clock.advance(Duration::from_secs(21));
    assert_eq!(raw.api("GET", "/apps/my-app/dynos/worker.3", None).await.2["state"], "up");
    fake.set_quantity("my-app", "worker", 1);
    assert_eq!(fake.dyno_names("my-app", "worker").len(), 3, "stopping dynos stay listed while they drain");
    clock.advance(Duration::from_secs(31));
    assert_eq!(fake.dyno_names("my-app", "worker"), vec!["worker.1"]);
}

// ---- The fake must not drift from Heroku's schema ----

fn schema_for(definition: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/heroku-platform-api-formation.schema.json"
    ))
    .unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    // Heroku's `strictProperties: true` means exactly these properties.
    fn strict(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.get("strictProperties") == Some(&Value::Bool(true))
                    && let Some(Value::Object(props)) = m.get("properties")
                {
                    let keys: Vec<Value> = props.keys().map(|k| Value::String(k.clone())).collect();
                    m.insert("required".into(), Value::Array(keys));
                    m.insert("additionalProperties".into(), Value::Bool(false));
                }
                m.values_mut().for_each(strict);
            }
            Value::Array(a) => a.iter_mut().for_each(strict),
            _ => {}
        }
    }
    strict(&mut doc);
    // The `$ref`s that resolve only against the full upstream schema (table in §11 of the contract).
    let defs = doc["definitions"].as_object_mut().unwrap();
    let uuid = json!({"type": ["string"], "format": "uuid", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"});
    defs.insert("app".into(), json!({"definitions": {"id": uuid, "name": {"type": ["string"], "pattern": "^[a-z][a-z0-9-]{1,28}[a-z0-9]$"}, "identity": {"anyOf": [{"$ref": "#/definitions/app/definitions/id"}, {"$ref": "#/definitions/app/definitions/name"}]}}}));
    defs.insert("dyno-size".into(), json!({"definitions": {"id": uuid, "name": {"type": ["string"]}}}));
    defs.insert("release".into(), json!({"definitions": {"id": uuid, "version": {"type": ["integer"]}}}));
    defs.insert("dyno_size".into(), json!({"definitions": {"id": uuid, "name": {"type": ["string"]}}}));
    let root = json!({"$schema": "http://json-schema.org/draft-04/schema#", "definitions": doc["definitions"], "$ref": format!("#/definitions/{definition}")});
    jsonschema::options().with_draft(jsonschema::Draft::Draft4).should_validate_formats(true).build(&root).unwrap()
}

fn check(v: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{instance}\n{errors:#?}");
}

#[tokio::test]
async fn fake_responses_match_herokus_schema() {
    let formation = schema_for("formation");
    let dyno = schema_for("dyno");
    // The schema check itself can fail: a missing or extra property is caught.
    let bad = json!({"app": {"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "name": "my-app"}, "quantity": "3"});
    assert!(!formation.is_valid(&bad));

    let fake = fake().await;
    fake.add_one_off("my-app", "run", "bash");
    let raw = Raw::new(&fake);
    let (_, _, list) = raw.api("GET", "/apps/my-app/formation", None).await;
    for f in list.as_array().unwrap() {
        check(&formation, f);
    }
    check(&formation, &raw.api("GET", "/apps/my-app/formation/worker", None).await.2);
    check(&formation, &raw.api("PATCH", "/apps/my-app/formation/worker", Some(r#"{"quantity": 2}"#)).await.2);
    for f in raw
        .api("PATCH", "/apps/my-app/formation", Some(r#"{"updates":[{"type":"urgent","quantity":1}]}"#))
        .await
        .2
        .as_array()
        .unwrap()
    {
        check(&formation, f);
    }
    let (_, _, dynos) = raw.api("GET", "/apps/my-app/dynos", None).await;
    assert!(dynos.as_array().unwrap().len() >= 4);
    for d in dynos.as_array().unwrap() {
        check(&dyno, d);
    }
    let _ = SystemClock;
}

#[tokio::test]
async fn fir_mode_names_and_victims_do_not_follow_cedar_numbering() {
    use dyno_scaler_core::{PolicyInput, PolicyState, QueueStats, Snapshot, WorkerInfo};
    let fake = fake_with(FakeConfig { fir_seed: Some(7), ..FakeConfig::default() }).await;
    let p = platform(&fake);
    p.set_quantity("worker", 4).await.unwrap();
    let names: Vec<String> = p.list_processes("worker").await.unwrap().unwrap().into_iter().map(|d| d.name).collect();
    assert_eq!(names.len(), 4);
    for n in &names {
        let parts: Vec<&str> = n.split('-').collect();
        assert!(parts.len() == 3 && parts[0] == "worker" && parts[1].len() == 10 && parts[2].len() == 5, "{n}");
    }
    // The policy cannot tell which Fir dyno a scale-down stops, so it holds while any job runs.
    let mut snap = Snapshot::default();
    snap.add("default", QueueStats { running: 1, ..QueueStats::default() });
    snap.workers = Some(vec![WorkerInfo {
        identity: format!("{}:4:abc", names[0]),
        dyno: Some(names[0].clone()),
        busy: 1,
        quiet: false,
    }]);
    let policy =
        Policy::new(PolicyConfig { max_workers: 4, down_delay: Duration::ZERO, ..PolicyConfig::default() }).unwrap();
    let input = PolicyInput {
        process_type: "worker",
        snapshot: &snap,
        current: 4,
        now: std::time::SystemTime::now(),
        platform_limit: None,
    };
    assert_eq!(policy.decide(&input, &PolicyState::default()).0.to, 4);
    // A scale-down on Fir stops two of the four (which ones follows the fake's seeded rule).
    p.set_quantity("worker", 2).await.unwrap();
    let left = fake.dyno_names("my-app", "worker");
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|n| names.contains(n)));
}
