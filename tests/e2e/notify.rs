//! Notifications (`DYNO_SCALER_NOTIFY_URL`): a local webhook receiver gets exactly one message when each condition
//! has lasted `DYNO_SCALER_NOTIFY_AFTER` (or at once, for a refusal) and one when it clears, in the JSON and the
//! Slack format; a receiver that takes 10 s to answer does not slow a scale-up; no secret is ever sent or logged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::*;

/// The part of the webhook's URL that is its secret (as in a Slack webhook's path).
const HOOK_SECRET: &str = "T0-hook-secret-B1";

/// A webhook receiver on a port of its own: every body it got, and when. The first request is answered after
/// `first_delay` (with 503 when `fail_first`), the others at once with 200.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Receiver {
    async fn start(first_delay: Duration) -> Self {
        Self::start_with(first_delay, false).await
    }

    async fn start_with(first_delay: Duration, fail_first: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
        let sink = got.clone();
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut s, _)) = listener.accept().await {
                let is_first = std::mem::take(&mut first);
                let delay = if is_first { first_delay } else { Duration::ZERO };
                let status = if is_first && fail_first { "503 Service Unavailable" } else { "200 OK" };
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        raw.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&raw).into_owned();
                        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() < len {
                            continue;
                        }
                        assert!(head.starts_with(&format!("POST /hooks/{HOOK_SECRET} ")), "{head}");
                        sink.lock().unwrap().push((Instant::now(), serde_json::from_str(body).unwrap()));
                        tokio::time::sleep(delay).await;
                        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                        let _ = s.write_all(answer.as_bytes()).await;
                        return;
                    }
                });
            }
        });
        Self { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/{HOOK_SECRET}", self.port)
    }

    fn bodies(&self) -> Vec<Value> {
        self.got.lock().unwrap().iter().map(|(_, b)| b.clone()).collect()
    }

    /// Waits until a body holds `condition` in `state`.
    async fn wait_for(&self, condition: &str, state: &str) {
        let seen = || self.bodies().iter().any(|b| b["condition"] == condition && b["state"] == state);
        assert!(eventually(Duration::from_secs(30), seen).await, "no {condition} {state}: {:?}", self.bodies());
    }
}

/// The daemon for `worker` (at most 2) with notifications after 2 s to `receiver` in `format`.
fn env(
    fake: &dyno_scaler_heroku::fake::FakeHeroku,
    url: &str,
    r: &Receiver,
    format: &str,
) -> Vec<(&'static str, String)> {
    with(
        env_sidekiq(fake, url),
        &[
            ("DYNO_SCALER_MAX_WORKERS", "2"),
            ("DYNO_SCALER_POLL_INTERVAL", "200ms"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
            ("DYNO_SCALER_NOTIFY_URL", &r.url()),
            ("DYNO_SCALER_NOTIFY_AFTER", "2s"),
            ("DYNO_SCALER_NOTIFY_FORMAT", format),
        ],
    )
}

#[tokio::test]
async fn each_condition_is_told_once_and_its_recovery_once_and_a_slow_receiver_delays_nothing() {
    let fake = fake().await;
    let (redis, url, mut c) = own_redis().await;
    let receiver = Receiver::start(Duration::from_secs(10)).await;
    // No lease: a stalled Redis would also stall the lease, a condition of its own.
    let daemon = Daemon::start(&with(env(&fake, &url, &receiver, "json"), &[("DYNO_SCALER_LEASE", "off")]));
    daemon.logged("notifications on", 1).await;
    sidekiq_push(&mut c, "default", 3).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(1)).await);

    // The queue unreadable (Redis stalled) until that is told.
    redis.pause();
    receiver.wait_for("source_unreadable", "firing").await;
    redis.resume();
    daemon.logged("cycle succeeded again", 1).await;
    // The receiver holds the first message for 10 s: a scale-up now is as quick as ever.
    let pushed = Instant::now();
    sidekiq_push(&mut c, "default", 30).await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(2)).await);
    let reaction = pushed.elapsed();
    let first_answered = receiver.got.lock().unwrap()[0].0 + Duration::from_secs(10);
    assert!(Instant::now() < first_answered, "the scale-up happened while the receiver was still holding the message");
    assert!(reaction < Duration::from_secs(1), "a scale-up took {reaction:?} while the receiver was slow");
    receiver.wait_for("source_unreadable", "recovered").await;

    // At max_workers (2) with 33 jobs waiting: told after 2 s; cleared when the queue empties.
    receiver.wait_for("pinned_at_max", "firing").await;
    let _: () = redis::cmd("DEL").arg("queue:default").query_async(&mut c).await.unwrap();
    receiver.wait_for("pinned_at_max", "recovered").await;
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(0)).await);

    // The platform refusing (Heroku's 422 "Cannot run more than 0 Standard-1X size dynos"): told at once, and
    // lasting while the limit it named holds jobs back (the scaler keeps to it); clear once nothing waits.
    fake.set_type_limit(APP, "worker", 0);
    sidekiq_push(&mut c, "default", 3).await;
    receiver.wait_for("platform_refused", "firing").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.bodies().len(), 5, "told once while it lasts: {:?}", receiver.bodies());
    let _: () = redis::cmd("DEL").arg("queue:default").query_async(&mut c).await.unwrap();
    receiver.wait_for("platform_refused", "recovered").await;
    assert_eq!(fake.quantity(APP, "worker"), Some(0));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = daemon.stop().await;
    let bodies = receiver.bodies();
    let told: Vec<(String, String)> = bodies
        .iter()
        .map(|b| (b["condition"].as_str().unwrap().to_owned(), b["state"].as_str().unwrap().to_owned()))
        .collect();
    let want: Vec<(String, String)> = [
        ("source_unreadable", "firing"),
        ("source_unreadable", "recovered"),
        ("pinned_at_max", "firing"),
        ("pinned_at_max", "recovered"),
        ("platform_refused", "firing"),
        ("platform_refused", "recovered"),
    ]
    .iter()
    .map(|(c, s)| (c.to_string(), s.to_string()))
    .collect();
    assert_eq!(told, want, "exactly one message per condition and one recovery: {bodies:#?}");
    for b in &bodies {
        assert_eq!(b["process_type"], "worker");
        assert!(!b["message"].as_str().unwrap().is_empty());
        let text = b.to_string();
        assert!(!text.contains(KEY) && !text.contains(HOOK_SECRET), "a secret was sent: {text}");
    }
    assert!(bodies[4]["message"].as_str().unwrap().contains("Cannot run more than 0"), "{}", bodies[4]);
    assert!(!log.contains(HOOK_SECRET), "the webhook's URL was logged");
    assert!(log.contains("notification sent"), "{log}");
}

