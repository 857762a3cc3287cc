//! Busy-safety against a real node-resque 9.7 worker (npm, installed by `scripts/test`): it registers without a
//! `workers:heartbeat` entry and pings `worker:ping:<name>`; while it runs a job, the scaler holds.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::common::*;

/// A node-resque worker of the test's own, killed on drop.
fn start_node_worker(redis_port: u16) -> KillOnDrop {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/node/worker.js");
    let child = Command::new("node")
        .arg(script)
        .env("REDIS_PORT", redis_port.to_string())
        .env("QUEUE", "default")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node must be installed (scripts/test installs Node.js and node-resque)");
    KillOnDrop(child)
}

#[tokio::test]
async fn a_busy_node_resque_worker_holds_the_quantity() {
    let fake = fake().await;
    fake.set_quantity(APP, "worker", 2);
    let (redis, url, mut c) = own_redis().await;
    let _worker = start_node_worker(redis.port);
    let started = Instant::now();
    loop {
        let n: usize = redis::cmd("SCARD").arg("resque:workers").query_async(&mut c).await.unwrap();
        if n > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the node-resque worker did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let marker = std::env::temp_dir().join(unique("node"));
    let job = format!(r#"{{"class":"sleep","queue":"default","args":[6000,"{}"]}}"#, marker.display());
    let _: () = redis::pipe()
        .sadd("resque:queues", "default")
        .ignore()
        .rpush("resque:queue:default", job)
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    let started_file = marker.with_extension("started");
    assert!(eventually(Duration::from_secs(10), || started_file.exists()).await, "the worker took the job");
    let env = with(
        env_sidekiq(&fake, &url),
        &[
            ("DYNO_SCALER_SOURCE", "resque"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
            ("DYNO_SCALER_POLL_INTERVAL", "300ms"),
            ("DYNO_SCALER_MAX_WORKERS", "2"),
        ],
    );
    let child = command(&["run"], &env).spawn().unwrap();
    // While the job runs, the worker is busy and Resque cannot say on which dyno: no scale-down.
    // The job writes its end time into the marker: read it once written whole (the file exists a moment before).
    let written = || std::fs::read_to_string(&marker).ok().and_then(|t| t.trim().parse::<f64>().ok());
    assert!(eventually(Duration::from_secs(30), || written().is_some()).await, "the job finished");
    let ended = written().expect("the end time");
    let held_until = UNIX_EPOCH + Duration::from_secs_f64(ended);
    assert!(
        fake.requests_with("PATCH").iter().all(|r| r.at >= held_until),
        "no PATCH while the job ran: {:?}",
        fake.requests_with("PATCH")
    );
    // Once it is done, the process type goes down.
    assert!(eventually(Duration::from_secs(10), || fake.quantity(APP, "worker") == Some(0)).await, "scaled down");
    stop_daemon(child).await;
    let _ = std::fs::remove_file(&marker);
    let _ = std::fs::remove_file(&started_file);
}
