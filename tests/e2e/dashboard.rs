//! The dashboard of `run --listen`: `/api/history` says what the daemon logged and bills what the fake Heroku ran;
//! the page rendered by Debian's chromium (playwright-core) shows it with no console error and no request leaving
//! its origin; pausing from it needs the token; the day survives a restart through the store.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::*;

const TOKEN: &str = "e2e-dashboard-token-0123456789";

/// Integrates the fake's `worker` quantity over time (worker-seconds) every 5 ms until the flag is dropped.
fn meter(fake: &Arc<dyno_scaler_heroku::fake::FakeHeroku>) -> (Arc<Mutex<f64>>, Arc<std::sync::atomic::AtomicBool>) {
    let total = Arc::new(Mutex::new(0.0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (t, s, f) = (total.clone(), stop.clone(), fake.clone());
    tokio::spawn(async move {
        let mut last = (Instant::now(), f.quantity(APP, "worker").unwrap_or(0));
        while !s.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = Instant::now();
            *t.lock().unwrap() += f64::from(last.1) * (now - last.0).as_secs_f64();
            last = (now, f.quantity(APP, "worker").unwrap_or(0));
        }
    });
    (total, stop)
}

/// The scale changes the daemon logged (JSON log): (from, to, reason), in order.
fn logged_changes(log: &str) -> Vec<(u64, u64, String)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "decision" && v["applied"] == true)
        .map(|v| (v["from"].as_u64().unwrap(), v["to"].as_u64().unwrap(), v["reason"].as_str().unwrap().to_owned()))
        .collect()
}

