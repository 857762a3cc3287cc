//! The fake Heroku against Heroku's contract: header order, body validation, the rate limiter, boot and drain,
//! the published JSON schema, Fir naming.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::{ManualClock, Platform, PlatformExt, Policy, PolicyConfig, SystemClock};
use dyno_scaler_heroku::fake::{FakeConfig, FakeHeroku};
use serde_json::{Value, json};

use super::{ALICE, KEY, fake, fake_with, platform};

/// Raw HTTP to the fake, as any client would send it.
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
    snap.add("default", QueueStats::running(1));
    snap.workers = Some(vec![WorkerInfo::new(format!("{}:4:abc", names[0]), Some(names[0].clone()), 1)]);
    let policy =
        Policy::new(PolicyConfig { max_workers: 4, down_delay: Duration::ZERO, ..PolicyConfig::classic() }).unwrap();
    let input = PolicyInput::new("worker", &snap, 4);
    assert_eq!(policy.decide(&input, &PolicyState::default()).0.to, 4);
    // A scale-down on Fir stops two of the four (which ones follows the fake's seeded rule).
    p.set_quantity("worker", 2).await.unwrap();
    let left = fake.dyno_names("my-app", "worker");
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|n| names.contains(n)));
}
