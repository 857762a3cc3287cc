//! `run --listen`: `/metrics` read by the Prometheus project's own OpenMetrics parser says what `status --json`
//! says; `/healthz`; the l2met lines on stdout.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::common::*;

/// The samples of `text` as the OpenMetrics parser reads them (it refuses a malformed exposition).
async fn parse(text: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/parse_metrics.py");
    let mut child = tokio::process::Command::new("/usr/bin/python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Debian's /usr/bin/python3 must be installed (scripts/test installs python3-prometheus-client)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

#[tokio::test]
async fn metrics_say_what_status_says_and_healthz_and_l2met_lines_work() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    sidekiq_push(&mut c, "default", 27).await;
    sidekiq_push(&mut c, "mailers", 3).await;
    let port = dyno_scaler_test_support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = with(
        env_sidekiq(&fake, &url),
        &[
            ("DYNO_SCALER_MAX_WORKERS", "4"),
            ("DYNO_SCALER_POLL_INTERVAL", "300ms"),
            ("DYNO_SCALER_LISTEN", &listen),
            ("DYNO_SCALER_LOG_METRICS", "1s"),
        ],
    );
    let daemon = Daemon::start(&env);
    daemon.logged("serving /metrics and /healthz", 1).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(2)).await);
    tokio::time::sleep(Duration::from_millis(700)).await;

    let (code, text) = http_get(port, "/metrics").await;
    assert_eq!(code, 200, "{text}");
    let samples = parse(&text).await;
    let out = run(&["status", "--json"], &env).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let p = &v["processes"][0];
    let worker = [("process_type", "worker")];
    assert_eq!(sample(&samples, "dyno_scaler_desired_workers", &worker), p["desired"].as_f64());
    assert_eq!(sample(&samples, "dyno_scaler_current_workers", &worker), p["current"].as_f64());
    assert_eq!(p["desired"].as_u64(), Some(2));
    for q in p["queues"].as_array().unwrap() {
        let name = q["name"].as_str().unwrap();
        for state in ["ready", "running", "scheduled"] {
            let got = sample(&samples, "dyno_scaler_queue_jobs", &[("queue", name), ("state", state)]);
            assert_eq!(got, q[state].as_f64(), "{name} {state}: {text}");
        }
        let latency = sample(&samples, "dyno_scaler_queue_latency_seconds", &[("queue", name), ("source", "sidekiq")]);
        let want = q["latency_seconds"].as_f64().unwrap();
        assert!((latency.unwrap() - want).abs() < 2.0, "{name}: {latency:?} vs {want}");
    }
    assert_eq!(sample(&samples, "dyno_scaler_queue_jobs", &[("queue", "default"), ("state", "ready")]), Some(27.0));
    assert_eq!(sample(&samples, "dyno_scaler_scale_events_total", &[("direction", "up")]), Some(1.0));
    assert!(
        sample(&samples, "dyno_scaler_platform_requests_total", &[("platform", "heroku"), ("status", "200")]).unwrap()
            >= 2.0
    );
    assert!(sample(&samples, "dyno_scaler_heroku_ratelimit_remaining", &[]).is_some());
    assert!(sample(&samples, "dyno_scaler_worker_seconds_total", &worker).unwrap() > 0.0, "two workers run: {text}");
    assert!(sample(&samples, "dyno_scaler_cycle_duration_seconds_count", &worker).unwrap() >= 2.0);
    assert_eq!(sample(&samples, "dyno_scaler_acting", &worker), Some(1.0));
    assert_eq!(sample(&samples, "dyno_scaler_source_errors_total", &[]), None, "no error yet");
    assert!(samples.iter().any(|s| s["name"] == "dyno_scaler_build_info" && s["type"] == "info"));

    let (code, body) = http_get(port, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert_eq!(http_get(port, "/nope").await.0, 404);

    // l2met lines once a second on stdout.
    let ok =
        eventually(Duration::from_secs(5), || daemon.stdout.lock().unwrap().contains("sample#dyno_scaler.ready=30"))
            .await;
    assert!(ok, "no l2met line: {}", daemon.stdout.lock().unwrap());
    let lines = daemon.stdout.lock().unwrap().clone();
    let first = lines.lines().find(|l| l.starts_with("source=worker ")).unwrap();
    for part in [
        "sample#dyno_scaler.desired_workers=2",
        "sample#dyno_scaler.current_workers=2",
        "count#dyno_scaler.scale_events=",
    ] {
        assert!(first.contains(part), "{part}: {first}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_busy_listen_address_exits_1_and_a_bad_one_exits_2() {
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["run", "--listen", &addr], &env_sidekiq(&fake, &url)).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("cannot listen"), "{}", out.stderr);
    let out = run(&["run"], &with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_LISTEN", "localhost")])).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("DYNO_SCALER_LISTEN"), "{}", out.stderr);
}