/// Runs tests/e2e/node/dashboard.mjs on `url`: what chromium saw.
async fn chromium(url: &str, shot: &std::path::Path, token: Option<&str>) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/node");
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(dir).arg("dashboard.mjs").arg(url).arg(shot);
    if let Some(t) = token {
        cmd.arg(t);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("node must be installed (scripts/test installs it, playwright-core and chromium)");
    assert!(out.status.success(), "dashboard.mjs failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_dashboard_shows_what_the_daemon_did_in_chromium_and_pauses_only_with_the_token() {
    let fake = Arc::new(fake().await);
    let (_redis, url, mut c) = own_redis().await;
    let port = dyno_scaler_test_support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = with(
        env_sidekiq(&fake, &url),
        &[
            ("DYNO_SCALER_MAX_WORKERS", "3"),
            ("DYNO_SCALER_POLL_INTERVAL", "200ms"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
            ("DYNO_SCALER_LISTEN", &listen),
            ("DYNO_SCALER_DASHBOARD_TOKEN", TOKEN),
            ("DYNO_SCALER_PRICE", "0.05"),
        ],
    );
    let (metered, stop) = meter(&fake);
    let daemon = Daemon::start_with(&["--log-format", "json", "run"], &env);
    daemon.logged("serving /metrics and /healthz", 1).await;
    // A scripted load: 3 jobs (1 worker), 30 more (2), then none (0), twice.
    for _ in 0..2 {
        sidekiq_push(&mut c, "default", 3).await;
        assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(1)).await);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sidekiq_push(&mut c, "default", 30).await;
        assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(2)).await);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let _: () = redis::cmd("DEL").arg("queue:default").query_async(&mut c).await.unwrap();
        assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(0)).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let metered = *metered.lock().unwrap();

    let (code, body) = http_get(port, "/api/history").await;
    assert_eq!(code, 200, "{body}");
    let h: Value = serde_json::from_str(&body).unwrap();
    let p = &h["process_types"][0];
    assert_eq!(p["process_type"], "worker");
    assert_eq!(p["max_workers"], 3);
    // The savings bill what the fake ran: worker-seconds counted independently, from the fake's formation.
    let billed = p["savings"]["worker_secs"].as_f64().unwrap();
    assert!(metered > 8.0, "the load ran workers for a while ({metered:.2} worker-seconds)");
    assert!(
        (billed - metered).abs() < 0.3,
        "the dashboard billed {billed:.3} worker-seconds, the fake ran {metered:.3}"
    );
    let covered = p["savings"]["covered_secs"].as_f64().unwrap();
    let saved = p["savings"]["saved_dyno_hours"].as_f64().unwrap();
    assert!((saved - (3.0 * covered - billed) / 3600.0).abs() < 1e-9);
    assert!((p["savings"]["saved_dollars"].as_f64().unwrap() - saved * 0.05).abs() < 1e-9);
    let samples = p["samples"].as_array().unwrap();
    let sum: f64 = samples.iter().map(|s| s["worker_secs"].as_f64().unwrap()).sum();
    // Each minute's seconds are written to the millisecond.
    assert!(
        (sum - billed).abs() <= 0.0005 * samples.len() as f64 + 1e-9,
        "the samples add up to the total: {sum} vs {billed}"
    );
    assert_eq!(samples.iter().map(|s| s["current"].as_u64().unwrap()).max(), Some(2), "a minute's peak");
    assert!(samples.iter().any(|s| s["ready"].as_u64().unwrap() >= 30));

    // The page, as chromium renders it, before the daemon stops: the process type, the chart, the events.
    let shot = std::env::temp_dir().join(format!("dyno-scaler-dashboard-{port}.png"));
    let page = chromium(&format!("http://127.0.0.1:{port}/"), &shot, Some(TOKEN)).await;
    assert_eq!(page["status"], 200);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot was taken");
    assert_eq!(page["processTypes"], serde_json::json!(["worker"]));
    assert_eq!(page["charts"], serde_json::json!(["workers", "jobs"]));
    let current = page["series"].as_array().unwrap().iter().find(|s| s["name"] == "current").unwrap();
    assert!(current["d"].as_str().unwrap().starts_with('M'), "the workers line is drawn: {current}");
    let ticks = page["ticks"][0].as_array().unwrap();
    assert!(ticks.contains(&"2".into()) && !ticks.contains(&"3".into()), "the scale's top is the peak, 2: {ticks:?}");
    assert_eq!(page["consoleErrors"], serde_json::json!([]), "no console error");
    assert_eq!(page["foreign"], serde_json::json!([]), "no request left the page's origin");
    assert!(page["csp"].as_str().unwrap().contains("default-src 'none'"));
    let html = page["html"].as_str().unwrap();
    for secret in [KEY, TOKEN] {
        assert!(!html.contains(secret) && !body.contains(secret), "a secret reached the page or the JSON");
    }
    // Pausing from the page: a wrong token is refused, the right one pauses (every instance sees it), then resumes.
    assert_eq!(page["wrong"]["status"], 403, "{}", page["wrong"]);
    assert_eq!(page["paused"]["status"], 200, "{}", page["paused"]);
    assert!(page["pausedPage"].as_str().unwrap().starts_with("paused"), "{}", page["pausedPage"]);
    assert_eq!(page["resumed"]["status"], 200, "{}", page["resumed"]);
    let (_, after) = http_get(port, "/api/history").await;
    let after: Value = serde_json::from_str(&after).unwrap();
    let gates: Vec<&str> =
        after["process_types"][0]["events"].as_array().unwrap().iter().filter_map(|e| e["gate"].as_str()).collect();
    assert!(gates.contains(&"paused"), "the pause is an event: {gates:?}");

    let log = daemon.stop().await;
    // The events are the decisions the daemon logged: each scale change, in order, with its reason.
    let logged = logged_changes(&log);
    let shown: Vec<(u64, u64, String)> = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "scale")
        .map(|e| (e["from"].as_u64().unwrap(), e["to"].as_u64().unwrap(), e["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(logged.len(), 6, "three changes a wave: {logged:?}");
    assert_eq!(shown, logged);
    let rows = page["events"].as_array().unwrap();
    assert_eq!(rows.iter().filter(|r| r["kind"] == "scale").count(), 6, "{rows:?}");
}

/// `POST path` with a form body on `127.0.0.1:port`: the status and the body.
async fn http_post(port: u16, path: &str, form: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
    (head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap(), body.to_owned())
}

#[tokio::test]
async fn the_day_survives_a_restart_through_the_store_and_without_a_token_the_page_is_read_only() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    let port = dyno_scaler_test_support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let env =
        with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_POLL_INTERVAL", "200ms"), ("DYNO_SCALER_LISTEN", &listen)]);
    let first = Daemon::start(&env);
    first.logged("serving /metrics and /healthz", 1).await;
    sidekiq_push(&mut c, "default", 3).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(1)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, before) = http_get(port, "/api/history").await;
    let before: Value = serde_json::from_str(&before).unwrap();
    let billed = before["process_types"][0]["savings"]["worker_secs"].as_f64().unwrap();
    assert!(billed > 1.0, "one worker for 2 s: {billed}");
    // Read-only: no form on the page, and a pause posted anyway is refused without touching the store.
    let (_, html) = http_get(port, "/").await;
    assert!(html.contains("data-process-type=\"worker\"") && !html.contains("<form"), "{html}");
    let (code, text) = http_post(port, "/pause", "token=guess&process_type=worker&for=1h").await;
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("read-only"), "{text}");
    let paused: Option<String> = redis::cmd("GET").arg("dyno-scaler:pause:worker").query_async(&mut c).await.unwrap();
    assert_eq!(paused, None);
    first.stop().await;

    // A new daemon (a deploy, a restart) shows the day so far: the same events, the same minutes.
    let second = Daemon::start(&env);
    second.logged("dashboard history restored", 1).await;
    let (_, after) = http_get(port, "/api/history").await;
    let after: Value = serde_json::from_str(&after).unwrap();
    let (was, now) = (&before["process_types"][0], &after["process_types"][0]);
    let first_event = |p: &Value| p["events"].as_array().unwrap().iter().find(|e| e["kind"] == "scale").cloned();
    assert!(first_event(was).is_some());
    assert_eq!(first_event(now), first_event(was), "the scale event before the restart");
    // The day is kept with each minute's seconds to the millisecond.
    let kept = now["savings"]["worker_secs"].as_f64().unwrap();
    assert!(
        kept >= billed - 0.002 * now["samples"].as_array().unwrap().len() as f64,
        "{kept} kept, {billed} billed: {now}"
    );
    second.stop().await;
}
