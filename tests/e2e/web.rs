//! Web dynos end to end: Debian's `puma` serving a small Rack app with `DynoScaler::QueueTime` from the gem installed
//! into an empty `GEM_HOME`, real Redis, a load generator that stamps `X-Request-Start` as Heroku's router does and
//! saturates Puma's threads: the daemon (`request_queue` source, the web policy) scales `web` up at the fake Heroku
//! within seconds of queue time crossing the target, and back down once the load ends; with Redis stopped the app's
//! requests still succeed, no slower.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// `GEM_PATH` for the gem in `home` beside Debian's own gems (puma, rack, railties).
fn gem_path(home: &std::path::Path) -> String {
    let system = std::process::Command::new("ruby").args(["-e", "print Gem.default_path.join(':')"]).output().unwrap();
    format!("{}:{}", home.display(), String::from_utf8_lossy(&system.stdout))
}

/// Debian's puma on a free port, `threads` threads, a Rack app that takes `app_ms` a request, behind the middleware
/// writing to `redis_url` (`None`: the same app without it).
fn puma(home: &std::path::Path, redis_url: Option<&str>, threads: u32, app_ms: u64) -> (KillOnDrop, u16) {
    let port = dyno_scaler_test_support::free_port();
    let ru = home.join(format!("config-{port}.ru"));
    let middleware = redis_url.map_or(String::new(), |u| {
        format!("require \"dyno_scaler/queue_time\"\nuse DynoScaler::QueueTime, redis_url: {u:?}\n")
    });
    std::fs::write(
        &ru,
        format!(
            "{middleware}run ->(env) {{ sleep {}; [200, {{\"content-type\" => \"text/plain\"}}, [\"ok\"]] }}\n",
            app_ms as f64 / 1000.0
        ),
    )
    .unwrap();
    let child = std::process::Command::new("puma")
        .args(["-b", &format!("tcp://127.0.0.1:{port}"), "-t", &format!("{threads}:{threads}"), "--quiet"])
        .arg(&ru)
        .env("GEM_HOME", home)
        .env("GEM_PATH", gem_path(home))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("Debian's puma must be installed (scripts/test installs it)");
    (KillOnDrop(child), port)
}

/// One request as Heroku's router sends it (`X-Request-Start` in integer milliseconds): its status and how long it
/// took.
async fn request(port: u16) -> (u16, Duration) {
    let t = Instant::now();
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return (0, t.elapsed()) };
    let req = format!(
        "GET / HTTP/1.1\r\nHost: app.example\r\nX-Request-Start: {}\r\nConnection: close\r\n\r\n",
        (now() * 1000.0).floor() as u64
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, t.elapsed());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let status = String::from_utf8_lossy(&raw).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, t.elapsed())
}

/// `clients` clients sending requests back to back until `stop`: how many got a 200 and how many did not.
fn load(port: u16, clients: usize, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, u64)> {
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut bad) = (0u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    match request(port).await {
                        (200, _) => ok += 1,
                        _ => bad += 1,
                    }
                }
                (ok, bad)
            }));
        }
        let mut total = (0, 0);
        for t in tasks {
            let (ok, bad) = t.await.unwrap();
            total = (total.0 + ok, total.1 + bad);
        }
        total
    })
}

