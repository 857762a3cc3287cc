//! Busy-safety against real Sidekiq 6.4 servers (Debian's `ruby-sidekiq`, installed by `scripts/test`), each
//! started with `DYNO=worker.N` as on Heroku Cedar, against a private Redis and the fake Heroku API.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::common::*;

/// A `sidekiq` server of the test's own, killed on drop.
pub fn start_sidekiq(dyno: &str, redis_url: &str, queue: &str) -> KillOnDrop {
    start_sidekiq_with(dyno, redis_url, queue, 1)
}

/// [`start_sidekiq`] with `concurrency` threads.
pub fn start_sidekiq_with(dyno: &str, redis_url: &str, queue: &str, concurrency: u32) -> KillOnDrop {
    let jobs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/ruby/jobs.rb");
    let child = Command::new("sidekiq")
        .args(["-r", jobs, "-c", &concurrency.to_string(), "-t", "25", "-q", queue])
        .env("DYNO", dyno)
        .env("REDIS_URL", redis_url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sidekiq must be installed (scripts/test installs ruby-sidekiq)");
    KillOnDrop(child)
}

/// Enqueues `SleepJob.perform_async(seconds, marker)` exactly as Sidekiq 6.4's client writes it.
pub async fn push_sleep(c: &mut redis::aio::MultiplexedConnection, queue: &str, seconds: u32, marker: &str) {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let job = format!(
        r#"{{"retry":true,"queue":"{queue}","class":"SleepJob","args":[{seconds},"{marker}"],"jid":"{:024x}","created_at":{t:.7},"enqueued_at":{t:.7}}}"#,
        (t * 1e6) as u64
    );
    let _: () = redis::pipe()
        .sadd("queues", queue)
        .ignore()
        .lpush(format!("queue:{queue}"), job)
        .ignore()
        .query_async(c)
        .await
        .unwrap();
}

pub async fn wait_for_processes(c: &mut redis::aio::MultiplexedConnection, n: usize) {
    let started = Instant::now();
    loop {
        let members: Vec<String> = redis::cmd("SMEMBERS").arg("processes").query_async(c).await.unwrap();
        if members.len() >= n {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{n} Sidekiq processes did not start: {members:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A field of the Sidekiq process hash of the process on `dyno` (`None`: no such process, or no such field).
pub async fn process_field(c: &mut redis::aio::MultiplexedConnection, dyno: &str, field: &str) -> Option<String> {
    let ids: Vec<String> = redis::cmd("SMEMBERS").arg("processes").query_async(c).await.unwrap();
    let id = ids.into_iter().find(|i| i.starts_with(&format!("{dyno}:")))?;
    redis::cmd("HGET").arg(id).arg(field).query_async(c).await.unwrap()
}

pub fn marker(tag: &str) -> PathBuf {
    std::env::temp_dir().join(unique(tag))
}

#[tokio::test]
async fn a_busy_victim_finishes_its_job_before_the_formation_shrinks() {
    let fake = fake().await;
    fake.set_quantity(APP, "worker", 3);
    let (_redis, url, mut c) = own_redis().await;
    // worker.3 alone serves `slow`; worker.1 and 2 serve `default`.
    let _p1 = start_sidekiq("worker.1", &url, "default");
    let _p2 = start_sidekiq("worker.2", &url, "default");
    let _p3 = start_sidekiq("worker.3", &url, "slow");
    wait_for_processes(&mut c, 3).await;
    let done = marker("slow");
    push_sleep(&mut c, "slow", 8, done.to_str().unwrap()).await;
    let env = with(
        env_sidekiq(&fake, &url),
        &[
            ("DYNO_SCALER_MIN_WORKERS", "2"),
            ("DYNO_SCALER_MAX_WORKERS", "3"),
            ("DYNO_SCALER_QUEUES", "default"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
            ("DYNO_SCALER_POLL_INTERVAL", "500ms"),
        ],
    );
    let child = command(&["run"], &env).spawn().unwrap();
    // The shrink to 2 stops worker.3: it waits for the job, quiets worker.3, and sees it quiet and idle.
    assert!(
        eventually(Duration::from_secs(60), || fake.quantity(APP, "worker") == Some(2)).await,
        "the formation shrank to 2"
    );
    let patched = SystemTime::now();
    let ended: f64 =
        std::fs::read_to_string(&done).expect("the job finished before the shrink").trim().parse().unwrap();
    assert!(UNIX_EPOCH + Duration::from_secs_f64(ended) <= patched, "the job ended before the PATCH");
    let after = patched.duration_since(UNIX_EPOCH + Duration::from_secs_f64(ended)).unwrap_or_default();
    eprintln!("busy victim: the formation shrank {:.1} s after its job ended", after.as_secs_f64());
    let quiet = process_field(&mut c, "worker.3", "quiet").await;
    assert_eq!(quiet.as_deref(), Some("true"), "worker.3 was quieted before its dyno was stopped");
    let stderr = stop_daemon(child).await;
    assert!(stderr.contains("quieting the victims"), "{stderr}");
    let _ = std::fs::remove_file(&done);
    let _ = std::fs::remove_file(done.with_extension("started"));
}

#[tokio::test]
async fn a_quiet_process_is_no_capacity() {
    let fake = fake().await;
    fake.set_quantity(APP, "worker", 1);
    let (_redis, url, mut c) = own_redis().await;
    let _p1 = start_sidekiq("worker.1", &url, "default");
    wait_for_processes(&mut c, 1).await;
    // Quiet it as the Web UI's "Quiet" button does, and wait until its heartbeat says so.
    let ids: Vec<String> = redis::cmd("SMEMBERS").arg("processes").query_async(&mut c).await.unwrap();
    let id = ids[0].clone();
    let _: () = redis::pipe()
        .lpush(format!("{id}-signals"), "TSTP")
        .ignore()
        .expire(format!("{id}-signals"), 60)
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let q: Option<String> = redis::cmd("HGET").arg(&id).arg("quiet").query_async(&mut c).await.unwrap();
        if q.as_deref() == Some("true") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the process did not go quiet");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..10 {
        push_sleep(&mut c, "default", 1, &format!("/nonexistent/{i}")).await;
    }
    let env = with(env_sidekiq(&fake, &url), &[("DYNO_SCALER_MAX_WORKERS", "3")]);
    let out = run(&["status", "--json"], &env).await;
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["processes"][0]["draining"], serde_json::json!(["worker.1"]), "status shows the quiet dyno");
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(2), "the quiet dyno is no capacity: {}", out.stderr);
}

#[tokio::test]
async fn a_job_fetched_between_heartbeats_is_never_stopped() {
    let fake = fake().await;
    fake.set_quantity(APP, "worker", 3);
    let (_redis, url, mut c) = own_redis().await;
    let _p: Vec<KillOnDrop> = (1..=3).map(|n| start_sidekiq(&format!("worker.{n}"), &url, "default")).collect();
    wait_for_processes(&mut c, 3).await;
    let env = with(
        env_sidekiq(&fake, &url),
        &[("DYNO_SCALER_MAX_WORKERS", "3"), ("DYNO_SCALER_DOWN_DELAY", "0s"), ("DYNO_SCALER_POLL_INTERVAL", "300ms")],
    );
    let child = command(&["run"], &env).spawn().unwrap();
    // The queue is empty and every process was idle at its last beat: the policy would like 0. A 12 s job is
    // fetched now, between beats, invisible until its process beats again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = marker("lag");
    push_sleep(&mut c, "default", 12, done.to_str().unwrap()).await;
    let started = done.with_extension("started");
    assert!(eventually(Duration::from_secs(10), || started.exists()).await, "a process took the job");
    let dyno = std::fs::read_to_string(&started).unwrap();
    let n: u32 = dyno.trim().strip_prefix("worker.").and_then(|n| n.parse().ok()).expect("DYNO=worker.N");
    let mut lowest = u32::MAX;
    while !done.exists() {
        lowest = lowest.min(fake.quantity(APP, "worker").unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lowest >= n, "the formation went to {lowest} while {dyno} ran its job");
    // The watch above could see a shrink: once the job is done the daemon does shrink past that dyno.
    assert!(
        eventually(Duration::from_secs(40), || fake.quantity(APP, "worker").is_some_and(|q| q < n)).await,
        "the formation never shrank past {dyno} after its job"
    );
    stop_daemon(child).await;
    let _ = std::fs::remove_file(&done);
    let _ = std::fs::remove_file(&started);
}

/// A stream that keeps every dyno busy at every heartbeat (here each process serves a queue of its own, fed a 1 s
/// job every half second, so none is ever idle): the adaptive policy quiets one busy victim (the dyno Heroku stops
/// first), waits for its jobs, and only then shrinks; every job a process took ran to its end.
#[tokio::test]
async fn a_stream_over_every_dyno_sheds_one_quieted_busy_victim_and_loses_no_job() {
    let fake = fake().await;
    fake.set_quantity(APP, "worker", 5);
    let (_redis, url, mut c) = own_redis().await;
    let _procs: Vec<KillOnDrop> =
        (1..=5).map(|n| start_sidekiq_with(&format!("worker.{n}"), &url, &format!("own{n}"), 10)).collect();
    wait_for_processes(&mut c, 5).await;
    // 10 jobs a second of 1 s: about 2 of each process's 10 threads busy; 1 dyno would do.
    let key = unique("stream");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pushing = {
        let (url, key, stop) = (url.clone(), key.clone(), stop.clone());
        tokio::spawn(async move {
            let mut c = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
            let mut pushed = [0u64; 6];
            let mut jid = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (n, count) in pushed.iter_mut().enumerate().skip(1) {
                    // A quiet process takes nothing more: its queue is fed no more either.
                    if process_field(&mut c, &format!("worker.{n}"), "quiet").await.as_deref() == Some("true") {
                        continue;
                    }
                    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
                    jid += 1;
                    let job = format!(
                        r#"{{"retry":true,"queue":"own{n}","class":"NapJob","args":[1,"{key}{n}"],"jid":"{jid:024x}","created_at":{t:.7},"enqueued_at":{t:.7}}}"#
                    );
                    let q = format!("own{n}");
                    let _: () = redis::pipe()
                        .sadd("queues", &q)
                        .ignore()
                        .lpush(format!("queue:{q}"), job)
                        .ignore()
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    *count += 1;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            pushed
        })
    };
    let started = Instant::now();
    loop {
        let mut busy = 0;
        for n in 1..=5 {
            let b = process_field(&mut c, &format!("worker.{n}"), "busy").await;
            busy += usize::from(b.is_some_and(|b| b != "0"));
        }
        if busy == 5 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the stream did not reach every process: {busy} of 5");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let env = with(
        env_sidekiq(&fake, &url),
        &[
            ("DYNO_SCALER_POLICY", "adaptive"),
            ("DYNO_SCALER_MAX_WORKERS", "5"),
            ("DYNO_SCALER_MIN_WORKERS", "1"),
            ("DYNO_SCALER_DOWN_DELAY", "0s"),
        ],
    );
    let daemon = Daemon::start(&env);
    assert!(
        eventually(Duration::from_secs(120), || fake.quantity(APP, "worker") == Some(4)).await,
        "the stream never shed a dyno:\n{}",
        daemon.log.lock().unwrap()
    );
    let log = daemon.log.lock().unwrap().clone();
    let shed = log.lines().find(|l| l.contains(" decision ") && l.contains("quiet it and scale down 5 -> 4"));
    eprintln!("{}", shed.unwrap_or_else(|| panic!("no shed through a busy victim:\n{log}")));
    assert!(log.contains("quieting the victims"), "{log}");
    // The victim, worker.5, was quiet and idle when its dyno went.
    let (quiet, busy) =
        (process_field(&mut c, "worker.5", "quiet").await, process_field(&mut c, "worker.5", "busy").await);
    assert_eq!((quiet.as_deref(), busy.as_deref()), (Some("true"), Some("0")), "worker.5 quiet and idle");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let pushed = pushing.await.unwrap();
    daemon.stop().await;
    // Every job a process took ran to its end; worker.5 took nothing after it was quieted (what its queue holds).
    let started = Instant::now();
    for (n, &sent) in pushed.iter().enumerate().skip(1) {
        loop {
            let (done, left): (Option<u64>, u64) = redis::pipe()
                .get(format!("{key}{n}:count"))
                .llen(format!("queue:own{n}"))
                .query_async(&mut c)
                .await
                .unwrap();
            if done.unwrap_or(0) + left == sent && (n == 5 || left == 0) {
                assert!(done.unwrap_or(0) > 0, "worker.{n} ran jobs");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "worker.{n}: {done:?} done + {left} left of {sent}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