#[tokio::test]
async fn the_slack_format_posts_text_and_a_failed_post_is_retried() {
    let fake = fake().await;
    let (_redis, url, mut c) = own_redis().await;
    // The webhook answers the first post with 503: it is sent again.
    let receiver = Receiver::start_with(Duration::ZERO, true).await;
    let daemon = Daemon::start(&env(&fake, &url, &receiver, "slack"));
    sidekiq_push(&mut c, "default", 40).await;
    let firing = || receiver.bodies().iter().any(|b| b["text"].as_str().is_some_and(|t| t.contains("pinned")));
    assert!(eventually(Duration::from_secs(20), firing).await, "{:?}", receiver.bodies());
    let _: () = redis::cmd("DEL").arg("queue:default").query_async(&mut c).await.unwrap();
    let three = eventually(Duration::from_secs(20), || receiver.bodies().len() == 3).await;
    assert!(three, "{:?}\n{}", receiver.bodies(), daemon.log.lock().unwrap());
    daemon.stop().await;
    let mut bodies = receiver.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(bodies[0], bodies[1], "the refused post again");
    bodies.remove(0);
    for b in &bodies {
        assert_eq!(b.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["text"], "Slack's shape: {b}");
    }
    let text = |i: usize| bodies[i]["text"].as_str().unwrap().to_owned();
    assert!(
        text(0).contains("worker: pinned at max_workers with work waiting") && text(0).contains("40 jobs"),
        "{}",
        text(0)
    );
    assert!(text(1).contains("recovered"), "{}", text(1));
}

#[tokio::test]
async fn a_refused_key_is_told_before_the_daemon_exits() {
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    let receiver = Receiver::start(Duration::from_secs(2)).await;
    let env = with(env(&fake, &url, &receiver, "json"), &[("HEROKU_API_KEY", "a-revoked-key-0000")]);
    let out = tokio::time::timeout(Duration::from_secs(30), command(&["run"], &env).output()).await.unwrap().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(
        (bodies[0]["condition"].as_str(), bodies[0]["state"].as_str()),
        (Some("platform_refused"), Some("firing"))
    );
    assert!(
        bodies[0]["message"].as_str().unwrap().contains("401")
            || bodies[0]["message"].as_str().unwrap().contains("nauthorized"),
        "{}",
        bodies[0]
    );
    assert!(!bodies[0].to_string().contains("a-revoked-key-0000") && !log.contains("a-revoked-key-0000"));
}