async fn wait_up(port: u16) {
    assert!(
        eventually(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await,
        "puma did not start"
    );
}

#[tokio::test]
async fn puma_under_load_scales_web_up_within_seconds_and_down_after_it() {
    let home = installed_gem("web");
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    // Two threads, 50 ms a request: 40 requests a second at most.
    let (_puma, port) = puma(&home, Some(&url), 2, 50);
    wait_up(port).await;
    let env = with(
        env_heroku(&fake, &[("DYNO_SCALER_SOURCE", "request_queue"), ("REDIS_URL", &url)]),
        &[
            ("DYNO_SCALER_PROCESS_TYPE", "web"),
            ("DYNO_SCALER_POLICY", "web"),
            ("DYNO_SCALER_MAX_WORKERS", "6"),
            ("DYNO_SCALER_PUMA_THREADS", "2"),
            ("DYNO_SCALER_POLL_INTERVAL", "500ms"),
            ("DYNO_SCALER_DOWN_DELAY", "3s"),
            ("DYNO_SCALER_WINDOW", "5s"),
        ],
    );
    // A trickle first: the middleware is seen, the queue time is low, web stays at 1.
    let trickle = Arc::new(AtomicBool::new(false));
    let light = load(port, 1, trickle.clone());
    let daemon = Daemon::start(&env);
    daemon.logged("decision", 1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(fake.quantity(APP, "web"), Some(1), "a trickle needs one dyno:\n{}", daemon.log.lock().unwrap());

    // 20 clients on 2 threads: requests wait about half a second, far over the 250 ms target.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let heavy = load(port, 20, stop.clone());
    let up = eventually(Duration::from_secs(15), || fake.quantity(APP, "web").is_some_and(|q| q > 1)).await;
    let reaction = started.elapsed();
    assert!(up, "web was not scaled up:\n{}", daemon.log.lock().unwrap());
    assert!(reaction < Duration::from_secs(8), "scaled up {reaction:?} after the load began");
    let scaled_to = fake.quantity(APP, "web").unwrap();
    stop.store(true, Ordering::SeqCst);
    let (ok, bad) = heavy.await.unwrap();
    assert!(ok >= 20 && bad == 0, "{ok} answered, {bad} failed");

    // The load ends (the trickle goes on): back to 1 after the down delay.
    let down = eventually(Duration::from_secs(30), || fake.quantity(APP, "web") == Some(1)).await;
    assert!(down, "web stayed at {:?}:\n{}", fake.quantity(APP, "web"), daemon.log.lock().unwrap());
    trickle.store(true, Ordering::SeqCst);
    light.await.unwrap();
    let log = daemon.stop().await;
    assert!(log.contains("queue-time"), "the decisions name the web rule:\n{log}");
    eprintln!("web: scaled 1 -> {scaled_to} {reaction:?} after the load began");
}

#[tokio::test]
async fn with_redis_stopped_the_apps_requests_succeed_no_slower() {
    let home = installed_gem("web-down");
    let (mut redis, url, _c) = own_redis().await;
    // The app with the middleware, and the same app without it, side by side.
    let (_with, port) = puma(&home, Some(&url), 4, 5);
    let (_without, bare) = puma(&home, None, 4, 5);
    wait_up(port).await;
    wait_up(bare).await;
    for _ in 0..50 {
        assert_eq!(request(port).await.0, 200);
        assert_eq!(request(bare).await.0, 200);
    }
    // Redis goes away: every process's flush thread fails from now on.
    redis.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Alternating, so both see the same machine: each request of the app must succeed, its median no slower than
    // the bare app's beyond HTTP's noise.
    let (mut measured, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let (status, took) = request(port).await;
        assert_eq!(status, 200, "a request failed with Redis stopped");
        measured.push(took);
        plain.push(request(bare).await.1);
    }
    measured.sort();
    plain.sort();
    let (m, p) = (measured[150], plain[150]);
    eprintln!("median request with Redis stopped: {m:?} with the middleware, {p:?} without it");
    assert!(m < p + Duration::from_millis(2), "{m:?} with the middleware and Redis stopped, {p:?} without it");
}

#[test]
fn the_installed_middleware_reads_every_senders_header_and_the_railtie_inserts_it() {
    let home = installed_gem("web-ruby");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/ruby/queue_time_check.rb");
    let out = std::process::Command::new("ruby")
        .arg(script)
        .env("GEM_HOME", &home)
        .env("GEM_PATH", gem_path(&home))
        .output()
        .expect("ruby");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("all checks passed"), "{text}");
    assert!(text.matches("\nok ").count() >= 15, "{text}");
}
